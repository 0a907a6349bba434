"""What a hostile sender or a careless client tried on the gateway, and what it gets now.

Each test here failed on the gateway before the hardening issue: placeholders evaluated by
Prefect, large events that never ran (and took others down), 500s on malformed input,
deliveries with other parameters merged into one run, DPP requests run as webhooks, stale
pending entries re-run by a forced replay, secrets in reprs and logs.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import socket
import threading
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
from prefect.client.orchestration import get_client

from libnar._gateway import FileOutbox, GatewayConfig, OutboxEntry, create_app, replay_outbox
from libnar._gateway._trigger import ParametersRejected, PrefectTrigger, RunRequest
from libnar.events import WebhookEvent
from libnar.runs import ClaimReference
from libnar.testing import PrefectServer, free_port

from .conftest import (
    ADMIN_KEY,
    DPP_KEY,
    SECRET,
    RunningGateway,
    dpp_body,
    gateway_settings,
    run_of,
    serve_in_thread,
    wait_until,
    webhook_body,
)

pytestmark = pytest.mark.slow

ADMIN = {"Authorization": f"Bearer {ADMIN_KEY}"}
DPP = {"Authorization": f"Bearer {DPP_KEY}"}
VARIABLE_VALUE = "the-db-password-" + uuid.uuid4().hex


def read_run(run_id: str) -> Any:
    with get_client(sync_client=True) as client:
        return client.read_flow_run(run_id)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def workspace_variable(prefect_server: PrefectServer) -> str:
    """A Prefect variable a sender must never be able to read."""
    from prefect.variables import Variable

    name = "db_password_" + uuid.uuid4().hex[:8]
    Variable.set(name, VARIABLE_VALUE)
    return name


@pytest.fixture
def public_gateway(deployments: dict[str, str], tmp_path: Path) -> Iterator[RunningGateway]:
    """A gateway that knows its own URL, so it can pass large events by reference."""
    port = free_port()
    settings = gateway_settings(tmp_path / "outbox", gateway_public_url=f"http://127.0.0.1:{port}")
    with serve_in_thread(settings, port=port) as url:
        yield RunningGateway(url, tmp_path / "outbox")


# -- placeholders --------------------------------------------------------------------------


def test_a_placeholder_in_dpp_parameters_never_reads_a_workspace_variable(
    gateway: RunningGateway, workspace_variable: str
) -> None:
    placeholder = {"__prefect_kind": "workspace_variable", "variable_name": workspace_variable}
    body = dpp_body(parameters={"min_box_px": placeholder})
    with gateway.client() as client:
        answer = client.post("/dpp-event", json=body, headers=DPP)
    assert answer.status_code == 422, answer.text
    assert VARIABLE_VALUE not in answer.text
    assert "min_box_px" in answer.text


@pytest.mark.parametrize(
    "value",
    [
        {"__prefect_kind": "jinja", "template": "{{ 7*7 }}"},
        {"__prefect_kind": "workspace_variable", "variable_name": "VARIABLE"},
        {"__prefect_kind": "jinja"},  # malformed: Prefect answered 400 and it stayed pending
        {"__prefect_kind": "json", "value": "[1, 2"},
        [{"deep": {"__prefect_kind": "none", "value": "{{ 1+1 }}"}}],
        "{{ 7*7 }}",
    ],
    ids=["jinja", "variable", "malformed", "bad-json", "nested", "plain-template"],
)
def test_placeholders_in_task_data_reach_the_run_literally(
    gateway: RunningGateway, workspace_variable: str, value: Any
) -> None:
    value = json.loads(json.dumps(value).replace("VARIABLE", workspace_variable))
    body = webhook_body(data={"image": "https://x/a.png", "note": value})
    with gateway.client() as client:
        answer = client.post("/webhook-event", json=body, headers={"x-auth-token": gateway.token()})
    assert answer.status_code == 202, answer.text
    run = run_of(answer)
    assert run.parameters["event"]["task"]["data"]["note"] == value
    assert VARIABLE_VALUE not in json.dumps(run.parameters)
    wait_until(lambda: not list((gateway.outbox / "pending").glob("*.json")), what="done")


def test_a_placeholder_in_token_parameters_reaches_the_run_literally(
    gateway: RunningGateway, workspace_variable: str
) -> None:
    placeholder = {"__prefect_kind": "workspace_variable", "variable_name": workspace_variable}
    token = gateway.token(parameters={"tag": placeholder})
    with gateway.client() as client:
        answer = client.post("/webhook-event", json=webhook_body(), headers={"x-auth-token": token})
    # `tag` is a str: the literal object is refused, naming the field, without the variable.
    assert answer.status_code == 422, answer.text
    assert VARIABLE_VALUE not in answer.text


# -- large events --------------------------------------------------------------------------


def big_webhook(size: int = 600_000) -> dict[str, Any]:
    box = [[10, 10], [50, 10], [10, 40], [50, 40]]
    shapes = [{"type": "rectangle", "index": 1, "points": box, "tags": {"class": "car"}}]
    body = webhook_body(answers={"boxes": {"layers": {"vector_tagging": shapes}}})
    body["task"]["data"]["video_frames"] = ["f" * 100] * (size // 100)
    return body


def test_a_large_webhook_runs_by_reference_beside_small_ones(
    public_gateway: RunningGateway,
) -> None:
    token = public_gateway.token()
    big = big_webhook()
    small = [webhook_body() for _ in range(10)]

    def post(body: dict[str, Any]) -> httpx.Response:
        with public_gateway.client() as client:
            return client.post("/webhook-event", json=body, headers={"x-auth-token": token})

    with ThreadPoolExecutor(11) as pool:
        answers = list(pool.map(post, [big, *small]))
    assert [a.status_code for a in answers] == [202] * 11, [a.text[:200] for a in answers]
    assert all(run_of(a) for a in answers[1:])
    run = run_of(answers[0])
    assert run.name == f"gw_hook_ptp-{big['task']['project_id']}-{big['task']['id']}"
    assert f"task:{big['task']['id']}" in run.tags
    reference = ClaimReference.from_parameter(run.parameters["event"])
    assert reference is not None
    assert reference.size > 600_000
    assert reference.url.startswith(public_gateway.url + "/claims/")
    assert len(json.dumps(run.parameters)) < 2_000

    with public_gateway.client() as client:
        kept = client.get(reference.url, headers={"Authorization": f"Bearer {reference.token}"})
        assert kept.status_code == 200
        assert hashlib.sha256(kept.content).hexdigest() == reference.sha256
        assert json.loads(kept.content) == WebhookEvent.model_validate(big).model_dump(mode="json")
        assert client.get(reference.url).status_code == 401
        wrong = client.get(reference.url, headers={"Authorization": "Bearer " + "0" * 64})
        assert wrong.status_code == 401
        unknown = client.get(
            "/claims/" + "a" * 64, headers={"Authorization": f"Bearer {reference.token}"}
        )
        assert unknown.status_code == 401
        assert client.get("/claims/../../etc/passwd").status_code in (401, 404)


def test_the_flow_gets_the_whole_large_event_from_its_reference(
    public_gateway: RunningGateway,
) -> None:
    body = dpp_body(parameters={"min_box_px": 2})
    body["task"]["data"]["frames"] = ["x" * 100] * 7000
    with public_gateway.client() as client:
        answer = client.post("/dpp-event", json=body, headers=DPP)
    assert answer.status_code == 202, answer.text
    parameters = run_of(answer).parameters
    assert parameters["min_box_px"] == 2
    # The run as a worker would run it: the flow fetches the body and sees the whole event.
    seen: dict[str, Any] = {}

    from libnar import DppEvent, nps_flow

    @nps_flow(name="gw_dpp_ptp", submit_result=False)
    def probe(event: DppEvent, min_box_px: int = 4) -> int:
        seen["event"] = event
        return min_box_px

    from libnar.flow._local import local_run_settings

    with local_run_settings():
        assert probe(**parameters) == 2
    assert seen["event"].task.data["frames"] == body["task"]["data"]["frames"]
    assert seen["event"].round == body["task"]["round"]


def test_a_large_event_without_a_public_url_is_413_naming_the_setting(
    gateway: RunningGateway,
) -> None:
    with gateway.client() as client:
        answer = client.post(
            "/webhook-event", json=big_webhook(), headers={"x-auth-token": gateway.token()}
        )
    assert answer.status_code == 413
    assert "LIBNAR_GATEWAY_PUBLIC_URL" in answer.json()["detail"]
    assert list((gateway.outbox / "pending").glob("*.json")) == []


@pytest.mark.usefixtures("deployments")
async def test_an_item_prefect_refuses_is_isolated_from_its_bulk_call(
    prefect_server: PrefectServer,
) -> None:
    async with PrefectTrigger(prefect_server.api_url, bulk_window_ms=50) as trigger:
        deployment = await trigger.deployment("gw_hook_ptp", "gw_hook_ptp_deploy")

        def request(tag: str) -> RunRequest:
            return RunRequest(
                idempotency_key=f"{deployment.id}:{uuid.uuid4().hex}",
                name="isolated",
                tags=[],
                parameters={"event": webhook_body(), "tag": tag},
                checked=True,
            )

        outcomes = await asyncio.gather(
            trigger.create_run(deployment, request("x" * 600_000)),
            *(trigger.create_run(deployment, request("small")) for _ in range(10)),
            return_exceptions=True,
        )
    big, *small = outcomes
    assert isinstance(big, ParametersRejected)
    assert "size limit" in str(big)
    assert all(not isinstance(o, BaseException) and not o.duplicate for o in small), small


def test_replay_triggers_the_rest_when_one_entry_is_refused(
    deployments: dict[str, str], tmp_path: Path
) -> None:
    outbox = FileOutbox(tmp_path / "outbox")

    def entry(tag: str) -> OutboxEntry:
        body = webhook_body()
        return OutboxEntry(
            source="webhook",
            flow="gw_hook_ptp",
            deployment="gw_hook_ptp_deploy",
            event_key=f"webhook-{uuid.uuid4().hex}",
            event=body,
            parameters={"tag": tag},
            run_name="replayed",
            tags=[f"task:{body['task']['id']}"],
        )

    huge = entry("x" * 600_000)  # as an earlier gateway kept it
    for e in (huge, *(entry("small") for _ in range(5))):
        outbox.write(e)
    report = asyncio.run(replay_outbox(gateway_settings(outbox.directory)))
    assert report.triggered == 5
    assert len(report.rejected) == 1
    assert report.rejected[0].startswith(huge.name)
    assert (outbox.rejected / huge.file_name).exists()
    assert list(outbox.pending.glob("*.json")) == []


# -- malformed input -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "path"),
    [
        (dpp_body(name="a" * 70_000), "name"),
        (dpp_body(parameters={"dep_name": "d" * 70_000}), "parameters.dep_name"),
        (dpp_body(parameters={"dep_name": "gw\nFORGED LOG LINE"}), "parameters.dep_name"),
        (dpp_body(parameters={"dep_name": "a/b"}), "parameters.dep_name"),
        (dpp_body(delivered_at="9999-12-31T23:00:00-05:00"), "task.delivered_at"),
        (dpp_body(created_at="0001-01-01T00:00:00+05:00"), "task.created_at"),
        (dpp_body(parameters={"__prefect_kind": "json"}), "parameters.'__prefect_kind'"),
    ],
    ids=[
        "long-name",
        "long-dep-name",
        "newline-dep-name",
        "slash",
        "far-future",
        "far-past",
        "kind",
    ],
)
def test_malformed_input_is_a_4xx_naming_the_field(
    gateway: RunningGateway, body: dict[str, Any], path: str
) -> None:
    with gateway.client() as client:
        answer = client.post("/dpp-event", json=body, headers=DPP)
    assert answer.status_code == 422, answer.text
    assert path in [p["path"] for p in answer.json()["problems"]]
    assert len(answer.text) < 4_000  # the value is quoted shortened, not echoed whole


def test_a_newline_in_a_name_never_forges_a_log_line(
    gateway: RunningGateway, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    token = gateway.token(parameters={"dep_name": "x\n2026-01-01 INFO forged"})
    with gateway.client() as client:
        client.post("/webhook-event", json=webhook_body(), headers={"x-auth-token": token})
    for record in caplog.records:
        assert "\n2026-01-01 INFO forged" not in record.getMessage()


def test_deploy_json_with_a_huge_flow_name_is_422(gateway: RunningGateway) -> None:
    with gateway.client() as client:
        answer = client.get("/deploy-json", params={"flow_name": "f" * 3_000}, headers=ADMIN)
    assert answer.status_code == 422
    assert answer.json()["problems"][0]["path"] == "flow_name"


# -- the identity of a delivery ------------------------------------------------------------


def test_tokens_with_other_parameters_are_other_deliveries(gateway: RunningGateway) -> None:
    body = webhook_body()
    by_type = gateway.token(parameters={"tag": "type"})
    by_label = gateway.token(parameters={"tag": "label"})
    with gateway.client() as client:
        first = client.post("/webhook-event", json=body, headers={"x-auth-token": by_type})
        second = client.post("/webhook-event", json=body, headers={"x-auth-token": by_label})
        again = client.post("/webhook-event", json=body, headers={"x-auth-token": by_label})
    assert (first.json()["duplicate"], second.json()["duplicate"]) == (False, False)
    assert first.json()["key"] != second.json()["key"]
    assert run_of(first).id != run_of(second).id
    assert again.json()["duplicate"] is True
    assert again.json()["key"] == second.json()["key"]
    assert run_of(second).parameters["tag"] == "label"
    wait_until(lambda: len(list((gateway.outbox / "done").glob("*.json"))) == 2, what="2 done")


def test_the_same_parameters_spelled_otherwise_are_the_same_delivery(
    gateway: RunningGateway,
) -> None:
    body = dpp_body()
    first = {**body, "parameters": {"min_box_px": 3, "no_round": False}}
    reordered = {
        **body,
        "parameters": {"no_round": False, "min_box_px": 3},
        "name": "gw_dpp_ptp.py",
    }
    other = {**body, "parameters": {"min_box_px": 4}}
    with gateway.client() as client:
        answers = [
            client.post("/dpp-event", json=b, headers=DPP).json() for b in (first, reordered, other)
        ]
        spelled = client.post(
            "/dpp-event",
            content=json.dumps(first).replace('"min_box_px"', '"\\u006din_box_px"'),
            headers={**DPP, "content-type": "application/json"},
        ).json()
    assert (answers[1]["key"], answers[1]["duplicate"]) == (answers[0]["key"], True)
    assert (spelled["key"], spelled["duplicate"]) == (answers[0]["key"], True)
    assert answers[2]["duplicate"] is False
    assert answers[2]["key"] != answers[0]["key"]
    assert run_of(answers[2]).id != run_of(answers[0]).id


# -- the wrong event type ------------------------------------------------------------------


def test_a_dpp_request_posted_as_a_webhook_is_refused_naming_the_endpoint(
    gateway: RunningGateway,
) -> None:
    with gateway.client() as client:
        answer = client.post(
            "/webhook-event", json=dpp_body(), headers={"x-auth-token": gateway.token()}
        )
    assert answer.status_code == 422
    assert "/dpp-event" in answer.json()["detail"]


def test_a_webhook_posted_as_a_dpp_request_is_refused_naming_the_endpoint(
    gateway: RunningGateway,
) -> None:
    with gateway.client() as client:
        answer = client.post("/dpp-event", json=webhook_body(), headers=DPP)
    assert answer.status_code == 422
    assert "/webhook-event" in answer.json()["detail"]


def test_a_webhook_token_for_a_dpp_flow_is_refused_naming_the_event_types(
    gateway: RunningGateway,
) -> None:
    token = gateway.token(name="gw_dpp_ptp")
    with gateway.client() as client:
        answer = client.post("/webhook-event", json=webhook_body(), headers={"x-auth-token": token})
    assert answer.status_code == 422
    assert "takes dpp events, not webhook events" in answer.json()["detail"]


def test_the_event_parameter_is_found_by_its_type_under_any_name(
    gateway: RunningGateway, prefect_server: PrefectServer
) -> None:
    from .flows import gw_payload_ptp

    gw_payload_ptp.to_deployment(name="gw_payload_ptp_deploy").apply()
    body = dpp_body(name="gw_payload_ptp", parameters={"scale": 2})
    with gateway.client() as client:
        answer = client.post("/dpp-event", json=body, headers=DPP)
        named = client.post(
            "/dpp-event",
            json=dpp_body(name="gw_payload_ptp", parameters={"payload": {}}),
            headers=DPP,
        )
    assert answer.status_code == 202, answer.text
    parameters = run_of(answer).parameters
    assert parameters["payload"]["task"]["id"] == body["task"]["id"]
    assert parameters["scale"] == 2
    assert named.status_code == 422
    assert [p["path"] for p in named.json()["problems"]] == ["parameters.payload"]


# -- stale pending entries -----------------------------------------------------------------


def test_repeats_at_once_leave_nothing_pending_and_a_forced_replay_reruns_nothing(
    gateway: RunningGateway,
) -> None:
    token = gateway.token()
    body = webhook_body()

    def post(_: int) -> httpx.Response:
        with gateway.client() as client:
            return client.post("/webhook-event", json=body, headers={"x-auth-token": token})

    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(post, range(16)))
    assert {a.status_code for a in answers} <= {200, 202}
    assert len({a.json()["key"] for a in answers}) == 1
    assert [a.json()["duplicate"] for a in answers].count(False) == 1
    run_of(answers[0])
    with gateway.client() as client:
        wait_until(lambda: not list((gateway.outbox / "pending").glob("*.json")), what="done")
        report = client.post("/replay", params={"force": "true"}, headers=ADMIN).json()
    assert report["triggered"] == 0
    with get_client(sync_client=True) as prefect:
        from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterTags

        runs = prefect.read_flow_runs(
            flow_run_filter=FlowRunFilter(
                tags=FlowRunFilterTags(all_=[f"task:{body['task']['id']}"])
            )
        )
    assert len(runs) == 1


# -- timeouts ------------------------------------------------------------------------------


@pytest.fixture
def frozen_prefect() -> Iterator[str]:
    """An API address that accepts connections and never answers (a frozen Prefect)."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1024)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(listener.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}/api"
    finally:
        stop.set()
        thread.join(5)
        for held_socket in held:
            held_socket.close()
        listener.close()


