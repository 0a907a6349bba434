"""`libnar gateway serve` against slow and numerous clients: bounded time, bounded connections."""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import httpx
import pytest

from libnar._gateway import mint_token
from libnar._gateway._server import public_url_for
from libnar.runs import ClaimReference
from libnar.testing import GatewayProcess, PrefectServer

from .conftest import ADMIN_KEY, SECRET, run_of, webhook_body

pytestmark = pytest.mark.slow

ROOT = Path(__file__).parents[2]


@pytest.fixture
def guarded_gateway(
    deployments: dict[str, str], prefect_server: PrefectServer, tmp_path: Path
) -> Iterator[GatewayProcess]:
    """The gateway as production runs it, with short limits so the tests stay short."""
    env = {
        **os.environ,
        "PREFECT_API_URL": prefect_server.api_url,
        "LIBNAR_GATEWAY_SECRETS": SECRET,
        "LIBNAR_GATEWAY_ADMIN_KEY": ADMIN_KEY,
        "LIBNAR_OUTBOX_DIR": str(tmp_path / "outbox"),
        "LIBNAR_GATEWAY_HEADER_TIMEOUT_SECONDS": "1",
        "LIBNAR_GATEWAY_BODY_TIMEOUT_SECONDS": "1",
        "LIBNAR_GATEWAY_KEEPALIVE_SECONDS": "1",
        "LIBNAR_GATEWAY_MAX_CONNECTIONS": "20",
    }
    env.pop("LIBNAR_GATEWAY_PUBLIC_URL", None)
    with GatewayProcess(
        env, log=tmp_path / "gateway.log", cwd=ROOT, args=["--no-access-log"]
    ) as gateway:
        yield gateway


def connect(gateway: GatewayProcess) -> socket.socket:
    sock = socket.create_connection((gateway.host, gateway.port), timeout=10)
    return sock


def is_closed_by_server(sock: socket.socket) -> bool:
    """Whether the server closes the connection (within the socket's own timeout).

    Whatever the server still sends first (the rest of an answer) is read and dropped.
    """
    try:
        while sock.recv(65536):
            pass
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False
    return True


def read_until_closed(sock: socket.socket) -> bytes:
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    return data


def test_headers_that_never_finish_are_cut_off(guarded_gateway: GatewayProcess) -> None:
    with connect(guarded_gateway) as sock:
        sock.sendall(b"POST /webhook-event HTTP/1.1\r\nHost: x\r\nx-auth-token: ")
        assert is_closed_by_server(sock)


def test_a_body_that_never_finishes_gets_408(guarded_gateway: GatewayProcess) -> None:
    token = mint_token(SECRET, "gw_hook_ptp").encode()
    with connect(guarded_gateway) as sock:
        sock.sendall(
            b"POST /webhook-event HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"x-auth-token: " + token + b'\r\nContent-Length: 5000\r\n\r\n{"task": '
        )
        answer = read_until_closed(sock)
    assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
    assert b"LIBNAR_GATEWAY_BODY_TIMEOUT_SECONDS" in answer


def test_an_idle_keep_alive_connection_is_closed(guarded_gateway: GatewayProcess) -> None:
    with connect(guarded_gateway) as sock:
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        answer = b""
        while b'{"status":"ok"}' not in answer:  # head and body may come in two segments
            chunk = sock.recv(65536)
            assert chunk, answer
            answer += chunk
        assert answer.startswith(b"HTTP/1.1 200")
        sock.settimeout(3)  # uvicorn's own default would keep it 5 s: the setting (1 s) applies
        assert is_closed_by_server(sock)


def test_connections_over_the_cap_are_closed_and_health_still_answers(
    guarded_gateway: GatewayProcess,
) -> None:
    with ExitStack() as stack:
        held = [stack.enter_context(connect(guarded_gateway)) for _ in range(60)]
        for sock in held:  # each one a slow client that started a request
            sock.sendall(b"GET /health HTTP/1.1\r\n")
        time.sleep(0.3)
        for sock in held[25:]:
            sock.settimeout(0.5)
        refused = sum(is_closed_by_server(sock) for sock in held[25:])
        assert refused == 35  # over the cap of 20: closed at once, not held
        # The slow ones are cut off at their header deadline; then /health gets in.
        with httpx.Client(base_url=guarded_gateway.url, timeout=10) as client:
            for _ in range(40):
                try:
                    if client.get("/health").status_code == 200:
                        break
                except httpx.HTTPError:
                    time.sleep(0.25)
            else:
                pytest.fail("/health never answered")
    log = Path(str(guarded_gateway.log)).read_text(errors="replace")
    assert "Too many open files" not in log


def test_serve_offers_large_events_at_its_own_address(guarded_gateway: GatewayProcess) -> None:
    body = webhook_body()
    body["task"]["data"]["frames"] = ["x" * 100] * 6000
    token = mint_token(SECRET, "gw_hook_ptp")
    with httpx.Client(base_url=guarded_gateway.url, timeout=30) as client:
        answer = client.post("/webhook-event", json=body, headers={"x-auth-token": token})
    assert answer.status_code == 202, answer.text
    run = run_of(answer)
    reference = ClaimReference.from_parameter(run.parameters["event"])
    assert reference is not None
    assert reference.url.startswith(guarded_gateway.url + "/claims/")


@pytest.mark.parametrize(
    ("host", "url"),
    [
        ("127.0.0.1", "http://127.0.0.1:8000"),
        ("::1", "http://[::1]:8000"),
        ("gw.internal", "http://gw.internal:8000"),
        ("0.0.0.0", None),
        ("::", None),
    ],
)
def test_serve_knows_its_own_url_only_on_one_address(host: str, url: str | None) -> None:
    assert public_url_for(host, 8000) == url
