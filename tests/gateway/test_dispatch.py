"""Accept, then dispatch: the answer on the durable write, the dispatcher, backpressure, metrics."""

from __future__ import annotations

import logging
import os
import re
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from libnar._gateway import FileOutbox, OutboxEntry, mint_token
from libnar.testing import GatewayProcess, PrefectServer, free_port

from .conftest import (
    ADMIN_KEY,
    SECRET,
    gateway_settings,
    run_of,
    serve_in_thread,
    wait_until,
    webhook_body,
)

pytestmark = pytest.mark.slow

ROOT = Path(__file__).parents[2]


def metric(text: str, name: str, **labels: str) -> float:
    """The value of one sample in Prometheus' text format (0 when absent)."""
    for line in text.splitlines():
        if line.startswith("#") or not line.startswith(name):
            continue
        found, _, value = line.rpartition(" ")
        sample, _, inside = found.partition("{")
        if sample != name:
            continue
        have = dict(re.findall(r'(\w+)="([^"]*)"', inside))
        if all(have.get(k) == v for k, v in labels.items()):
            return float(value)
    return 0.0


def test_with_wait_for_run_the_answer_names_the_run(
    deployments: dict[str, str], tmp_path: Path
) -> None:
    settings = gateway_settings(tmp_path / "outbox", gateway_wait_for_run=True)
    token = mint_token(SECRET, "gw_hook_ptp")
    body = webhook_body()
    with serve_in_thread(settings) as url, httpx.Client(base_url=url, timeout=30) as client:
        first = client.post("/webhook-event", json=body, headers={"x-auth-token": token})
        again = client.post("/webhook-event", json=body, headers={"x-auth-token": token})
        nothing = client.post(
            "/webhook-event",
            json=webhook_body(),
            headers={"x-auth-token": mint_token(SECRET, "gw_nothing_ptp")},
        )
    assert first.status_code == 200, first.text
    assert first.json()["flow_run_id"] == str(run_of(first).id)
    assert first.json()["duplicate"] is False
    assert again.status_code == 200
    assert again.json() == {**first.json(), "duplicate": True}
    assert nothing.status_code == 404


def test_a_burst_is_created_in_a_few_bulk_calls(
    deployments: dict[str, str], tmp_path: Path
) -> None:
    token = mint_token(SECRET, "gw_hook_ptp")
    bodies = [webhook_body() for _ in range(40)]
    with serve_in_thread(gateway_settings(tmp_path / "outbox")) as url:

        def post(body: dict[str, object]) -> httpx.Response:
            with httpx.Client(base_url=url, timeout=30) as client:
                return client.post("/webhook-event", json=body, headers={"x-auth-token": token})

        with ThreadPoolExecutor(20) as pool:
            answers = list(pool.map(post, bodies))
        assert {a.status_code for a in answers} == {202}
        runs = [run_of(answer) for answer in answers]
        with httpx.Client(base_url=url) as client:
            text = client.get("/metrics").text
    assert len({run.id for run in runs}) == 40
    calls = metric(
        text, "libnar_gateway_prefect_request_seconds_count", operation="create_runs"
    ) + metric(text, "libnar_gateway_prefect_request_seconds_count", operation="create_run")
    assert 1 <= calls <= 10  # grouped: 40 runs, a few calls
    assert metric(text, "libnar_gateway_dispatched_events_total", outcome="created") == 40
    assert metric(text, "libnar_gateway_accept_to_run_seconds_count") == 40


