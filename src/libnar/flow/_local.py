"""Run a flow once on a local Prefect: no heartbeat to wait for, a summary to print.

Prefect's flow heartbeat thread sleeps in 1 s steps and a sync run waits for it on exit, so
each local run would pay about 1.1 s for a heartbeat nobody watches. Local runs turn it off.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from prefect.client.schemas.objects import State
from prefect.settings import PREFECT_FLOWS_HEARTBEAT_FREQUENCY, temporary_settings
from pydantic import PydanticSchemaGenerationError, PydanticUserError, TypeAdapter, ValidationError

from libnar.events import DppEvent, EventProblem, Task, WebhookEvent
from libnar.flow._claims import pass_large_by_reference
from libnar.flow._flow import NpsFlow
from libnar.flow._parameters import ParameterError, prepare_call
from libnar.settings import SettingsError, get_settings

__all__ = [
    "LocalRun",
    "check_submit",
    "describe_submission",
    "local_parameters",
    "local_run_settings",
    "param_from_text",
    "run_locally",
]

PydanticErrors = (PydanticSchemaGenerationError, PydanticUserError)


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


def param_from_text(flow: NpsFlow[Any, Any], name: str, text: str) -> Any:
    """The value of `--param NAME=TEXT`, read the way the parameter's annotation needs it.

    The text itself when it fits the type (text, numbers, booleans, dates, choices); JSON when
    the type needs it (lists, dicts, models, `null` for an optional non-text parameter). A
    parameter without an annotation gets JSON when the text is JSON, else the text. A value
    that fits neither way stays text, so the flow's check names the parameter and what it
    expects.
    """
    annotation = _annotation(flow, name)
    if annotation is None:  # unknown, or the event (which takes JSON text itself)
        return text
    if annotation is Any:
        try:
            return json.loads(text)
        except json.JSONDecodeError:
            return text
    try:
        adapter: TypeAdapter[Any] = TypeAdapter(annotation)
    except PydanticErrors:
        return text  # a type pydantic cannot check: the flow's own check reports it
    try:
        return adapter.validate_python(text)
    except ValidationError:
        pass
    try:
        return adapter.validate_python(json.loads(text))
    except (json.JSONDecodeError, ValidationError):
        return text


def _annotation(flow: NpsFlow[Any, Any], name: str) -> Any:
    signature = flow.signature
    field = signature.params_model.model_fields.get(name)
    if field is not None:
        return field.annotation
    exposed = signature.exposed_signature().parameters.get(name)
    if exposed is None or name == signature.event_name:
        return None
    return exposed.annotation


def local_parameters(
    flow: NpsFlow[Any, Any],
    event: bytes | None,
    param_texts: Mapping[str, str],
    *,
    event_file: str = "the event",
) -> dict[str, Any]:
    """The validated parameters of a local run, as production would give them.

    `param_texts` are the `--param NAME=TEXT` pairs, read with `param_from_text`. A DPP
    event's own `parameters` apply first (the gateway passes them the same way), then
    `param_texts`. Everything is checked before any Prefect server is started.

    Raises:
        ParameterError: the event or a parameter does not fit the flow; each line names where
            the value came from (`--param NAME`, or `event_file`).
    """
    signature = flow.signature
    parameters = {name: param_from_text(flow, name, text) for name, text in param_texts.items()}
    event_parameters: Mapping[str, Any] = {}
    try:
        if event is not None:
            if signature.event_name is None:
                problem = EventProblem(
                    path="--event", found="an event", expected="no event (the flow takes none)"
                )
                raise ParameterError(flow.name, [problem])
            parameters[signature.event_name] = event
        prepared = prepare_call(signature, parameters)
        if isinstance(prepared.event, DppEvent) and prepared.event.parameters:
            event_parameters = prepared.event.parameters
            parameters[signature.event_name or "event"] = prepared.event  # parsed once
            prepared = prepare_call(signature, {**event_parameters, **parameters})
    except ParameterError as exc:
        problems = [
            _with_source(p, signature.event_name, param_texts, event_parameters, event_file)
            for p in exc.problems
        ]
        raise ParameterError(flow.name, problems) from None
    if isinstance(prepared.event, WebhookEvent | DppEvent | Task):
        # Over Prefect's parameter limit an event travels by reference, as from the gateway.
        limit = get_settings().claim_check_bytes
        prepared.event = pass_large_by_reference(prepared.event, limit)
    return prepared.as_parameters(signature)


def _with_source(
    problem: EventProblem,
    event_name: str | None,
    param_texts: Mapping[str, str],
    event_parameters: Mapping[str, Any],
    event_file: str,
) -> EventProblem:
    """Name where a bad value came from: `--param NAME`, or the event file."""
    key = re.split(r"[.\[]", problem.path, maxsplit=1)[0]
    if key in param_texts:
        return problem.model_copy(update={"path": f"--param {problem.path}"})
    if key == event_name:
        if problem.found == "nothing" and problem.path == event_name:
            return problem.model_copy(
                update={"expected": f"{problem.expected} (give one with --event FILE.json)"}
            )
        return problem.model_copy(update={"path": f"{event_file}: {problem.path}"})
    if key in event_parameters:
        return problem.model_copy(update={"path": f"{event_file}: parameters.{problem.path}"})
    if problem.found == "nothing":
        return problem.model_copy(
            update={"expected": f"{problem.expected} (give it with --param {key}=VALUE)"}
        )
    return problem


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


def check_submit(flow: NpsFlow[Any, Any], parameters: Mapping[str, Any]) -> None:
    """Check, before a run, that its DPP result can be sent to SamaHub.

    Raises:
        SettingsError: the flow takes no DPP event (nothing to send), or `SAMA_DPP_URL` or
            `SAMA_DPP_KEY` is not set; the message names each and the fix.
    """
    from libnar.settings import get_settings

    event = parameters.get(flow.signature.event_name or "event")
    if not isinstance(event, DppEvent):
        raise SettingsError(
            f"--submit: {flow.name} runs without a DPP event, so it has no result to send;"
            " leave out --submit"
        )
    try:
        settings = get_settings()
    except ValueError as exc:
        raise SettingsError(f"--submit: the settings are invalid: {exc}") from None
    missing = [
        name
        for name, value in (
            ("SAMA_DPP_URL", settings.sama_dpp_url),
            ("SAMA_DPP_KEY", settings.sama_dpp_key and settings.sama_dpp_key.get_secret_value()),
        )
        if not value
    ]
    if missing:
        raise SettingsError(
            f"--submit sends the result to SamaHub and needs {' and '.join(missing)}, which"
            f" {'is' if len(missing) == 1 else 'are'} not set: set"
            f" {'it' if len(missing) == 1 else 'them'} (SamaHub's DPP endpoint and key), or"
            " leave out --submit to only print the result"
        )


def describe_submission(
    flow: NpsFlow[Any, Any], parameters: Mapping[str, Any], done: LocalRun, *, submit: bool
) -> str | None:
    """What a DPP flow's run sent to SamaHub, in one line; None for a flow without DPP event."""
    event = parameters.get(flow.signature.event_name or "event")
    if not isinstance(event, DppEvent):
        return None
    if not submit:
        return "nothing (the result is only printed; add --submit to send it to SamaHub)"
    where = f"project {event.task.project_id}, task {event.task.id}"
    if done.is_completed:
        return f"the result to SamaHub ({where}, round {done.result().round})"
    from libnar.sama import SamaError, SamaTransportError

    error = done.state.result(raise_on_failure=False)
    if isinstance(error, SamaTransportError) and error.outcome_unknown:
        return f"unknown: the result may have reached SamaHub ({where}); its answer was lost"
    if isinstance(error, SamaError):
        return f"nothing: SamaHub did not take the result ({where}; the error says why)"
    return "nothing (the run failed before a result was sent)"
