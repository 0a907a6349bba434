"""Nothing lost: the gateway killed mid-load, then a replay; Prefect gone and back."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import (
    DeploymentFilter,
    DeploymentFilterId,
)
from prefect.settings import PREFECT_API_URL, temporary_settings

from libnar._gateway import FileOutbox, OutboxEntry, mint_token, replay_outbox
from libnar.testing import GatewayProcess, PrefectServer

from .conftest import (
    ADMIN_KEY,
    DPP_KEY,
    SECRET,
    RunningGateway,
    gateway_settings,
    run_of,
    serve_in_thread,
    wait_until,
    webhook_body,
)
from .flows import gw_hook_ptp

pytestmark = pytest.mark.slow

ROOT = Path(__file__).parents[2]


def gateway_process(api_url: str, outbox: Path) -> GatewayProcess:
    """`libnar gateway serve` as a subprocess, its log beside the outbox."""
    env = {
        **os.environ,
        "PREFECT_API_URL": api_url,
        "LIBNAR_GATEWAY_SECRETS": SECRET,
        "LIBNAR_GATEWAY_ADMIN_KEY": ADMIN_KEY,
        "LIBNAR_DPP_KEYS": DPP_KEY,
        "LIBNAR_OUTBOX_DIR": str(outbox),
    }
    return GatewayProcess(env, log=outbox.parent / "gateway.log", cwd=ROOT)


def runs_by_task(deployment_id: str) -> dict[str, list[Any]]:
    """Every run of the deployment, grouped by the task it is for."""
    found: dict[str, list[Any]] = {}
    with get_client(sync_client=True) as client:
        offset = 0
        while True:
            page = client.read_flow_runs(
                deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[deployment_id])),
                offset=offset,
                limit=200,
            )
            for run in page:
                task = next(t.removeprefix("task:") for t in run.tags if t.startswith("task:"))
                found.setdefault(task, []).append(run)
            if len(page) < 200:
                return found
            offset += 200


def outbox_tasks(outbox: Path) -> set[str]:
    """Task ids of every event the outbox holds, pending or done."""
    tasks = set()
    for folder in ("pending", "done"):
        for path in (outbox / folder).glob("*.json"):
            entry = OutboxEntry.model_validate_json(path.read_text())
            tasks.add(entry.event["task"]["id"])
    return tasks


def test_killed_mid_load_then_replayed_every_accepted_event_has_one_run(
    deployments: dict[str, str], prefect_server: PrefectServer, tmp_path: Path
) -> None:
    outbox = tmp_path / "outbox"
    token = mint_token(SECRET, "gw_hook_ptp")
    bodies = [webhook_body() for _ in range(240)]
    bodies += bodies[::6]  # repeats of some events
    accepted: dict[str, str] = {}
    lock = threading.Lock()
    with gateway_process(prefect_server.api_url, outbox) as gateway:
        url, process = gateway.url, gateway.process
        assert process is not None

        def post(body: dict[str, Any]) -> None:
            try:
                with httpx.Client(base_url=url, timeout=30) as client:
                    answer = client.post(
                        "/webhook-event", json=body, headers={"x-auth-token": token}
                    )
            except httpx.HTTPError:
                return  # the gateway died while answering: the client never saw a 200
            if answer.status_code in (200, 202):
                with lock:
                    accepted[body["task"]["id"]] = answer.json()["key"]
                    if len(accepted) == 60:
                        os.kill(process.pid, signal.SIGKILL)

        with ThreadPoolExecutor(16) as pool:
            list(pool.map(post, bodies))
        assert process.wait(10) == -signal.SIGKILL

    assert 60 <= len(accepted) < 240
    kept = outbox_tasks(outbox)
    done = subprocess.run(
        [sys.executable, "-m", "libnar.cli", "gateway", "replay"],
        env={
            **os.environ,
            "PREFECT_API_URL": prefect_server.api_url,
            "LIBNAR_OUTBOX_DIR": str(outbox),
        },
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["failed"] == []
    assert list((outbox / "pending").glob("*.json")) == []

    runs = runs_by_task(deployments["gw_hook_ptp_deploy"])
    for task in set(accepted) | kept:
        assert len(runs.get(task, [])) == 1, task
    for task, key in accepted.items():
        assert runs[task][0].idempotency_key.endswith(f":{key}")


@pytest.fixture
def second_prefect(tmp_path: Path) -> Iterator[PrefectServer]:
    """A Prefect server of this test's own, to stop and start again on the same database."""
    server = PrefectServer(home=tmp_path / "prefect-home")
    server.home.mkdir()
    server.start()
    try:
        yield server
    finally:
        server.stop()


