"""When to send a SamaHub call again, and how long to wait first.

The rules (see `docs/` and `reference/samahub.md`):

- 429: always, after the `Retry-After` SamaHub asked for (capped), else exponential backoff.
- 502, 503, 504: idempotent calls (GET, PUT, DELETE and POSTs that are safe to repeat).
  A POST that is not safe to repeat only on 503, which says the work was not done.
- No answer: always when the request never left (connection refused, connect or pool
  timeout); when it may have arrived (read timeout, dropped connection), only idempotent calls,
  or a POST that can first look up whether its work was done (`Call.probe`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
from tenacity import RetryCallState, retry_if_exception, stop_after_attempt
from tenacity.wait import wait_exponential, wait_random

from libnar.sama._calls import Call
from libnar.sama._errors import (
    SamaError,
    SamaRateLimitError,
    SamaServerError,
    SamaTransportError,
    error_for_transport,
)

logger = logging.getLogger("libnar.sama")

#: The longest wait a `Retry-After` can ask for; SamaHub asking for more gets this.
MAX_RETRY_AFTER = 60.0
_BACKOFF = wait_exponential(multiplier=0.5, max=30) + wait_random(0, 0.5)


def should_retry(call: Call[Any], error: BaseException) -> bool:
    """Say whether `call` may be sent again after it failed with `error`."""
    if isinstance(error, SamaRateLimitError):
        return True
    if isinstance(error, SamaServerError):
        if error.status_code == 503:
            return True
        return call.idempotent and error.status_code in (502, 504)
    if isinstance(error, SamaTransportError):
        if error.never_sent:
            return True
        return error.outcome_unknown and (call.idempotent or call.probe is not None)
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
    #: The last attempt may have reached SamaHub: look before sending a POST again.
    outcome_unknown: bool = False

    def failed(self, call: Call[Any], exc: httpx.TransportError) -> SamaTransportError:
        """Turn a transport error into a `SamaTransportError` and remember what it implies."""
        error = error_for_transport(call.method, call.path, exc)
        self.outcome_unknown = error.outcome_unknown
        return error


def retrying_options(
    call: Call[Any], max_retries: int, sleep: Callable[..., Any]
) -> dict[str, Any]:
    """Options for tenacity's `Retrying` or `AsyncRetrying`: the same rules for both clients."""
    return {
        "stop": stop_after_attempt(max_retries + 1),
        "wait": wait_before_retry,
        "retry": retry_if_exception(lambda error: should_retry(call, error)),
        "before_sleep": _log_retry(call, max_retries + 1),
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
