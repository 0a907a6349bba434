"""Escalation and alerts as Prefect automations, end to end on a real Prefect server with the
local process pool, a real worker and the gateway on a real socket."""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from libnar._build import apply_plan_sync, base_job_template
from libnar._build._automations import automation_prefix
from libnar._dev import dev_plans
from libnar.settings import Settings
from tests._build.conftest import write_package
from tests.gateway.conftest import ADMIN_KEY, gateway_settings, serve_in_thread

pytestmark = pytest.mark.slow

SOURCE = """
from libnar import nps_flow

@nps_flow
def {name}(mib: int = 10, fail: bool = False, note: dict | None = None) -> int:
    if fail:
        raise ValueError("the input is wrong")
    block = bytearray(mib * 1024 * 1024)
    return len(block) // (1024 * 1024)
"""
TEMPLATE = {"local": base_job_template("local", python=sys.executable)}
#: A Prefect placeholder as a sender could put it in an event: 49 if ever evaluated.
PLACEHOLDER = '{"__prefect_kind": "jinja", "template": "{{ 7 * 7 }}"}'
#: Bound on every wait: a run starts within seconds; an automation fires within seconds.
WAIT = 60.0


@pytest.fixture(scope="module")
def gateway_url(prefect_server: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    outbox = tmp_path_factory.mktemp("outbox")
    with serve_in_thread(gateway_settings(outbox)) as url:
        yield url


def deploy(root: Path, gateway_url: str, **settings: Any) -> list[Any]:
    """Apply the packages under `root` as `libnar deploy` does (on the local pool)."""
    changes = []
    values = {"gateway_public_url": gateway_url, "gateway_admin_key": ADMIN_KEY, **settings}
    for _, plan in dev_plans(root, warn=pytest.fail):
        changes += apply_plan_sync(
            plan, create_pools=True, pool_templates=TEMPLATE, settings=Settings(**values)
        )
    return changes


def write_flow(tmp_path: Path, name: str, config: str) -> Path:
    """A flow package `name` running `SOURCE` with `[sama-build]` lines `config`."""
    return write_package(tmp_path, config, name=name, source=SOURCE.format(name=name))


@contextmanager
def local_worker(tmp_path: Path) -> Iterator[None]:
    """A real worker on libnar's local process pool, its log in `tmp_path/worker.log`."""
    from libnar._local_stack import WorkerProcess

    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[2])}
    with WorkerProcess("libnar-local", env, log=tmp_path / "worker.log"):
        yield


def runs_of(flow: str) -> list[Any]:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowFilter, FlowFilterName
    from prefect.client.schemas.sorting import FlowRunSort

    with get_client(sync_client=True) as client:
        return client.read_flow_runs(
            flow_filter=FlowFilter(name=FlowFilterName(any_=[flow])),
            sort=FlowRunSort.EXPECTED_START_TIME_ASC,
        )


def runs_of_all() -> list[Any]:
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        return client.read_flow_runs(limit=20)


def wait_for(check: Any, what: str, timeout: float = WAIT) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        found = check()
        if found:
            return found
        if time.monotonic() > deadline:
            seen = [
                (
                    r.name,
                    r.state.type.value if r.state else None,
                    r.state.message if r.state else "",
                )
                for r in runs_of_all()
            ]
            from prefect.settings import PREFECT_API_URL

            events = httpx.post(
                f"{PREFECT_API_URL.value()}/events/filter",
                json={"filter": {"event": {"prefix": ["prefect.automation"]}}, "limit": 20},
                timeout=10,
            ).json()["events"]
            actions = [(e["event"], e["payload"]) for e in events]
            pytest.fail(f"{what}: not after {timeout:.0f} s; runs: {seen}; automations: {actions}")
        time.sleep(0.5)


def automations_named(prefix: str) -> list[dict[str, Any]]:
    from prefect.settings import PREFECT_API_URL

    answer = httpx.post(f"{PREFECT_API_URL.value()}/automations/filter", json={}, timeout=10)
    return [a for a in answer.json() if a["name"].startswith(prefix)]


