"""Fetch the body of a claim reference: a large event kept outside Prefect's parameters.

Prefect refuses run parameters over 512 KiB (`PREFECT_SERVER_API_MAX_PARAMETER_SIZE`), while
SamaHub's video and 3D tasks are megabytes. The gateway (or `libnar run`) keeps such an event
and the run carries a `ClaimReference`; `@nps_flow` calls `fetch_claim` before the flow
function runs. The body is read up to its announced size and checked against its SHA-256, so
a truncated, grown or altered body fails the run instead of reaching the function.

Sync and async share the checks; only the sending differs (httpx's model).
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from urllib.parse import unquote, urlsplit

import httpx

from libnar.events import DppEvent, Task, WebhookEvent
from libnar.runs import ClaimReference, RunSubject, subject_of

__all__ = [
    "ClaimError",
    "fetch_claim",
    "fetch_claim_async",
    "keep_locally",
    "pass_large_by_reference",
]

#: How long a run keeps trying to reach the claim's holder (the gateway may be restarting).
CLAIM_FETCH_SECONDS = 60.0
_RETRIED_STATUSES = frozenset({429, 502, 503, 504})


class ClaimError(RuntimeError):
    """The body of a claim reference cannot be read or does not match its reference."""


def _where(reference: ClaimReference) -> str:
    """The reference's URL for messages: no query string, no credentials."""
    parts = urlsplit(reference.url)
    host = parts.hostname or ""
    if parts.port:
        host += f":{parts.port}"
    return f"{parts.scheme}://{host}{parts.path}"


def _checked(reference: ClaimReference, body: bytes) -> bytes:
    if len(body) != reference.size:
        raise ClaimError(
            f"claim {_where(reference)}: got {len(body)} bytes, the reference says"
            f" {reference.size}; the stored event is damaged"
        )
    if hashlib.sha256(body).hexdigest() != reference.sha256:
        raise ClaimError(
            f"claim {_where(reference)}: the body does not match the reference's SHA-256;"
            " the stored event is damaged or was replaced"
        )
    return body


def _read_file(reference: ClaimReference) -> bytes:
    path = Path(unquote(urlsplit(reference.url).path))
    try:
        with path.open("rb") as handle:
            body = handle.read(reference.size + 1)
    except OSError as exc:
        raise ClaimError(
            f"claim {_where(reference)}: {exc.strerror}; a file claim is only readable on"
            " the machine that wrote it (libnar run)"
        ) from None
    return _checked(reference, body)


def _headers(reference: ClaimReference) -> dict[str, str]:
    return {"Authorization": f"Bearer {reference.token}"} if reference.token else {}


def _scheme(reference: ClaimReference) -> str:
    scheme = urlsplit(reference.url).scheme
    if scheme not in ("file", "http", "https"):
        raise ClaimError(
            f"claim {_where(reference)}: unsupported scheme {scheme!r}; expected http(s) or file"
        )
    return scheme


def _answer_problem(reference: ClaimReference, status: int) -> ClaimError:
    if status in (401, 403):
        reason = "the gateway refused the claim's token (were the gateway secrets rotated?)"
    elif status == 404:
        reason = "the gateway no longer holds it (kept for LIBNAR_CLAIM_RETENTION_DAYS)"
    else:
        reason = f"the gateway answered {status}"
    return ClaimError(f"claim {_where(reference)}: {reason}")


class _Retrying:
    """The waits between attempts to fetch a claim, until its patience runs out."""

    def __init__(self, reference: ClaimReference, patience: float) -> None:
        self.reference = reference
        self.patience = patience
        self.deadline = time.monotonic() + patience
        self.delay = 0.2

    def problem_of(self, status: int) -> str:
        """What a non-200 answer means: raise for a final one, describe a passing one."""
        if status not in _RETRIED_STATUSES:
            raise _answer_problem(self.reference, status)
        return f"HTTP {status}"

    def next_wait(self, problem: str) -> float:
        """Seconds to wait before the next attempt; raises when patience would run out."""
        if time.monotonic() + self.delay > self.deadline:
            raise ClaimError(
                f"claim {_where(self.reference)}: unreachable for {self.patience:.0f} s"
                f" ({problem}); the worker must reach the gateway at LIBNAR_GATEWAY_PUBLIC_URL"
            )
        wait, self.delay = self.delay, min(self.delay * 2, 5.0)
        return wait


