"""The gateway's outbox: every accepted event on disk before Prefect is called.

Layout under the outbox directory:

    pending/<name>.json   accepted, not yet known to have a flow run (what `replay` re-sends)
    done/<name>.json      the same entry with its flow run id
    rejected/<name>.json  Prefect refused it (no such deployment, parameters it rejects)
    tmp/                  files being written; renamed into place when complete

`<name>` is derived from the flow, the deployment name and the event's idempotency key, the
same parts as Prefect's idempotency key (which holds the deployment's id, unknown while Prefect
is down), so two replicas sharing the directory write the same event to the same file. Pending
entries are written durably (temp file, fsync, atomic rename, fsync of the directory); done and
rejected marks are renamed into place without fsync: a lost mark only means a replay that
Prefect deduplicates.
"""

from __future__ import annotations

import hashlib
import logging
import os
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field, ValidationError

__all__ = ["Outbox", "OutboxEntry"]

logger = logging.getLogger("libnar.gateway.outbox")


class OutboxEntry(BaseModel):
    """One accepted event and everything needed to trigger its run again."""

    source: Literal["webhook", "dpp"]
    flow: str
    deployment: str
    event_key: str = Field(description="The event's own idempotency key.")
    parameters: dict[str, Any] = Field(description="The run's parameters, event included.")
    run_name: str
    tags: list[str]
    attempt: int = Field(default=0, description="0, or the count of forced re-runs.")
    received_at: str = Field(default_factory=lambda: datetime.now(UTC).isoformat())
    flow_run_id: str | None = None
    rejected: str | None = None

    @property
    def file_name(self) -> str:
        """The entry's file name: the same event for the same deployment, the same name."""
        key = f"{self.flow}/{self.deployment}:{self.event_key}"
        return hashlib.blake2b(key.encode(), digest_size=16).hexdigest() + ".json"

    def prefect_key(self, deployment_id: str) -> str:
        """Prefect's idempotency key: keys are per flow in Prefect, so it holds the deployment."""
        key = f"{deployment_id}:{self.event_key}"
        return f"{key}:attempt-{self.attempt}" if self.attempt else key


class Outbox:
    """A directory of accepted events, shared safely by several gateway processes."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.pending = directory / "pending"
        self.done = directory / "done"
        self.rejected = directory / "rejected"
        self._tmp = directory / "tmp"

    def create(self) -> None:
        """Create the directory and its sub-directories if needed."""
        for folder in (self.pending, self.done, self.rejected, self._tmp):
            folder.mkdir(parents=True, exist_ok=True)

    def write(self, entry: OutboxEntry) -> Path:
        """Write `entry` to `pending/` durably and return its path.

        Raises:
            OSError: the directory is not writable (the caller answers 503).
        """
        path = self.pending / entry.file_name
        self._put(path, entry.model_dump_json().encode(), durable=True)
        return path

    def mark_done(self, entry: OutboxEntry, flow_run_id: str) -> None:
        """Record the entry's flow run in `done/` and drop it from `pending/`."""
        done = entry.model_copy(update={"flow_run_id": flow_run_id})
        self._put(self.done / entry.file_name, done.model_dump_json().encode(), durable=False)
        (self.pending / entry.file_name).unlink(missing_ok=True)

    def mark_rejected(self, entry: OutboxEntry, reason: str) -> None:
        """Move the entry to `rejected/` with Prefect's reason; it is not replayed."""
        rejected = entry.model_copy(update={"rejected": reason})
        self._put(
            self.rejected / entry.file_name, rejected.model_dump_json().encode(), durable=False
        )
        (self.pending / entry.file_name).unlink(missing_ok=True)

    def iter_pending(self) -> Iterator[OutboxEntry]:
        """The pending entries, oldest file first; unreadable files are logged and skipped."""
        try:
            paths = sorted(self.pending.glob("*.json"), key=_mtime)
        except FileNotFoundError:
            return
        for path in paths:
            try:
                yield OutboxEntry.model_validate_json(path.read_bytes())
            except FileNotFoundError:
                continue  # another replica finished it meanwhile
            except (OSError, ValidationError) as exc:
                logger.error("outbox: skipping unreadable entry %s: %s", path, exc)

    def is_writable(self) -> bool:
        """Whether a file can be created and removed in the outbox right now."""
        probe = self._tmp / f"ready-{os.getpid()}-{uuid.uuid4().hex}"
        try:
            self.create()
            probe.write_bytes(b"")
            probe.unlink()
        except OSError:
            return False
        return True

    def _put(self, path: Path, data: bytes, *, durable: bool) -> None:
        self.create()
        tmp = self._tmp / f"{path.name}.{os.getpid()}.{uuid.uuid4().hex}"
        with tmp.open("wb") as handle:
            handle.write(data)
            if durable:
                handle.flush()
                os.fsync(handle.fileno())
        os.replace(tmp, path)
        if durable:
            _fsync_directory(path.parent)


def _fsync_directory(directory: Path) -> None:
    """Make a rename in `directory` durable."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except FileNotFoundError:
        return 0.0
