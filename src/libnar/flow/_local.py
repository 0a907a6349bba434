"""Run a flow once on a local Prefect: no heartbeat to wait for, a summary to print.

Prefect's flow heartbeat thread sleeps in 1 s steps and a sync run waits for it on exit, so
each local run would pay about 1.1 s for a heartbeat nobody watches. Local runs turn it off.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from prefect.client.schemas.objects import State
from prefect.settings import PREFECT_FLOWS_HEARTBEAT_FREQUENCY, temporary_settings

from libnar.events import DppEvent, EventProblem
from libnar.flow._flow import NpsFlow
from libnar.flow._parameters import ParameterError, prepare_call

__all__ = ["LocalRun", "local_parameters", "local_run_settings", "run_locally"]


@contextmanager
def local_run_settings() -> Iterator[None]:
    """Prefect settings for local runs and tests: the flow heartbeat off."""
    with temporary_settings(updates={PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None}):
        yield


@dataclass(frozen=True)
class LocalRun:
    """What one local run did: its name, final state, duration and return value."""

    name: str
    state: State[Any]
    seconds: float

    @property
    def is_completed(self) -> bool:
        """Whether the run ended Completed."""
        return self.state.is_completed()

    def result(self) -> Any:
        """The flow's return value; raises the run's exception when it failed."""
        return self.state.result()


def local_parameters(
    flow: NpsFlow[Any, Any], event: bytes | None, overrides: Mapping[str, Any]
) -> dict[str, Any]:
    """The validated parameters of a local run, as production would give them.

    A DPP event's own `parameters` apply first (the gateway passes them the same way), then
    `overrides`. Everything is checked before any Prefect server is started.

    Raises:
        ParameterError: the event or a parameter does not fit the flow (one line each).
    """
    parameters: dict[str, Any] = dict(overrides)
    if event is not None:
        if flow.signature.event_name is None:
            problem = EventProblem(
                path="event", found="an event", expected="no event (the flow takes none)"
            )
            raise ParameterError(flow.name, [problem])
        parameters[flow.signature.event_name] = event
    prepared = prepare_call(flow.signature, parameters)
    if isinstance(prepared.event, DppEvent) and prepared.event.parameters:
        parameters[flow.signature.event_name or "event"] = prepared.event  # parsed once
        prepared = prepare_call(flow.signature, {**prepared.event.parameters, **parameters})
    return prepared.as_parameters(flow.signature)


def run_locally(
    flow: NpsFlow[Any, Any], parameters: Mapping[str, Any], *, submit_result: bool | None = None
) -> LocalRun:
    """Run `flow` once with `parameters` on the configured (or embedded) Prefect API.

    `submit_result` overrides the flow's own setting for this run (a DPP result is sent to
    SamaHub only when it is true).
    """
    from prefect.client.orchestration import get_client

    if submit_result is not None and submit_result != flow.submit_result:
        flow = flow.with_options()
        flow.submit_result = submit_result
    started = time.perf_counter()
    with local_run_settings():
        state: State[Any] = flow(**parameters, return_state=True)
        seconds = time.perf_counter() - started
        name = flow.name
        run_id = state.state_details.flow_run_id
        if run_id is not None:
            with get_client(sync_client=True) as client:
                name = client.read_flow_run(run_id).name
    return LocalRun(name=name, state=state, seconds=seconds)
