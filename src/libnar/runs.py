"""The rules of a run, in one place: what the flow, the gateway and `libnar run` all apply.

- **Special parameters** (`dep_name`, `no_round`, and the run's resources `amount`, `cpu`,
  `memory`, `disk`): accepted by every NPS flow, checked here, never passed to the flow
  function. Resources are checked for form here and against the deployment's infra with the
  build's rules (`libnar.resources`); they become the run's job variables and its
  `amount:<preset>` tag.
- **Task references** (`project_id`, `task_id`, `round`, or the earlier `param` wrapper): what a
  scheduled or manual run carries instead of an event.
- **The event parameter**: the parameter annotated with an event model, under any name. Its
  entry in a deployment's parameter schema carries `x-libnar-event`, so the gateway finds it
  without importing the flow.
- **Claim references**: an event too large to travel as a Prefect parameter is kept by the
  gateway (or by `libnar run`) and the run carries a small `ClaimReference` instead.
- **Name and tags** of a run: `<flow>-<project>-<task>[-r<round>]`, `project:`, `task:`,
  `source:`, `state:`, `round:`.
- **The identity of a delivery**: the same event with the same parameters is one run; the same
  event with other parameters is another.

Layer 1: pydantic only, no Prefect, no HTTP.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping
from typing import Any, Literal, NamedTuple

import pydantic_core
from pydantic import BaseModel, ConfigDict, Field

from libnar.events import (
    DppEvent,
    EventProblem,
    Task,
    TaskReference,
    WebhookEvent,
    short_text,
)
from libnar.naming import check_deployment_name
from libnar.resources import RESOURCE_PARAMETERS, RunResources, parse_run_resources

__all__ = [
    "CLAIM_KEY",
    "EVENT_SCHEMA_MARK",
    "LEGACY_PARAMETER",
    "REFERENCE_PARAMETERS",
    "RESOURCE_PARAMETERS",
    "SPECIAL_PARAMETERS",
    "ClaimReference",
    "RunResources",
    "RunSubject",
    "SpecialValues",
    "canonical_json",
    "delivery_key",
    "event_parameter_of",
    "run_name",
    "run_tags",
    "split_special_parameters",
    "subject_of",
]

#: Parameters every NPS flow accepts that choose how the run is made; never given to the flow.
SPECIAL_PARAMETERS = ("dep_name", "no_round", *RESOURCE_PARAMETERS)
#: Parameters that point at a task to fetch when no event is given (scheduled and manual runs).
REFERENCE_PARAMETERS = ("project_id", "task_id", "round")
#: The earlier system's wrapper: `{"param": {"project_id", "task_id", "round"?, ...extra}}`.
LEGACY_PARAMETER = "param"
#: The key in a deployment's parameter schema that marks the event parameter; its value lists
#: the event kinds the flow accepts (`webhook`, `dpp`, `task`).
EVENT_SCHEMA_MARK = "x-libnar-event"
#: The single key of a parameter value that is a claim reference, not an event.
CLAIM_KEY = "libnar_claim"

EventKindName = Literal["webhook", "dpp", "task"]


# -- special parameters --------------------------------------------------------------------


class SpecialValues(NamedTuple):
    """The special parameters of one run, checked."""

    dep_name: str | None = None
    no_round: bool = False
    resources: RunResources | None = None
    """The run's own resources (`amount`, `cpu`, `memory`, `disk`), None: the deployment's."""


def split_special_parameters(
    parameters: Mapping[str, Any], where: str = ""
) -> tuple[dict[str, Any], SpecialValues, list[EventProblem]]:
    """Take the special parameters out of `parameters` and check them.

    Returns the other parameters, the special values, and one problem per bad value (paths
    prefixed with `where`, e.g. `token.parameters`).
    """
    prefix = f"{where}." if where else ""
    rest = dict(parameters)
    dep_name = rest.pop("dep_name", None)
    no_round = rest.pop("no_round", False)
    resource_values = {k: rest.pop(k) for k in RESOURCE_PARAMETERS if k in rest}
    problems: list[EventProblem] = []
    resources, resource_problems = parse_run_resources(resource_values)
    problems += [
        EventProblem(path=f"{prefix}{key}", found=found, expected=expected)
        for key, found, expected in resource_problems
    ]
    if dep_name is not None:
        problem = (
            check_deployment_name(dep_name)
            if isinstance(dep_name, str)
            else "a deployment name (a string)"
        )
        if problem:
            problems.append(
                EventProblem(path=f"{prefix}dep_name", found=short_text(dep_name), expected=problem)
            )
            dep_name = None
    if not isinstance(no_round, bool):
        problems.append(
            EventProblem(
                path=f"{prefix}no_round", found=short_text(no_round), expected="true or false"
            )
        )
        no_round = False
    return rest, SpecialValues(dep_name, no_round, resources), problems


# -- the event parameter -------------------------------------------------------------------


def event_parameter_of(schema: Mapping[str, Any] | None) -> tuple[str, tuple[str, ...]] | None:
    """The event parameter's name and accepted kinds, read from a deployment's parameter schema.

    An `@nps_flow` marks its event parameter with `x-libnar-event` (whatever its name). A
    deployment of another flow that has a parameter named `event` is taken to accept any event.
    None when the flow takes no event.
    """
    properties = (schema or {}).get("properties")
    if not isinstance(properties, Mapping):
        return None
    for name, spec in properties.items():
        if isinstance(spec, Mapping) and isinstance(spec.get(EVENT_SCHEMA_MARK), list):
            kinds = tuple(str(k) for k in spec[EVENT_SCHEMA_MARK])
            return str(name), kinds
    if "event" in properties:
        return "event", ("webhook", "dpp", "task")
    return None


# -- claim references ----------------------------------------------------------------------


class ClaimReference(BaseModel):
    """Where a large event is kept, and enough of it to name and tag the run.

    The run's event parameter is `{"libnar_claim": {...}}`; `@nps_flow` fetches the body from
    `url` (the gateway's `/claims/...` endpoint with `token`, or a `file://` path for local
    runs), checks its size and SHA-256, and parses it before the flow function runs.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    url: str = Field(description="Where the body is: the gateway's claims endpoint or file://.")
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$", description="SHA-256 of the body (hex).")
    size: int = Field(ge=0, description="Size of the body in bytes.")
    token: str | None = Field(default=None, repr=False, description="Bearer token for `url`.")
    source: Literal["webhook", "dpp", "task"]
    project_id: str
    task_id: str
    round: int | None = None
    state: str | None = None

    def as_parameter(self) -> dict[str, Any]:
        """The parameter value a run carries: `{"libnar_claim": {...}}`."""
        return {CLAIM_KEY: self.model_dump(mode="json", exclude_none=True)}

    @classmethod
    def from_parameter(cls, value: Any) -> ClaimReference | None:
        """The reference a parameter value holds, or None when it is not one.

        Only a mapping with the single key `libnar_claim` is a reference: a SamaHub event
        always has `task`, so no event a sender writes can pass for one.
        """
        if isinstance(value, ClaimReference):
            return value
        if isinstance(value, Mapping) and len(value) == 1 and CLAIM_KEY in value:
            return cls.model_validate(value[CLAIM_KEY])
        return None