def fetch_claim(reference: ClaimReference, *, patience: float = CLAIM_FETCH_SECONDS) -> bytes:
    """The body a claim reference points at, checked against its size and SHA-256.

    Retries connection failures and busy answers until `patience` seconds have passed.

    Raises:
        ClaimError: the body cannot be read, or does not match the reference.
    """
    if _scheme(reference) == "file":
        return _read_file(reference)
    retrying = _Retrying(reference, patience)
    with httpx.Client(timeout=min(patience, 30.0), trust_env=False) as client:
        while True:
            try:
                with client.stream("GET", reference.url, headers=_headers(reference)) as answer:
                    if answer.status_code == 200:
                        return _checked(reference, _bounded(reference, answer.iter_bytes()))
                    problem = retrying.problem_of(answer.status_code)
            except httpx.TransportError as exc:
                problem = type(exc).__name__
            time.sleep(retrying.next_wait(problem))


async def fetch_claim_async(
    reference: ClaimReference, *, patience: float = CLAIM_FETCH_SECONDS
) -> bytes:
    """`fetch_claim` for async flows."""
    if _scheme(reference) == "file":
        return await asyncio.to_thread(_read_file, reference)
    retrying = _Retrying(reference, patience)
    async with httpx.AsyncClient(timeout=min(patience, 30.0), trust_env=False) as client:
        while True:
            try:
                async with client.stream(
                    "GET", reference.url, headers=_headers(reference)
                ) as answer:
                    if answer.status_code == 200:
                        chunks = [c async for c in _abounded(reference, answer.aiter_bytes())]
                        return _checked(reference, b"".join(chunks))
                    problem = retrying.problem_of(answer.status_code)
            except httpx.TransportError as exc:
                problem = type(exc).__name__
            await asyncio.sleep(retrying.next_wait(problem))


def _bounded(reference: ClaimReference, chunks: Iterator[bytes]) -> bytes:
    """Read at most one byte more than the reference's size (a longer body is refused)."""
    body = bytearray()
    for chunk in chunks:
        body += chunk
        if len(body) > reference.size:
            break
    return bytes(body)


async def _abounded(
    reference: ClaimReference, chunks: AsyncIterator[bytes]
) -> AsyncIterator[bytes]:
    total = 0
    async for chunk in chunks:
        total += len(chunk)
        yield chunk
        if total > reference.size:
            break


def keep_locally(body: bytes, subject: RunSubject, directory: Path | None = None) -> ClaimReference:
    """Keep a large event in a local file; return the `file://` reference a local run carries.

    What `libnar run` does with an event over the claim-check size, so a local run takes the
    same path as a production one. The file is named by the body's SHA-256.
    """
    folder = directory or Path(tempfile.gettempdir()) / "libnar-claims"
    folder.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256(body).hexdigest()
    path = folder / f"{digest}.json"
    tmp = folder / f".{digest}.{os.getpid()}.{uuid.uuid4().hex}"
    tmp.write_bytes(body)
    os.replace(tmp, path)
    source = subject.source if subject.source in ("webhook", "dpp") else "task"
    return ClaimReference(
        url=path.resolve().as_uri(),
        sha256=digest,
        size=len(body),
        source=source,
        project_id=subject.project_id,
        task_id=subject.task_id,
        round=subject.round,
        state=subject.state,
    )


def pass_large_by_reference(
    event: WebhookEvent | DppEvent | Task, limit: int, directory: Path | None = None
) -> WebhookEvent | DppEvent | Task | ClaimReference:
    """`event`, or a local claim reference to it when its JSON is over `limit` bytes."""
    body = event.model_dump_json().encode()
    if len(body) <= limit:
        return event
    return keep_locally(body, subject_of(event), directory)
