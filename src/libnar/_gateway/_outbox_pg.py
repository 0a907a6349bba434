"""The outbox in PostgreSQL (`LIBNAR_OUTBOX_URL`): gateway replicas share it without a volume.

Two tables, created on first start (under an advisory lock, so replicas starting together do
not race):

    libnar_outbox         one row per delivery and deployment (the entry's `name`): the entry
                          as JSON, its state (pending, done, rejected), the run id or the reason,
                          and the lease (`leased_by`, `not_before`)
    libnar_claim_bodies   large events' bodies by SHA-256, with the time of their last use

Dispatchers lease pending rows with `FOR UPDATE SKIP LOCKED` (they never wait for each other)
and stamp them with a lease that ends `LIBNAR_OUTBOX_LEASE_SECONDS` later: a row leased by a
replica that died is leased again by another once its lease has ended. Sending an event twice
is harmless (Prefect's idempotency key finds the run); the lease only keeps it rare.

Needs `libnar[db]` (SQLAlchemy 2 and psycopg 3). Every statement has a deadline: connecting
5 s, a statement 10 s, waiting for a pooled connection 10 s.
"""

from __future__ import annotations

import errno
import logging
import os
import socket
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from libnar._gateway._outbox import (
    Backlog,
    Leased,
    Outbox,
    OutboxEntry,
    OutboxUnavailable,
    Stored,
    UnreadableEntry,
)
from libnar.settings import SettingsError, mask_url

if TYPE_CHECKING:
    from sqlalchemy import Connection, Engine

__all__ = ["PostgresOutbox", "sqlalchemy_url"]

logger = logging.getLogger("libnar.gateway.outbox")

_SCHEMA_LOCK = 0x6C69626E6172  # "libnar": the advisory lock held while creating the tables

_SCHEMA = [
    """
    CREATE TABLE IF NOT EXISTS libnar_outbox (
        name text PRIMARY KEY,
        entry text NOT NULL,
        attempt integer NOT NULL DEFAULT 0,
        state text NOT NULL DEFAULT 'pending',
        received_at timestamptz NOT NULL DEFAULT now(),
        updated_at timestamptz NOT NULL DEFAULT now(),
        not_before timestamptz,
        leased_by text,
        flow_run_id text,
        reason text
    )
    """,
    """
    CREATE INDEX IF NOT EXISTS libnar_outbox_pending
        ON libnar_outbox (received_at) WHERE state = 'pending'
    """,
    """
    CREATE TABLE IF NOT EXISTS libnar_claim_bodies (
        id text PRIMARY KEY,
        body bytea NOT NULL,
        used_at timestamptz NOT NULL DEFAULT now()
    )
    """,
]


_FINISH = (
    "UPDATE libnar_outbox SET state = 'done', flow_run_id = :run, updated_at = now(),"
    " not_before = NULL, leased_by = NULL WHERE name = :name AND attempt = :attempt"
)
_REJECT = (
    "UPDATE libnar_outbox SET state = 'rejected', reason = :reason, updated_at = now(),"
    " not_before = NULL, leased_by = NULL"
    " WHERE name = :name AND attempt = :attempt AND state = 'pending'"
)
_RELEASE = (
    "UPDATE libnar_outbox SET leased_by = NULL,"
    " not_before = now() + make_interval(secs => :retry)"
    " WHERE name = :name AND leased_by = :owner AND state = 'pending'"
)


def sqlalchemy_url(url: str) -> str:
    """`postgresql://...` as SQLAlchemy names psycopg 3: `postgresql+psycopg://...`.

    Raises:
        SettingsError: the URL is not a PostgreSQL one.
    """
    scheme, sep, rest = url.partition("://")
    if not sep or scheme.split("+")[0] not in ("postgresql", "postgres"):
        raise SettingsError(
            f"LIBNAR_OUTBOX_URL: {mask_url(url)!r} is not a PostgreSQL URL"
            " (expected postgresql://user:password@host:5432/database)"
        )
    return f"postgresql+psycopg://{rest}"


@dataclass(frozen=True)
class _RowLease:
    name: str
    owner: str
    attempt: int


