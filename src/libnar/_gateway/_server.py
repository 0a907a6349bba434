"""Serve the gateway with uvicorn, bounded against slow and numerous clients.

The gateway faces the internet. Plain uvicorn waits forever for a request's headers and keeps
every connection it accepts: 300 clients sending one byte a second starved `/health`, and the
process ran out of file descriptors. Here:

- headers must arrive within `LIBNAR_GATEWAY_HEADER_TIMEOUT_SECONDS` of the connection (or of
  the first byte of the next request on a kept-alive connection), else the connection closes;
- a body must arrive within `LIBNAR_GATEWAY_BODY_TIMEOUT_SECONDS` (408, in the app);
- an idle keep-alive connection closes after `LIBNAR_GATEWAY_KEEPALIVE_SECONDS`;
- at most `LIBNAR_GATEWAY_MAX_CONNECTIONS` connections are open per process; more are closed
  at once, and the open-file limit is raised to fit them when the hard limit allows.

A reverse proxy in front should still add per-client rate limits and TLS (see the docs).

With `--workers N`, `serve` points prometheus-client at a folder shared by the workers
(`PROMETHEUS_MULTIPROC_DIR`) before they start, so `/metrics` counts every worker's events.
"""

from __future__ import annotations

import asyncio
import functools
import ipaddress
import logging
import os
import shutil
import tempfile
from typing import Any

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

from libnar._gateway._dispatcher import BATCH
from libnar._gateway._metrics import MULTIPROCESS_DIR, open_connections
from libnar.settings import Settings, get_settings

__all__ = ["GuardedH11Protocol", "public_url_for", "serve", "uvicorn_options"]

logger = logging.getLogger("libnar.gateway")

#: File descriptors a process needs besides client connections (logs, outbox, Prefect, and
#: the pending files its dispatcher holds locked: a batch in flight and the next one).
_SPARE_FILES = 64 + 2 * BATCH


class GuardedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol with a header deadline and a cap on open connections."""

    def __init__(
        self,
        *args: Any,
        header_timeout: float = 10.0,
        max_connections: int = 1000,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.header_timeout = header_timeout
        self.max_connections = max_connections
        self._header_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        open_connections.inc()
        if len(self.connections) > self.max_connections:
            logger.debug("over LIBNAR_GATEWAY_MAX_CONNECTIONS: closing a new connection")
            transport.abort()
            return
        self._start_header_timer()

    def data_received(self, data: bytes) -> None:
        waiting_for_headers = self.conn.their_state is h11.IDLE
        super().data_received(data)
        if self.conn.their_state is h11.IDLE and waiting_for_headers:
            self._start_header_timer()  # a request has begun: its headers have a deadline
        else:
            self._stop_header_timer()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._stop_header_timer()  # idle now: the keep-alive timeout applies

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_header_timer()
        open_connections.dec()
        super().connection_lost(exc)

    def _start_header_timer(self) -> None:
        if self._header_timer is None:
            self._header_timer = self.loop.call_later(self.header_timeout, self._headers_late)

    def _stop_header_timer(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _headers_late(self) -> None:
        self._header_timer = None
        if self.conn.their_state is h11.IDLE and not self.transport.is_closing():
            self.transport.abort()


def uvicorn_options(settings: Settings) -> dict[str, Any]:
    """uvicorn's settings for the gateway: the guarded protocol and the keep-alive timeout."""
    return {
        "http": functools.partial(
            GuardedH11Protocol,
            header_timeout=settings.gateway_header_timeout_seconds,
            max_connections=settings.gateway_max_connections,
        ),
        "timeout_keep_alive": settings.gateway_keepalive_seconds,
        "h11_max_incomplete_event_size": 16 * 1024,
    }


def raise_open_file_limit(connections: int) -> None:
    """Raise this process's soft open-file limit to fit `connections`, up to the hard limit."""
    try:
        import resource
    except ImportError:  # pragma: no cover - not on POSIX
        return
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = connections + _SPARE_FILES
    if soft != resource.RLIM_INFINITY and soft < wanted:
        target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        if target < wanted:
            logger.warning(
                "open-file limit %d is below LIBNAR_GATEWAY_MAX_CONNECTIONS + %d; lower the"
                " setting or raise the limit (ulimit -n)",
                target,
                _SPARE_FILES,
            )


def public_url_for(host: str, port: int) -> str | None:
    """The gateway's own URL when it listens on one address (not a wildcard), else None."""
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return f"http://{host}:{port}" if host else None
    if address.is_unspecified:
        return None
    shown = f"[{host}]" if address.version == 6 else host
    return f"http://{shown}:{port}"


def serve(
    host: str, port: int, *, workers: int = 1, access_log: bool = True
) -> None:  # pragma: no cover - exercised through `libnar gateway serve` subprocesses
    """Serve the gateway from the environment's settings until stopped."""
    import uvicorn

    settings = get_settings()
    if settings.gateway_public_url is None:
        own = public_url_for(host, port)
        if own is not None:
            os.environ["LIBNAR_GATEWAY_PUBLIC_URL"] = own  # read again by each worker
            settings = get_settings()
    raise_open_file_limit(settings.gateway_max_connections)
    metrics_dir = None
    if workers > 1 and not os.environ.get(MULTIPROCESS_DIR):
        metrics_dir = tempfile.mkdtemp(prefix="libnar-metrics-")
        os.environ[MULTIPROCESS_DIR] = metrics_dir  # read by each worker as it starts
    try:
        uvicorn.run(
            "libnar._gateway:app_from_environment",
            factory=True,
            host=host,
            port=port,
            workers=workers,
            log_level="info",
            access_log=access_log,
            **uvicorn_options(settings),
        )
    finally:
        if metrics_dir is not None:
            shutil.rmtree(metrics_dir, ignore_errors=True)