def test_the_prefect_timeout_bounds_a_request_end_to_end(
    frozen_prefect: str, tmp_path: Path
) -> None:
    settings = gateway_settings(
        tmp_path / "outbox",
        gateway_prefect_timeout=1.0,
        gateway_prefect_concurrency=1,
        gateway_check_timeout=1.0,
    )
    token = _token()
    with serve_in_thread(settings, prefect_api_url=frozen_prefect) as url:

        def post(_: int) -> int:
            # Ten requests wait for the deployment's lookup; each is stored unchecked and
            # answered within the check timeout (the client gives up at five times it).
            with httpx.Client(base_url=url, timeout=5.0) as client:
                body = webhook_body()
                return client.post(
                    "/webhook-event", json=body, headers={"x-auth-token": token}
                ).status_code

        with ThreadPoolExecutor(10) as pool:
            statuses = list(pool.map(post, range(10)))
    assert statuses == [202] * 10
    assert len(list((tmp_path / "outbox" / "pending").glob("*.json"))) == 10


def _token() -> str:
    from libnar._gateway import mint_token

    return mint_token(SECRET, "gw_hook_ptp")


# -- secrets -------------------------------------------------------------------------------


def test_the_config_repr_shows_no_secret(tmp_path: Path) -> None:
    config = GatewayConfig.from_settings(
        gateway_settings(tmp_path), "http://user:prefect-pass@127.0.0.1:1/api"
    )
    shown = repr(config) + str(config)
    for secret in (SECRET, ADMIN_KEY, DPP_KEY, "prefect-pass"):
        assert secret not in shown


