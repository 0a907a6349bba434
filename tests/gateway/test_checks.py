"""The run request for a stored event: checked once per deployment version."""

from __future__ import annotations

import pytest

from libnar._gateway._checks import run_request
from libnar._gateway._outbox import OutboxEntry
from libnar._gateway._trigger import Deployment, ParametersRejected

SCHEMA = {
    "type": "object",
    "properties": {"event": {"type": "object"}, "tag": {"type": "string"}},
    "required": ["event"],
}


def deployment(version: str) -> Deployment:
    return Deployment(
        id="dep-1",
        flow="f",
        name="f_deploy",
        accepted=("event", "tag"),
        schema=SCHEMA,
        event_parameter="event",
        event_kinds=("webhook",),
        version=version,
    )


def entry(**changes: object) -> OutboxEntry:
    values: dict[str, object] = {
        "source": "webhook",
        "flow": "f",
        "deployment": "f_deploy",
        "event_key": "webhook-abc",
        "event": {"task": {"id": "1"}},
        "parameters": {"tag": 5},
        "run_name": "f-1-1",
        "tags": ["task:1"],
        **changes,
    }
    return OutboxEntry.model_validate(values)


def test_parameters_the_schema_refuses_are_refused_with_the_reason() -> None:
    with pytest.raises(ParametersRejected, match="5 is not of type 'string'"):
        run_request(deployment("dep-1@t1"), entry())


def test_an_entry_checked_against_this_version_is_not_checked_again() -> None:
    request = run_request(deployment("dep-1@t1"), entry(checked_against="dep-1@t1"))
    assert request.idempotency_key == "dep-1:webhook-abc"
    assert request.checked is True  # Prefect need not check it either


def test_an_entry_checked_against_an_earlier_version_is_checked_again() -> None:
    with pytest.raises(ParametersRejected):
        run_request(deployment("dep-1@t2"), entry(checked_against="dep-1@t1"))


def test_unknown_parameters_are_refused_even_when_checked_before() -> None:
    with pytest.raises(ParametersRejected, match="unknown parameter"):
        run_request(
            deployment("dep-1@t1"),
            entry(parameters={"colour": "red"}, checked_against="dep-1@t1"),
        )
