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

from libnar.flow._flow import NpsFlow

__all__ = ["LocalRun", "local_run_settings", "run_locally"]


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


def run_locally(flow: NpsFlow[Any, Any], parameters: Mapping[str, Any]) -> LocalRun:
    """Run `flow` once with `parameters` on the configured (or embedded) Prefect API."""
    from prefect.client.orchestration import get_client

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
