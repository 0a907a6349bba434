"""SamaHub errors: one base class, one subclass per cause, messages a user can act on.

Messages name the method and the path (never the query string, which carries the API key),
what SamaHub said, and what to do. No message, `repr` or traceback of these errors quotes a
URL or a key.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

import httpx

from libnar.settings import SettingsError

__all__ = [
    "SamaAnswerTooLargeError",
    "SamaAuthError",
    "SamaBatchIdInUseError",
    "SamaBatchOutcomeUnknownError",
    "SamaConfigError",
    "SamaDeadlineError",
    "SamaError",
    "SamaNotFoundError",
    "SamaRateLimitError",
    "SamaServerError",
    "SamaTaskDataError",
    "SamaTransportError",
    "SamaValidationError",
]


class SamaError(Exception):
    """A SamaHub call failed. Subclasses tell why; `str()` says what to do about it.

    Attributes:
        status_code: the HTTP status SamaHub answered, or None when no answer came.
        errors: SamaHub's `errors` list (`[{"type": ..., "message": ...}]`), or
            `[{"message": ...}]` built from a top-level `message`; empty when SamaHub said nothing.
        method: the HTTP method of the failed call.
        path: the path of the failed call under the API's base URL, without the query string.
        attempts: how many times the call was sent before giving up.
    """

    hint = ""

    def __init__(
        self,
        summary: str,
        *,
        method: str | None = None,
        path: str | None = None,
        status_code: int | None = None,
        errors: list[dict[str, Any]] | None = None,
        hint: str | None = None,
    ) -> None:
        super().__init__(summary)
        self.summary = summary
        self.method = method
        self.path = path
        self.status_code = status_code
        self.errors: list[dict[str, Any]] = errors or []
        self.attempts = 1
        if hint is not None:
            self.hint = hint

    def __str__(self) -> str:
        where = f"{self.method} {self.path}: " if self.method and self.path else ""
        said = "; ".join(str(e.get("message", e)) for e in self.errors)
        said = f' (SamaHub: "{said}")' if said else ""
        tries = f" after {self.attempts} attempts" if self.attempts > 1 else ""
        hint = f"; {self.hint}" if self.hint else ""
        return f"{where}{self.summary}{said}{tries}{hint}"

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self)!r})"

    def __reduce__(self) -> Any:
        # Keep the attributes when the error crosses a process boundary (Prefect, pickling).
        return (_rebuild, (type(self), self.summary, self.__dict__))


def _rebuild(cls: type[SamaError], summary: str, state: dict[str, Any]) -> SamaError:
    error = cls.__new__(cls)
    Exception.__init__(error, summary)
    error.__dict__.update(state)
    return error


class SamaConfigError(SamaError, SettingsError):
    """A setting the call needs is missing or invalid; raised before any request is sent."""

    def __str__(self) -> str:
        return self.summary


class SamaAuthError(SamaError):
    """SamaHub refused the key (401/403): wrong key, or API access not enabled for it."""

    hint = "check SAMA_API_KEY (or api_key=...) and that API access is enabled for the key"


class SamaNotFoundError(SamaError):
    """SamaHub answered 404: the id does not exist or the key has no access to it."""

    hint = "check the project and task ids and that the API key has access"


class SamaValidationError(SamaError):
    """SamaHub rejected the request's content (400/422)."""

    hint = "fix the values SamaHub names; see the API reference for the expected shape"


class SamaTaskDataError(SamaValidationError):
    """Tasks' `data` break the project's creation schema; checked before anything is sent.

    `problems` holds one line per problem: `tasks[3].data.url: found 3; expected a string`.
    """

    hint = (
        "fix the inputs named (the project's schema: get_creation_schema(pid), or"
        " libnar task schema PID)"
    )

    def __init__(self, summary: str, problems: list[str], **kwargs: Any) -> None:
        super().__init__(summary, **kwargs)
        self.problems = problems

    def __str__(self) -> str:
        lines = "".join(f"\n  {problem}" for problem in self.problems)
        return f"{self.summary}; {self.hint}:{lines}"


