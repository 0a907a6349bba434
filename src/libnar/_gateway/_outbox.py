"""The gateway's outbox: every accepted event kept durably until its flow run exists.

The gateway answers SamaHub once an event is stored here; its dispatcher then leases stored
events, creates their runs in bulk and marks them done (or rejected, with the reason). One
interface, `Outbox`, two stores:

- `FileOutbox` (the default, `LIBNAR_OUTBOX_DIR`): files on one machine, shared by the
  processes of `--workers N`;
- `PostgresOutbox` (`LIBNAR_OUTBOX_URL=postgresql://...`, in `_outbox_pg`): a table that
  gateway replicas share without a shared volume.

Both also keep the bodies of large events (the claim check, `_claims`).

Layout of the file outbox:

    pending/<name>.json   stored, no run known yet (what the dispatcher and `replay` send)
    done/<name>.json      the same entry with its flow run id
    rejected/<name>.json  refused (no such deployment, parameters refused), with the reason
    claims/<sha256>.json  bodies of large events, fetched by their runs (see `_claims`)
    tmp/                  files being written; linked or renamed into place when complete

`<name>` is derived from the flow, the deployment name and the delivery's identity (the event
and its parameters), the same parts as Prefect's idempotency key (which holds the deployment's
id, unknown while Prefect is down), so processes sharing the directory store the same
delivery once. A pending entry is written durably (temp file, fsync, link into place, fsync of
the directory); done and rejected marks are renamed into place without fsync: a lost mark only
means the event is sent again, and Prefect's idempotency key finds its run.

A dispatcher leases an entry by holding an exclusive `flock` on its pending file: another
process skips it, and the kernel releases it when the process dies, so a crashed process's
entries are taken by the next scan of any process.

An event that has its run is never pending: a repeat stored after the first was marked done is
removed at once (`add` looks for the done mark after its link), and a lease skips and removes
any entry whose done mark exists.
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import itertools
import logging
import os
import shutil
import stat
import threading
import time
import uuid
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field, ValidationError, field_validator, model_validator

from libnar.naming import check_deployment_name, check_flow_name

__all__ = [
    "Backlog",
    "FileOutbox",
    "Leased",
    "Outbox",
    "OutboxEntry",
    "OutboxUnavailable",
    "Stored",
    "UnreadableEntry",
]

logger = logging.getLogger("libnar.gateway.outbox")

#: The largest outbox file read back; anything larger is not an entry the gateway wrote.
MAX_ENTRY_BYTES = 2 * 1024 * 1024


class OutboxUnavailable(OSError):
    """The outbox cannot take or give events right now (disk, permissions, database)."""


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
    resources: dict[str, str] | None = Field(
        default=None,
        description="The run's own resources (`amount`, `cpu`, `memory`, `disk`), as given.",
    )
    attempt: int = Field(default=0, ge=0, description="0, or the count of forced re-runs.")
    received_at: str = Field(default_factory=lambda: datetime.now(UTC).isoformat())
    flow_run_id: str | None = None
    rejected: str | None = None
    checked_against: str | None = Field(
        default=None,
        description="The deployment version whose schema accepted the parameters, if any.",
    )

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
    def name(self) -> str:
        """The entry's name in the outbox: the same delivery for the same deployment, the same
        name (whatever process or replica stores it)."""
        key = f"{self.flow}/{self.deployment}:{self.event_key}"
        return hashlib.blake2b(key.encode(), digest_size=16).hexdigest()

    @property
    def file_name(self) -> str:
        """The entry's file name in the file outbox."""
        return self.name + ".json"

    def prefect_key(self, deployment_id: str) -> str:
        """Prefect's idempotency key: keys are per flow in Prefect, so it holds the deployment."""
        key = f"{deployment_id}:{self.event_key}"
        return f"{key}:attempt-{self.attempt}" if self.attempt else key

    def run_parameters(self, event_parameter: str) -> dict[str, Any]:
        """The run's parameters, the event under the flow's event parameter name."""
        return {event_parameter: self.event, **self.parameters}

    def seconds_since_received(self) -> float | None:
        """Seconds since the gateway received the event; None if `received_at` is unreadable."""
        try:
            received = datetime.fromisoformat(self.received_at)
        except ValueError:
            return None
        if received.tzinfo is None:
            received = received.replace(tzinfo=UTC)
        return max(0.0, (datetime.now(UTC) - received).total_seconds())