def test_past_the_backlog_bound_events_get_503_with_retry_after(tmp_path: Path) -> None:
    dead = f"http://127.0.0.1:{free_port()}/api"  # nothing drains: the backlog only grows
    settings = gateway_settings(
        tmp_path / "outbox",
        gateway_max_backlog=3,
        gateway_prefect_timeout=0.5,
        gateway_check_timeout=0.5,
        gateway_retry_after_seconds=7,
    )
    token = mint_token(SECRET, "gw_hook_ptp")
    with (
        serve_in_thread(settings, prefect_api_url=dead) as url,
        httpx.Client(base_url=url, timeout=30) as client,
    ):
        statuses = [
            client.post(
                "/webhook-event", json=webhook_body(), headers={"x-auth-token": token}
            ).status_code
            for _ in range(3)
        ]
        refused = client.post(
            "/webhook-event", json=webhook_body(), headers={"x-auth-token": token}
        )
        wait_until(
            lambda: "libnar_gateway_backlog_events 3.0" in client.get("/metrics").text,
            what="the backlog in the metrics",
        )
        text = client.get("/metrics").text
    assert statuses == [202, 202, 202]
    assert refused.status_code == 503
    assert refused.headers["Retry-After"] == "7"
    assert "LIBNAR_GATEWAY_MAX_BACKLOG" in refused.json()["detail"]
    assert len(list((tmp_path / "outbox" / "pending").glob("*.json"))) == 3
    assert metric(text, "libnar_gateway_backlog_limit") == 3
    assert metric(text, "libnar_gateway_backlog_oldest_seconds") > 0
    assert (
        metric(text, "libnar_gateway_events_total", outcome="rejected", reason="backlog_full") == 1
    )
    assert metric(text, "libnar_gateway_events_total", outcome="accepted") == 3
    assert metric(text, "libnar_gateway_prefect_errors_total", kind="unavailable") >= 1


def stored(tmp_path: Path, deployment: str, **parameters: object) -> OutboxEntry:
    """An event stored as an earlier gateway (or one whose checks passed then) stored it."""
    body = webhook_body()
    entry = OutboxEntry(
        source="webhook",
        flow="gw_hook_ptp",
        deployment=deployment,
        event_key=f"webhook-{uuid.uuid4().hex}",
        event=body,
        parameters=parameters,
        run_name=f"gw_hook_ptp-stored-{body['task']['id']}",
        tags=[f"task:{body['task']['id']}"],
    )
    FileOutbox(tmp_path / "outbox").add(entry)
    return entry


def test_stored_events_are_sent_at_start_and_refused_ones_rejected_with_the_reason(
    deployments: dict[str, str], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="libnar.gateway")
    good = stored(tmp_path, "gw_hook_ptp_deploy")
    gone = stored(tmp_path, "gw_hook_ptp_deleted")  # its deployment disappeared since
    refused = stored(tmp_path, "gw_hook_ptp_deploy", colour="red")  # parameters changed
    outbox = tmp_path / "outbox"
    with serve_in_thread(gateway_settings(outbox)) as url, httpx.Client(base_url=url) as client:
        wait_until(
            lambda: (
                len(list((outbox / "rejected").glob("*.json"))) == 2
                and len(list((outbox / "done").glob("*.json"))) == 1
            ),
            what="every stored event settled",
        )
        text = client.get("/metrics").text
    assert list((outbox / "pending").glob("*.json")) == []
    done = OutboxEntry.model_validate_json((outbox / "done" / good.file_name).read_text())
    assert done.flow_run_id is not None
    why_gone = OutboxEntry.model_validate_json((outbox / "rejected" / gone.file_name).read_text())
    assert why_gone.rejected == (
        "flow 'gw_hook_ptp' has no deployment 'gw_hook_ptp_deleted' on the Prefect API"
    )
    why = OutboxEntry.model_validate_json((outbox / "rejected" / refused.file_name).read_text())
    assert why.rejected is not None
    assert "unknown parameter(s) 'colour'" in why.rejected
    labels = {"flow": "gw_hook_ptp", "outcome": "rejected"}
    assert metric(text, "libnar_gateway_dispatched_events_total", **labels, reason="no_deployment")
    assert metric(text, "libnar_gateway_dispatched_events_total", **labels, reason="parameters")
    assert metric(text, "libnar_gateway_dispatched_events_total", outcome="created") == 1
    assert f"rejected {gone.name} (gw_hook_ptp/gw_hook_ptp_deleted)" in caplog.text


