"""Typed SamaHub payloads: parsing, round trips, errors, idempotency keys and schemas."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from libnar import (
    DppEvent,
    DppResult,
    EventError,
    Task,
    TaskState,
    WebhookEvent,
    parse_event,
)
from libnar.events import event_json_schema

TASK: dict[str, Any] = {
    "id": "5f1e2d3c4b5a69788796a5b4",
    "project_id": 10,
    "state": "delivered",
    "data": {"image_url": "https://example.invalid/1.png", "count": "3"},
    "answers": {"label": "car|sedan", "flags": {"blurry": "0"}},
    "created_at": "2023-01-30T22:23:33.712Z",
    "delivered_at": "2023-01-31T08:00:00+00:00",
    "batch_id": 77,
    "submitter_ids_by_step": {"1": ["u1"]},
}


def dpp_body(**task_overrides: Any) -> dict[str, Any]:
    return {
        "name": "fun69_boxes_ptp",
        "parameters": {"min": 4},
        "task": {**TASK, "round": 2, **task_overrides},
    }


# --- Task ----------------------------------------------------------------------------------


def test_task_exposes_project_id_as_str_whatever_was_sent() -> None:
    assert Task.model_validate(TASK).project_id == "10"
    assert Task.model_validate({**TASK, "project_id": "10"}).project_id == "10"


def test_task_round_trip_keeps_every_key_and_timestamp_text() -> None:
    dumped = Task.model_validate(TASK).model_dump(mode="json")
    assert dumped == {**TASK, "project_id": "10"}
    assert json.loads(Task.model_validate(TASK).model_dump_json()) == {**TASK, "project_id": "10"}


def test_task_does_not_invent_keys_that_were_not_sent() -> None:
    minimal = {"id": "a1", "project_id": "3"}
    assert Task.model_validate(minimal).model_dump(mode="json") == minimal


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2023-01-30T22:23:33.712Z", datetime(2023, 1, 30, 22, 23, 33, 712000, tzinfo=UTC)),
        ("2023-01-30T23:23:33+01:00", datetime(2023, 1, 30, 22, 23, 33, tzinfo=UTC)),
        ("2023-01-30T22:23:33", datetime(2023, 1, 30, 22, 23, 33, tzinfo=UTC)),
        ("2023-01-30 22:23:33 UTC", datetime(2023, 1, 30, 22, 23, 33, tzinfo=UTC)),
        ("2023-01-30T22:23:33.712+0000", datetime(2023, 1, 30, 22, 23, 33, 712000, tzinfo=UTC)),
    ],
    ids=["zulu-millis", "offset", "naive-is-utc", "space-and-UTC", "compact-offset"],
)
def test_timestamps_samahub_sends_parse_as_aware_utc_instants(
    text: str, expected: datetime
) -> None:
    task = Task.model_validate({**TASK, "created_at": text})
    assert task.created_at == expected
    assert task.created_at is not None
    assert task.created_at.tzinfo is not None
    assert task.model_dump(mode="json")["created_at"] == text


def test_known_state_is_an_enum_member_and_keeps_its_space() -> None:
    task = Task.model_validate({**TASK, "state": "in progress"})
    assert task.state is TaskState.IN_PROGRESS
    assert task.known_state is TaskState.IN_PROGRESS
    assert task.model_dump(mode="json")["state"] == "in progress"


def test_unknown_state_parses_and_stays_the_raw_string() -> None:
    task = Task.model_validate({**TASK, "state": "on hold"})
    assert task.state == "on hold"
    assert task.known_state is None
    assert task.model_dump(mode="json")["state"] == "on hold"


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.text(max_size=20)
    | st.floats(allow_nan=False, allow_infinity=False),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=20,
)
known_keys = set(Task.model_fields)


@settings(max_examples=200, deadline=None)
@given(
    extra=st.dictionaries(
        st.text(min_size=1, max_size=12).filter(lambda k: k not in known_keys),
        json_values,
        max_size=6,
    ),
    answers=st.dictionaries(st.text(max_size=10), json_values, max_size=5),
)
def test_task_round_trip_keeps_arbitrary_extra_fields(
    extra: dict[str, Any], answers: dict[str, Any]
) -> None:
    sent = {**TASK, "answers": answers, **extra}
    parsed = Task.model_validate(sent)
    assert parsed.model_dump(mode="json") == {**sent, "project_id": "10"}
    again = Task.model_validate_json(json.dumps(sent))
    assert again.model_dump(mode="json") == {**sent, "project_id": "10"}


# --- events --------------------------------------------------------------------------------


@pytest.mark.parametrize("form", ["bytes", "str", "mapping"])
def test_parse_event_tells_webhook_from_dpp_by_shape(form: str) -> None:
    for body, kind in [({"task": TASK}, WebhookEvent), (dpp_body(), DppEvent)]:
        given_body: Any = {
            "bytes": json.dumps(body).encode(),
            "str": json.dumps(body),
            "mapping": body,
        }[form]
        event = parse_event(given_body)
        assert type(event) is kind
        assert event.task.id == TASK["id"]


def test_dpp_event_round_trip_keeps_unknown_top_level_fields() -> None:
    body = {**dpp_body(), "callback_id": "x1"}
    event = parse_event(json.dumps(body).encode())
    assert isinstance(event, DppEvent)
    assert event.round == 2
    assert event.model_dump(mode="json") == {**body, "task": {**body["task"], "project_id": "10"}}


def test_parse_event_and_model_validate_agree() -> None:
    body = dpp_body()
    assert parse_event(body) == DppEvent.model_validate(body)
    assert parse_event({"task": TASK}) == WebhookEvent.model_validate({"task": TASK})


def test_dpp_result_keeps_round_and_whatever_is_not_replaced() -> None:
    event = DppEvent.model_validate(dpp_body())
    result = event.result(answers={"label": "car"})
    assert result.model_dump() == {"round": 2, "data": TASK["data"], "answers": {"label": "car"}}
    assert event.result().answers == TASK["answers"]
    assert event.result(data={"x": 1}).data == {"x": 1}


def test_dpp_result_serialises_to_exactly_the_dpp_schema() -> None:
    result = DppResult(round=1, data={}, answers={"a": 1})
    assert json.loads(result.model_dump_json()) == {"round": 1, "data": {}, "answers": {"a": 1}}
    with pytest.raises(ValueError, match="extra"):
        DppResult.model_validate({"round": 1, "data": {}, "answers": {}, "state": "x"})


BAD_EVENTS = [
    (b"{", ["body: found invalid JSON", "expected a JSON object"]),
    (b"[1]", ["body: found a list; expected a JSON object"]),
    (b'"task"', ["body: found 'task'; expected a JSON object"]),
    (b"{}", ["task: found nothing; expected a value (this field is required)"]),
    (
        json.dumps({"task": {"id": 3, "state": "new"}}).encode(),
        ["task.id: found 3; expected a valid string", "task.project_id: found nothing"],
    ),
    (
        json.dumps({"task": {**TASK, "delivered_at": "yesterday"}}).encode(),
        ["task.delivered_at: found 'yesterday'; expected an ISO-8601 timestamp"],
    ),
    (
        json.dumps({"task": {**TASK, "data": [1, 2]}}).encode(),
        ["task.data: found a list; expected a JSON object"],
    ),
    (
        json.dumps({"name": "f", "task": {**TASK}}).encode(),
        ["task.round: found nothing; expected an integer round"],
    ),
    (
        json.dumps(dpp_body(round="second")).encode(),
        ["task.round: found 'second'; expected a valid integer"],
    ),
    (
        json.dumps({"parameters": {}, "task": TASK}).encode(),
        ["name: found nothing; expected the script name"],
    ),
    (
        json.dumps({"task": {**TASK, "project_id": True}}).encode(),
        ["task.project_id: found True"],
    ),
]


@pytest.mark.parametrize(
    ("body", "lines"),
    BAD_EVENTS,
    ids=[
        "not-json",
        "a-list",
        "a-string",
        "no-task",
        "wrong-id-and-missing-project",
        "bad-timestamp",
        "data-not-object",
        "dpp-without-round",
        "dpp-round-not-int",
        "parameters-without-name",
        "bool-project-id",
    ],
)
def test_bad_events_get_one_line_per_problem_naming_the_field(
    body: bytes, lines: list[str]
) -> None:
    with pytest.raises(EventError) as caught:
        parse_event(body)
    message = str(caught.value)
    assert isinstance(caught.value, ValueError)
    for line in lines:
        assert line in message, message
    assert len(message.splitlines()) == 1 + len(caught.value.problems)


def test_parse_event_refuses_other_types_with_a_clear_error() -> None:
    with pytest.raises(EventError, match="body: found int; expected JSON bytes"):
        parse_event(42)  # type: ignore[arg-type]


# --- idempotency keys ----------------------------------------------------------------------


def test_same_delivery_resent_gives_the_same_key_in_another_process() -> None:
    body = json.dumps({"task": TASK})
    here = parse_event(body).idempotency_key
    code = f"from libnar import parse_event; print(parse_event({body!r}).idempotency_key)"
    there = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert here == there
    assert len(here) <= 32


def test_same_instant_written_differently_gives_the_same_key() -> None:
    a = parse_event({"task": {**TASK, "delivered_at": "2023-01-31T08:00:00Z"}})
    b = parse_event({"task": {**TASK, "delivered_at": "2023-01-31T09:00:00+01:00"}})
    assert a.idempotency_key == b.idempotency_key


@pytest.mark.parametrize(
    "change",
    [
        {"delivered_at": "2023-02-02T08:00:00Z"},
        {"state": "acknowledged"},
        {"round": 3},
        {"answers": {"label": "truck"}},
        {"id": "5f1e2d3c4b5a69788796a5b5"},
        {"project_id": 11},
    ],
    ids=[
        "new-delivery-time",
        "other-state",
        "new-round",
        "reworked-answers",
        "other-task",
        "other-project",
    ],
)
def test_rework_or_another_task_gives_a_new_webhook_key(change: dict[str, Any]) -> None:
    before = WebhookEvent.model_validate({"task": {**TASK, "round": 2}})
    after = WebhookEvent.model_validate({"task": {**TASK, "round": 2, **change}})
    assert before.idempotency_key != after.idempotency_key


def test_dpp_key_changes_with_round_and_script_but_not_with_a_resend() -> None:
    first = DppEvent.model_validate(dpp_body())
    assert first.idempotency_key == DppEvent.model_validate(dpp_body()).idempotency_key
    assert first.idempotency_key != DppEvent.model_validate(dpp_body(round=3)).idempotency_key
    other_script = {**dpp_body(), "name": "fun69_other_ptp"}
    assert first.idempotency_key != DppEvent.model_validate(other_script).idempotency_key
    assert first.idempotency_key != WebhookEvent.model_validate({"task": TASK}).idempotency_key


def test_run_names_and_tags_identify_the_task() -> None:
    dpp = DppEvent.model_validate(dpp_body())
    assert dpp.run_name("fun69_boxes_ptp") == f"fun69_boxes_ptp-10-{TASK['id']}-r2"
    assert dpp.tags == [
        "project:10",
        f"task:{TASK['id']}",
        "source:dpp",
        "state:delivered",
        "round:2",
    ]
    hook = WebhookEvent.model_validate({"task": {**TASK, "state": "in progress"}})
    assert hook.run_name("f") == f"f-10-{TASK['id']}"
    assert "state:in progress" in hook.tags
    assert "source:webhook" in hook.tags


# --- schemas and imports -------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["webhook", "dpp", "result", "task"])
def test_json_schema_describes_each_payload(kind: str) -> None:
    schema = event_json_schema(kind)  # type: ignore[arg-type]
    assert schema["type"] == "object"
    assert schema["properties"]


def test_dpp_schema_requires_an_integer_round() -> None:
    schema = event_json_schema("dpp")
    task_schema = schema["$defs"]["DppTask"]
    assert "round" in task_schema["required"]
    assert task_schema["properties"]["round"]["type"] == "integer"


def test_importing_libnar_loads_prefect_only_when_a_name_needs_it() -> None:
    code = (
        "import sys, libnar.events, libnar\n"
        "assert 'prefect' not in sys.modules, 'prefect imported'\n"
        "assert 'httpx' not in sys.modules, 'httpx imported'\n"
        "libnar.SamaClient\n"
        "assert 'httpx' in sys.modules and 'prefect' not in sys.modules, 'client loads prefect'\n"
        "libnar.nps_flow\n"
        "assert 'prefect' in sys.modules, 'nps_flow did not load prefect'\n"
        "print('ok')"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.stdout.strip() == "ok", done.stderr