@dataclass(frozen=True)
class UnreadableEntry:
    """A stored entry that is not one the gateway can send, and why."""

    name: str
    reason: str

    def __str__(self) -> str:
        return f"{self.name}: {self.reason}"


@dataclass(frozen=True)
class Stored:
    """What storing an event found: a new entry, one already pending, or one with its run."""

    state: Literal["new", "pending", "done"]
    flow_run_id: str | None = None

    @property
    def is_duplicate(self) -> bool:
        """Whether the delivery was stored before (pending or done)."""
        return self.state != "new"


@dataclass(frozen=True)
class Leased:
    """An entry this process holds while it sends it to Prefect; `handle` is the store's."""

    entry: OutboxEntry
    handle: Any


@dataclass(frozen=True)
class Backlog:
    """The stored events without a run: how many, and how long the oldest has waited."""

    count: int
    oldest_seconds: float


class Outbox(ABC):
    """Where accepted events wait for their run. Every method blocks: call it in a thread.

    Raises (every method that touches the store):
        OutboxUnavailable: the store cannot be written or read right now.
    """

    #: Where the outbox is, for logs (never with a password).
    location: str

    @abstractmethod
    def create(self) -> None:
        """Create what the outbox needs (folders, tables) if it is missing."""

    @abstractmethod
    def add(self, entry: OutboxEntry) -> Stored:
        """Store an accepted event durably, once per delivery; say whether it was new."""

    @abstractmethod
    def write(self, entry: OutboxEntry) -> None:
        """Store `entry` as pending, replacing what is stored under its name (a forced
        attempt, a repair by hand)."""

    @abstractmethod
    def lease(self, limit: int) -> list[Leased]:
        """Take up to `limit` pending entries, oldest first, that no other dispatcher holds."""

    @abstractmethod
    def finish(self, leased: Leased, flow_run_id: str) -> None:
        """Record the entry's run and let go of it: it is not pending any more."""

    @abstractmethod
    def reject(self, leased: Leased, reason: str) -> None:
        """Move the entry to rejected with the reason; it is not sent again."""

    @abstractmethod
    def release(self, leased: Leased, retry_in: float) -> None:
        """Let go of the entry, still pending; it is leased again after `retry_in` seconds."""

    def settle(self, items: list[tuple[Leased, str | None, str | None, float]]) -> list[str]:
        """Settle many leased entries at once: `(leased, flow_run_id, rejection, retry_in)`
        each, finished with its run, rejected with the reason, or released for `retry_in`
        seconds. Returns a problem per entry that could not be settled (it stays pending)."""
        problems = []
        for leased, run_id, rejection, retry_in in items:
            try:
                if run_id is not None:
                    self.finish(leased, run_id)
                elif rejection is not None:
                    self.reject(leased, rejection)
                else:
                    self.release(leased, retry_in)
            except OSError as exc:
                problems.append(f"{leased.entry.name}: {exc}")
        return problems

    @abstractmethod
    def backlog(self) -> Backlog:
        """The pending entries: how many, and the age of the oldest."""

    @abstractmethod
    def unreadable(self) -> list[UnreadableEntry]:
        """Pending entries found unreadable (never sent; left for an operator), with why."""

    @abstractmethod
    def is_writable(self) -> bool:
        """Whether the outbox takes events right now (for `/ready`)."""

    @abstractmethod
    def keep_body(self, claim_id: str, body: bytes) -> None:
        """Keep a large event's body durably under its SHA-256 (again: renew its retention)."""

    @abstractmethod
    def read_body(self, claim_id: str) -> bytes | None:
        """A kept body, or None when it is not (or no longer) kept."""

    @abstractmethod
    def prune_bodies(self, retention_seconds: float) -> int:
        """Delete bodies not used for `retention_seconds`; return how many went."""

    def close(self) -> None:  # noqa: B027 - most stores hold nothing to close
        """Release connections; the outbox is not used after."""


@dataclass
class _FileLease:
    fd: int
    inode: int


