"""`@nps_flow` on a real Prefect server: parameters, events, run names, tags and options."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
from prefect import Flow
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId
from prefect.flow_engine import run_flow
from prefect.logging.handlers import APILogHandler
from prefect.states import State

from libnar import DppEvent, DppResult, ParameterError, Task, WebhookEvent, nps_flow
from libnar.naming import FlowNameError
from libnar.testing import PrefectServer

pytestmark = pytest.mark.usefixtures("prefect_server")

EVENTS = Path(__file__).parents[2] / "examples" / "events"
DPP_BODY: dict[str, Any] = json.loads((EVENTS / "dpp_event.json").read_text())
WEBHOOK_BODY: dict[str, Any] = json.loads((EVENTS / "webhook_event.json").read_text())
TASK_ID = WEBHOOK_BODY["task"]["id"]

calls: list[dict[str, Any]] = []


@nps_flow(submit_result=False)
def fun69_echo_ptp(event: DppEvent, min_box_px: int = 4, label: str | None = None) -> DppResult:
    calls.append({"event": event, "min_box_px": min_box_px, "label": label})
    return event.result(answers={"min_box_px": min_box_px})


@nps_flow
def fun69_hook_ptp(event: WebhookEvent, tag: str = "label") -> dict[str, str]:
    calls.append({"event": event, "tag": tag})
    return {"task": event.task.id, "state": str(event.task.state)}


@nps_flow(submit_result=False)
def fun69_task_ptp(task: Task) -> str:
    calls.append({"task": task})
    return task.id


@nps_flow(submit_result=False)
def fun69_either_ptp(event: WebhookEvent | DppEvent) -> str:
    return type(event).__name__


@nps_flow
async def fun69_async_ptp(event: WebhookEvent, pause: float = 0.0) -> str:
    await asyncio.sleep(pause)
    calls.append({"event": event})
    return event.task.id


@pytest.fixture(autouse=True)
def _clear_calls() -> None:
    calls.clear()


def read_run(state: State[Any]) -> Any:
    run_id = state.state_details.flow_run_id
    assert run_id is not None
    with get_client(sync_client=True) as client:
        return client.read_flow_run(run_id)


# --- it is a Prefect flow ------------------------------------------------------------------


def test_decorated_function_is_a_real_prefect_flow_named_after_the_function() -> None:
    assert isinstance(fun69_echo_ptp, Flow)
    assert fun69_echo_ptp.name == "fun69_echo_ptp"
    assert fun69_echo_ptp.user_fn.__name__ == "fun69_echo_ptp"
    deployment = fun69_echo_ptp.to_deployment(name="fun69_echo_ptp_deploy")
    assert deployment.flow_name == "fun69_echo_ptp"
    assert deployment.entrypoint is not None
    assert deployment.entrypoint.endswith("test_flow.py:fun69_echo_ptp")


def test_parameter_schema_offers_the_event_and_a_task_reference_for_manual_runs() -> None:
    schema = fun69_echo_ptp.parameters.model_dump()
    assert list(schema["properties"]) == [
        "event",
        "min_box_px",
        "label",
        "project_id",
        "task_id",
        "round",
        "param",
        "dep_name",
        "no_round",
    ]
    assert schema["required"] == []
    assert schema["properties"]["min_box_px"]["type"] == "integer"


@pytest.mark.parametrize(
    "form",
    ["model", "dict", "json-str", "json-bytes"],
)
def test_calling_the_flow_runs_it_with_a_typed_event(form: str) -> None:
    given: Any = {
        "model": DppEvent.model_validate(DPP_BODY),
        "dict": DPP_BODY,
        "json-str": json.dumps(DPP_BODY),
        "json-bytes": json.dumps(DPP_BODY).encode(),
    }[form]
    result = fun69_echo_ptp(given, min_box_px="9")
    assert result == DppResult(round=1, data=DPP_BODY["task"]["data"], answers={"min_box_px": 9})
    assert isinstance(calls[0]["event"], DppEvent)
    assert calls[0]["min_box_px"] == 9


def test_dpp_run_is_named_and_tagged_after_its_task_and_round() -> None:
    state = fun69_echo_ptp(DPP_BODY, return_state=True)
    assert state.is_completed()
    run = read_run(state)
    assert run.name == f"fun69_echo_ptp-10423-{TASK_ID}-r1"
    assert set(run.tags) >= {"project:10423", f"task:{TASK_ID}", "source:dpp", "round:1"}


def test_webhook_run_is_named_and_tagged_with_source_and_state() -> None:
    state = fun69_hook_ptp(event=WEBHOOK_BODY, return_state=True)
    run = read_run(state)
    assert run.name == f"fun69_hook_ptp-10423-{TASK_ID}"
    assert set(run.tags) >= {
        "project:10423",
        f"task:{TASK_ID}",
        "source:webhook",
        "state:delivered",
    }
    assert state.result() == {"task": TASK_ID, "state": "delivered"}


def test_special_parameters_are_accepted_and_never_reach_the_function() -> None:
    fun69_echo_ptp(DPP_BODY, dep_name="fun69_echo_ptp_deploy_2", no_round=True)
    assert set(calls[0]) == {"event", "min_box_px", "label"}


def test_a_runs_own_resources_are_tagged_and_never_reach_the_function() -> None:
    """`libnar run -p amount=...` and direct calls tag the run as the gateway does."""
    run = read_run(fun69_echo_ptp(DPP_BODY, amount="high", return_state=True))
    assert "amount:high" in run.tags
    custom = fun69_echo_ptp(DPP_BODY, amount="custom", cpu="2", memory="4Gi", return_state=True)
    assert "amount:custom" in read_run(custom).tags
    assert [set(call) for call in calls] == [{"event", "min_box_px", "label"}] * 2


def test_bad_resources_fail_the_call_naming_the_parameter() -> None:
    with pytest.raises(ParameterError, match='amount: found "huge"; expected one of "very-low"'):
        fun69_echo_ptp(DPP_BODY, amount="huge")
    assert calls == []


def test_no_round_leaves_the_round_tag_off() -> None:
    run = read_run(fun69_echo_ptp(DPP_BODY, no_round=True, return_state=True))
    assert not [t for t in run.tags if t.startswith("round:")]


def test_task_annotated_flow_takes_a_webhook_event_or_a_bare_task() -> None:
    state = fun69_task_ptp(WEBHOOK_BODY, return_state=True)
    assert state.result() == TASK_ID
    assert set(read_run(state).tags) >= {"project:10423", f"task:{TASK_ID}", "state:delivered"}
    assert fun69_task_ptp(task=WEBHOOK_BODY["task"]) == TASK_ID
    assert fun69_task_ptp(DPP_BODY) == TASK_ID
    assert all(isinstance(c["task"], Task) for c in calls)


@pytest.mark.parametrize(
    ("body", "line"),
    [
        (b"[1, 2]", "task: found list; expected a task as an object or JSON"),
        ("7", "task: found int; expected a task as an object or JSON"),
        (b"{broken", "task: found invalid JSON"),
    ],
    ids=["list", "number", "bad-json"],
)
def test_task_flow_refuses_json_that_is_no_object(body: str | bytes, line: str) -> None:
    state = fun69_task_ptp(task=body, return_state=True)
    assert state.is_failed()
    assert line in (state.message or "")
    assert calls == []


def test_union_flow_gets_the_event_kind_by_shape() -> None:
    assert fun69_either_ptp(WEBHOOK_BODY) == "WebhookEvent"
    assert fun69_either_ptp(DPP_BODY) == "DppEvent"


def test_async_flow_runs_and_is_named_like_a_sync_one() -> None:
    state = asyncio.run(fun69_async_ptp(WEBHOOK_BODY, return_state=True))
    assert state.is_completed()
    assert read_run(state).name == f"fun69_async_ptp-10423-{TASK_ID}"


# --- bad input fails before the body -------------------------------------------------------


BAD_CALLS = [
    ({"event": {"task": DPP_BODY["task"]}}, ["event.name: found nothing"]),
    (
        {"event": {**DPP_BODY, "task": {**DPP_BODY["task"], "round": None}}},
        ["event.task.round: found None; expected a valid integer"],
    ),
    ({"event": b"{not json"}, ["event: found invalid JSON"]),
    (
        {"event": DPP_BODY, "min_box_px": "many"},
        ["min_box_px: found 'many'; expected a valid integer"],
    ),
    (
        {"event": {"name": "x", "task": {"id": 1}}, "min_box_px": []},
        [
            "event.task.id: found 1",
            "event.task.project_id: found nothing",
            "min_box_px: found a list",
        ],
    ),
    ({}, ["event: found nothing; expected a DPP event, or project_id and task_id"]),
    ({"project_id": 10}, ["task_id: found nothing"]),
    ({"event": DPP_BODY, "dep_name": 3}, ["dep_name: found 3; expected a deployment name"]),
]


@pytest.mark.parametrize(
    ("parameters", "lines"),
    BAD_CALLS,
    ids=[
        "webhook-shape-for-dpp-flow",
        "null-round",
        "bad-json",
        "bad-int",
        "several-at-once",
        "no-event",
        "half-reference",
        "bad-dep-name",
    ],
)
def test_bad_parameters_fail_the_run_before_the_body(
    parameters: dict[str, Any], lines: list[str]
) -> None:
    state = fun69_echo_ptp(**parameters, return_state=True)
    assert state.is_failed()
    assert calls == []
    with pytest.raises(ParameterError) as caught:
        state.result()
    for line in lines:
        assert line in str(caught.value)
    assert "Traceback" not in str(caught.value)
    assert read_run(state).state.is_failed()


def test_unknown_parameter_is_refused_with_the_accepted_ones() -> None:
    with pytest.raises(ParameterError) as caught:
        fun69_echo_ptp(DPP_BODY, min_box=3)
    assert "min_box: found an unknown parameter; expected one of: event, min_box_px, label," in str(
        caught.value
    )
    assert calls == []


def test_check_parameters_lists_every_problem_without_running() -> None:
    assert fun69_echo_ptp.check_parameters({"event": DPP_BODY, "min_box_px": 5}) == []
    problems = fun69_echo_ptp.check_parameters({"min_box_px": "x", "extra": 1})
    assert any(p.startswith("extra: found an unknown parameter") for p in problems)
    assert any(p.startswith("min_box_px: found 'x'") for p in problems)
    assert any(p.startswith("event: found nothing") for p in problems)


def test_partial_check_allows_missing_values_but_not_wrong_ones() -> None:
    """What a deployment's default parameters need: the event comes with each run."""
    assert fun69_echo_ptp.check_parameters({"min_box_px": 5}, partial=True) == []
    assert fun69_echo_ptp.check_parameters({"min_box_px": "x"}, partial=True) == [
        "min_box_px: found 'x'; expected a valid integer, unable to parse string as an integer"
    ]
    # A deployment per project: each run brings its task_id.
    assert fun69_echo_ptp.check_parameters({"project_id": 10}, partial=True) == []
    assert fun69_echo_ptp.check_parameters({"project_id": 10}) == [
        "task_id: found nothing; expected a value: a task reference needs both project_id and task_id"
    ]