class PostgresOutbox(Outbox):
    """The outbox as rows of a PostgreSQL database, shared by every gateway replica."""

    def __init__(self, url: str, *, lease_seconds: float = 60.0, pool_size: int = 10) -> None:
        try:
            import psycopg  # noqa: F401 - the driver SQLAlchemy loads; checked here to say so
            from sqlalchemy import create_engine
            from sqlalchemy.engine import make_url
        except ImportError as exc:
            raise SettingsError(
                f"LIBNAR_OUTBOX_URL is a PostgreSQL URL, which needs libnar[db] ({exc.name} is"
                " not installed): pip install 'libnar[db]'"
            ) from None
        target = make_url(sqlalchemy_url(url))
        self.location = f"PostgreSQL {target.host}:{target.port or 5432}/{target.database}"
        self.lease_seconds = lease_seconds
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._engine: Engine = create_engine(
            target,
            pool_size=pool_size,
            max_overflow=pool_size * 2,
            pool_timeout=10,
            pool_pre_ping=True,
            connect_args={"connect_timeout": 5, "options": "-c statement_timeout=10000"},
        )
        self._unreadable: dict[str, UnreadableEntry] = {}

    def __repr__(self) -> str:
        return f"PostgresOutbox({self.location!r})"

    @contextmanager
    def _transaction(self) -> Iterator[Connection]:
        """A connection in a transaction; database errors become `OutboxUnavailable`."""
        from sqlalchemy.exc import SQLAlchemyError

        try:
            with self._engine.begin() as connection:
                yield connection
        except SQLAlchemyError as exc:
            # The message can quote the statement's parameters: keep only its first line.
            first = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0][:200]
            raise OutboxUnavailable(errno.EIO, f"{self.location}: {first}") from None

    def create(self) -> None:
        from sqlalchemy import text

        with self._transaction() as db:
            db.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _SCHEMA_LOCK})
            for statement in _SCHEMA:
                db.execute(text(statement))

    # -- storing -----------------------------------------------------------------------------

    def add(self, entry: OutboxEntry) -> Stored:
        from sqlalchemy import text

        values = {"name": entry.name, "entry": entry.model_dump_json(), "attempt": entry.attempt}
        with self._transaction() as db:
            inserted = db.execute(
                text(
                    "INSERT INTO libnar_outbox (name, entry, attempt) VALUES (:name, :entry,"
                    " :attempt) ON CONFLICT (name) DO NOTHING RETURNING name"
                ),
                values,
            ).first()
            if inserted is not None:
                return Stored("new")
            found = db.execute(
                text(
                    "SELECT state, attempt, flow_run_id FROM libnar_outbox WHERE name = :name"
                    " FOR UPDATE"
                ),
                values,
            ).one()
            if found.state == "pending":
                return Stored("pending")
            if found.state == "done" and found.attempt >= entry.attempt:
                return Stored("done", found.flow_run_id)
            # Rejected before (or done for an earlier attempt): it passed the checks now.
            db.execute(
                text(
                    "UPDATE libnar_outbox SET entry = :entry, attempt = :attempt, state ="
                    " 'pending', received_at = now(), updated_at = now(), not_before = NULL,"
                    " leased_by = NULL, reason = NULL, flow_run_id = NULL WHERE name = :name"
                ),
                values,
            )
            return Stored("new")

    def write(self, entry: OutboxEntry) -> None:
        from sqlalchemy import text

        with self._transaction() as db:
            db.execute(
                text(
                    "INSERT INTO libnar_outbox (name, entry, attempt) VALUES (:name, :entry,"
                    " :attempt) ON CONFLICT (name) DO UPDATE SET entry = EXCLUDED.entry,"
                    " attempt = EXCLUDED.attempt, state = 'pending', updated_at = now(),"
                    " not_before = NULL, leased_by = NULL, reason = NULL, flow_run_id = NULL"
                    " WHERE libnar_outbox.state = 'pending'"
                    " OR libnar_outbox.attempt < EXCLUDED.attempt"
                ),
                {"name": entry.name, "entry": entry.model_dump_json(), "attempt": entry.attempt},
            )

    # -- leasing -----------------------------------------------------------------------------

    def lease(self, limit: int) -> list[Leased]:
        from sqlalchemy import text

        with self._transaction() as db:
            rows = db.execute(
                text(
                    "UPDATE libnar_outbox SET leased_by = :owner,"
                    " not_before = now() + make_interval(secs => :lease)"
                    " WHERE name IN (SELECT name FROM libnar_outbox WHERE state = 'pending'"
                    " AND (not_before IS NULL OR not_before <= now())"
                    " ORDER BY received_at LIMIT :limit FOR UPDATE SKIP LOCKED)"
                    " RETURNING name, entry, attempt, received_at"
                ),
                {"owner": self.owner, "lease": self.lease_seconds, "limit": limit},
            ).all()
            leased: list[Leased] = []
            for row in sorted(rows, key=lambda r: r.received_at):
                try:
                    entry = OutboxEntry.model_validate_json(row.entry)
                except ValidationError as exc:
                    first = exc.errors(include_url=False)[0]
                    where = ".".join(str(p) for p in first["loc"]) or "entry"
                    reason = f"not a valid entry ({where}: {str(first['msg'])[:120]})"
                    found = UnreadableEntry(row.name, reason)
                    if row.name not in self._unreadable:
                        logger.error("outbox: skipping unreadable entry %s", found)
                    self._unreadable[row.name] = found
                    db.execute(
                        text(
                            "UPDATE libnar_outbox SET state = 'rejected', reason = :reason,"
                            " updated_at = now(), leased_by = NULL WHERE name = :name"
                        ),
                        {"name": row.name, "reason": reason},
                    )
                    continue
                leased.append(Leased(entry, _RowLease(row.name, self.owner, row.attempt)))
            return leased

    def finish(self, leased: Leased, flow_run_id: str) -> None:
        from sqlalchemy import text

        handle: _RowLease = leased.handle
        with self._transaction() as db:
            db.execute(
                text(_FINISH),
                {"name": handle.name, "attempt": handle.attempt, "run": flow_run_id},
            )

    def settle(self, items: list[tuple[Leased, str | None, str | None, float]]) -> list[str]:
        """Settle a batch in one transaction (one commit instead of one per entry)."""
        from sqlalchemy import text

        done = [
            {"name": item.handle.name, "attempt": item.handle.attempt, "run": run}
            for item, run, _, _ in items
            if run is not None
        ]
        rejected = [
            {"name": item.handle.name, "attempt": item.handle.attempt, "reason": why}
            for item, run, why, _ in items
            if run is None and why is not None
        ]
        released = [
            {"name": item.handle.name, "owner": item.handle.owner, "retry": retry}
            for item, run, why, retry in items
            if run is None and why is None
        ]
        try:
            with self._transaction() as db:
                if done:
                    db.execute(text(_FINISH), done)
                if rejected:
                    db.execute(text(_REJECT), rejected)
                if released:
                    db.execute(text(_RELEASE), released)
        except OutboxUnavailable as exc:
            return [f"{item.entry.name}: {exc}" for item, _, _, _ in items]
        return []

    def reject(self, leased: Leased, reason: str) -> None:
        from sqlalchemy import text

        handle: _RowLease = leased.handle
        with self._transaction() as db:
            db.execute(
                text(_REJECT),
                {"name": handle.name, "attempt": handle.attempt, "reason": reason},
            )

    def release(self, leased: Leased, retry_in: float) -> None:
        from sqlalchemy import text

        handle: _RowLease = leased.handle
        with self._transaction() as db:
            db.execute(
                text(_RELEASE),
                {"name": handle.name, "owner": handle.owner, "retry": retry_in},
            )

    # -- state -------------------------------------------------------------------------------

    def backlog(self) -> Backlog:
        from sqlalchemy import text

        with self._transaction() as db:
            row = db.execute(
                text(
                    "SELECT count(*) AS count,"
                    " coalesce(extract(epoch FROM now() - min(received_at)), 0) AS oldest"
                    " FROM libnar_outbox WHERE state = 'pending'"
                )
            ).one()
        return Backlog(int(row[0]), max(0.0, float(row[1])))

    def unreadable(self) -> list[UnreadableEntry]:
        return sorted(self._unreadable.values(), key=lambda u: u.name)

    def is_writable(self) -> bool:
        from sqlalchemy import text

        try:
            with self._transaction() as db:
                db.execute(text("SELECT 1 FROM libnar_outbox LIMIT 1"))
        except OutboxUnavailable:
            return False
        return True

    def entries(self) -> list[dict[str, Any]]:
        """Every row: name, state, attempt, flow run id, reason (for tests and inspection)."""
        from sqlalchemy import text

        with self._transaction() as db:
            rows = db.execute(
                text(
                    "SELECT name, state, attempt, flow_run_id, reason, entry FROM libnar_outbox"
                    " ORDER BY received_at"
                )
            ).all()
        return [dict(row._mapping) for row in rows]

    # -- large bodies ------------------------------------------------------------------------

    def keep_body(self, claim_id: str, body: bytes) -> None:
        from sqlalchemy import text

        with self._transaction() as db:
            db.execute(
                text(
                    "INSERT INTO libnar_claim_bodies (id, body) VALUES (:id, :body)"
                    " ON CONFLICT (id) DO UPDATE SET used_at = now()"
                ),
                {"id": claim_id, "body": body},
            )

    def read_body(self, claim_id: str) -> bytes | None:
        from sqlalchemy import text

        with self._transaction() as db:
            row = db.execute(
                text("SELECT body FROM libnar_claim_bodies WHERE id = :id"), {"id": claim_id}
            ).first()
        return bytes(row.body) if row is not None else None

    def prune_bodies(self, retention_seconds: float) -> int:
        from sqlalchemy import text

        with self._transaction() as db:
            result = db.execute(
                text(
                    "DELETE FROM libnar_claim_bodies"
                    " WHERE used_at < now() - make_interval(secs => :seconds)"
                ),
                {"seconds": retention_seconds},
            )
        return int(result.rowcount or 0)

    def close(self) -> None:
        self._engine.dispose()