class FileOutbox(Outbox):
    """A directory of accepted events, shared safely by the processes of one machine."""

    def __init__(self, directory: Path, *, min_free_bytes: int = 0) -> None:
        self.directory = directory
        self.location = str(directory)
        self.pending = directory / "pending"
        self.done = directory / "done"
        self.rejected = directory / "rejected"
        self.claims = directory / "claims"
        self._tmp = directory / "tmp"
        self.min_free_bytes = min_free_bytes
        self._queue: deque[str] = deque()
        self._not_before: dict[str, float] = {}
        self._unreadable: dict[str, UnreadableEntry] = {}
        self._pending_sync = _GroupSync(self.pending)

    def create(self) -> None:
        for folder in (self.pending, self.done, self.rejected, self.claims, self._tmp):
            folder.mkdir(parents=True, exist_ok=True)

    # -- storing -----------------------------------------------------------------------------

    def add(self, entry: OutboxEntry) -> Stored:
        """Link the entry into `pending/` unless its delivery is pending or done already.

        The link (not a rename) makes "store once" atomic across processes: the second of two
        processes storing the same delivery finds the first's file and writes nothing.
        """
        with _unavailable_on_error():
            done = self._done_of(entry)
            if done is not None:
                return Stored("done", done.flow_run_id)
            self.check_room()
            self.create()
            path = self.pending / entry.file_name
            tmp = self._write_tmp(entry.model_dump_json().encode(), durable=True)
            try:
                os.link(tmp, path)
                state: Literal["new", "pending"] = "new"
            except FileExistsError:
                state = "pending"
            finally:
                tmp.unlink(missing_ok=True)
            if state == "new":
                self._pending_sync.sync()
            done = self._done_of(entry)  # a repeat racing the first one's done mark
            if done is not None:
                if state == "new":
                    path.unlink(missing_ok=True)
                return Stored("done", done.flow_run_id)
            return Stored(state)

    def write(self, entry: OutboxEntry) -> None:
        with _unavailable_on_error():
            self.check_room()
            path = self.pending / entry.file_name
            self._put(path, entry.model_dump_json().encode(), durable=True)
            if self._done_of(entry) is not None:
                path.unlink(missing_ok=True)

    # -- leasing -----------------------------------------------------------------------------

    def lease(self, limit: int) -> list[Leased]:
        """Lock up to `limit` pending files, oldest first; files other processes hold are
        skipped. Scans the folder again once the last scan's names are used up."""
        with _unavailable_on_error():
            if not self._queue:
                self._scan()
            leased: list[Leased] = []
            now = time.monotonic()
            while self._queue and len(leased) < limit:
                name = self._queue.popleft()
                if self._not_before.get(name, 0.0) > now:
                    continue
                taken = self._take(name)
                if taken is not None:
                    self._not_before.pop(name, None)
                    leased.append(taken)
            return leased

    def finish(self, leased: Leased, flow_run_id: str) -> None:
        entry = leased.entry
        with _unavailable_on_error(), self._letting_go(leased):
            done = entry.model_copy(update={"flow_run_id": flow_run_id})
            self._put(self.done / entry.file_name, done.model_dump_json().encode(), durable=False)
            (self.rejected / entry.file_name).unlink(missing_ok=True)
            self._unlink_if_same(entry.file_name, leased)

    def reject(self, leased: Leased, reason: str) -> None:
        entry = leased.entry
        with _unavailable_on_error(), self._letting_go(leased):
            rejected = entry.model_copy(update={"rejected": reason})
            self._put(
                self.rejected / entry.file_name,
                rejected.model_dump_json().encode(),
                durable=False,
            )
            self._unlink_if_same(entry.file_name, leased)

    def release(self, leased: Leased, retry_in: float) -> None:
        self._not_before[leased.entry.file_name] = time.monotonic() + retry_in
        _close_lease(leased.handle)

    # -- state -------------------------------------------------------------------------------

    def backlog(self) -> Backlog:
        count = 0
        oldest = time.time()
        with _unavailable_on_error():
            try:
                scanner = os.scandir(self.pending)
            except FileNotFoundError:
                return Backlog(0, 0.0)
            with scanner:
                for found in scanner:
                    if not _is_entry_name(found.name) or found.name in self._unreadable:
                        continue
                    try:
                        oldest = min(oldest, found.stat(follow_symlinks=False).st_mtime)
                    except FileNotFoundError:
                        continue
                    count += 1
        return Backlog(count, max(0.0, time.time() - oldest) if count else 0.0)

    def unreadable(self) -> list[UnreadableEntry]:
        return sorted(self._unreadable.values(), key=lambda u: u.name)

    def iter_pending(self) -> Iterator[OutboxEntry | UnreadableEntry]:
        """The pending entries, oldest first, and what could not be read (for inspection)."""
        self._scan()
        names, self._queue = list(self._queue), deque()
        for name in names:
            found = self._read_pending(name)
            if found is not None:
                yield found

    def has_room(self) -> bool:
        """Whether the outbox's disk has at least `min_free_bytes` free."""
        try:
            free = shutil.disk_usage(self.directory).free
        except OSError:
            return False
        return free >= self.min_free_bytes

    def check_room(self) -> None:
        """Raise `OutboxUnavailable(ENOSPC)` when the disk has under `min_free_bytes` free."""
        if self.min_free_bytes and not self.has_room():
            raise OutboxUnavailable(errno.ENOSPC, "less than LIBNAR_OUTBOX_MIN_FREE_BYTES free")

    def is_writable(self) -> bool:
        probe = self._tmp / f"ready-{os.getpid()}-{uuid.uuid4().hex}"
        try:
            self.create()
            probe.write_bytes(b"")
            probe.unlink()
        except OSError:
            return False
        return self.has_room()

    # -- large bodies ------------------------------------------------------------------------

    def keep_body(self, claim_id: str, body: bytes) -> None:
        with _unavailable_on_error():
            self.check_room()
            path = self.claims / f"{claim_id}.json"
            if _is_complete(path, len(body)):
                os.utime(path)  # kept again: the retention counts from the latest use
            else:
                self._put(path, body, durable=True)

    def read_body(self, claim_id: str) -> bytes | None:
        path = self.claims / f"{claim_id}.json"
        try:
            if path.is_symlink() or not path.is_file():
                return None
            return path.read_bytes()
        except OSError:
            return None

    def prune_bodies(self, retention_seconds: float) -> int:
        cutoff = time.time() - retention_seconds
        removed = 0
        try:
            paths = list(self.claims.glob("*.json"))
        except OSError:
            return 0
        for path in paths:
            try:
                if path.lstat().st_mtime < cutoff:
                    path.unlink()
                    removed += 1
            except OSError as exc:
                logger.warning("claims: cannot prune %s: %s", path.name, exc.strerror)
        return removed

    # -- inside ------------------------------------------------------------------------------

    def _scan(self) -> None:
        """Queue the names in `pending/`, oldest first."""
        try:
            scanner = os.scandir(self.pending)
        except FileNotFoundError:
            return
        found: list[tuple[float, str]] = []
        with scanner:
            for item in scanner:
                if not _is_entry_name(item.name) or item.name in self._unreadable:
                    continue
                try:
                    found.append((item.stat(follow_symlinks=False).st_mtime, item.name))
                except FileNotFoundError:
                    continue
        found.sort()
        self._queue = deque(name for _, name in found)

    def _take(self, name: str) -> Leased | None:
        """Lock one pending file and read it; None when another process holds it, it is
        gone, done already, or unreadable (then remembered and logged once)."""
        path = self.pending / name
        flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
        try:
            fd = os.open(path, flags)
        except FileNotFoundError:
            return None
        except OSError as exc:
            why = "a symlink (not followed)" if exc.errno == errno.ELOOP else exc.strerror
            self._remember_unreadable(UnreadableEntry(name, str(why)))
            return None
        keep = False
        try:
            info = os.fstat(fd)
            if not stat.S_ISREG(info.st_mode):
                self._remember_unreadable(UnreadableEntry(name, "not a regular file"))
                return None
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return None  # another process is sending it
            try:
                if os.stat(path, follow_symlinks=False).st_ino != info.st_ino:
                    return None  # finished or replaced meanwhile; the next scan sees the rest
            except FileNotFoundError:
                return None
            found = _parse_entry(name, fd, info.st_size)
            if isinstance(found, UnreadableEntry):
                self._remember_unreadable(found)
                return None
            leased = Leased(found, _FileLease(fd, info.st_ino))
            if self._done_of(found) is not None:
                self._unlink_if_same(name, leased)
                return None
            keep = True
            return leased
        finally:
            if not keep:
                os.close(fd)

    def _read_pending(self, name: str) -> OutboxEntry | UnreadableEntry | None:
        path = self.pending / name
        flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
        try:
            fd = os.open(path, flags)
        except FileNotFoundError:
            return None
        except OSError as exc:
            why = "a symlink (not followed)" if exc.errno == errno.ELOOP else exc.strerror
            return UnreadableEntry(name, str(why))
        try:
            info = os.fstat(fd)
            if not stat.S_ISREG(info.st_mode):
                return UnreadableEntry(name, "not a regular file")
            return _parse_entry(name, fd, info.st_size)
        finally:
            os.close(fd)

    def _remember_unreadable(self, found: UnreadableEntry) -> None:
        if found.name not in self._unreadable:
            logger.error("outbox: skipping unreadable entry %s", found)
        self._unreadable[found.name] = found

    def _letting_go(self, leased: Leased) -> AbstractContextManager[None]:
        return _closing(leased.handle)

    def _unlink_if_same(self, name: str, leased: Leased) -> None:
        """Remove the pending file if it is still the one leased (not a newer attempt)."""
        path = self.pending / name
        try:
            if os.stat(path, follow_symlinks=False).st_ino == leased.handle.inode:
                path.unlink()
        except FileNotFoundError:
            pass

    def _done_of(self, entry: OutboxEntry) -> OutboxEntry | None:
        """The delivery's done mark for this attempt or a later one, if any."""
        path = self.done / entry.file_name
        try:
            if path.is_symlink() or path.stat().st_size > MAX_ENTRY_BYTES:
                return None
            done = OutboxEntry.model_validate_json(path.read_bytes())
        except (OSError, ValidationError):
            return None
        return done if done.attempt >= entry.attempt else None

    def _write_tmp(self, data: bytes, *, durable: bool) -> Path:
        tmp = self._tmp / f"{os.getpid()}.{uuid.uuid4().hex}"
        try:
            with tmp.open("wb") as handle:
                handle.write(data)
                if durable:
                    handle.flush()
                    os.fdatasync(handle.fileno())
        except OSError:
            tmp.unlink(missing_ok=True)
            raise
        return tmp

    def _put(self, path: Path, data: bytes, *, durable: bool) -> None:
        self.create()
        tmp = self._write_tmp(data, durable=durable)
        try:
            os.replace(tmp, path)
        except OSError:
            tmp.unlink(missing_ok=True)
            raise
        if durable:
            _fsync_directory(path.parent)