# --- decoration-time checks -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "suggestion"),
    [("Fun69 Boxes", "fun69_boxes"), ("9boxes", "_9boxes"), ("fun69.boxes!", "fun69_boxes")],
)
def test_non_compliant_flow_name_is_refused_with_a_suggestion(name: str, suggestion: str) -> None:
    with pytest.raises(FlowNameError, match=f"use '{suggestion}'"):

        @nps_flow(name=name)
        def f(event: WebhookEvent) -> None: ...


def test_reserved_or_variadic_parameters_are_refused_at_decoration() -> None:
    with pytest.raises(TypeError, match="dep_name are reserved"):

        @nps_flow
        def f(event: WebhookEvent, dep_name: str) -> None: ...

    with pytest.raises(TypeError, match="variadic"):

        @nps_flow
        def g(event: WebhookEvent, **extra: Any) -> None: ...


def test_an_event_parameter_without_annotation_is_refused_at_decoration_with_the_fix() -> None:
    with pytest.raises(TypeError) as raised:

        @nps_flow
        def fun69_plain_ptp(event, min_box_px: int = 4) -> None:  # type: ignore[no-untyped-def]
            ...

    message = str(raised.value)
    assert "parameter 'event' has no annotation" in message
    assert "event: DppEvent" in message
    assert "event: WebhookEvent" in message
    assert "event: Task" in message


