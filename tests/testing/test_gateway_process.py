"""`GatewayProcess`: the gateway as a child process, started, checked and stopped cleanly."""

from __future__ import annotations

import os
from pathlib import Path

import httpx
import pytest

from libnar._gateway import mint_token
from libnar.testing import GatewayProcess, PrefectServer, make_webhook_event

pytestmark = pytest.mark.slow


def gateway_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LIBNAR_")}
    return {**env, "LIBNAR_OUTBOX_DIR": str(tmp_path / "outbox"), **extra}


def test_a_gateway_that_cannot_start_raises_with_the_end_of_its_log(tmp_path: Path) -> None:
    gateway = GatewayProcess(gateway_env(tmp_path), log=tmp_path / "gateway.log")
    with pytest.raises(RuntimeError) as caught:
        gateway.start()
    assert "the gateway exited with code 2" in str(caught.value)
    assert "LIBNAR_GATEWAY_SECRETS" in str(caught.value)
    assert gateway.process is not None
    assert gateway.process.poll() is not None


def test_gateway_without_access_log_still_writes_the_audit_line(
    tmp_path: Path, prefect_server: PrefectServer
) -> None:
    env = gateway_env(tmp_path, LIBNAR_GATEWAY_SECRETS="s3cret")
    log = tmp_path / "gateway.log"
    with GatewayProcess(env, args=["--no-access-log"], log=log) as gateway:
        token = mint_token("s3cret", "no_such_flow")
        answer = httpx.post(
            f"{gateway.url}/webhook-event",
            json=make_webhook_event().model_dump(mode="json"),
            headers={"x-auth-token": token},
            timeout=30,
        )
        assert answer.status_code == 404
        process = gateway.process
    assert process is not None
    assert process.poll() is not None  # stopped on leaving the block
    text = log.read_text()
    assert "libnar.gateway.audit" in text
    assert '"POST /webhook-event HTTP/1.1"' not in text
