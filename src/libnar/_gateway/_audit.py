"""One JSON audit line per request, with a request id the answer carries too."""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

__all__ = ["AuditMiddleware"]

audit_logger = logging.getLogger("libnar.gateway.audit")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

_QUIET_PATHS = frozenset({"/health", "/ready", "/metrics"})


class AuditMiddleware:
    """Give each request an id (`x-request-id`) and log one JSON audit line when it ends.

    Handlers add fields (flow, deployment, event key, run id, ...) to `request.state.audit`.
    The line is JSON, so no value in it (a path, a name a sender chose) can forge another line.
    `on_event(path, audit, status)` is called for every request as it ends (for the metrics).
    """

    def __init__(
        self,
        app: ASGIApp,
        on_event: Callable[[str, dict[str, Any], int], None] | None = None,
    ) -> None:
        self.app = app
        self.on_event = on_event

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        request_id = uuid.uuid4().hex
        state = scope.setdefault("state", {})
        state["request_id"] = request_id
        audit: dict[str, Any] = {}
        state["audit"] = audit
        status = 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [
                    *message.get("headers", []),
                    (b"x-request-id", request_id.encode()),
                ]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            path = str(scope.get("path", ""))
            line = {
                "request_id": request_id,
                "method": scope.get("method"),
                "path": path[:200],
                **audit,
                "status": status,
                "latency_ms": round((time.perf_counter() - started) * 1000, 1),
            }
            level = logging.DEBUG if path in _QUIET_PATHS else logging.INFO
            audit_logger.log(level, json.dumps(line, default=str))
            if self.on_event is not None:
                try:
                    self.on_event(path, audit, status)
                except Exception:  # counting must never fail a request
                    audit_logger.exception("counting request %s failed", request_id)