def test_deploy_keeps_automations_in_step(gateway_url: str, tmp_path: Path) -> None:
    name = "fun69_steady_ptp"
    package = write_flow(tmp_path, name, 'amount = "low"\nescalate = ["med", "high"]')
    prefix = automation_prefix(name, f"{name}_deploy")
    [first] = deploy(tmp_path, gateway_url)
    assert [(a.name, a.action) for a in first.automations] == [(f"{prefix}escalate", "created")]
    [again] = deploy(tmp_path, gateway_url)
    assert [a.action for a in again.automations] == ["unchanged"]
    [automation] = automations_named(prefix)
    assert automation["trigger"]["match_related"]["prefect.resource.id"] == (
        f"prefect.deployment.{first.deployment_id}"
    )
    assert '"presets": ["low", "med", "high"]' in automation["actions"][0]["payload"]

    (package / "pyproject.toml").write_text(
        (package / "pyproject.toml").read_text().replace('["med", "high"]', '["med"]')
    )
    [changed] = deploy(tmp_path, gateway_url)
    assert [a.action for a in changed.automations] == ["updated"]
    (package / "pyproject.toml").write_text(
        (package / "pyproject.toml").read_text().replace('escalate = ["med"]', "")
    )
    [removed] = deploy(tmp_path, gateway_url)
    assert [a.action for a in removed.automations] == ["deleted"]
    assert automations_named(prefix) == []


def test_escalation_needs_the_gateway_settings(gateway_url: str, tmp_path: Path) -> None:
    from libnar._build import DeployError

    name = "fun69_nogate_ptp"
    write_flow(tmp_path, name, 'escalate = ["med"]')
    with pytest.raises(DeployError, match="LIBNAR_GATEWAY_PUBLIC_URL"):
        deploy(tmp_path, gateway_url, gateway_public_url=None)


def test_a_run_out_of_memory_is_rerun_once_with_the_next_preset(
    gateway_url: str, tmp_path: Path
) -> None:
    """very-low (512Mi) crashes at 700 MiB; low (2Gi) completes; a repeated trigger is one run."""
    from prefect.deployments import run_deployment

    name = "fun69_grow_ptp"
    write_flow(tmp_path, name, 'amount = "very-low"\nescalate = ["low"]')
    deploy(tmp_path, gateway_url)
    with local_worker(tmp_path):
        first = run_deployment(
            f"{name}/{name}_deploy",
            # A sender's placeholder, sent literally (as the gateway does): it must stay text
            # in the re-run too, never be evaluated by Prefect.
            parameters={"mib": 700, "note": {"__prefect_kind": "json", "value": PLACEHOLDER}},
            timeout=0,
            tags=["project:10423", "task:t-700"],
        )
        runs = wait_for(
            lambda: (
                (found := runs_of(name))
                and len(found) == 2
                and found[1].state is not None
                and found[1].state.is_final()
                and found
            ),
            "an escalated run that finished",
        )
    log = (tmp_path / "worker.log").read_text()
    crashed, rerun = runs
    assert str(crashed.id) == str(first.id)
    assert crashed.state.type.value == "CRASHED", log
    assert "out of memory" in (crashed.state.message or "")
    assert rerun.state.type.value == "COMPLETED", log
    assert crashed.job_variables == {}  # the deployment's: very-low
    assert rerun.job_variables == {"cpu": "1", "memory": "2Gi"}  # low, in the pool's units
    assert {"amount:low", f"escalated-from:{crashed.id}", "project:10423"} <= set(rerun.tags)
    assert crashed.parameters["note"] == json.loads(PLACEHOLDER)
    assert rerun.parameters == crashed.parameters
    assert rerun.name == f"{crashed.name}-low"
    assert rerun.idempotency_key == f"{rerun.deployment_id}:escalate:{crashed.id}"
    seconds = (rerun.start_time - crashed.state.timestamp).total_seconds()
    print(f"\ncrash -> escalated run start: {seconds:.1f} s")

    # The trigger delivered again (as the server may): the same run, no other.
    again = httpx.post(
        f"{gateway_url}/escalate",
        json={"flow_run_id": str(crashed.id), "presets": ["very-low", "low"]},
        headers={"Authorization": f"Bearer {ADMIN_KEY}"},
        timeout=30,
    )
    assert again.status_code == 200, again.text
    assert again.json()["flow_run_id"] == str(rerun.id)
    assert again.json()["duplicate"] is True
    assert again.json()["outcome"] == "repeated"
    assert escalations(gateway_url)["repeated"] >= 1
    # The re-run completed: asked again, there is nothing to escalate.
    done = httpx.post(
        f"{gateway_url}/escalate",
        json={"flow_run_id": str(rerun.id), "presets": ["very-low", "low"]},
        headers={"Authorization": f"Bearer {ADMIN_KEY}"},
        timeout=30,
    )
    assert done.json()["escalated"] is False
    assert done.json()["outcome"] == "not_memory"
    time.sleep(3)  # room for a wrong extra run to appear
    assert len(runs_of(name)) == 2