def test_options_reach_prefect_and_hooks_run_on_failure() -> None:
    failures: list[str] = []

    @nps_flow(
        name="fun69_flaky_ptp",
        retries=1,
        retry_delay_seconds=0,
        description="flaky",
        on_failure=[lambda flow, run, state: failures.append(run.name)],
    )
    def flaky(event: WebhookEvent) -> None:
        calls.append({"attempt": len(calls)})
        raise RuntimeError("always")

    assert flaky.retries == 1
    assert flaky.description == "flaky"
    state = flaky(WEBHOOK_BODY, return_state=True)
    assert state.is_failed()
    assert len(calls) == 2  # first attempt + one retry
    assert failures == [f"fun69_flaky_ptp-10423-{TASK_ID}"]


def test_with_options_keeps_libnar_behaviour() -> None:
    renamed = fun69_hook_ptp.with_options(name="fun69_hook2_ptp", retries=2)
    assert renamed.retries == 2
    run = read_run(renamed(WEBHOOK_BODY, return_state=True))
    assert run.name == f"fun69_hook2_ptp-10423-{TASK_ID}"
    with pytest.raises(FlowNameError):
        fun69_hook_ptp.with_options(name="Bad Name")


# --- deployment runs (as a worker runs them) -----------------------------------------------


def run_from_deployment(flow: Any, parameters: dict[str, Any]) -> Any:
    """Create a run through a deployment and execute it in-process, as a worker would."""
    deployment_id: UUID = flow.to_deployment(name=f"{flow.name}_deploy").apply()
    with get_client(sync_client=True) as client:
        created = client.create_flow_run_from_deployment(deployment_id, parameters=parameters)
        state = run_flow(flow, flow_run=client.read_flow_run(created.id), return_type="state")
        return state, client.read_flow_run(created.id)


