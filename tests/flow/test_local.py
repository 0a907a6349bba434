"""`libnar run`'s parameters (`flow._local`): `--param` texts read as each parameter's type."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from libnar import ParameterError, WebhookEvent, nps_flow
from libnar.flow._loading import load_flow
from libnar.flow._local import local_parameters

EXAMPLES = Path(__file__).parents[2] / "examples"
WEBHOOK_EVENT = (EXAMPLES / "events" / "webhook_event.json").read_bytes()
DPP_EVENT = (EXAMPLES / "events" / "dpp_event.json").read_bytes()


@nps_flow
def fun69_params_ptp(
    event: WebhookEvent,
    min_total: int,
    by: str = "label",
    ratio: float = 0.5,
    strict: bool = False,
    items: list[int] | None = None,
    options: dict[str, str] | None = None,
    limit: int | None = 3,
    raw=None,  # no annotation
) -> None:
    """A flow with one parameter of each kind a `--param` may set."""


def params(**texts: str) -> dict[str, Any]:
    values = local_parameters(fun69_params_ptp, WEBHOOK_EVENT, {"min_total": "1", **texts})
    return {k: v for k, v in values.items() if k in texts}


@pytest.mark.parametrize(
    ("texts", "expected"),
    [
        ({"by": "5"}, {"by": "5"}),
        ({"by": '"5"'}, {"by": '"5"'}),
        ({"by": "null"}, {"by": "null"}),
        ({"by": "two words [x]"}, {"by": "two words [x]"}),
        ({"min_total": "8"}, {"min_total": 8}),
        ({"ratio": "1e-3"}, {"ratio": 0.001}),
        ({"strict": "true"}, {"strict": True}),
        ({"items": "[1, 2]"}, {"items": [1, 2]}),
        ({"options": '{"a": "b"}'}, {"options": {"a": "b"}}),
        ({"limit": "null"}, {"limit": None}),
        ({"limit": "7"}, {"limit": 7}),
        ({"raw": "[1, 2]"}, {"raw": [1, 2]}),
        ({"raw": "hello"}, {"raw": "hello"}),
        ({"dep_name": "nightly"}, {"dep_name": "nightly"}),
        ({"no_round": "true"}, {"no_round": True}),
    ],
    ids=lambda v: json.dumps(v) if isinstance(v, dict) else str(v),
)
def test_each_param_text_is_read_as_its_parameter_type_needs(
    texts: dict[str, str], expected: dict[str, Any]
) -> None:
    assert params(**texts) == expected


@pytest.mark.parametrize(
    ("texts", "line"),
    [
        ({"min_total": "many"}, "--param min_total: found 'many'; expected a valid integer"),
        ({"items": "1,2"}, "--param items: found '1,2'; expected a valid list"),
        ({"colour": "red"}, "--param colour: found an unknown parameter; expected one of: event"),
    ],
    ids=["bad-int", "not-json-for-a-list", "unknown"],
)
def test_a_bad_param_names_the_param_not_the_event_file(texts: dict[str, str], line: str) -> None:
    with pytest.raises(ParameterError) as raised:
        local_parameters(
            fun69_params_ptp, WEBHOOK_EVENT, {"min_total": "1", **texts}, event_file="e.json"
        )
    assert line in str(raised.value)
    assert "e.json" not in str(raised.value)


def test_a_missing_parameter_says_how_to_give_it() -> None:
    with pytest.raises(
        ParameterError, match=r"min_total: found nothing; .*give it with --param min_total=VALUE"
    ):
        local_parameters(fun69_params_ptp, WEBHOOK_EVENT, {})


def test_a_bad_event_names_the_event_file() -> None:
    body = json.dumps({"task": {"id": 5}}).encode()
    with pytest.raises(ParameterError) as raised:
        local_parameters(fun69_params_ptp, body, {"min_total": "1"}, event_file="e.json")
    assert "e.json: event.task.id: found 5; expected a valid string" in str(raised.value)


def test_a_bad_value_in_the_dpp_events_parameters_names_the_event_file() -> None:
    boxes = EXAMPLES / "flows" / "fun" / "fun69" / "fun69_boxes_ptp" / "fun69_boxes_ptp.py"
    fun69_boxes_ptp = load_flow(str(boxes))
    body = json.loads(DPP_EVENT)
    body["parameters"] = {"min_box_px": "big"}
    with pytest.raises(ParameterError) as raised:
        local_parameters(fun69_boxes_ptp, json.dumps(body).encode(), {}, event_file="d.json")
    assert "d.json: parameters.min_box_px: found 'big'" in str(raised.value)
