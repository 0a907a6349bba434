"""Faults the fake SamaHub injects: error answers, rate limits, timeouts, dropped connections.

A fault watches one route (or every route), lets `after` calls through, then acts `times`
times. It acts instead of the route (the request does nothing) or, with `processed`, after
it (SamaHub did the work, then the answer was lost). Faults never read or change the fake's
data (`_fake_state.py`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import httpx

__all__ = ["Fault", "Faults"]


@dataclass
class Fault:
    """One injected fault."""

    route: str | None
    after: int
    times: int
    act: Callable[[httpx.Request], httpx.Response]
    processed: bool = False
    seen: int = 0
    fired: int = 0

    def counts(self, route: str) -> bool:
        """Count a call to `route` if this fault watches it; say whether it does."""
        if self.route is not None and self.route != route:
            return False
        self.seen += 1
        return True

    def is_due(self) -> bool:
        """Say whether the call just counted is one this fault acts on."""
        return self.seen > self.after and self.fired < self.times


class Faults:
    """The faults waiting to act, in the order they were added."""

    def __init__(self) -> None:
        self._pending: list[Fault] = []

    def add(self, fault: Fault) -> None:
        self._pending.append(fault)

    def clear(self) -> None:
        self._pending.clear()

    def due(self, route: str) -> Fault | None:
        """Count a call to `route` in every fault; return the first one due to act."""
        found = None
        for fault in self._pending:
            if fault.counts(route) and found is None and fault.is_due():
                fault.fired += 1
                found = fault
        return found

    @staticmethod
    def error(
        status: int, message: str, retry_after: str | float | None
    ) -> Callable[[httpx.Request], httpx.Response]:
        """An answer with `status` in SamaHub's error shape (and `Retry-After`)."""
        headers = {} if retry_after is None else {"Retry-After": str(retry_after)}

        def act(request: httpx.Request) -> httpx.Response:
            body = {"errors": [{"type": status, "message": message}]}
            return httpx.Response(status, json=body, headers=headers)

        return act

    @staticmethod
    def timeout(connect: bool) -> Callable[[httpx.Request], httpx.Response]:
        """No answer in time: `ConnectTimeout` (nothing sent) or `ReadTimeout`."""

        def act(request: httpx.Request) -> httpx.Response:
            if connect:
                raise httpx.ConnectTimeout("timed out", request=request)
            raise httpx.ReadTimeout("timed out", request=request)

        return act

    @staticmethod
    def dropped() -> Callable[[httpx.Request], httpx.Response]:
        """The connection closes without an answer."""

        def act(request: httpx.Request) -> httpx.Response:
            raise httpx.RemoteProtocolError(
                "Server disconnected without sending a response.", request=request
            )

        return act

    @staticmethod
    def refused() -> Callable[[httpx.Request], httpx.Response]:
        """The connection is refused: the request never reaches SamaHub."""

        def act(request: httpx.Request) -> httpx.Response:
            raise httpx.ConnectError("[Errno 111] Connection refused", request=request)

        return act