def test_credentials_in_the_prefect_url_never_reach_logs_or_answers(
    deployments: dict[str, str],
    prefect_server: PrefectServer,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="libnar")
    with_credentials = prefect_server.api_url.replace("http://", "http://user:prefect-pass@")
    settings = gateway_settings(tmp_path / "o")
    with (
        serve_in_thread(settings, prefect_api_url=with_credentials) as url,
        httpx.Client(base_url=url) as client,
    ):
        missing = client.get("/deploy-json", params={"flow_name": "nope_x"}, headers=ADMIN)
    assert missing.status_code == 404
    assert "prefect-pass" not in missing.text
    dead = f"http://user:prefect-pass@127.0.0.1:{free_port()}/api"
    settings = gateway_settings(tmp_path / "d", gateway_prefect_timeout=0.5)
    with (
        serve_in_thread(settings, prefect_api_url=dead) as url,
        httpx.Client(base_url=url) as client,
    ):
        answer = client.post(
            "/webhook-event", json=webhook_body(), headers={"x-auth-token": _token()}
        )
    assert answer.status_code == 202  # kept, sent once Prefect answers
    assert "gateway ready: Prefect http://user:***@127.0.0.1" in caplog.text
    assert "storing the event unchecked" in caplog.text
    assert "prefect-pass" not in caplog.text


