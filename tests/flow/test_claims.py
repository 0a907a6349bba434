"""`@nps_flow` and claim references: a large event kept elsewhere reaches the function whole."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from prefect.client.orchestration import get_client

from libnar import DppEvent, ParameterError, WebhookEvent, nps_flow
from libnar.flow._claims import keep_locally, pass_large_by_reference
from libnar.flow._local import local_run_settings
from libnar.runs import ClaimReference, subject_of

pytestmark = pytest.mark.usefixtures("prefect_server")

EVENTS = Path(__file__).parents[2] / "examples" / "events"
DPP_BODY: dict[str, Any] = json.loads((EVENTS / "dpp_event.json").read_text())

seen: list[DppEvent] = []


@nps_flow(submit_result=False)
def fun69_big_ptp(event: DppEvent, scale: int = 1) -> int:
    seen.append(event)
    return scale


@nps_flow
def fun69_hooked_ptp(event: WebhookEvent) -> str:
    return event.task.id


def big_event() -> DppEvent:
    body = copy.deepcopy(DPP_BODY)
    body["task"]["data"]["frames"] = ["f" * 100] * 8000
    return DppEvent.model_validate(body)


def test_a_file_reference_runs_the_flow_with_the_whole_event(tmp_path: Path) -> None:
    event = big_event()
    reference = pass_large_by_reference(event, 256 * 1024, tmp_path)
    assert isinstance(reference, ClaimReference)
    assert reference.url.startswith("file://")
    seen.clear()
    with local_run_settings():
        state = fun69_big_ptp(event=reference.as_parameter(), scale=3, return_state=True)
    assert state.result() == 3
    assert seen[0].task.data["frames"] == event.task.data["frames"]
    with get_client(sync_client=True) as client:
        run = client.read_flow_run(state.state_details.flow_run_id)  # type: ignore[arg-type]
    assert run.name == event.run_name("fun69_big_ptp")
    assert f"task:{event.task.id}" in run.tags
    assert len(json.dumps(run.parameters)) < 2_000


def test_a_small_event_travels_as_it_is(tmp_path: Path) -> None:
    event = DppEvent.model_validate(DPP_BODY)
    assert pass_large_by_reference(event, 256 * 1024, tmp_path) is event
    assert list(tmp_path.iterdir()) == []


def test_a_tampered_body_fails_the_run_before_the_function(tmp_path: Path) -> None:
    event = big_event()
    reference = keep_locally(event.model_dump_json().encode(), subject_of(event), tmp_path)
    path = tmp_path / f"{reference.sha256}.json"
    path.write_bytes(path.read_bytes().replace(b"fff", b"ggg", 1))
    seen.clear()
    with local_run_settings():
        state = fun69_big_ptp(event=reference.as_parameter(), return_state=True)
    assert state.is_failed()
    assert "SHA-256" in str(state.message) or "SHA-256" in repr(
        state.result(raise_on_failure=False)
    )
    assert seen == []


def test_a_malformed_reference_is_refused_naming_the_field() -> None:
    with pytest.raises(ParameterError, match=r"event\.libnar_claim\.sha256"):
        fun69_big_ptp(event={"libnar_claim": {"url": "file:///x", "sha256": "nope", "size": 1}})


def test_a_dpp_request_given_to_a_webhook_flow_is_refused_saying_so() -> None:
    with pytest.raises(ParameterError) as caught:
        fun69_hooked_ptp(event=DPP_BODY)
    assert "a DPP request" in str(caught.value)
    assert "DppEvent" in str(caught.value)
