"""Gateway test setup: deployments on the session's Prefect server and a gateway on uvicorn."""

from __future__ import annotations

import copy
import json
import secrets
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

from libnar._gateway import create_app
from libnar.settings import Settings
from libnar.testing import PrefectServer, free_port

from .flows import gw_dpp_ptp, gw_hook_ptp

EVENTS = Path(__file__).parents[2] / "examples" / "events"
WEBHOOK_BODY: dict[str, Any] = json.loads((EVENTS / "webhook_event.json").read_text())
DPP_BODY: dict[str, Any] = json.loads((EVENTS / "dpp_event.json").read_text())

SECRET = "gateway-test-secret-" + "x" * 24
OLD_SECRET = "gateway-old-secret-" + "y" * 24
ADMIN_KEY = "admin-key-" + "a" * 30
DPP_KEY = "dpp-key-" + "d" * 30
OLD_DPP_KEY = "dpp-old-key-" + "e" * 30


def new_task_id() -> str:
    return secrets.token_hex(12)


def webhook_body(task_id: str | None = None, **task: Any) -> dict[str, Any]:
    """The example webhook with a fresh task id (each test its own events)."""
    body = copy.deepcopy(WEBHOOK_BODY)
    body["task"]["id"] = task_id or new_task_id()
    body["task"].update(task)
    return body


def dpp_body(name: str = "gw_dpp_ptp", parameters: Any = None, **task: Any) -> dict[str, Any]:
    body = copy.deepcopy(DPP_BODY)
    body["name"] = name
    body["parameters"] = parameters
    body["task"]["id"] = new_task_id()
    body["task"].update(task)
    return body


@pytest.fixture(scope="session")
def deployments(prefect_server: PrefectServer) -> dict[str, str]:
    """The test flows' deployments, applied once: name -> id."""
    found = {}
    for flow, name in [
        (gw_hook_ptp, "gw_hook_ptp_deploy"),
        (gw_hook_ptp, "gw_hook_ptp_other"),
        (gw_dpp_ptp, "gw_dpp_ptp_deploy"),
    ]:
        found[name] = str(flow.to_deployment(name=name).apply())
    return found


def gateway_settings(outbox: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "gateway_secrets": [SECRET, OLD_SECRET],
        "gateway_admin_key": ADMIN_KEY,
        "dpp_keys": [DPP_KEY, OLD_DPP_KEY],
        "outbox_dir": outbox,
        **overrides,
    }
    return Settings(**values)


@dataclass
class RunningGateway:
    url: str
    outbox: Path

    def client(self, **kwargs: Any) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=30.0, **kwargs)

    def token(self, name: str = "gw_hook_ptp", **body: Any) -> str:
        with self.client() as client:
            answer = client.put(
                "/create-token",
                json={"name": name, **body},
                headers={"Authorization": f"Bearer {ADMIN_KEY}"},
            )
        assert answer.status_code == 200, answer.text
        token: str = answer.json()["token"]
        return token


@contextmanager
def serve_in_thread(
    settings: Settings, prefect_api_url: str | None = None, *, port: int | None = None
) -> Iterator[str]:
    """Serve the gateway on a real uvicorn socket in a thread; yield its base URL."""
    app = create_app(settings, prefect_api_url=prefect_api_url)
    port = port or free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the gateway did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(20)


@pytest.fixture
def gateway(deployments: dict[str, str], tmp_path: Path) -> Iterator[RunningGateway]:
    """A gateway on uvicorn against the session's Prefect server, with its own outbox."""
    outbox = tmp_path / "outbox"
    with serve_in_thread(gateway_settings(outbox)) as url:
        yield RunningGateway(url, outbox)


def run_of(answer: httpx.Response | dict[str, Any], timeout: float = 30.0) -> Any:
    """The Prefect run of an accepted event, found as the docs say: by its idempotency key
    `<deployment id>:<key>` (waiting for the dispatcher to create it)."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (
        DeploymentFilter,
        DeploymentFilterName,
        FlowRunFilter,
        FlowRunFilterIdempotencyKey,
    )

    found = answer.json() if isinstance(answer, httpx.Response) else answer
    assert found["accepted"] is True, found
    deadline = time.monotonic() + timeout
    with get_client(sync_client=True) as client:
        [deployment] = client.read_deployments(
            deployment_filter=DeploymentFilter(
                name=DeploymentFilterName(any_=[found["deployment"]])
            )
        )
        key = f"{deployment.id}:{found['key']}"
        while True:
            runs = client.read_flow_runs(
                flow_run_filter=FlowRunFilter(
                    idempotency_key=FlowRunFilterIdempotencyKey(any_=[key])
                )
            )
            if runs:
                [run] = runs
                if found["flow_run_id"] is not None:
                    assert str(run.id) == found["flow_run_id"]
                return run
            assert time.monotonic() < deadline, f"no run for {key} in {timeout} s"
            time.sleep(0.1)


def wait_until(check: Any, timeout: float = 30.0, what: str = "the condition") -> Any:
    """Poll `check()` until it returns something true (bounded in time)."""
    deadline = time.monotonic() + timeout
    while not (found := check()):
        assert time.monotonic() < deadline, f"{what} not reached in {timeout} s"
        time.sleep(0.05)
    return found
