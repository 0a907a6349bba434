"""The gateway's outbox: every accepted event on disk before Prefect is called.

Layout under the outbox directory:

    pending/<name>.json   accepted, not yet known to have a flow run (what `replay` re-sends)
    done/<name>.json      the same entry with its flow run id
    rejected/<name>.json  Prefect refused it (no such deployment, parameters it rejects)
    claims/<sha256>.json  bodies of large events, fetched by their runs (see `_claims`)
    tmp/                  files being written; renamed into place when complete

`<name>` is derived from the flow, the deployment name and the delivery's identity (the event
and its parameters), the same parts as Prefect's idempotency key (which holds the deployment's
id, unknown while Prefect is down), so two replicas sharing the directory write the same
delivery to the same file. Pending entries are written durably (temp file, fsync, atomic
rename, fsync of the directory); done and rejected marks are renamed into place without fsync:
a lost mark only means a replay that Prefect deduplicates.

An event that has its run is never pending: a repeat's pending write that lands after the
first one was marked done is removed at once (`write` looks for the done mark after its
rename), and `iter_pending` skips and removes any entry whose done mark exists.
"""

from __future__ import annotations

import errno
import hashlib
import logging
import os
import shutil
import stat
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field, ValidationError, field_validator, model_validator

from libnar.naming import check_deployment_name, check_flow_name

__all__ = ["Outbox", "OutboxEntry", "UnreadableEntry"]

logger = logging.getLogger("libnar.gateway.outbox")

#: The largest outbox file read back; anything larger is not an entry the gateway wrote.
MAX_ENTRY_BYTES = 2 * 1024 * 1024


class OutboxEntry(BaseModel):
    """One accepted event and everything needed to trigger its run again."""

    source: Literal["webhook", "dpp"]
    flow: str
    deployment: str
    event_key: str = Field(
        description="The delivery's identity: the event's key and its parameters' digest."
    )
    event: dict[str, Any] = Field(
        default_factory=dict,
        description="The event parameter's value: the event, or a claim reference to it.",
    )
    parameters: dict[str, Any] = Field(
        default_factory=dict, description="The run's other parameters (token or DPP ones)."
    )
    run_name: str
    tags: list[str]
    attempt: int = Field(default=0, ge=0, description="0, or the count of forced re-runs.")
    received_at: str = Field(default_factory=lambda: datetime.now(UTC).isoformat())
    flow_run_id: str | None = None
    rejected: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _event_apart(cls, data: Any) -> Any:
        """Read entries written before the event was kept apart (`parameters.event`)."""
        if isinstance(data, dict) and "event" not in data:
            parameters = data.get("parameters")
            if isinstance(parameters, dict) and isinstance(parameters.get("event"), dict):
                rest = dict(parameters)
                return {**data, "event": rest.pop("event"), "parameters": rest}
        return data

    @field_validator("flow")
    @classmethod
    def _flow_name(cls, value: str) -> str:
        problem = check_flow_name(value)
        if problem:
            raise ValueError(problem)
        return value

    @field_validator("deployment")
    @classmethod
    def _deployment_name(cls, value: str) -> str:
        problem = check_deployment_name(value)
        if problem:
            raise ValueError(f"expected {problem}")
        return value

    @property
    def file_name(self) -> str:
        """The entry's file name: the same delivery for the same deployment, the same name."""
        key = f"{self.flow}/{self.deployment}:{self.event_key}"
        return hashlib.blake2b(key.encode(), digest_size=16).hexdigest() + ".json"

    def prefect_key(self, deployment_id: str) -> str:
        """Prefect's idempotency key: keys are per flow in Prefect, so it holds the deployment."""
        key = f"{deployment_id}:{self.event_key}"
        return f"{key}:attempt-{self.attempt}" if self.attempt else key

    def run_parameters(self, event_parameter: str) -> dict[str, Any]:
        """The run's parameters, the event under the flow's event parameter name."""
        return {event_parameter: self.event, **self.parameters}


@dataclass(frozen=True)
class UnreadableEntry:
    """A file in `pending/` that is not an entry the gateway can replay, and why."""

    name: str
    reason: str

    def __str__(self) -> str:
        return f"{self.name}: {self.reason}"