def _close_lease(handle: _FileLease) -> None:
    """Close a file lease's descriptor, releasing its lock (once)."""
    if handle.fd >= 0:
        os.close(handle.fd)
        handle.fd = -1


@contextmanager
def _closing(handle: _FileLease) -> Iterator[None]:
    """Close a file lease's descriptor when the block ends, whatever happens."""
    try:
        yield
    finally:
        _close_lease(handle)


@contextmanager
def _unavailable_on_error() -> Iterator[None]:
    """Turn an `OSError` into `OutboxUnavailable` (which callers answer with 503)."""
    try:
        yield
    except OutboxUnavailable:
        raise
    except OSError as exc:
        raise OutboxUnavailable(exc.errno or errno.EIO, str(exc)) from exc


def _is_entry_name(name: str) -> bool:
    return name.endswith(".json") and not name.startswith(".")


def _parse_entry(name: str, fd: int, size: int) -> OutboxEntry | UnreadableEntry:
    if size > MAX_ENTRY_BYTES:
        return UnreadableEntry(name, f"{size} bytes, larger than any entry")
    try:
        with os.fdopen(fd, "rb", closefd=False) as handle:
            handle.seek(0)
            data = handle.read(MAX_ENTRY_BYTES + 1)
    except OSError as exc:
        return UnreadableEntry(name, f"cannot read: {exc.strerror}")
    try:
        return OutboxEntry.model_validate_json(data)
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        where = ".".join(str(p) for p in first["loc"]) or "file"
        detail = str(first["msg"])[:120]
        return UnreadableEntry(name, f"not a valid entry ({where}: {detail})")


def _is_complete(path: Path, size: int) -> bool:
    try:
        info = path.lstat()
    except FileNotFoundError:
        return False
    return info.st_size == size and stat.S_ISREG(info.st_mode)


class _GroupSync:
    """fsync a directory for many concurrent writers at once (group commit).

    Each writer calls `sync()` after its link; one fsync that starts after a writer's link
    covers it, so writers that wait while another's fsync runs share the next one instead of
    queueing one each.
    """

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._lock = threading.Lock()
        self._tickets = itertools.count(1)
        self._synced = 0

    def sync(self) -> None:
        ticket = next(self._tickets)  # taken after the caller's link
        with self._lock:
            if self._synced >= ticket:
                return  # an fsync that began after our link has finished
            covered = next(self._tickets) - 1  # every link made before this fsync starts
            _fsync_directory(self.directory)
            self._synced = covered


def _fsync_directory(directory: Path) -> None:
    """Make a rename or link in `directory` durable."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
