"""`@nps_flow(validate_result=True)`: a DPP result is checked against the delivery schema."""

from __future__ import annotations

from typing import Any

import pytest

from libnar import DppEvent, DppResult, nps_flow
from libnar.answers import Answers
from libnar.testing import FakeSamaHub, make_delivery_schema, make_dpp_event

pytestmark = pytest.mark.usefixtures("prefect_server")


@nps_flow(validate_result=True)
def fun69_checked_ptp(event: DppEvent, weather: Any = "fog") -> DppResult:
    """Set the weather; with a bad value the result breaks the schema."""
    answers = Answers.from_task(event.task)
    answers["weather"] = weather
    for shape in answers.shapes():
        shape.tags["label"] = shape.tags["label"].upper()
    return event.result(answers=answers.to_dict())


@nps_flow(validate_result=True)
async def fun69_checked_async_ptp(event: DppEvent) -> dict[str, Any]:
    answers = Answers.from_task(event.task)
    del answers["weather"]
    return {"answers": answers}  # typed answers returned in a dict are sent as their JSON


@nps_flow
def fun69_unchecked_ptp(event: DppEvent) -> DppResult:
    return event.result(answers={"weather": 3})


def _project_with_schema(fake: FakeSamaHub) -> DppEvent:
    event = make_dpp_event(round=2)
    fake.add_event(event)
    schema = make_delivery_schema(event.task.answers or {})
    schema["properties"]["weather"] = {"enum": ["fog", "rain", "clear"]}
    fake.schemas[event.task.project_id] = {"deliver_task": schema}
    return event


def test_a_result_that_follows_the_schema_is_sent(fake_samahub: FakeSamaHub) -> None:
    event = _project_with_schema(fake_samahub)

    state = fun69_checked_ptp(event, weather="rain", return_state=True)

    assert state.is_completed()
    sent = fake_samahub.dpp_results[(event.task.project_id, event.task.id)]
    assert sent.answers["weather"] == "rain"
    labels = [s.tags["label"] for s in Answers.from_dict(sent.answers).shapes()]
    assert labels == ["CAR", "PEDESTRIAN"]
    assert [c.route for c in fake_samahub.calls()] == ["delivery_schema", "post_processed"]


def test_a_result_that_breaks_the_schema_fails_the_run_and_is_not_sent(
    fake_samahub: FakeSamaHub,
) -> None:
    event = _project_with_schema(fake_samahub)

    state = fun69_checked_ptp(event, weather="snow", return_state=True)

    assert state.is_failed()
    assert state.message is not None
    assert (
        f"fun69_checked_ptp: the result for task {event.task.id} (round 2) does not follow"
        f" project {event.task.project_id}'s delivery schema (1 problem); nothing was sent"
    ) in state.message
    assert fake_samahub.dpp_results == {}
    assert fake_samahub.calls("post_processed") == []


async def test_an_async_flow_is_checked_too(fake_samahub: FakeSamaHub) -> None:
    event = _project_with_schema(fake_samahub)

    state = await fun69_checked_async_ptp(event, return_state=True)

    assert state.is_failed()
    with pytest.raises(ValueError, match=r"answers\.weather: found nothing; expected a value"):
        await state.result()
    assert fake_samahub.dpp_results == {}


def test_without_validate_result_samahub_refuses_the_result_itself(
    fake_samahub: FakeSamaHub,
) -> None:
    event = _project_with_schema(fake_samahub)

    state = fun69_unchecked_ptp(event, return_state=True)

    assert state.is_failed()  # after the round trip, with SamaHub's first problem only
    assert "400" in (state.message or "")
    assert fake_samahub.calls("delivery_schema") == []
    assert len(fake_samahub.calls("post_processed")) == 1
    assert fake_samahub.dpp_results == {}


def test_validate_result_survives_with_options() -> None:
    assert fun69_checked_ptp.with_options(retries=2).validate_result is True
    assert fun69_unchecked_ptp.validate_result is False