def test_deployment_run_with_gateway_parameters_gets_named_and_tagged() -> None:
    state, run = run_from_deployment(
        fun69_hook_ptp, {"event": WEBHOOK_BODY, "dep_name": "fun69_hook_ptp_deploy", "tag": "x"}
    )
    assert state.is_completed()
    assert run.name == f"fun69_hook_ptp-10423-{TASK_ID}"
    assert set(run.tags) >= {"project:10423", f"task:{TASK_ID}", "source:webhook"}
    assert calls[0]["tag"] == "x"


def test_deployment_run_with_a_bad_event_fails_before_the_body_naming_the_field() -> None:
    bad = {"task": {**WEBHOOK_BODY["task"], "delivered_at": "yesterday"}}
    state, run = run_from_deployment(fun69_hook_ptp, {"event": bad})
    assert state.is_failed()
    assert run.state.is_failed()
    assert "event.task.delivered_at: found 'yesterday'" in (state.message or "")
    assert calls == []


def test_prefect_server_fixture_points_clients_at_a_local_server(
    prefect_server: PrefectServer,
) -> None:
    assert prefect_server.api_url.startswith("http://127.0.0.1:")
    with get_client(sync_client=True) as client:
        assert client.api_url.host == "127.0.0.1"


def test_unresolvable_annotation_is_refused_with_the_fix() -> None:
    def f(event: WebhookEvent, size: Unknown) -> None: ...  # type: ignore[name-defined]  # noqa: F821

    with pytest.raises(TypeError, match=r"cannot resolve a type annotation.*import the types"):
        nps_flow(f)


LOCAL_IMPORT_MODULE = """
from __future__ import annotations
from libnar import nps_flow

def make():
    from libnar import DppEvent  # only imported here, as users do in tests

    @nps_flow
    def fun69_local_ptp(event: DppEvent) -> int:
        return event.round

    return fun69_local_ptp
"""


def test_libnar_models_imported_inside_a_function_still_resolve() -> None:
    namespace: dict[str, Any] = {"__name__": "user_module"}
    exec(LOCAL_IMPORT_MODULE, namespace)
    flow = namespace["make"]()
    assert flow.signature.event_kinds == (DppEvent,)


def test_timeout_and_log_prints_options_reach_the_run() -> None:
    @nps_flow(name="fun69_slow_ptp", timeout_seconds=1, log_prints=True)
    def slow(event: WebhookEvent, seconds: float = 0.0) -> str:
        print(f"working on {event.task.id}")
        time.sleep(seconds)
        return "done"

    quick = slow(WEBHOOK_BODY, return_state=True)
    assert quick.is_completed()

    APILogHandler().flush()
    with get_client(sync_client=True) as client:
        logs = client.read_logs(
            LogFilter(flow_run_id=LogFilterFlowRunId(any_=[quick.state_details.flow_run_id]))
        )
    assert any(f"working on {TASK_ID}" in log.message for log in logs)

    too_slow = slow(WEBHOOK_BODY, seconds=5, return_state=True)
    assert too_slow.is_failed()
    assert "exceeded timeout of 1.0 second" in (too_slow.message or "")
