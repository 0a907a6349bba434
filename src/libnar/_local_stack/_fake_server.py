"""Serve a `FakeSamaHub` over real HTTP on 127.0.0.1, for subprocesses and benchmarks.

respx only intercepts requests made in the test's own process. Code running elsewhere (a
`libnar` subprocess, a flow run by a worker, the SDK in a benchmark) needs a real socket:
this serves the same fake, with the same state and answers, from a background thread.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx

from libnar._local_stack._fake_samahub import FakeSamaHub

__all__ = ["serve_fake_samahub"]

_HOP_BY_HOP = {"connection", "content-length", "transfer-encoding", "keep-alive"}


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    # A burst of new connections (a pool filling up) must not overflow the listen backlog,
    # or the kernel drops SYNs and clients wait a second to retry.
    request_queue_size = 256

    fake: FakeSamaHub
    origin: str
    request_delay: float
    connection_delay: float


class _Handler(BaseHTTPRequestHandler):
    """Turn each HTTP request into an `httpx.Request` for `FakeSamaHub.handle`."""

    protocol_version = "HTTP/1.1"  # keep-alive, as SamaHub's API does
    server: _Server

    def setup(self) -> None:
        super().setup()
        # Without this, a keep-alive answer written in two parts waits ~40 ms for a delayed ACK.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if self.server.connection_delay:
            time.sleep(self.server.connection_delay)  # what TCP and TLS handshakes cost

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        content = self.rfile.read(length) if length else b""
        if self.server.request_delay:
            time.sleep(self.server.request_delay)
        request = httpx.Request(
            self.command,
            self.server.origin + self.path,
            headers=[(k, v) for k, v in self.headers.items() if k.lower() not in _HOP_BY_HOP],
            content=content,
        )
        try:
            response = self.server.fake.handle(request)
        except httpx.TransportError:
            self.close_connection = True  # an injected fault: hang up without an answer
            return
        body = response.content
        self.send_response(response.status_code)
        for name, value in response.headers.items():
            if name.lower() not in _HOP_BY_HOP:
                self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = do_PUT = do_DELETE = _answer

    def log_message(self, format: str, *args: object) -> None:
        """Log nothing: the fake records every call itself (`FakeSamaHub.calls`)."""


@contextmanager
def serve_fake_samahub(
    fake: FakeSamaHub | None = None,
    *,
    port: int = 0,
    request_delay: float = 0.0,
    connection_delay: float = 0.0,
) -> Iterator[FakeSamaHub]:
    """Serve `fake` (or a new one) on `http://127.0.0.1:PORT` until the block ends.

    The fake's `api_url` becomes `http://127.0.0.1:PORT/v2`, its `dpp_url`
    `http://127.0.0.1:PORT/dpp` and its `upload_url` (tasks files) `.../uploads`; pass
    `fake.env()` to a subprocess so it talks to it.
    `request_delay` and `connection_delay` (seconds) emulate a remote API's latency: the
    first per request, the second per new connection. Injected transport faults close the
    connection without an answer.
    """
    fake = fake or FakeSamaHub()
    server = _Server(("127.0.0.1", port), _Handler)
    origin = f"http://127.0.0.1:{server.server_address[1]}"
    server.fake = fake
    server.origin = origin
    server.request_delay = request_delay
    server.connection_delay = connection_delay
    fake.api_url, fake.dpp_url = f"{origin}/v2", f"{origin}/dpp"
    fake.upload_url = f"{origin}/uploads"
    thread = threading.Thread(target=server.serve_forever, name="fake-samahub", daemon=True)
    thread.start()
    try:
        yield fake
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