def escalations(gateway_url: str) -> dict[str, float]:
    """`libnar_gateway_escalations_total` by outcome, from the gateway's `/metrics`."""
    found: dict[str, float] = {}
    for line in httpx.get(f"{gateway_url}/metrics", timeout=10).text.splitlines():
        if line.startswith('libnar_gateway_escalations_total{outcome="'):
            outcome, value = line.split('"')[1], line.rsplit(" ", 1)[1]
            found[outcome] = float(value)
    return found


def test_a_run_out_of_memory_at_the_last_preset_is_not_rerun(
    gateway_url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """2.5 GiB crashes under very-low, then under low (2Gi), the last preset: two runs, no
    third; the gateway counts it (its alert) and logs a warning."""
    from prefect.deployments import run_deployment

    name = "fun69_huge_ptp"
    write_flow(tmp_path, name, 'amount = "very-low"\nescalate = ["low"]')
    deploy(tmp_path, gateway_url)
    before = escalations(gateway_url).get("last_preset", 0.0)
    with local_worker(tmp_path):
        run_deployment(f"{name}/{name}_deploy", parameters={"mib": 2560}, timeout=0)
        runs = wait_for(
            lambda: (
                (found := runs_of(name))
                and len(found) == 2
                and all(r.state is not None and r.state.is_final() for r in found)
                and escalations(gateway_url).get("last_preset", 0.0) > before
                and found
            ),
            "two crashed runs and the last preset counted",
        )
        time.sleep(3)  # room for a wrong third run to appear
    assert [r.state.type.value for r in runs] == ["CRASHED", "CRASHED"]
    assert runs[1].job_variables == {"cpu": "1", "memory": "2Gi"}
    assert "out of memory" in (runs[1].state.message or "")
    assert len(runs_of(name)) == 2
    assert f"flow run {runs[1].id} ran out of memory at its last preset" in caplog.text


def test_other_failures_are_not_escalated(gateway_url: str, tmp_path: Path) -> None:
    from prefect.deployments import run_deployment

    name = "fun69_wrong_ptp"
    write_flow(tmp_path, name, 'amount = "very-low"\nescalate = ["low"]')
    deploy(tmp_path, gateway_url)
    with local_worker(tmp_path):
        failed = run_deployment(f"{name}/{name}_deploy", parameters={"fail": True}, timeout=120)
    assert failed.state is not None
    assert failed.state.type.value == "FAILED"
    answer = httpx.post(
        f"{gateway_url}/escalate",
        json={"flow_run_id": str(failed.id), "presets": ["very-low", "low"]},
        headers={"Authorization": f"Bearer {ADMIN_KEY}"},
        timeout=30,
    )
    assert answer.json()["escalated"] is False
    assert answer.json()["outcome"] == "not_memory"
    time.sleep(5)  # the automation had its chance: it must not match
    assert len(runs_of(name)) == 1


def test_escalate_needs_the_admin_key(gateway_url: str) -> None:
    answer = httpx.post(
        f"{gateway_url}/escalate", json={"flow_run_id": "x", "presets": ["low"]}, timeout=10
    )
    assert answer.status_code == 401


# -- alerts ---------------------------------------------------------------------------------


class Receiver:
    """A loopback HTTP server that keeps what it is sent."""

    def __init__(self) -> None:
        received: list[dict[str, Any]] = []
        self.received = received

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                size = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(size).decode()
                received.append({"path": self.path, "body": body})
                self.send_response(200)
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    found = Receiver()
    yield found
    found.close()


def run_with_alerts(
    tmp_path: Path, gateway_url: str, name: str, notify: str, runs: list[tuple[dict[str, Any], str]]
) -> list[Any]:
    """Deploy a package with `notify`, then run it through a real worker once per
    `(parameters, task id)`; return the finished runs."""
    from prefect.deployments import run_deployment

    write_flow(tmp_path, name, f'amount = "very-low"\nnotify = [{notify}]')
    [change] = deploy(tmp_path, gateway_url)
    assert {a.action for a in change.automations} == {"created"}
    with local_worker(tmp_path):
        return [
            run_deployment(
                f"{name}/{name}_deploy",
                parameters=parameters,
                timeout=120,
                tags=["project:10423", f"task:{task}"],
            )
            for parameters, task in runs
        ]


def test_failed_and_crashed_runs_are_alerted_through_a_notification_block(
    gateway_url: str, tmp_path: Path, receiver: Receiver
) -> None:
    from prefect.blocks.notifications import CustomWebhookNotificationBlock

    CustomWebhookNotificationBlock(
        name="libnar-test",
        url=f"{receiver.url}/alert",
        json_data={"text": "{{subject}}\n{{body}}"},
        allow_private_urls=True,
    ).save("libnar-test-alerts", overwrite=True)
    name = "fun69_alert_ptp"
    failed, crashed = run_with_alerts(
        tmp_path,
        gateway_url,
        name,
        '{on = ["failed", "crashed"], block = "custom-webhook/libnar-test-alerts"}',
        [({"fail": True}, "t-fail"), ({"mib": 700}, "t-oom")],
    )
    assert failed.state is not None
    assert failed.state.type.value == "FAILED"
    assert crashed.state is not None
    assert crashed.state.type.value == "CRASHED"
    texts = wait_for(
        lambda: (
            len(receiver.received) >= 2
            and [json.loads(r["body"])["text"] for r in receiver.received]
        ),
        "two alerts",
    )
    by_run = {run.name: next(t for t in texts if run.name in t) for run in (failed, crashed)}
    failed_text, crashed_text = by_run[failed.name], by_run[crashed.name]
    assert f"Flow: {name}" in failed_text
    assert "SamaHub project: 10423" in failed_text
    assert "SamaHub task: t-fail" in failed_text
    assert "State: Failed" in failed_text
    assert "the input is wrong" in failed_text
    assert f"Run: {failed.name} (" in failed_text
    assert f"/runs/flow-run/{failed.id})" in failed_text  # the UI link
    assert "SamaHub task: t-oom" in crashed_text
    assert "State: Crashed" in crashed_text
    assert "out of memory" in crashed_text


def test_a_slack_webhook_block_alerts_a_failed_run_and_a_late_one(
    gateway_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Prefect's Slack block only posts to https://hooks.slack.com: a Prefect server of this
    test's own (late-runs service on, a run is late after 1 s) sends its https through a
    loopback proxy that plays Slack (`slack_proxy`)."""
    from prefect.blocks.notifications import SlackWebhook
    from prefect.deployments import run_deployment
    from prefect.settings import PREFECT_API_URL, temporary_settings

    from libnar._local_stack import PrefectServer
    from tests._build.slack_proxy import SlackProxy

    slack = SlackProxy(tmp_path)
    late = {
        "PREFECT_SERVER_SERVICES_LATE_RUNS_AFTER_SECONDS": "1",
        "PREFECT_SERVER_SERVICES_LATE_RUNS_LOOP_SECONDS": "1",
    }
    for key, value in {**slack.environment(), **late}.items():
        monkeypatch.setenv(key, value)
    server = PrefectServer(late_runs=True).start()
    for key in {**slack.environment(), **late}:
        monkeypatch.delenv(key)
    try:
        monkeypatch.setenv("PREFECT_API_URL", server.api_url)
        with temporary_settings(updates={PREFECT_API_URL: server.api_url}):
            SlackWebhook(url="https://hooks.slack.com/services/T000/B000/XXXX").save(
                "libnar-test-slack", overwrite=True
            )
            name = "fun69_slack_ptp"
            [failed] = run_with_alerts(
                tmp_path,
                gateway_url,
                name,
                '{on = ["failed"], block = "slack-webhook/libnar-test-slack"},'
                ' {on = ["late"], block = "slack-webhook/libnar-test-slack"}',
                [({"fail": True}, "t-slack")],
            )
            assert failed.state is not None
            assert failed.state.type.value == "FAILED"
            # No worker any more: this run stays scheduled and becomes Late.
            waiting = run_deployment(
                f"{name}/{name}_deploy", timeout=0, tags=["project:10423", "task:t-late"]
            )
            sent = wait_for(lambda: len(slack.received) >= 2 and slack.received, "two Slack alerts")
    finally:
        server.stop()
        slack.close()
    texts = {}
    for message in sent:
        assert message["host"] == "hooks.slack.com"
        assert message["path"] == "/services/T000/B000/XXXX"
        text = json.dumps(json.loads(message["body"]))  # Slack's JSON, the message inside
        texts["late" if "State: Late" in text else "failed"] = text
    assert f"Run: {failed.name} (" in texts["failed"]
    assert f"Flow: {name}" in texts["failed"]
    assert "SamaHub project: 10423" in texts["failed"]
    assert "SamaHub task: t-slack" in texts["failed"]
    assert "State: Failed" in texts["failed"]
    assert "the input is wrong" in texts["failed"]
    assert f"Run: {waiting.name} (" in texts["late"]
    assert "SamaHub task: t-late" in texts["late"]