def test_prefect_down_the_event_is_accepted_and_runs_once_prefect_is_back(
    second_prefect: PrefectServer, tmp_path: Path
) -> None:
    with temporary_settings(updates={PREFECT_API_URL: second_prefect.api_url}):
        deployment_id = str(gw_hook_ptp.to_deployment(name="gw_hook_ptp_deploy").apply())
    settings = gateway_settings(
        tmp_path / "outbox",
        gateway_prefect_timeout=1.0,
        gateway_deployment_cache_seconds=0,
        gateway_retry_after_seconds=2,  # the longest wait before sending again
    )
    token = mint_token(SECRET, "gw_hook_ptp")
    body = webhook_body()
    with serve_in_thread(settings, prefect_api_url=second_prefect.api_url) as url:
        gateway = RunningGateway(url, tmp_path / "outbox")
        with gateway.client() as client:
            first = client.post(
                "/webhook-event", json=webhook_body(), headers={"x-auth-token": token}
            )
            assert first.status_code == 202
            wait_until(  # the dispatcher has sent it: only the next event waits for Prefect
                lambda: not list((tmp_path / "outbox" / "pending").glob("*.json")),
                what="the first event sent",
            )

            second_prefect.stop()
            answer = client.post("/webhook-event", json=body, headers={"x-auth-token": token})
            assert answer.status_code == 202  # stored: SamaHub need not retry
            assert client.get("/ready").status_code == 503
            [pending] = list((tmp_path / "outbox" / "pending").glob("*.json"))
            assert body["task"]["id"] in pending.read_text()
            wait_until(  # read from the outbox every second
                lambda: "libnar_gateway_backlog_events 1.0" in client.get("/metrics").text,
                what="a backlog of 1",
            )

            second_prefect.start()
            assert client.get("/ready").status_code == 200
            # No replay needed: the dispatcher sends it once Prefect answers.
            with temporary_settings(updates={PREFECT_API_URL: second_prefect.api_url}):
                run = run_of(answer, timeout=60)
            wait_until(
                lambda: not list((tmp_path / "outbox" / "pending").glob("*.json")),
                what="nothing pending",
            )
            # SamaHub's own retry of the same delivery lands on that run.
            again = client.post("/webhook-event", json=body, headers={"x-auth-token": token})
            assert again.status_code == 200
            assert (again.json()["duplicate"], again.json()["flow_run_id"]) == (True, str(run.id))
            replayed = client.post("/replay", headers={"Authorization": f"Bearer {ADMIN_KEY}"})
            assert replayed.json()["triggered"] == 0

    with temporary_settings(updates={PREFECT_API_URL: second_prefect.api_url}):
        runs = runs_by_task(deployment_id)
    assert len(runs[body["task"]["id"]]) == 1


def test_forced_replay_runs_a_pending_event_again_with_a_new_key(
    deployments: dict[str, str], prefect_server: PrefectServer, tmp_path: Path
) -> None:
    outbox = tmp_path / "outbox"
    settings = gateway_settings(outbox)
    entry = OutboxEntry(
        source="webhook",
        flow="gw_hook_ptp",
        deployment="gw_hook_ptp_deploy",
        event_key="webhook-forced-" + webhook_body()["task"]["id"],
        event=(body := webhook_body()),
        run_name="forced",
        tags=[f"task:{body['task']['id']}"],
    )
    done = outbox / "done" / entry.file_name

    def died_before_marking_it_done() -> None:
        done.unlink()
        FileOutbox(outbox).write(entry)

    FileOutbox(outbox).write(entry)
    first = asyncio.run(replay_outbox(settings))
    assert (first.triggered, first.duplicates) == (1, 0)
    died_before_marking_it_done()
    again = asyncio.run(replay_outbox(settings))
    assert (again.triggered, again.duplicates) == (0, 1)
    died_before_marking_it_done()
    forced = asyncio.run(replay_outbox(settings, force=True))
    assert (forced.triggered, forced.duplicates) == (1, 0)
    # Its forced run is done now: a late repeat's pending write never becomes a third run.
    FileOutbox(outbox).write(entry.model_copy(update={"attempt": 1}))
    late = asyncio.run(replay_outbox(settings, force=True))
    assert (late.triggered, late.duplicates) == (0, 0)
    runs = runs_by_task(deployments["gw_hook_ptp_deploy"])[body["task"]["id"]]
    assert len(runs) == 2
    assert sorted(r.idempotency_key.rsplit(":", 1)[-1] for r in runs)[0] == "attempt-1"
