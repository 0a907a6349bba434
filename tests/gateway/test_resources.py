"""Per-run resources through the gateway: checked against the deployment's infra, given to
the run as job variables and an `amount:` tag, refused (422, naming the limit) when too large."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from libnar import DppEvent, DppResult, WebhookEvent, nps_flow
from libnar._build import base_job_template
from libnar.testing import PrefectServer

from .conftest import DPP_KEY, RunningGateway, dpp_body, run_of, webhook_body

POOL = "libnar-resources-test"


@nps_flow
def res_hook_ptp(event: WebhookEvent) -> str:
    return event.task.id


@nps_flow(submit_result=False)
def res_dpp_ptp(event: DppEvent) -> DppResult:
    return event.result()


@pytest.fixture(scope="module")
def sized_deployments(prefect_server: PrefectServer) -> dict[str, str]:
    """Deployments as `libnar deploy` makes them: an `infra:` tag, on a (local) pool."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import WorkPoolCreate

    with get_client(sync_client=True) as client:
        client.create_work_pool(
            WorkPoolCreate(name=POOL, type="process", base_job_template=base_job_template("local")),
            overwrite=True,
        )
    return {
        name: str(
            flow.to_deployment(
                name=name, work_pool_name=POOL, tags=["libnar", f"infra:{infra}"]
            ).apply()
        )
        for flow, name, infra in [
            (res_hook_ptp, "on_narwhal", "narwhal"),
            (res_hook_ptp, "on_giver", "giver"),
            (res_dpp_ptp, "dpp_on_narwhal", "narwhal"),
        ]
    }


@pytest.fixture
def client(gateway: RunningGateway, sized_deployments: dict[str, str]) -> Iterator[httpx.Client]:
    with gateway.client() as c:
        yield c


def test_token_amount_becomes_the_runs_job_variables_and_tag(
    gateway: RunningGateway, client: httpx.Client
) -> None:
    token = gateway.token("res_hook_ptp", parameters={"dep_name": "on_narwhal", "amount": "high"})
    answer = client.post("/webhook-event", json=webhook_body(), headers={"x-auth-token": token})
    assert answer.status_code in (200, 202), answer.text
    run = run_of(answer)
    assert run.job_variables == {"cpu": "2", "memory": "4Gi"}  # the local pool's units
    assert "amount:high" in run.tags
    assert "amount" not in run.parameters  # never reaches the flow


def test_dpp_custom_resources_are_given_to_the_run(client: httpx.Client) -> None:
    body = dpp_body(
        "res_dpp_ptp",
        parameters={"dep_name": "dpp_on_narwhal", "amount": "custom", "cpu": "2", "memory": "8Gi"},
    )
    answer = client.post("/dpp-event", json=body, headers={"Authorization": f"Bearer {DPP_KEY}"})
    assert answer.status_code in (200, 202), answer.text
    run = run_of(answer)
    assert run.job_variables == {"cpu": "2", "memory": "8Gi"}
    assert "amount:custom" in run.tags


@pytest.mark.parametrize(
    ("deployment", "parameters", "field", "limit"),
    [
        (
            "on_narwhal",
            {"amount": "custom", "cpu": "1", "memory": "16Gi"},
            "memory",
            "1 vCPU takes 2Gi to 8Gi",
        ),
        ("on_narwhal", {"disk": "500Gi"}, "disk", "use at most 200Gi"),
        (
            "on_giver",
            {"amount": "custom", "cpu": "1", "memory": "64Gi"},
            "memory",
            "LIBNAR_GIVER_MAX_MEMORY",
        ),
    ],
    ids=["ecs-memory", "ecs-disk", "giver-memory"],
)
def test_resources_over_the_infra_are_a_422_naming_the_limit(
    gateway: RunningGateway,
    client: httpx.Client,
    deployment: str,
    parameters: dict[str, str],
    field: str,
    limit: str,
) -> None:
    token = gateway.token("res_hook_ptp", parameters={"dep_name": deployment, **parameters})
    answer = client.post("/webhook-event", json=webhook_body(), headers={"x-auth-token": token})
    assert answer.status_code == 422, answer.text
    [problem] = answer.json()["problems"]
    assert problem["path"] == f"token.parameters.{field}"
    assert limit in problem["expected"]


def test_malformed_resources_are_a_422_before_any_lookup(
    gateway: RunningGateway, client: httpx.Client
) -> None:
    token = gateway.token("res_hook_ptp", parameters={"dep_name": "on_narwhal", "cpu": "2"})
    answer = client.post("/webhook-event", json=webhook_body(), headers={"x-auth-token": token})
    assert answer.status_code == 422
    assert answer.json()["problems"][0]["path"] == "token.parameters.cpu"


def test_resources_on_a_deployment_libnar_did_not_make_are_refused(
    gateway: RunningGateway, client: httpx.Client
) -> None:
    token = gateway.token(parameters={"amount": "high"})  # gw_hook_ptp_deploy: no infra tag
    answer = client.post("/webhook-event", json=webhook_body(), headers={"x-auth-token": token})
    assert answer.status_code == 422
    assert "libnar deploy" in answer.json()["detail"]


def test_a_huge_resource_value_is_a_short_422(client: httpx.Client) -> None:
    """A sender's 100,000-character `memory` in DPP parameters (a token that big is refused
    with its headers) is refused, and not echoed back whole."""
    huge = {"amount": "custom", "cpu": "1", "memory": "9" * 100_000}
    body = dpp_body("res_dpp_ptp", parameters={"dep_name": "dpp_on_narwhal", **huge})
    answer = client.post("/dpp-event", json=body, headers={"Authorization": f"Bearer {DPP_KEY}"})
    assert answer.status_code == 422
    [problem] = answer.json()["problems"]
    assert problem["path"] == "parameters.memory"
    assert "at most 32 characters" in problem["expected"]
    assert len(answer.content) < 2_000
