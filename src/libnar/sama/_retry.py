"""When to send a SamaHub call again, and how long to wait first.

The rules (see `docs/` and `reference/samahub.md`):

- 429: always, after the `Retry-After` SamaHub asked for (capped), else exponential backoff.
- 502, 503, 504: idempotent calls (GET, PUT, DELETE and POSTs that are safe to repeat).
  A POST that is not safe to repeat only on 503, which says the work was not done.
- No answer: always when the request never left (connection refused, connect or pool
  timeout); when it may have arrived (read timeout, dropped connection), only idempotent calls.
  (`create_batch` then looks the batch up instead: see `_batches`.)
- Never past the call's deadline (`SAMA_DEADLINE`): a wait that would end after it is not
  started, and the call raises `SamaDeadlineError` instead.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NoReturn

import httpx
from tenacity import RetryCallState, retry_if_exception, stop_after_attempt, stop_any
from tenacity.stop import stop_base
from tenacity.wait import wait_exponential, wait_random

from libnar.sama._calls import Call
from libnar.sama._errors import (
    SamaDeadlineError,
    SamaError,
    SamaRateLimitError,
    SamaServerError,
    SamaTransportError,
    deadline_error,
    error_for_transport,
)

logger = logging.getLogger("libnar.sama")

#: The longest wait a `Retry-After` can ask for; SamaHub asking for more gets this.
MAX_RETRY_AFTER = 60.0
_BACKOFF = wait_exponential(multiplier=0.5, max=30) + wait_random(0, 0.5)


class Deadline:
    """The time left to one call: `seconds` from when it is created."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._end = time.monotonic() + seconds

    def remaining(self) -> float:
        """Seconds left, 0 once the deadline has passed."""
        return max(0.0, self._end - time.monotonic())

    def has_passed(self) -> bool:
        return self.remaining() <= 0


def should_retry(call: Call[Any], error: BaseException) -> bool:
    """Say whether `call` may be sent again after it failed with `error`."""
    if isinstance(error, SamaDeadlineError):
        return False
    if isinstance(error, SamaRateLimitError):
        return True
    if isinstance(error, SamaServerError):
        if error.status_code == 503:
            return True
        return call.idempotent and error.status_code in (502, 504)
    if isinstance(error, SamaTransportError):
        if error.never_sent:
            return True
        return error.outcome_unknown and call.idempotent
    return False


def wait_before_retry(state: RetryCallState) -> float:
    """Wait what a 429's `Retry-After` asks (at most a minute), else back off with jitter."""
    error = state.outcome.exception() if state.outcome else None
    retry_after = getattr(error, "retry_after", None)
    if retry_after is not None:
        return min(float(retry_after), MAX_RETRY_AFTER)
    return float(_BACKOFF(state))


@dataclass
class Attempts:
    """What the attempts of one call have learnt so far."""

    count: int = 0
    #: An attempt may have reached SamaHub without its answer reaching us.
    outcome_unknown: bool = False

    def failed(self, call: Call[Any], exc: httpx.TransportError) -> SamaTransportError:
        """Turn a transport error into a `SamaTransportError` and remember what it implies."""
        error = error_for_transport(call.method, call.path, exc)
        self.outcome_unknown = self.outcome_unknown or error.outcome_unknown
        error.outcome_unknown = self.outcome_unknown
        return error

    def out_of_time(
        self, call: Call[Any], deadline: Deadline, *, under_way: bool
    ) -> SamaDeadlineError:
        """Build the error for an attempt the deadline stopped (`under_way`: once sent)."""
        self.outcome_unknown = self.outcome_unknown or under_way
        return deadline_error(
            call.method, call.path, deadline.seconds, None, outcome_unknown=self.outcome_unknown
        )


class _StopAtDeadline(stop_base):
    """Stop rather than start a wait that would end past the deadline."""

    def __init__(self, deadline: Deadline) -> None:
        self._deadline = deadline

    def __call__(self, state: RetryCallState) -> bool:
        return state.upcoming_sleep >= self._deadline.remaining()


def retrying_options(
    call: Call[Any], max_retries: int, sleep: Callable[..., Any], deadline: Deadline
) -> dict[str, Any]:
    """Options for tenacity's `Retrying` or `AsyncRetrying`: the same rules for both clients."""

    def give_up(state: RetryCallState) -> NoReturn:
        error = state.outcome.exception() if state.outcome else None
        if not isinstance(error, SamaError):  # pragma: no cover - only SamaErrors are retried
            raise RuntimeError("a retried SamaHub call failed without a SamaError") from error
        if state.attempt_number <= max_retries:  # retries are left: the deadline stopped them
            raise deadline_error(
                call.method,
                call.path,
                deadline.seconds,
                error,
                outcome_unknown=isinstance(error, SamaTransportError) and error.outcome_unknown,
            ) from error
        raise error

    return {
        "stop": stop_any(stop_after_attempt(max_retries + 1), _StopAtDeadline(deadline)),
        "wait": wait_before_retry,
        "retry": retry_if_exception(lambda error: should_retry(call, error)),
        "before_sleep": _log_retry(call, max_retries + 1),
        "retry_error_callback": give_up,
        "sleep": sleep,
        "reraise": True,
    }


def _log_retry(call: Call[Any], most: int) -> Callable[[RetryCallState], None]:
    def log(state: RetryCallState) -> None:
        error = state.outcome.exception() if state.outcome else None
        reason = error.summary if isinstance(error, SamaError) else type(error).__name__
        wait = state.next_action.sleep if state.next_action else 0.0
        logger.warning(
            "%s %s: attempt %d of %d failed (%s); retrying in %.2fs",
            call.method,
            call.path,
            state.attempt_number,
            most,
            reason,
            wait,
            extra={"sama_method": call.method, "sama_path": call.path},
        )

    return log
