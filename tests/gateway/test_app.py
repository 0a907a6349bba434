"""The gateway on a real uvicorn socket against the session's real Prefect server."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterTags

from libnar._gateway import create_app
from libnar._gateway._tokens import mint_token
from libnar.events import DppEvent, WebhookEvent
from libnar.settings import Settings, SettingsError

from .conftest import (
    ADMIN_KEY,
    DPP_KEY,
    OLD_DPP_KEY,
    OLD_SECRET,
    SECRET,
    RunningGateway,
    dpp_body,
    gateway_settings,
    new_task_id,
    run_of,
    wait_until,
    webhook_body,
)

pytestmark = pytest.mark.slow

ADMIN = {"Authorization": f"Bearer {ADMIN_KEY}"}
DPP = {"Authorization": f"Bearer {DPP_KEY}"}


def as_sent(kind: type[WebhookEvent] | type[DppEvent], body: dict[str, Any]) -> dict[str, Any]:
    """The payload as the gateway passes it: validated, unknown fields kept, ids as str."""
    return kind.model_validate(body).model_dump(mode="json")


def runs_of_task(task_id: str) -> list[Any]:
    with get_client(sync_client=True) as client:
        return list(
            client.read_flow_runs(
                flow_run_filter=FlowRunFilter(tags=FlowRunFilterTags(all_=[f"task:{task_id}"]))
            )
        )


def read_run(run_id: str) -> Any:
    with get_client(sync_client=True) as client:
        return client.read_flow_run(run_id)  # type: ignore[arg-type]


@pytest.fixture
def client(gateway: RunningGateway) -> Iterator[httpx.Client]:
    with gateway.client() as c:
        yield c


# --- triggering -----------------------------------------------------------------------------


def test_webhook_creates_one_scheduled_run_with_the_event_and_token_parameters(
    gateway: RunningGateway, client: httpx.Client
) -> None:
    token = gateway.token(parameters={"tag": "colour"})
    body = webhook_body()
    answer = client.post("/webhook-event", json=body, headers={"x-auth-token": token})
    assert answer.status_code == 202, answer.text  # stored; the dispatcher creates the run
    found = answer.json()
    task_id = body["task"]["id"]
    assert found["accepted"] is True
    assert found["key"].startswith("webhook-")
    assert found["deployment"] == "gw_hook_ptp_deploy"
    assert found["duplicate"] is False
    assert found["flow_run_id"] is None
    assert found["flow_run_name"] == f"gw_hook_ptp-10423-{task_id}"
    run = run_of(answer)
    assert run.name == found["flow_run_name"]
    assert run.state.is_scheduled()
    assert run.parameters == {"event": as_sent(WebhookEvent, body), "tag": "colour"}
    assert {"project:10423", f"task:{task_id}", "source:webhook", "state:delivered"} <= set(
        run.tags
    )
    assert run.idempotency_key == f"{run.deployment_id}:{found['key']}"
    assert answer.headers["x-request-id"]


def test_repeated_delivery_lands_on_the_same_run(
    gateway: RunningGateway, client: httpx.Client
) -> None:
    token = gateway.token()
    body = webhook_body()
    first = client.post("/webhook-event", json=body, headers={"x-auth-token": token})
    run = run_of(first)
    again = client.post("/webhook-event", json=body, headers={"X-AUTH-TOKEN": token})
    assert again.status_code == 200  # the run is known now: the answer names it
    assert again.json() == {**first.json(), "duplicate": True, "flow_run_id": str(run.id)}
    assert len(runs_of_task(body["task"]["id"])) == 1


def test_five_identical_posts_at_once_start_one_run(
    gateway: RunningGateway, client: httpx.Client
) -> None:
    token = gateway.token()
    body = webhook_body()

    def post(_: int) -> httpx.Response:
        with gateway.client() as own:
            return own.post("/webhook-event", json=body, headers={"x-auth-token": token})

    with ThreadPoolExecutor(5) as pool:
        answers = list(pool.map(post, range(5)))
    assert {a.status_code for a in answers} <= {200, 202}
    assert sorted(a.json()["duplicate"] for a in answers) == [False, True, True, True, True]
    run = run_of(answers[0])
    assert {a.json()["flow_run_id"] for a in answers} <= {None, str(run.id)}
    assert len(runs_of_task(body["task"]["id"])) == 1


def test_dep_name_picks_the_deployment_and_never_reaches_the_flow(
    gateway: RunningGateway, client: httpx.Client
) -> None:
    body = webhook_body()
    default = client.post(
        "/webhook-event", json=body, headers={"x-auth-token": gateway.token()}
    ).json()
    token = gateway.token(parameters={"dep_name": "gw_hook_ptp_other", "no_round": True})
    other = client.post("/webhook-event", json=body, headers={"x-auth-token": token}).json()
    # The same event on another deployment of the same flow is another run.
    assert other["deployment"] == "gw_hook_ptp_other"
    assert other["duplicate"] is False
    other_run = run_of(other)
    assert other_run.id != run_of(default).id
    assert other_run.parameters == {"event": as_sent(WebhookEvent, body)}


def test_dpp_event_runs_the_named_flow_with_its_parameters(client: httpx.Client) -> None:
    body = dpp_body(name="gw_dpp_ptp.py", parameters={"min_box_px": 8, "no_round": True})
    answer = client.post("/dpp-event", json=body, headers=DPP)
    assert answer.status_code == 202, answer.text
    found = answer.json()
    assert found["deployment"] == "gw_dpp_ptp_deploy"
    assert found["key"].startswith("dpp-")
    run = run_of(answer)
    assert run.parameters == {"event": as_sent(DppEvent, body), "min_box_px": 8}
    assert "source:dpp" in run.tags
    assert not [t for t in run.tags if t.startswith("round:")]
    again = client.post("/dpp-event", json=body, headers={"Authorization": f"bearer {OLD_DPP_KEY}"})
    assert again.json() == {**found, "duplicate": True, "flow_run_id": str(run.id)}


def test_accepted_event_is_marked_done_in_the_outbox(
    gateway: RunningGateway, client: httpx.Client
) -> None:
    answer = client.post(
        "/webhook-event", json=webhook_body(), headers={"x-auth-token": gateway.token()}
    ).json()
    run = run_of(answer)
    wait_until(lambda: list((gateway.outbox / "done").glob("*.json")), what="the done mark")
    [done] = [json.loads(p.read_text()) for p in (gateway.outbox / "done").glob("*.json")]
    assert done["flow_run_id"] == str(run.id)
    assert list((gateway.outbox / "pending").glob("*.json")) == []


# --- tokens and keys ----------------------------------------------------------------------


def earlier_gateway_token(name: str, parameters: dict[str, Any], secret: str) -> str:
    """A token as the earlier gateway made them: just `name` and `parameters`, no `exp`."""
    return jwt.encode({"name": name, "parameters": parameters}, secret, algorithm="HS256")


@pytest.mark.parametrize(
    "make",
    [
        lambda: earlier_gateway_token("gw_hook_ptp", {}, SECRET),
        lambda: earlier_gateway_token("gw_hook_ptp.py", {"tag": "x"}, OLD_SECRET),
        lambda: mint_token(OLD_SECRET, "gw_hook_ptp", {}, expires_in=60),
    ],
    ids=["earlier-format", "earlier-format-old-secret-py-suffix", "rotated-out-secret"],
)
def test_tokens_signed_by_any_configured_secret_work(client: httpx.Client, make: Any) -> None:
    answer = client.post("/webhook-event", json=webhook_body(), headers={"x-auth-token": make()})
    assert answer.status_code == 202, answer.text


def tampered(token: str) -> str:
    header, _, signature = token.split(".")
    forged = jwt.encode({"name": "gw_dpp_ptp", "parameters": {}}, "k" * 40, algorithm="HS256")
    return ".".join([header, forged.split(".")[1], signature])


@pytest.mark.parametrize(
    ("path", "headers"),
    [
        ("/webhook-event", {}),
        ("/webhook-event", {"x-auth-token": "garbage"}),
        ("/webhook-event", {"x-auth-token": mint_token("w" * 40, "gw_hook_ptp")}),
        ("/webhook-event", {"x-auth-token": tampered(mint_token(SECRET, "gw_hook_ptp"))}),
        (
            "/webhook-event",
            {
                "x-auth-token": jwt.encode(
                    {"name": "gw_hook_ptp", "exp": int(time.time()) - 10}, SECRET, "HS256"
                )
            },
        ),
        ("/webhook-event", {"Authorization": f"Bearer {ADMIN_KEY}"}),
        ("/dpp-event", {}),
        ("/dpp-event", {"Authorization": "Bearer wrong"}),
        ("/dpp-event", {"Authorization": f"Basic {DPP_KEY}"}),
        ("/dpp-event", {"x-auth-token": mint_token(SECRET, "gw_dpp_ptp")}),
    ],
    ids=[
        "no-token",
        "garbage-token",
        "wrong-secret",
        "tampered",
        "expired",
        "admin-key-is-no-token",
        "no-key",
        "wrong-key",
        "not-bearer",
        "token-is-no-dpp-key",
    ],
)
def test_bad_credentials_get_401_without_saying_which_check_failed(
    client: httpx.Client, path: str, headers: dict[str, str]
) -> None:
    body = webhook_body() if path == "/webhook-event" else dpp_body()
    answer = client.post(path, json=body, headers=headers)
    assert answer.status_code == 401
    assert answer.json()["detail"] == "missing or invalid credentials"
    assert set(answer.json()) == {"detail", "request_id"}


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer wrong"}, {"Authorization": f"Bearer {DPP_KEY}"}],
    ids=["none", "wrong", "dpp-key"],
)
def test_admin_endpoints_refuse_anything_but_the_admin_key(
    client: httpx.Client, headers: dict[str, str]
) -> None:
    for answer in [
        client.put("/create-token", json={"name": "gw_hook_ptp"}, headers=headers),
        client.put("/create-token", content=b"not json", headers=headers),
        client.get("/deploy-json", params={"flow_name": "gw_hook_ptp"}, headers=headers),
        client.post("/replay", headers=headers),
    ]:
        assert answer.status_code == 401, answer.text
        assert answer.json()["detail"] == "missing or invalid credentials"


def test_secrets_and_tokens_never_reach_the_logs(
    gateway: RunningGateway, client: httpx.Client, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    token = gateway.token(parameters={"tag": "t"})
    client.post("/webhook-event", json=webhook_body(), headers={"x-auth-token": token})
    client.post("/webhook-event", json=webhook_body(), headers={"x-auth-token": token + "x"})
    client.post("/dpp-event", json=dpp_body(), headers=DPP)
    client.post("/dpp-event", json=dpp_body(), headers={"Authorization": f"Bearer {DPP_KEY}z"})
    client.put("/create-token", json={"name": "gw_hook_ptp"}, headers={"Authorization": "Bearer x"})
    text = caplog.text
    assert "libnar.gateway.audit" in text
    for secret in [SECRET, OLD_SECRET, ADMIN_KEY, DPP_KEY, token, token.split(".")[2]]:
        assert secret not in text


def test_one_audit_line_per_request_with_the_run(
    gateway: RunningGateway, client: httpx.Client, caplog: pytest.LogCaptureFixture
) -> None:
    token = gateway.token()
    caplog.set_level(logging.INFO, logger="libnar.gateway.audit")
    caplog.clear()
    answer = client.post("/webhook-event", json=webhook_body(), headers={"x-auth-token": token})
    refused = client.post("/webhook-event", json=webhook_body(), headers={"x-auth-token": "bad"})
    ids = [answer.headers["x-request-id"], refused.headers["x-request-id"]]
    lines: list[dict[str, Any]] = []
    deadline = time.monotonic() + 5  # the line is written once the answer has been sent
    while len(lines) < 2 and time.monotonic() < deadline:
        time.sleep(0.02)
        lines = [json.loads(r.getMessage()) for r in caplog.records if r.name.endswith("audit")]
        lines = sorted(
            (line for line in lines if line["request_id"] in ids),
            key=lambda line: ids.index(line["request_id"]),
        )
    assert len(lines) == 2
    good, bad = lines
    assert good["source"] == "webhook"
    assert good["flow"] == "gw_hook_ptp"
    assert good["deployment"] == "gw_hook_ptp_deploy"
    assert good["event_key"].startswith("webhook-")
    assert good["flow_run_id"] is None  # not known yet when the answer goes
    assert good["outcome"] == "accepted"
    assert good["duplicate"] is False
    assert good["status"] == 202
    assert good["latency_ms"] > 0
    assert good["request_id"] == answer.headers["x-request-id"]
    assert bad["status"] == 401
    assert "auth" in bad  # why, for the operator; never the token itself


# --- clear answers ------------------------------------------------------------------------


def test_unknown_deployment_is_404_naming_it(gateway: RunningGateway, client: httpx.Client) -> None:
    token = gateway.token(name="gw_nothing_ptp")
    answer = client.post("/webhook-event", json=webhook_body(), headers={"x-auth-token": token})
    assert answer.status_code == 404
    assert answer.json()["deployment"] == "gw_nothing_ptp_deploy"
    assert "gw_nothing_ptp_deploy" in answer.json()["detail"]
    assert list((gateway.outbox / "pending").glob("*")) == []  # refused at once: not stored
    token = gateway.token(parameters={"dep_name": "nope"})
    answer = client.post("/webhook-event", json=webhook_body(), headers={"x-auth-token": token})
    assert answer.status_code == 404
    assert answer.json()["deployment"] == "nope"


@pytest.mark.parametrize(
    ("path", "body", "problems"),
    [
        ("/webhook-event", b"{not json", ["body: found invalid JSON"]),
        ("/webhook-event", b"[1, 2]", ["body: found a list"]),
        ("/webhook-event", b'{"tusk": {}}', ["task: found nothing"]),
        (
            "/webhook-event",
            json.dumps({"task": {"id": 5, "delivered_at": "yesterday"}}).encode(),
            [
                "task.id: found 5; expected a valid string",
                "task.project_id: found nothing",
                "task.delivered_at: found 'yesterday'",
            ],
        ),
        (
            "/dpp-event",
            json.dumps({"task": {"id": "a", "project_id": 1}}).encode(),
            ["name: found nothing", "task.round: found nothing"],
        ),
    ],
    ids=["not-json", "not-an-object", "no-task", "bad-fields", "dpp-without-name-and-round"],
)
def test_bad_body_is_422_listing_each_bad_field(
    gateway: RunningGateway,
    client: httpx.Client,
    path: str,
    body: bytes,
    problems: list[str],
) -> None:
    headers = {"x-auth-token": gateway.token()} if path == "/webhook-event" else DPP
    answer = client.post(path, content=body, headers=headers)
    assert answer.status_code == 422, answer.text
    found = [
        f"{p['path']}: found {p['found']}; expected {p['expected']}"
        for p in answer.json()["problems"]
    ]
    for problem in problems:
        assert any(line.startswith(problem) for line in found), found


def test_unknown_parameter_is_422_listing_the_accepted_ones(
    gateway: RunningGateway, client: httpx.Client
) -> None:
    token = gateway.token(parameters={"colour": "red"})
    answer = client.post("/webhook-event", json=webhook_body(), headers={"x-auth-token": token})
    assert answer.status_code == 422
    assert "unknown parameter(s) 'colour'" in answer.json()["detail"]
    assert answer.json()["accepted"][:2] == ["event", "tag"]
    assert "dep_name" not in answer.json()["accepted"]


def test_parameter_value_the_deployment_refuses_is_422_with_prefects_reason(
    gateway: RunningGateway, client: httpx.Client
) -> None:
    body = dpp_body(parameters={"min_box_px": "big"})
    answer = client.post("/dpp-event", json=body, headers=DPP)
    assert answer.status_code == 422, answer.text
    assert "refuses the run" in answer.json()["detail"]
    assert "'big' is not of type 'integer'" in answer.json()["detail"]


@pytest.mark.parametrize(
    ("parameters", "path"),
    [
        ({"dep_name": 3}, "token.parameters.dep_name"),
        ({"no_round": "yes"}, "token.parameters.no_round"),
        ({"event": {}}, "token.parameters.event"),
    ],
)
def test_bad_special_parameters_are_422(
    gateway: RunningGateway, client: httpx.Client, parameters: dict[str, Any], path: str
) -> None:
    token = gateway.token(parameters=parameters)
    answer = client.post("/webhook-event", json=webhook_body(), headers={"x-auth-token": token})
    assert answer.status_code == 422
    assert [p["path"] for p in answer.json()["problems"]] == [path]


@pytest.fixture
def small_gateway(deployments: dict[str, str], tmp_path: Path) -> Iterator[RunningGateway]:
    from .conftest import serve_in_thread

    with serve_in_thread(gateway_settings(tmp_path, max_body_bytes=2_000)) as url:
        yield RunningGateway(url, tmp_path)


def test_body_over_the_limit_is_413_by_header_and_while_streaming(
    small_gateway: RunningGateway,
) -> None:
    token = small_gateway.token()
    big = json.dumps(webhook_body(note="x" * 5_000)).encode()
    with small_gateway.client() as client:
        answer = client.post("/webhook-event", content=big, headers={"x-auth-token": token})
        assert answer.status_code == 413

    def chunks() -> Iterator[bytes]:  # no Content-Length: counted while reading
        for start in range(0, len(big), 500):
            yield big[start : start + 500]

    with small_gateway.client() as client:
        answer = client.post("/webhook-event", content=chunks(), headers={"x-auth-token": token})
        assert answer.status_code == 413
        assert "size limit" in answer.json()["detail"]
        ok = client.post("/webhook-event", json=webhook_body(), headers={"x-auth-token": token})
        assert ok.status_code == 202


# --- admin --------------------------------------------------------------------------------


def test_create_token_checks_the_flow_name(client: httpx.Client) -> None:
    answer = client.put("/create-token", json={"name": "Fun69 Boxes"}, headers=ADMIN)
    assert answer.status_code == 422
    assert "use 'fun69_boxes'" in answer.json()["problems"][0]["expected"]
    answer = client.put("/create-token", json={"name": "f", "expires_in": -1}, headers=ADMIN)
    assert answer.status_code == 422
    assert answer.json()["problems"][0]["path"] == "expires_in"
    answer = client.put("/create-token", json={"name": "f.py", "expires_in": 9}, headers=ADMIN)
    assert answer.json()["name"] == "f"
    assert answer.json()["expires_at"] > time.time()


def test_deploy_json_lists_the_flows_deployments(client: httpx.Client) -> None:
    answer = client.get("/deploy-json", params={"flow_name": "gw_hook_ptp"}, headers=ADMIN)
    assert answer.status_code == 200
    assert [d["name"] for d in answer.json()["deploy"]] == [
        "gw_hook_ptp_deploy",
        "gw_hook_ptp_other",
    ]
    answer = client.get(
        "/deploy-json",
        params={"flow_name": "gw_hook_ptp", "deployment_name": "gw_hook_ptp_other"},
        headers=ADMIN,
    )
    assert answer.json() == {"deploy": [{"name": "gw_hook_ptp_other"}]}
    answer = client.get("/deploy-json", params={"flow_name": "nope"}, headers=ADMIN)
    assert answer.status_code == 404
    answer = client.get("/deploy-json", headers=ADMIN)
    assert answer.status_code == 422
    assert answer.json()["problems"][0]["path"] == "flow_name"


def test_health_and_ready(client: httpx.Client) -> None:
    assert client.get("/health").json() == {"status": "ok"}
    assert client.get("/ready").json() == {"prefect": True, "outbox": True}
    assert client.get("/docs").status_code == 200
    schema = client.get("/openapi.json").json()
    assert "WebhookEvent" in schema["components"]["schemas"]


def test_unknown_route_is_a_json_404(client: httpx.Client) -> None:
    answer = client.get("/nothing")
    assert answer.status_code == 404
    assert answer.json()["request_id"]


def test_unwritable_outbox_is_503_and_nothing_is_triggered(
    gateway: RunningGateway, client: httpx.Client
) -> None:
    token = gateway.token()
    pending = gateway.outbox / "pending"
    pending.rmdir()
    pending.write_text("not a directory")
    body = webhook_body()
    answer = client.post("/webhook-event", json=body, headers={"x-auth-token": token})
    assert answer.status_code == 503
    assert answer.headers["Retry-After"] == "30"
    assert runs_of_task(body["task"]["id"]) == []


def test_unexpected_error_is_a_json_500_with_the_request_id(
    gateway: RunningGateway,
    client: httpx.Client,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    from libnar._gateway._service import Gateway

    async def broken(self: Gateway, entry: Any) -> Any:
        raise RuntimeError("a bug")

    token = gateway.token()
    monkeypatch.setattr(Gateway, "accept", broken)
    answer = client.post("/webhook-event", json=webhook_body(), headers={"x-auth-token": token})
    assert answer.status_code == 500
    request_id = answer.json()["request_id"]
    assert request_id == answer.headers["x-request-id"]
    assert "internal error" in answer.json()["detail"]
    assert f"request {request_id} failed unexpectedly" in caplog.text


def test_gateway_refuses_to_start_without_a_secret(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="LIBNAR_GATEWAY_SECRETS is not set"):
        create_app(Settings(outbox_dir=tmp_path), prefect_api_url="http://127.0.0.1:1/api")


def test_new_run_ids_per_event() -> None:
    assert new_task_id() != new_task_id()