class Outbox:
    """A directory of accepted events, shared safely by several gateway processes."""

    def __init__(self, directory: Path, *, min_free_bytes: int = 0) -> None:
        self.directory = directory
        self.pending = directory / "pending"
        self.done = directory / "done"
        self.rejected = directory / "rejected"
        self.claims = directory / "claims"
        self._tmp = directory / "tmp"
        self.min_free_bytes = min_free_bytes

    def create(self) -> None:
        """Create the directory and its sub-directories if needed."""
        for folder in (self.pending, self.done, self.rejected, self.claims, self._tmp):
            folder.mkdir(parents=True, exist_ok=True)

    def write(self, entry: OutboxEntry) -> Path:
        """Write `entry` to `pending/` durably and return its path.

        If the delivery was marked done meanwhile (a repeat racing the first), the pending
        file is removed again: an event that has its run is never pending.

        Raises:
            OSError: the directory is not writable or the disk is nearly full (the caller
                answers 503).
        """
        self.check_room()
        path = self.pending / entry.file_name
        self._put(path, entry.model_dump_json().encode(), durable=True)
        if self._is_done(entry):
            path.unlink(missing_ok=True)
        return path

    def mark_done(self, entry: OutboxEntry, flow_run_id: str) -> None:
        """Record the entry's flow run in `done/` and drop it from `pending/`."""
        done = entry.model_copy(update={"flow_run_id": flow_run_id})
        self._put(self.done / entry.file_name, done.model_dump_json().encode(), durable=False)
        (self.pending / entry.file_name).unlink(missing_ok=True)

    def mark_rejected(self, entry: OutboxEntry, reason: str) -> None:
        """Move the entry to `rejected/` with the reason; it is not replayed."""
        rejected = entry.model_copy(update={"rejected": reason})
        self._put(
            self.rejected / entry.file_name, rejected.model_dump_json().encode(), durable=False
        )
        (self.pending / entry.file_name).unlink(missing_ok=True)

    def iter_pending(self) -> Iterator[OutboxEntry | UnreadableEntry]:
        """The pending entries, oldest file first, and what could not be read, with the reason.

        Symlinks are not followed, and only regular files up to `MAX_ENTRY_BYTES` are read.
        Entries whose delivery is already done are removed, not returned.
        """
        try:
            names = sorted(os.listdir(self.pending), key=self._age)
        except FileNotFoundError:
            return
        for name in names:
            if name.startswith("."):
                continue
            found = self._read_pending(name)
            if found is None:
                continue  # another replica finished it meanwhile
            if isinstance(found, OutboxEntry) and self._is_done(found):
                (self.pending / name).unlink(missing_ok=True)
                continue
            if isinstance(found, UnreadableEntry):
                logger.error("outbox: skipping unreadable entry %s", found)
            yield found

    def has_room(self) -> bool:
        """Whether the outbox's disk has at least `min_free_bytes` free."""
        try:
            free = shutil.disk_usage(self.directory).free
        except OSError:
            return False
        return free >= self.min_free_bytes

    def check_room(self) -> None:
        """Raise `OSError(ENOSPC)` when the disk has less than `min_free_bytes` free."""
        if self.min_free_bytes and not self.has_room():
            raise OSError(errno.ENOSPC, "less than LIBNAR_OUTBOX_MIN_FREE_BYTES free")

    def is_writable(self) -> bool:
        """Whether a file can be created and removed in the outbox right now, with room left."""
        probe = self._tmp / f"ready-{os.getpid()}-{uuid.uuid4().hex}"
        try:
            self.create()
            probe.write_bytes(b"")
            probe.unlink()
        except OSError:
            return False
        return self.has_room()

    def _read_pending(self, name: str) -> OutboxEntry | UnreadableEntry | None:
        path = self.pending / name
        flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
        try:
            fd = os.open(path, flags)
        except FileNotFoundError:
            return None
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                return UnreadableEntry(name, "a symlink (not followed)")
            return UnreadableEntry(name, f"cannot open: {exc.strerror}")
        try:
            info = os.fstat(fd)
            if not stat.S_ISREG(info.st_mode):
                return UnreadableEntry(name, "not a regular file")
            if info.st_size > MAX_ENTRY_BYTES:
                return UnreadableEntry(name, f"{info.st_size} bytes, larger than any entry")
            with os.fdopen(fd, "rb", closefd=False) as handle:
                data = handle.read(MAX_ENTRY_BYTES + 1)
        except OSError as exc:
            return UnreadableEntry(name, f"cannot read: {exc.strerror}")
        finally:
            os.close(fd)
        try:
            return OutboxEntry.model_validate_json(data)
        except ValidationError as exc:
            first = exc.errors(include_url=False)[0]
            where = ".".join(str(p) for p in first["loc"]) or "file"
            detail = str(first["msg"])[:120]
            return UnreadableEntry(name, f"not a valid entry ({where}: {detail})")

    def _is_done(self, entry: OutboxEntry) -> bool:
        """Whether the delivery has a done mark for this attempt or a later one."""
        path = self.done / entry.file_name
        try:
            if path.is_symlink() or path.stat().st_size > MAX_ENTRY_BYTES:
                return False
            done = OutboxEntry.model_validate_json(path.read_bytes())
        except (OSError, ValidationError):
            return False
        return done.attempt >= entry.attempt

    def _age(self, name: str) -> float:
        try:
            return (self.pending / name).lstat().st_mtime
        except OSError:
            return 0.0

    def _put(self, path: Path, data: bytes, *, durable: bool) -> None:
        self.create()
        tmp = self._tmp / f"{path.name}.{os.getpid()}.{uuid.uuid4().hex}"
        try:
            with tmp.open("wb") as handle:
                handle.write(data)
                if durable:
                    handle.flush()
                    os.fsync(handle.fileno())
            os.replace(tmp, path)
        except OSError:
            tmp.unlink(missing_ok=True)
            raise
        if durable:
            _fsync_directory(path.parent)


def _fsync_directory(directory: Path) -> None:
    """Make a rename in `directory` durable."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
