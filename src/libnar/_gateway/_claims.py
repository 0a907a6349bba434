"""Claim check: keep a large event's body, give its run a small reference, serve it back.

Prefect refuses run parameters over 512 KiB, and one refused item fails a whole bulk call.
An event over `LIBNAR_CLAIM_CHECK_BYTES` is written here (durably, before the outbox entry
that points at it) and the run's event parameter becomes a `ClaimReference`: the gateway's
public URL `/claims/<sha256>`, a token, the body's size and digest. `@nps_flow` fetches and
checks it before the flow function runs.

Bodies are named by their SHA-256, so a repeated event is stored once; the outbox keeps them
(files under `claims/`, or a PostgreSQL table). The token is an HMAC of the claim's name with a
gateway secret: any replica sharing the secrets (and the outbox) can verify it without a
lookup, and rotating the secrets keeps old runs working while the old secret is still
configured. Bodies are kept `LIBNAR_CLAIM_RETENTION_DAYS`.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
from collections.abc import Sequence
from typing import Literal

from libnar._gateway._outbox import Outbox
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
    """Large event bodies kept in the outbox, served to runs that present their token."""

    def __init__(self, outbox: Outbox, secrets: Sequence[str], public_url: str | None) -> None:
        self.outbox = outbox
        self._secrets = list(secrets)
        self._public_url = public_url

    @property
    def can_refer(self) -> bool:
        """Whether runs can be given references (the gateway's public URL is known)."""
        return self._public_url is not None

    def keep(self, body: bytes, subject: RunSubject) -> ClaimReference:
        """Store `body` durably (once per content) and return the reference a run carries.

        Raises:
            OutboxUnavailable: the outbox cannot store it (the caller answers 503).
        """
        assert self._public_url is not None, "check can_refer first"
        claim_id = hashlib.sha256(body).hexdigest()
        self.outbox.keep_body(claim_id, body)
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
        secret in constant time (before the outbox is looked at)."""
        if not _CLAIM_ID.match(claim_id):
            return False
        return is_one_of(token, [claim_token(secret, claim_id) for secret in self._secrets])

    def body_of(self, claim_id: str) -> bytes | None:
        """The kept body, or None (not kept, past its retention, or the outbox unreachable)."""
        if not _CLAIM_ID.match(claim_id):
            return None
        try:
            return self.outbox.read_body(claim_id)
        except OSError as exc:
            logger.error("claims: cannot read %s: %s", claim_id, exc)
            return None

    def prune(self, retention_seconds: float) -> int:
        """Delete bodies not used for `retention_seconds`; return how many went."""
        return self.outbox.prune_bodies(retention_seconds)


def _source(source: str | None) -> Literal["webhook", "dpp", "task"]:
    if source == "webhook":
        return "webhook"
    if source == "dpp":
        return "dpp"
    return "task"
