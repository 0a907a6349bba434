"""The rules of a run: special parameters, names, tags, references and a delivery's identity."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from libnar.events import DppEvent, Task, TaskReference, WebhookEvent
from libnar.runs import (
    CLAIM_KEY,
    ClaimReference,
    canonical_json,
    delivery_key,
    event_parameter_of,
    run_name,
    run_tags,
    split_special_parameters,
)

EVENTS = Path(__file__).parents[1] / "examples" / "events"
WEBHOOK: dict[str, Any] = json.loads((EVENTS / "webhook_event.json").read_text())
DPP: dict[str, Any] = json.loads((EVENTS / "dpp_event.json").read_text())


def webhook() -> WebhookEvent:
    return WebhookEvent.model_validate(copy.deepcopy(WEBHOOK))


def dpp(**changes: Any) -> DppEvent:
    return DppEvent.model_validate({**copy.deepcopy(DPP), **changes})


def reference(**changes: Any) -> ClaimReference:
    values: dict[str, Any] = {
        "url": "http://gw/claims/" + "a" * 64,
        "sha256": "a" * 64,
        "size": 10,
        "token": "t",
        "source": "dpp",
        "project_id": "7",
        "task_id": "t1",
        "round": 2,
        **changes,
    }
    return ClaimReference.model_validate(values)


# -- names and tags ------------------------------------------------------------------------


def test_names_and_tags_are_the_same_whatever_carries_the_task() -> None:
    event = dpp()
    task = event.task
    ref = TaskReference(project_id=task.project_id, task_id=task.id, round=task.round)
    claim = reference(project_id=task.project_id, task_id=task.id, round=task.round, state=None)
    expected = f"f-{task.project_id}-{task.id}-r{task.round}"
    assert run_name("f", event) == run_name("f", ref) == run_name("f", claim) == expected
    assert run_name("f", webhook()) == f"f-{WEBHOOK['task']['project_id']}-{WEBHOOK['task']['id']}"
    assert run_name("f", Task.model_validate(WEBHOOK["task"])).endswith(WEBHOOK["task"]["id"])
    assert "source:dpp" in run_tags(event)
    assert "source:reference" in run_tags(ref)
    assert f"round:{task.round}" in run_tags(event)
    assert not [t for t in run_tags(event, no_round=True) if t.startswith("round:")]
    assert event.tags == run_tags(event)
    assert event.run_name("f") == expected


# -- special parameters --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("parameters", "path", "expected"),
    [
        ({"dep_name": 3}, "p.dep_name", "a deployment name (a string)"),
        ({"dep_name": " "}, "p.dep_name", "not blank"),
        ({"dep_name": "x" * 200}, "p.dep_name", "at most 128 characters"),
        ({"dep_name": "a\nb"}, "p.dep_name", "control characters"),
        ({"dep_name": "a/b"}, "p.dep_name", "without '/'"),
        ({"no_round": "yes"}, "p.no_round", "true or false"),
    ],
    ids=["not-text", "blank", "long", "newline", "slash", "no-round-text"],
)
def test_bad_special_parameters_name_the_field(
    parameters: dict[str, Any], path: str, expected: str
) -> None:
    rest, _, problems = split_special_parameters({"keep": 1, **parameters}, "p")
    assert rest == {"keep": 1}
    assert [p.path for p in problems] == [path]
    assert expected in problems[0].expected
    assert len(problems[0].found) <= 60


def test_good_special_parameters_are_taken_out() -> None:
    rest, special, problems = split_special_parameters(
        {"dep_name": "f_other", "no_round": True, "k": "v"}
    )
    assert (rest, special.dep_name, special.no_round, problems) == ({"k": "v"}, "f_other", True, [])


# -- the event parameter -------------------------------------------------------------------


def test_the_event_parameter_is_read_from_the_schema_mark() -> None:
    from libnar import nps_flow

    @nps_flow
    def abc1_mark_ptp(payload: DppEvent, k: int = 1) -> None: ...

    schema = abc1_mark_ptp.parameters.model_dump()
    assert event_parameter_of(schema) == ("payload", ("dpp",))
    assert event_parameter_of({"properties": {"event": {}, "x": {}}}) == (
        "event",
        ("webhook", "dpp", "task"),
    )
    assert event_parameter_of({"properties": {"x": {}}}) is None
    assert event_parameter_of(None) is None


# -- claim references ----------------------------------------------------------------------


def test_only_a_single_key_mapping_is_a_claim_reference() -> None:
    claim = reference()
    assert ClaimReference.from_parameter(claim.as_parameter()) == claim
    assert ClaimReference.from_parameter({CLAIM_KEY: {}, "task": {}}) is None
    assert ClaimReference.from_parameter(WEBHOOK) is None
    assert "token=" not in repr(claim)
    broken = {**claim.as_parameter()[CLAIM_KEY], "sha256": "x"}
    with pytest.raises(ValueError, match="sha256"):
        ClaimReference.from_parameter({CLAIM_KEY: broken})


# -- the identity of a delivery ------------------------------------------------------------


def test_other_parameters_are_another_delivery() -> None:
    event = webhook()
    assert delivery_key(event, {}) == event.idempotency_key
    assert delivery_key(event, {"dep_name": "other"}) == event.idempotency_key
    by_type = delivery_key(event, {"by": "type"})
    assert by_type != delivery_key(event, {"by": "label"})
    assert by_type != delivery_key(event, {})
    assert delivery_key(event, {"a": 1, "b": [1, 2]}) == delivery_key(event, {"b": [1, 2], "a": 1})
    assert delivery_key(event, {"a": 1}) != delivery_key(event, {"a": 1.0})


def test_a_py_suffix_on_the_script_name_is_the_same_dpp_delivery() -> None:
    assert dpp(name="fun69_x_ptp.py").idempotency_key == dpp(name="fun69_x_ptp").idempotency_key
    assert dpp(name="fun69_x_ptp").idempotency_key != dpp(name="fun69_y_ptp").idempotency_key


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=5),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=4), children, max_size=3)
    ),
    max_leaves=10,
)


@given(st.dictionaries(st.text(max_size=6), json_values, max_size=5))
def test_canonical_json_ignores_key_order_and_spelling(value: dict[str, Any]) -> None:
    reordered = dict(reversed(list(value.items())))
    respelled = json.loads(json.dumps(value, ensure_ascii=True))
    assert canonical_json(value) == canonical_json(reordered) == canonical_json(respelled)