def test_every_answer_is_counted_by_source_flow_and_outcome(
    deployments: dict[str, str], tmp_path: Path
) -> None:
    token = mint_token(SECRET, "gw_hook_ptp")
    body = webhook_body()
    with (
        serve_in_thread(gateway_settings(tmp_path / "outbox")) as url,
        httpx.Client(base_url=url, timeout=30) as client,
    ):
        first = client.post("/webhook-event", json=body, headers={"x-auth-token": token})
        client.post("/webhook-event", json=body, headers={"x-auth-token": token})
        client.post("/webhook-event", json=body, headers={"x-auth-token": "bad"})
        client.post(
            "/webhook-event",
            json=body,
            headers={"x-auth-token": mint_token(SECRET, "gw_hook_ptp", {"colour": 1})},
        )
        client.post(
            "/webhook-event",
            json=body,
            headers={"x-auth-token": mint_token(SECRET, "someone_elses_ptp")},
        )
        client.post("/dpp-event", json={}, headers={"Authorization": "Bearer nope"})
        run_of(first)
        answer = client.get("/metrics")
    assert answer.headers["content-type"].startswith("text/plain")
    text = answer.text
    events = "libnar_gateway_events_total"
    hook = {"source": "webhook", "flow": "gw_hook_ptp"}
    assert metric(text, events, **hook, outcome="accepted") == 1
    assert metric(text, events, **hook, outcome="duplicate") == 1
    assert metric(text, events, **hook, outcome="rejected", reason="parameters") == 1
    assert metric(text, events, source="webhook", flow="", reason="unauthorized") == 1
    assert metric(text, events, source="webhook", flow="", reason="no_deployment") == 1
    assert metric(text, events, source="dpp", outcome="rejected", reason="unauthorized") == 1
    assert "someone_elses_ptp" not in text  # a name a sender chose is no label
    assert metric(text, "libnar_gateway_prefect_request_seconds_count", operation="read_deployment")


def test_metrics_add_up_every_worker(
    deployments: dict[str, str], prefect_server: PrefectServer, tmp_path: Path
) -> None:
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("LIBNAR_")},
        "PREFECT_API_URL": prefect_server.api_url,
        "LIBNAR_GATEWAY_SECRETS": SECRET,
        "LIBNAR_GATEWAY_ADMIN_KEY": ADMIN_KEY,
        "LIBNAR_OUTBOX_DIR": str(tmp_path / "outbox"),
    }
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    token = mint_token(SECRET, "gw_hook_ptp")
    with GatewayProcess(
        env, args=["--workers", "2", "--no-access-log"], log=tmp_path / "gateway.log", cwd=ROOT
    ) as gateway:

        def post(_: int) -> int:
            with httpx.Client(base_url=gateway.url, timeout=30) as client:
                return client.post(
                    "/webhook-event", json=webhook_body(), headers={"x-auth-token": token}
                ).status_code

        with ThreadPoolExecutor(8) as pool:
            assert set(pool.map(post, range(24))) == {202}
        counts = set()
        for _ in range(8):  # each scrape a new connection: either worker may answer it
            with httpx.Client(base_url=gateway.url, timeout=30) as client:
                text = client.get("/metrics").text
            counts.add(metric(text, "libnar_gateway_events_total", outcome="accepted"))
        wait_until(
            lambda: (
                metric(
                    httpx.get(f"{gateway.url}/metrics", timeout=30).text,
                    "libnar_gateway_dispatched_events_total",
                    outcome="created",
                )
                == 24
            ),
            what="24 runs counted",
        )
    assert counts == {24.0}
    log = (tmp_path / "gateway.log").read_text()
    assert log.count("gateway ready") == 2