class SamaRateLimitError(SamaError):
    """SamaHub kept answering 429 until the retries ran out.

    `retry_after` holds the seconds SamaHub asked to wait, when it said.
    """

    hint = "SamaHub is rate limiting this key: send fewer requests, or raise max_retries"

    retry_after: float | None = None


class SamaServerError(SamaError):
    """SamaHub failed (5xx) until the retries ran out, or in a way not safe to retry."""

    hint = "SamaHub had a problem; try again later"


class SamaAnswerTooLargeError(SamaError):
    """SamaHub's answer is larger than the client accepts (`SAMA_MAX_ANSWER_BYTES`).

    Reading stops at the limit, so a huge answer never fills the memory. `limit` holds the
    limit in bytes. The call did reach SamaHub: a write (a batch creation) was done.
    """

    hint = (
        "ask for less at a time (e.g. a smaller page_size), or raise SAMA_MAX_ANSWER_BYTES "
        "(or max_answer_bytes=...)"
    )

    limit: int = 0


class SamaTransportError(SamaError):
    """No answer came from SamaHub: connection refused, timeout or a dropped connection."""

    hint = "check the URL setting and the network, or raise SAMA_TIMEOUT"

    #: True when the request may have reached SamaHub (read timeout, dropped connection).
    outcome_unknown = False
    #: True when the request never left this machine (connection refused, connect timeout).
    never_sent = False


class SamaDeadlineError(SamaTransportError):
    """The call ran out of time (`SAMA_DEADLINE`): no usable answer came within its deadline.

    The deadline covers every attempt and every wait between them. `outcome_unknown` says
    whether the last attempt may have reached SamaHub (it was cut off while under way).
    """

    hint = (
        "raise SAMA_DEADLINE (or deadline=..., or with_options(deadline=...) for one call), "
        "or check SamaHub's status"
    )


def deadline_error(
    method: str,
    path: str,
    seconds: float,
    last: SamaError | None,
    *,
    outcome_unknown: bool,
) -> SamaDeadlineError:
    """Build the error for a call out of time; `last` is the failure that came before, if any."""
    cause = f"; last: {last.summary}" if last is not None else ""
    error = SamaDeadlineError(
        f"no answer within SAMA_DEADLINE ({seconds:g} s){cause}",
        method=method,
        path=path,
        status_code=last.status_code if last is not None else None,
        errors=last.errors if last is not None else None,
    )
    error.outcome_unknown = outcome_unknown
    return error


class SamaBatchOutcomeUnknownError(SamaTransportError):
    """`create_batch` cannot tell whether SamaHub created (part of) the tasks.

    The answer to a creation was lost, and looking the batch up by its `client_batch_id` did
    not find it in time (or there was no `client_batch_id` to look it up by). The creation was
    not sent again, so no task was created twice; check before creating them again.

    Attributes:
        client_batch_id: the id to check the batch by (None when the call had none).
        created: the batches created for the tasks before the ones in doubt.
        in_doubt: `(start, stop)`: the positions of the tasks in doubt in the call's `tasks`.
    """

    client_batch_id: str | None = None
    created: tuple[str, ...] = ()
    in_doubt: tuple[int, int] = (0, 0)


class SamaBatchIdInUseError(SamaError):
    """`create_batch` was given a `client_batch_id` that tasks on SamaHub carry already.

    Nothing was sent. `client_batch_id` is the id; `batch_id` the batch that uses it.
    """

    client_batch_id: str | None = None
    batch_id: str | None = None


# httpx errors where the request never left this machine: always safe to send again.
NOT_SENT: tuple[type[httpx.TransportError], ...] = (
    httpx.ConnectError,
    httpx.ConnectTimeout,
    httpx.PoolTimeout,
)
# httpx errors after (part of) the request was sent: SamaHub may have done the work.
OUTCOME_UNKNOWN: tuple[type[httpx.TransportError], ...] = (
    httpx.ReadTimeout,
    httpx.WriteTimeout,
    httpx.ReadError,
    httpx.WriteError,
    httpx.RemoteProtocolError,
)