# -- name and tags -------------------------------------------------------------------------


class RunSubject(NamedTuple):
    """What a run is about: the parts of its name and tags."""

    project_id: str
    task_id: str
    source: str | None = None
    state: str | None = None
    round: int | None = None


def subject_of(
    event: WebhookEvent | DppEvent | Task | TaskReference | ClaimReference,
) -> RunSubject:
    """The subject of a run given an event, a task, a task reference or a claim reference."""
    if isinstance(event, WebhookEvent | DppEvent):
        task = event.task
        return RunSubject(
            task.project_id,
            task.id,
            event.source,
            None if task.state is None else str(task.state),
            task.round,
        )
    if isinstance(event, Task):
        state = None if event.state is None else str(event.state)
        return RunSubject(event.project_id, event.id, None, state, event.round)
    if isinstance(event, TaskReference):
        return RunSubject(event.project_id, event.task_id, "reference", None, event.round)
    return RunSubject(event.project_id, event.task_id, event.source, event.state, event.round)


def run_name(
    flow_name: str, event: WebhookEvent | DppEvent | Task | TaskReference | ClaimReference
) -> str:
    """`<flow>-<project_id>-<task_id>`, with `-r<round>` for DPP events and references."""
    subject = subject_of(event)
    name = f"{flow_name}-{subject.project_id}-{subject.task_id}"
    if subject.round is not None and subject.source in ("dpp", "reference"):
        name += f"-r{subject.round}"
    return name


def run_tags(
    event: WebhookEvent | DppEvent | Task | TaskReference | ClaimReference,
    *,
    no_round: bool = False,
    resources: RunResources | None = None,
) -> list[str]:
    """Prefect tags for the run: `project:`, `task:`, `source:`, `state:`, `round:`, `amount:`.

    `no_round` drops the round tag (the earlier system's `no_round` parameter); `resources`,
    a run's own resources, add `amount:<preset>`.
    """
    subject = subject_of(event)
    tags = [f"project:{subject.project_id}", f"task:{subject.task_id}"]
    if subject.source is not None:
        tags.append(f"source:{subject.source}")
    if subject.state is not None:
        tags.append(f"state:{subject.state}")
    if subject.round is not None and not no_round:
        tags.append(f"round:{subject.round}")
    if resources is not None and resources.tag is not None:
        tags.append(resources.tag)
    return tags


# -- the identity of a delivery ------------------------------------------------------------


def canonical_json(value: Any) -> bytes:
    """JSON with sorted keys and no spaces: equal values give equal bytes.

    Key order and spelling (`"\\u0041"` vs `"A"`, `1e2` vs `100.0`) do not count; the type of a
    number does (`1` and `1.0` are different values to a flow that reads them).
    """
    return pydantic_core.to_json(_sorted(value))


def _sorted(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _sorted(value[k]) for k in sorted(value, key=str)}
    if isinstance(value, list | tuple):
        return [_sorted(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return value


def delivery_key(event: WebhookEvent | DppEvent, parameters: Mapping[str, Any]) -> str:
    """The identity of one delivery: the event's own key and the run parameters it carries.

    `parameters` are the token's (webhook) or the DPP request's parameters, special ones
    included, except `dep_name` (it picks the deployment, which is part of every key already).
    The same event with the same parameters gives the same key; other parameters give another.
    An event without parameters keeps its own key.
    """
    chosen = {k: v for k, v in parameters.items() if k != "dep_name"}
    if not chosen:
        return event.idempotency_key
    digest = hashlib.blake2b(canonical_json(chosen), digest_size=8).hexdigest()
    return f"{event.idempotency_key}-p{digest}"
