"""Creating runs on the real Prefect server: single and bulk calls, duplicates told apart."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import httpx
import pytest

from libnar._gateway._trigger import (
    DeploymentNotFound,
    ParametersRejected,
    PrefectTrigger,
    PrefectUnavailable,
    RunRequest,
)
from libnar.testing import PrefectServer, free_port

from .conftest import webhook_body

pytestmark = pytest.mark.slow


def request(key: str, **parameters: Any) -> RunRequest:
    return RunRequest(
        idempotency_key=key,
        name=f"run-{key[-8:]}",
        tags=["test"],
        parameters={"event": webhook_body(), **parameters},
    )


def recorded(trigger: PrefectTrigger) -> list[str]:
    """The paths of every call the trigger makes from now on."""
    paths: list[str] = []

    async def record(sent: httpx.Request) -> None:
        paths.append(sent.url.path)

    trigger._http.event_hooks["request"].append(record)
    return paths


@pytest.mark.usefixtures("deployments")
async def test_bulk_call_tells_new_runs_from_existing_ones(prefect_server: PrefectServer) -> None:
    key = uuid.uuid4().hex
    async with PrefectTrigger(prefect_server.api_url, bulk_window_ms=0) as single:
        deployment = await single.deployment("gw_hook_ptp", "gw_hook_ptp_deploy")
        existing = await single.create_run(deployment, request(f"{key}-a"))
    assert existing.duplicate is False

    async with PrefectTrigger(prefect_server.api_url, bulk_window_ms=50) as bulk:
        paths = recorded(bulk)
        outcomes = await asyncio.gather(
            bulk.create_run(deployment, request(f"{key}-a")),
            bulk.create_run(deployment, request(f"{key}-b")),
            bulk.create_run(deployment, request(f"{key}-b")),
            bulk.create_run(deployment, request(f"{key}-c")),
            bulk.create_run(deployment, request(f"{key}-d", tag=123)),
            return_exceptions=True,
        )
    a, b, b_again, c, d = outcomes
    assert [p.rsplit("/", 1)[-1] for p in paths] == ["bulk", "filter"]  # one create, one read
    assert not isinstance(a, BaseException)
    assert (a.flow_run_id, a.duplicate) == (existing.flow_run_id, True)
    assert not isinstance(b, BaseException)
    assert not isinstance(b_again, BaseException)
    assert (b.duplicate, b_again.duplicate) == (False, True)
    assert b.flow_run_id == b_again.flow_run_id
    assert not isinstance(c, BaseException)
    assert c.duplicate is False
    assert len({a.flow_run_id, b.flow_run_id, c.flow_run_id}) == 3
    assert isinstance(d, ParametersRejected)
    # Prefect's own text is not echoed: it may quote values the server filled in.
    assert str(d) == "the deployment's parameter schema refuses them"


@pytest.mark.usefixtures("deployments")
async def test_two_replicas_racing_on_one_event_create_one_run(
    prefect_server: PrefectServer,
) -> None:
    keys = [uuid.uuid4().hex for _ in range(10)]
    async with (
        PrefectTrigger(prefect_server.api_url, bulk_window_ms=5) as one,
        PrefectTrigger(prefect_server.api_url, bulk_window_ms=5) as two,
    ):
        deployment = await one.deployment("gw_hook_ptp", "gw_hook_ptp_deploy")
        outcomes = await asyncio.gather(
            *(t.create_run(deployment, request(k)) for k in keys for t in (one, two))
        )
    for first, second in zip(outcomes[::2], outcomes[1::2], strict=True):
        assert first.flow_run_id == second.flow_run_id
        assert sorted([first.duplicate, second.duplicate]) == [False, True]


@pytest.mark.usefixtures("deployments")
async def test_deployment_lookups_are_cached_and_shared(prefect_server: PrefectServer) -> None:
    async with PrefectTrigger(prefect_server.api_url) as trigger:
        paths = recorded(trigger)
        found = await asyncio.gather(
            *(trigger.deployment("gw_hook_ptp", "gw_hook_ptp_deploy") for _ in range(5))
        )
        await trigger.deployment("gw_hook_ptp", "gw_hook_ptp_deploy")
        assert len(paths) == 1
        assert len({d.id for d in found}) == 1
        assert found[0].accepted is not None
        assert found[0].accepted[:2] == ("event", "tag")
        with pytest.raises(DeploymentNotFound, match="no deployment 'a b/c'"):
            await trigger.deployment("gw_hook_ptp", "a b/c")


async def test_unreachable_prefect_is_reported_after_the_timeout() -> None:
    url = f"http://127.0.0.1:{free_port()}/api"
    async with PrefectTrigger(url, timeout=0.5) as trigger:
        assert await trigger.is_reachable() is False
        with pytest.raises(PrefectUnavailable, match="ConnectError"):
            await trigger.deployment("f", "f_deploy")


@pytest.mark.usefixtures("deployments")
async def test_local_parameter_check_gives_prefects_own_reason(
    prefect_server: PrefectServer,
) -> None:
    async with PrefectTrigger(prefect_server.api_url, bulk_window_ms=0) as trigger:
        deployment = await trigger.deployment("gw_hook_ptp", "gw_hook_ptp_deploy")
        assert deployment.is_checked_here()
        assert deployment.refusal({"event": webhook_body(), "tag": "ok"}) is None
        local = deployment.refusal({"event": webhook_body(), "tag": 5})
        with pytest.raises(ParametersRejected, match="schema refuses them"):
            await trigger.create_run(deployment, request(uuid.uuid4().hex, tag=5))
    assert local == "Validation failed for field 'tag'. Failure reason: 5 is not of type 'string'"


@pytest.mark.usefixtures("deployments")
async def test_checked_runs_skip_prefects_schema_check(prefect_server: PrefectServer) -> None:
    async with PrefectTrigger(prefect_server.api_url, bulk_window_ms=0) as trigger:
        deployment = await trigger.deployment("gw_hook_ptp", "gw_hook_ptp_deploy")
        sent: list[bytes] = []

        async def record(outgoing: httpx.Request) -> None:
            sent.append(outgoing.content)

        trigger._http.event_hooks["request"].append(record)
        checked = RunRequest(**{**request(uuid.uuid4().hex).__dict__, "checked": True})
        created = await trigger.create_run(deployment, checked)
    assert created.duplicate is False
    assert b'"enforce_parameter_schema":false' in sent[0].replace(b" ", b"")