def test_ready_fails_and_events_get_503_when_the_disk_is_nearly_full(
    deployments: dict[str, str], tmp_path: Path
) -> None:
    import shutil

    free = shutil.disk_usage(tmp_path).free
    settings = gateway_settings(tmp_path / "outbox", outbox_min_free_bytes=free * 2)
    with serve_in_thread(settings) as url, httpx.Client(base_url=url) as client:
        ready = client.get("/ready")
        answer = client.post(
            "/webhook-event", json=webhook_body(), headers={"x-auth-token": _token()}
        )
    assert ready.status_code == 503
    assert ready.json()["outbox"] is False
    assert answer.status_code == 503
    assert answer.headers["Retry-After"]


def test_create_app_names_every_missing_setting(tmp_path: Path) -> None:
    from prefect.settings import PREFECT_API_URL, temporary_settings

    from libnar.settings import Settings, SettingsError

    with (
        temporary_settings(updates={PREFECT_API_URL: None}),
        pytest.raises(SettingsError) as caught,
    ):
        create_app(Settings(outbox_dir=tmp_path))
    assert "LIBNAR_GATEWAY_SECRETS" in str(caught.value)
    assert "PREFECT_API_URL" in str(caught.value)


def test_replay_command_reports_bad_entries_and_replays_the_rest(
    deployments: dict[str, str], prefect_server: PrefectServer, tmp_path: Path
) -> None:
    import os
    import subprocess
    import sys

    outbox = FileOutbox(tmp_path / "outbox")
    body = webhook_body()
    good = OutboxEntry(
        source="webhook",
        flow="gw_hook_ptp",
        deployment="gw_hook_ptp_deploy",
        event_key=f"webhook-{uuid.uuid4().hex}",
        event=body,
        run_name="replayed",
        tags=[f"task:{body['task']['id']}"],
    )
    outbox.write(good)
    (tmp_path / "elsewhere.json").write_text(good.model_dump_json())
    (outbox.pending / "link.json").symlink_to(tmp_path / "elsewhere.json")
    (outbox.pending / "cut.json").write_text(good.model_dump_json()[:40])
    (outbox.pending / "dir.json").mkdir()
    (outbox.pending / "long-name.json").write_text(
        json.dumps(json.loads(good.model_dump_json()) | {"deployment": "d" * 70_000})
    )
    done = subprocess.run(
        [sys.executable, "-m", "libnar.cli", "gateway", "replay"],
        env={
            **os.environ,
            "PREFECT_API_URL": prefect_server.api_url,
            "LIBNAR_OUTBOX_DIR": str(outbox.directory),
        },
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr + done.stdout
    report = json.loads(done.stdout)
    assert report["triggered"] == 1
    reasons = dict(line.split(": ", 1) for line in report["unreadable"])
    assert reasons["link.json"] == "a symlink (not followed)"
    assert reasons["dir.json"] == "not a regular file"
    assert "not a valid entry" in reasons["cut.json"]
    assert "deployment" in reasons["long-name.json"]
    assert (tmp_path / "elsewhere.json").exists()


def test_an_async_flow_fetches_its_reference_and_a_wrong_token_fails_the_run(
    public_gateway: RunningGateway,
) -> None:
    from libnar import DppEvent, nps_flow
    from libnar.flow._local import local_run_settings

    body = dpp_body(parameters={"min_box_px": 5})
    body["task"]["data"]["frames"] = ["y" * 100] * 7000
    with public_gateway.client() as client:
        answer = client.post("/dpp-event", json=body, headers=DPP)
    assert answer.status_code == 200, answer.text
    parameters = read_run(answer.json()["flow_run_id"]).parameters

    @nps_flow(name="gw_dpp_ptp", submit_result=False)
    async def probe(event: DppEvent, min_box_px: int = 4) -> int:
        return len(event.task.data["frames"])

    forged = json.loads(json.dumps(parameters))
    forged["event"]["libnar_claim"]["token"] = "0" * 64
    with local_run_settings():
        assert asyncio.run(probe(**parameters)) == 7000
        state = asyncio.run(probe(**forged, return_state=True))
    assert state.is_failed()
    assert "refused the claim's token" in str(state.message)
