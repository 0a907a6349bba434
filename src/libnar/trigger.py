"""Start one run of a deployment for an event, exactly once, as the gateway would.

`libnar trigger FLOW --event FILE` and `trigger_run(...)` apply the gateway's rules: the same
special parameters (`dep_name`, `no_round`, and the run's resources `amount`, `cpu`, `memory`,
`disk`, checked against the deployment's infra with the build's rules), the same run name and
tags, and the same idempotency key (`<deployment id>:<delivery identity>`): triggering the same
event with the same parameters twice lands on the run that exists.

Talks to `PREFECT_API_URL` (never a temporary server: a run there would be lost).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from libnar.events import DppEvent, EventError, EventProblem, WebhookEvent, parse_event

__all__ = ["TriggerRefused", "TriggeredRun", "trigger_run", "trigger_run_async", "watch_run"]

#: Prefect's default limit on a run's parameters (`PREFECT_SERVER_API_MAX_PARAMETER_SIZE`);
#: a larger event belongs with the gateway, which passes it by reference.
MAX_EVENT_BYTES = 512 * 1024 - 4096


class TriggerRefused(ValueError):
    """The run was not created: the event, a parameter or the deployment is wrong.

    `problems` name each bad field (as the gateway's 422 answers do).
    """

    def __init__(self, message: str, problems: list[EventProblem] | None = None) -> None:
        self.problems = problems or []
        lines = [message, *(f"  {p.path}: {p.expected} (found {p.found})" for p in self.problems)]
        super().__init__("\n".join(lines))


@dataclass(frozen=True)
class TriggeredRun:
    """The run an event landed on."""

    flow_run_id: str
    flow_run_name: str
    deployment: str
    duplicate: bool
    """The run existed already (the same event and parameters were triggered before)."""
    ui_url: str | None
    """The run's page in the Prefect UI (`PREFECT_UI_URL`), when known."""
    job_variables: dict[str, Any] = field(default_factory=dict)
    """The run's own job variables (its resources); empty: the deployment's."""


def _ui_url(run_id: str) -> str | None:
    from prefect.settings import get_current_settings

    base = get_current_settings().ui_url
    return f"{base.rstrip('/')}/runs/flow-run/{run_id}" if base else None


async def trigger_run_async(
    flow: str,
    event: WebhookEvent | DppEvent | Mapping[str, Any] | bytes | str | Path,
    *,
    deployment: str | None = None,
    amount: str | None = None,
    parameters: Mapping[str, Any] | None = None,
) -> TriggeredRun:
    """Create the run of `flow`'s deployment for `event` (or find the one it already has).

    Args:
        flow: The flow name (as in a webhook token or a DPP request).
        event: The event: a model, its JSON, or a JSON file's path.
        deployment: The deployment (default `<flow>_deploy`); the same as `dep_name`.
        amount: The run's resource preset (the same as the `amount` parameter).
        parameters: Other run parameters, special ones included (`cpu`, `memory`, `disk`...);
            a DPP event's own `parameters` apply first.

    Raises:
        TriggerRefused: a bad event, parameter or resource, or no such deployment.
        libnar._gateway.TriggerError: Prefect is unreachable or answered unexpectedly.
    """
    from libnar._gateway._checks import run_request
    from libnar._gateway._service import Rejected, prepare_event
    from libnar._gateway._trigger import (
        DeploymentNotFound,
        ParametersRejected,
        PrefectTrigger,
        prefect_api_settings,
    )

    parsed = _event(event)
    given: dict[str, Any] = {}
    if isinstance(parsed, DppEvent) and parsed.parameters:
        given.update(parsed.parameters)
    given.update(parameters or {})
    if deployment is not None:
        given["dep_name"] = deployment
    if amount is not None:
        given["amount"] = amount
    try:
        prepared = prepare_event(parsed, flow, given, claim_check_bytes=MAX_EVENT_BYTES)
    except Rejected as exc:
        raise TriggerRefused(exc.detail, exc.problems) from None
    if prepared.body is not None:
        raise TriggerRefused(
            f"the event is {len(prepared.body)} bytes, more than a Prefect run's parameters may"
            " hold; send it through the gateway, which passes large events by reference"
        )
    entry = prepared.entry
    api_url, headers = prefect_api_settings()
    if not api_url:
        raise TriggerRefused(
            "PREFECT_API_URL is not set: the run would go to a temporary local server and be"
            " lost; set it to your Prefect API (e.g. http://127.0.0.1:4200/api)"
        )
    async with PrefectTrigger(api_url, headers=headers, bulk_window_ms=0) as trigger:
        try:
            found = await trigger.deployment(entry.flow, entry.deployment)
            request = run_request(found, entry)
        except DeploymentNotFound as exc:
            raise TriggerRefused(
                f"{exc}; deploy it (libnar deploy) or pick another with --deployment"
            ) from None
        except ParametersRejected as exc:
            raise TriggerRefused(
                f"deployment {entry.deployment!r} refuses the run: {exc}", exc.problems
            ) from None
        created = await trigger.create_run(found, request)
    return TriggeredRun(
        flow_run_id=created.flow_run_id,
        flow_run_name=created.flow_run_name,
        deployment=entry.deployment,
        duplicate=created.duplicate,
        ui_url=_ui_url(created.flow_run_id),
        job_variables=dict(request.job_variables or {}),
    )


def trigger_run(
    flow: str,
    event: WebhookEvent | DppEvent | Mapping[str, Any] | bytes | str | Path,
    *,
    deployment: str | None = None,
    amount: str | None = None,
    parameters: Mapping[str, Any] | None = None,
) -> TriggeredRun:
    """`trigger_run_async` for code that is not async (scripts, notebooks, the CLI)."""
    from prefect.utilities.asyncutils import run_coro_as_sync

    found: TriggeredRun | None = run_coro_as_sync(
        trigger_run_async(flow, event, deployment=deployment, amount=amount, parameters=parameters)
    )
    assert found is not None
    return found


def _event(
    event: WebhookEvent | DppEvent | Mapping[str, Any] | bytes | str | Path,
) -> WebhookEvent | DppEvent:
    if isinstance(event, WebhookEvent | DppEvent):
        return event
    if isinstance(event, Path):
        path = event
        try:
            event = path.read_bytes()
        except OSError as exc:
            raise TriggerRefused(f"--event {path}: {exc.strerror}") from None
    try:
        return parse_event(event)
    except EventError as exc:
        raise TriggerRefused(
            "the event is not a SamaHub webhook or DPP event", exc.problems
        ) from None


def watch_run(
    flow_run_id: str,
    *,
    timeout: float | None = None,
    poll_seconds: float = 1.0,
    on_state: Any = None,
) -> Any:
    """Wait for a run's final state and return it; `on_state(state)` is called on each change.

    Raises:
        TimeoutError: the run is not final after `timeout` seconds.
    """
    from prefect.client.orchestration import get_client

    deadline = None if timeout is None else time.monotonic() + timeout
    seen = None
    with get_client(sync_client=True) as client:
        while True:
            state = client.read_flow_run(flow_run_id).state  # type: ignore[arg-type]
            if state is not None and (state.type, state.name) != seen:
                seen = (state.type, state.name)
                if on_state is not None:
                    on_state(state)
            if state is not None and state.is_final():
                return state
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(f"run {flow_run_id} is not finished after {timeout:.0f} s")
            time.sleep(poll_seconds)
