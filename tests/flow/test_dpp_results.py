"""@nps_flow and SamaHub: DPP results sent back, tasks fetched for runs given a reference."""

from __future__ import annotations

import asyncio
from typing import Any
from uuid import UUID

import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId
from prefect.flow_engine import run_flow
from prefect.states import State
from typer.testing import CliRunner

from libnar import DppEvent, DppResult, Task, WebhookEvent, nps_flow
from libnar.cli import app
from libnar.testing import FakeSamaHub, make_dpp_event, make_task, make_webhook_event

pytestmark = pytest.mark.usefixtures("prefect_server")

seen: list[dict[str, Any]] = []


@nps_flow
def fun69_relabel_ptp(event: DppEvent, label: str = "car") -> DppResult:
    seen.append({"event": event, "label": label})
    return event.result(answers={**(event.task.answers or {}), "label": label})


@nps_flow(retries=1, retry_delay_seconds=0)
def fun69_dict_ptp(event: DppEvent, returned: Any = None) -> Any:
    seen.append({"event": event})
    return returned


@nps_flow(submit_result=False)
def fun69_quiet_ptp(event: DppEvent) -> dict[str, str]:
    return {"answers": "not sent"}


@nps_flow
def fun69_hook_ptp(event: WebhookEvent, tag: str = "label") -> str:
    seen.append({"event": event, "tag": tag})
    return event.task.id


@nps_flow
async def fun69_async_ptp(event: DppEvent) -> DppResult:
    return event.result(answers={"async": "1"})


@pytest.fixture(autouse=True)
def _clear() -> None:
    seen.clear()


def run_of(state: State[Any]) -> Any:
    assert state.state_details.flow_run_id is not None
    with get_client(sync_client=True) as client:
        return client.read_flow_run(state.state_details.flow_run_id)


def artifacts_of(state: State[Any]) -> list[Any]:
    run_id = state.state_details.flow_run_id
    with get_client(sync_client=True) as client:
        return list(
            client.read_artifacts(
                artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[run_id]))
            )
        )


# --- DPP results -----------------------------------------------------------------------------


def test_returned_result_is_sent_to_samahub_and_shown_in_the_run(
    fake_samahub: FakeSamaHub,
) -> None:
    event = make_dpp_event(round=3)
    fake_samahub.add_event(event)
    state = fun69_relabel_ptp(event, label="truck", return_state=True)
    assert state.is_completed()
    key = (event.task.project_id, event.task.id)
    sent = fake_samahub.dpp_results[key]
    assert sent == state.result()
    assert sent.round == 3
    assert sent.answers["label"] == "truck"
    assert sent.data == event.task.data
    put = fake_samahub.calls("post_processed")
    assert len(put) == 1
    notes = artifacts_of(state)
    assert len(notes) == 1
    assert f"| {event.task.project_id} | {event.task.id} | 3 |" in notes[0].data


def test_returned_dict_keeps_what_it_does_not_replace(fake_samahub: FakeSamaHub) -> None:
    event = make_dpp_event()
    fake_samahub.add_event(event)
    fun69_dict_ptp(event, returned={"answers": {"only": "this"}})
    sent = fake_samahub.dpp_results[(event.task.project_id, event.task.id)]
    assert sent.answers == {"only": "this"}
    assert sent.data == event.task.data
    assert sent.round == event.round


@pytest.mark.parametrize(
    ("returned", "message"),
    [
        (None, "returned NoneType, not a DPP result: return event.result(answers=...)"),
        ({"answers": {}, "state": "x"}, "returned a dict with 'answers', 'state'"),
        ({"label": "car"}, "a DPP result takes 'answers' and/or 'data' only"),
        ("done", "returned str, not a DPP result"),
    ],
    ids=["none", "extra-key", "no-answers-or-data", "a-string"],
)
def test_unsendable_result_fails_the_run_and_sends_nothing(
    fake_samahub: FakeSamaHub, returned: Any, message: str
) -> None:
    state = fun69_dict_ptp(make_dpp_event(), returned=returned, return_state=True)
    assert state.is_failed()
    assert message in (state.message or "")
    assert fake_samahub.dpp_results == {}


def test_submit_result_false_sends_nothing_and_returns_the_value(
    fake_samahub: FakeSamaHub,
) -> None:
    assert fun69_quiet_ptp(make_dpp_event()) == {"answers": "not sent"}
    assert fake_samahub.dpp_results == {}


def test_webhook_flows_never_send_results(fake_samahub: FakeSamaHub) -> None:
    fun69_hook_ptp(make_webhook_event())
    assert fake_samahub.calls("post_processed") == []


def test_failed_send_fails_the_run_so_prefect_retries_it(fake_samahub: FakeSamaHub) -> None:
    fake_samahub.fail(401, route="post_processed", times=1)
    event = make_dpp_event()
    fake_samahub.add_event(event)
    state = fun69_dict_ptp(event, returned={"answers": {"a": 1}}, return_state=True)
    assert state.is_completed()
    assert len(seen) == 2  # the first attempt's send failed; Prefect ran the flow again
    assert fake_samahub.dpp_results[(event.task.project_id, event.task.id)].answers == {"a": 1}