_BY_STATUS: dict[int, type[SamaError]] = {
    400: SamaValidationError,
    401: SamaAuthError,
    403: SamaAuthError,
    404: SamaNotFoundError,
    422: SamaValidationError,
    429: SamaRateLimitError,
}


def error_for_response(
    method: str, path: str, response: httpx.Response, content: bytes, *, dpp: bool = False
) -> SamaError:
    """Build the error for a non-2xx answer, with SamaHub's own messages when it sent any.

    `content` is (the start of) the answer's body: see `ERROR_BODY_BYTES`.
    """
    status = response.status_code
    cls = _BY_STATUS.get(status) or (SamaServerError if status >= 500 else SamaError)
    summary = f"{status} {response.reason_phrase.lower() or 'error'}"
    hint = None
    if dpp and cls is SamaAuthError:
        hint = "check SAMA_DPP_KEY (or dpp_key=...): SamaHub refused the DPP bearer key"
    elif dpp and cls is SamaNotFoundError:
        hint = "check SAMA_DPP_URL (or dpp_url=...) and the project and task ids"
    elif cls is SamaError:
        hint = "SamaHub did not accept this request; check the method, path and arguments"
    error = cls(
        summary,
        method=method,
        path=path,
        status_code=status,
        errors=_errors_in(content),
        hint=hint,
    )
    if isinstance(error, SamaRateLimitError):
        error.retry_after = retry_after_seconds(response.headers.get("Retry-After"))
    return error


def error_for_transport(method: str, path: str, exc: httpx.TransportError) -> SamaTransportError:
    """Build the error for a call that got no answer, without quoting the URL."""
    kind = type(exc).__name__
    detail = str(exc)
    # httpx quotes URLs in a few messages; the name of the exception says enough then.
    summary = (
        f"no answer ({kind}: {detail})" if detail and "://" not in detail else f"no answer ({kind})"
    )
    hint = None
    unknown = isinstance(exc, OUTCOME_UNKNOWN)
    if unknown and method == "POST":
        hint = (
            "SamaHub may have received the request, so it was not sent again: check its "
            "effect before repeating it"
        )
    error = SamaTransportError(summary, method=method, path=path, hint=hint)
    error.outcome_unknown = unknown
    error.never_sent = isinstance(exc, NOT_SENT)
    return error


def answer_too_large(
    method: str, path: str, status: int, limit: int, announced: int | None = None
) -> SamaAnswerTooLargeError:
    """Build the error for an answer over `limit` bytes (`announced`: its Content-Length)."""
    size = f" ({announced:,} bytes)" if announced is not None else ""
    error = SamaAnswerTooLargeError(
        f"the answer{size} is larger than SAMA_MAX_ANSWER_BYTES ({limit:,} bytes)",
        method=method,
        path=path,
        status_code=status,
    )
    error.limit = limit
    return error


def _errors_in(content: bytes) -> list[dict[str, Any]]:
    """Read SamaHub's error shapes: `{"errors": [...]}` or a top-level `{"message": ...}`."""
    try:
        body = json.loads(content)
    except (json.JSONDecodeError, UnicodeDecodeError):
        text = content.decode("utf-8", "replace").strip()
        return [{"message": text[:200]}] if text and not text.startswith("<") else []
    if isinstance(body, dict):
        errors = body.get("errors")
        if isinstance(errors, list):
            return [e if isinstance(e, dict) else {"message": str(e)} for e in errors]
        if "message" in body:
            return [{"message": str(body["message"])}]
        if isinstance(body.get("error"), str):
            return [{"message": body["error"]}]
    return []


def retry_after_seconds(value: str | None) -> float | None:
    """Read a `Retry-After` header: seconds, or an HTTP date; None when absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())
