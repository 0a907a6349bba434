"""Claim check: keep a large event's body, give its run a small reference, serve it back.

Prefect refuses run parameters over 512 KiB, and one refused item fails a whole bulk call.
An event over `LIBNAR_CLAIM_CHECK_BYTES` is written here (durably, before the outbox entry
that points at it) and the run's event parameter becomes a `ClaimReference`: the gateway's
public URL `/claims/<sha256>`, a token, the body's size and digest. `@nps_flow` fetches and
checks it before the flow function runs.

Bodies are named by their SHA-256, so a repeated event is stored once. The token is an HMAC
of the claim's name with a gateway secret: any replica sharing the secrets (and the outbox
directory) can verify it without a lookup, and rotating the secrets keeps old runs working
while the old secret is still configured. Bodies are kept `LIBNAR_CLAIM_RETENTION_DAYS`.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import re
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

from libnar._gateway._tokens import is_one_of
from libnar.runs import ClaimReference, RunSubject

__all__ = ["ClaimStore"]

logger = logging.getLogger("libnar.gateway")

_CLAIM_ID = re.compile(r"^[0-9a-f]{64}$")


def claim_token(secret: str, claim_id: str) -> str:
    """The bearer token of a claim: an HMAC of its id with a gateway secret."""
    message = f"libnar-claim:{claim_id}".encode()
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


class ClaimStore:
    """Large event bodies under `<outbox>/claims/`, served to runs that present their token."""

    def __init__(self, directory: Path, secrets: Sequence[str], public_url: str | None) -> None:
        self.directory = directory
        self._secrets = list(secrets)
        self._public_url = public_url
        self._tmp = directory.parent / "tmp"

    @property
    def can_refer(self) -> bool:
        """Whether runs can be given references (the gateway's public URL is known)."""
        return self._public_url is not None

    def keep(self, body: bytes, subject: RunSubject) -> ClaimReference:
        """Store `body` durably (once per content) and return the reference a run carries.

        Raises:
            OSError: the directory is not writable (the caller answers 503).
        """
        assert self._public_url is not None, "check can_refer first"
        claim_id = hashlib.sha256(body).hexdigest()
        path = self.directory / f"{claim_id}.json"
        if not _is_complete(path, len(body)):
            self._write(path, body)
        else:
            os.utime(path)  # kept again: the retention counts from the latest use
        return ClaimReference(
            url=f"{self._public_url}/claims/{claim_id}",
            sha256=claim_id,
            size=len(body),
            token=claim_token(self._secrets[0], claim_id),
            source=_source(subject.source),
            project_id=subject.project_id,
            task_id=subject.task_id,
            round=subject.round,
            state=subject.state,
        )

    def is_authorized(self, claim_id: str, token: str | None) -> bool:
        """Whether `token` is the token of `claim_id`, checked against every configured
        secret in constant time (before the disk is looked at)."""
        if not _CLAIM_ID.match(claim_id):
            return False
        return is_one_of(token, [claim_token(secret, claim_id) for secret in self._secrets])

    def path_of(self, claim_id: str) -> Path | None:
        """The kept body's file (a regular file, never a symlink), or None."""
        if not _CLAIM_ID.match(claim_id):
            return None
        path = self.directory / f"{claim_id}.json"
        try:
            return path if path.is_file() and not path.is_symlink() else None
        except OSError:
            return None

    def prune(self, retention_seconds: float) -> int:
        """Delete bodies not used for `retention_seconds`; return how many went."""
        cutoff = time.time() - retention_seconds
        removed = 0
        try:
            paths = list(self.directory.glob("*.json"))
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

    def _write(self, path: Path, body: bytes) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        self._tmp.mkdir(parents=True, exist_ok=True)
        tmp = self._tmp / f"{path.name}.{os.getpid()}.{uuid.uuid4().hex}"
        try:
            with tmp.open("wb") as handle:
                handle.write(body)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, path)
        except OSError:
            tmp.unlink(missing_ok=True)
            raise
        fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _source(source: str | None) -> Literal["webhook", "dpp", "task"]:
    if source == "webhook":
        return "webhook"
    if source == "dpp":
        return "dpp"
    return "task"


def _is_complete(path: Path, size: int) -> bool:
    try:
        stat = path.lstat()
    except FileNotFoundError:
        return False
    return stat.st_size == size and not path.is_symlink()