def test_send_that_keeps_failing_fails_the_run_without_leaking_the_key(
    fake_samahub: FakeSamaHub,
) -> None:
    fake_samahub.fail(401, route="post_processed", times=100)
    state = fun69_relabel_ptp(make_dpp_event(), return_state=True)
    assert state.is_failed()
    assert "401" in (state.message or "")
    assert fake_samahub.dpp_key not in (state.message or "")


def test_async_dpp_flow_sends_its_result(fake_samahub: FakeSamaHub) -> None:
    event = make_dpp_event()
    fake_samahub.add_event(event)
    result = asyncio.run(fun69_async_ptp(event))
    assert fake_samahub.dpp_results[(event.task.project_id, event.task.id)] == result


# --- runs given a task reference -------------------------------------------------------------


@pytest.mark.parametrize(
    "style",
    ["legacy-param", "top-level"],
)
def test_reference_run_fetches_the_task_in_delivery_format(
    fake_samahub: FakeSamaHub, style: str
) -> None:
    task = fake_samahub.add_task(make_task(state="delivered"))
    reference = {"project_id": int(task.project_id), "task_id": task.id, "round": 2}
    parameters: dict[str, Any] = (
        {"param": {**reference, "label": "bus"}}
        if style == "legacy-param"
        else {**reference, "label": "bus"}
    )
    state = fun69_relabel_ptp(**parameters, return_state=True)
    assert state.is_completed(), state.message
    event = seen[0]["event"]
    assert isinstance(event, DppEvent)
    assert event.task.id == task.id
    assert event.round == 2
    assert seen[0]["label"] == "bus"
    fetch = fake_samahub.calls("task")[0]
    assert fetch.params["same_as_delivery"] == "true"
    assert fake_samahub.dpp_results[(task.project_id, task.id)].round == 2
    run = run_of(state)
    assert run.name == f"fun69_relabel_ptp-{task.project_id}-{task.id}-r2"
    assert {"source:reference", f"task:{task.id}", "round:2"} <= set(run.tags)


def test_dpp_reference_without_a_round_fails_naming_the_fix(fake_samahub: FakeSamaHub) -> None:
    task = fake_samahub.add_task(make_task())
    state = fun69_relabel_ptp(project_id=task.project_id, task_id=task.id, return_state=True)
    assert state.is_failed()
    assert "round: found nothing; expected the delivery round" in (state.message or "")
    assert fake_samahub.dpp_results == {}


def test_reference_to_a_missing_task_fails_with_samahubs_answer(
    fake_samahub: FakeSamaHub,
) -> None:
    fake_samahub.add_project(10)
    state = fun69_hook_ptp(project_id=10, task_id="0" * 24, return_state=True)
    assert state.is_failed()
    assert "404" in (state.message or "")
    assert seen == []


def test_scheduled_deployment_run_with_the_earlier_param_dict(fake_samahub: FakeSamaHub) -> None:
    """What a deploy.json schedule with {"param": {...}} creates, run as a worker runs it."""
    task = fake_samahub.add_task(make_task(state="delivered"))
    deployment_id: UUID = fun69_hook_ptp.to_deployment(name="fun69_hook_ptp_deploy").apply()
    parameters = {"param": {"project_id": task.project_id, "task_id": task.id, "tag": "kind"}}
    with get_client(sync_client=True) as client:
        created = client.create_flow_run_from_deployment(deployment_id, parameters=parameters)
        state = run_flow(
            fun69_hook_ptp, flow_run=client.read_flow_run(created.id), return_type="state"
        )
        run = client.read_flow_run(created.id)
    assert state.is_completed(), state.message
    assert seen[0]["tag"] == "kind"
    assert isinstance(seen[0]["event"].task, Task)
    assert {f"project:{task.project_id}", f"task:{task.id}", "source:reference"} <= set(run.tags)


# --- libnar run --submit ----------------------------------------------------------------------


def test_libnar_run_prints_a_dpp_result_and_sends_it_only_with_submit(
    fake_samahub: FakeSamaHub, tmp_path: Any
) -> None:
    event = make_dpp_event(name="fun69_boxes_ptp", parameters={"min_box_px": 2})
    fake_samahub.add_event(event)
    event_file = tmp_path / "event.json"
    event_file.write_text(event.model_dump_json())
    runner = CliRunner()
    flow_file = "examples/flows/fun/fun69/fun69_boxes_ptp/fun69_boxes_ptp.py"
    done = runner.invoke(app, ["run", flow_file, "--event", str(event_file)])
    assert done.exit_code == 0, done.output
    assert fake_samahub.dpp_results == {}
    done = runner.invoke(app, ["run", flow_file, "--event", str(event_file), "--submit"])
    assert done.exit_code == 0, done.output
    assert (event.task.project_id, event.task.id) in fake_samahub.dpp_results
