"""Read an `@nps_flow` function's signature and turn raw run parameters into typed arguments.

Kept free of Prefect so the same checks serve `@nps_flow`, the build (deploy.json parameters)
and `libnar run` (bad arguments are refused before a Prefect server is started).
"""

from __future__ import annotations

import inspect
import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Union

import pydantic_core
from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model
from pydantic.config import JsonDict

from libnar.events import (
    DppEvent,
    EventError,
    EventProblem,
    Task,
    TaskReference,
    WebhookEvent,
    parse_as,
    parse_event,
)
from libnar.runs import (
    EVENT_SCHEMA_MARK,
    LEGACY_PARAMETER,
    REFERENCE_PARAMETERS,
    SPECIAL_PARAMETERS,
    ClaimReference,
    SpecialValues,
    split_special_parameters,
)

EventKind = type[WebhookEvent] | type[DppEvent] | type[Task]
EVENT_TYPES: tuple[EventKind, ...] = (WebhookEvent, DppEvent, Task)

_KIND_WORDS = {WebhookEvent: "a webhook event", DppEvent: "a DPP event", Task: "a task"}
_KIND_NAMES = {WebhookEvent: "webhook", DppEvent: "dpp", Task: "task"}


class ParameterError(ValueError):
    """Run parameters do not fit the flow; the message has one line per problem."""

    def __init__(self, flow_name: str, problems: list[EventProblem]) -> None:
        self.flow_name = flow_name
        self.problems = problems
        count = len(problems)
        lines = [
            f"invalid parameters for flow {flow_name!r} ({count} problem{'s' * (count != 1)}):"
        ]
        lines += [f"  {p}" for p in problems]
        super().__init__("\n".join(lines))


@dataclass(frozen=True)
class FlowSignature:
    """What an `@nps_flow` function takes: its event parameter and its other parameters."""

    flow_name: str
    event_name: str | None
    event_kinds: tuple[EventKind, ...]
    event_required: bool
    user_names: tuple[str, ...]
    params_model: type[BaseModel]
    user_signature: inspect.Signature = field(repr=False)

    @property
    def accepted(self) -> tuple[str, ...]:
        """Every parameter name a run may carry, in the order users see them."""
        names = list(self.user_signature.parameters)
        if self.event_name is not None:
            names += [*self._reference_names, LEGACY_PARAMETER]
        return (*names, *SPECIAL_PARAMETERS)

    @property
    def _reference_names(self) -> tuple[str, ...]:
        if DppEvent in self.event_kinds or Task in self.event_kinds:
            return REFERENCE_PARAMETERS
        return REFERENCE_PARAMETERS[:2]

    @property
    def event_description(self) -> str:
        """The accepted event kinds in words: `a DPP event or a task`."""
        return " or ".join(_KIND_WORDS[k] for k in self.event_kinds)

    def exposed_signature(self) -> inspect.Signature:
        """The signature Prefect sees: keyword-only, the event optional, libnar's extras added.

        It drives Prefect's parameter schema (deployment forms in the UI, server-side checks),
        so a manual run can give `project_id` and `task_id` instead of a whole event.
        """
        kw = inspect.Parameter.KEYWORD_ONLY
        params = []
        for p in self.user_signature.parameters.values():
            if p.name == self.event_name:
                # The mark lets the gateway find the event parameter in the deployment's
                # schema, whatever its name (Prefect merges a Field default's schema extras).
                mark: JsonDict = {EVENT_SCHEMA_MARK: [_KIND_NAMES[k] for k in self.event_kinds]}
                default = Field(default=None, json_schema_extra=mark)
                annotation = _exposed_event_type(self.event_kinds)
                params.append(inspect.Parameter(p.name, kw, default=default, annotation=annotation))
            else:
                params.append(p.replace(kind=kw))
        if self.event_name is not None:
            id_type = str | int | None
            params.append(inspect.Parameter("project_id", kw, default=None, annotation=id_type))
            params.append(inspect.Parameter("task_id", kw, default=None, annotation=id_type))
            if "round" in self._reference_names:
                params.append(inspect.Parameter("round", kw, default=None, annotation=int | None))
            params.append(
                inspect.Parameter(
                    LEGACY_PARAMETER, kw, default=None, annotation=dict[str, Any] | None
                )
            )
        params.append(inspect.Parameter("dep_name", kw, default=None, annotation=str | None))
        params.append(inspect.Parameter("no_round", kw, default=False, annotation=bool))
        return inspect.Signature(params, return_annotation=self.user_signature.return_annotation)


def _exposed_event_type(kinds: tuple[EventKind, ...]) -> Any:
    # A task-only flow also takes whole events (the gateway always sends one); every event
    # parameter also takes a claim reference (a large event kept by the gateway).
    shown: tuple[Any, ...] = (WebhookEvent, DppEvent, Task) if kinds == (Task,) else kinds
    return Union[(*shown, dict[str, ClaimReference], None)]


#: What an event parameter holds once validated: an event, or a reference to fetch it by.
EventValue = WebhookEvent | DppEvent | Task | TaskReference | ClaimReference


@dataclass
class PreparedCall:
    """Validated arguments of one run: the event (or a reference to fetch) and the rest."""

    event: EventValue | None
    kwargs: dict[str, Any]
    special: SpecialValues = field(default_factory=SpecialValues)

    @property
    def dep_name(self) -> str | None:
        """The `dep_name` special parameter."""
        return self.special.dep_name

    @property
    def no_round(self) -> bool:
        """The `no_round` special parameter."""
        return self.special.no_round

    def as_parameters(self, signature: FlowSignature) -> dict[str, Any]:
        """The validated values keyed by the exposed signature's names."""
        values = dict(self.kwargs)
        if signature.event_name is not None:
            event = self.event
            values[signature.event_name] = (
                event.as_parameter() if isinstance(event, ClaimReference) else event
            )
        values.update(dep_name=self.special.dep_name, no_round=self.special.no_round)
        return values


def read_signature(fn: Callable[..., Any], flow_name: str) -> FlowSignature:
    """Find the event parameter by its annotation and model the other parameters.

    Raises:
        TypeError: the function takes `*args`/`**kwargs`, uses a reserved name, has more
            than one event parameter, or an `event` parameter without annotation.
    """
    signature = inspect.signature(fn)
    # libnar's own models resolve even when imported inside a function (with postponed
    # annotations, `get_type_hints` sees only the module's globals).
    known = {"WebhookEvent": WebhookEvent, "DppEvent": DppEvent, "Task": Task}
    try:
        hints = typing.get_type_hints(fn, localns=known)
    except NameError as exc:
        raise TypeError(
            f"@nps_flow {flow_name}: cannot resolve a type annotation ({exc}); import the"
            " types the function's annotations name at module level"
        ) from None
    event_name: str | None = None
    event_kinds: tuple[EventKind, ...] = ()
    event_required = False
    fields: dict[str, Any] = {}
    for p in signature.parameters.values():
        if p.kind in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD):
            raise TypeError(
                f"@nps_flow {flow_name}: parameter '{p.name}' is variadic; give each parameter"
                " a name and a type so runs can be validated"
            )
        if p.name == "event" and p.name not in hints:
            raise TypeError(
                f"@nps_flow {flow_name}: parameter 'event' has no annotation, so libnar cannot"
                " tell which event the flow takes; annotate it: event: DppEvent (custom"
                " post-processing), event: WebhookEvent (webhooks) or event: Task (either)"
            )
        annotation = hints.get(p.name, Any)
        kinds = _event_kinds(annotation)
        if kinds:
            if event_name is not None:
                raise TypeError(
                    f"@nps_flow {flow_name}: both '{event_name}' and '{p.name}' are annotated"
                    " as events; a flow takes one event parameter"
                )
            event_name, event_kinds = p.name, kinds
            event_required = p.default is inspect.Parameter.empty
            continue
        default = ... if p.default is inspect.Parameter.empty else p.default
        fields[p.name] = (annotation, default)
    reserved = set(SPECIAL_PARAMETERS)
    if event_name is not None:
        reserved |= {*REFERENCE_PARAMETERS, LEGACY_PARAMETER}
    clash = sorted(reserved & set(fields))
    if clash:
        raise TypeError(
            f"@nps_flow {flow_name}: parameter name(s) {', '.join(clash)} are reserved by libnar"
            " (special parameters and task references); rename them"
        )
    model = create_model(
        f"{flow_name}_parameters",
        __config__=ConfigDict(arbitrary_types_allowed=True, extra="forbid"),
        **fields,
    )
    return FlowSignature(
        flow_name=flow_name,
        event_name=event_name,
        event_kinds=event_kinds,
        event_required=event_required,
        user_names=tuple(fields),
        params_model=model,
        user_signature=signature,
    )


def _event_kinds(annotation: Any) -> tuple[EventKind, ...]:
    """The event models an annotation names: one model, or a union of them (None ignored)."""
    if annotation in EVENT_TYPES:
        return (annotation,)
    origin = typing.get_origin(annotation)
    if origin is Union or origin is types.UnionType:
        members = [a for a in typing.get_args(annotation) if a is not type(None)]
        if members and all(m in EVENT_TYPES for m in members):
            return tuple(k for k in EVENT_TYPES if k in members)
    return ()


def prepare_call(
    signature: FlowSignature, parameters: Mapping[str, Any], *, partial: bool = False
) -> PreparedCall:
    """Validate run parameters; collect every problem and raise them together.

    Accepts the event as a model, a dict, or JSON str/bytes; `project_id` + `task_id` (+
    `round`) or the earlier system's `param` dict instead of an event; and the special
    parameters `dep_name` and `no_round`, which are returned apart and never reach the function.
    With `partial`, missing values are not problems (a deployment's defaults: the event and
    the rest may come with each run); wrong ones still are.

    Raises:
        ParameterError: one line per problem, naming the parameter and what was expected.
    """
    problems: list[EventProblem] = []
    accepted = signature.accepted
    raw = dict(parameters)

    for name in raw:
        if name not in accepted:
            problems.append(_unknown(name, accepted))

    reference_values: dict[str, Any] = {}
    if signature.event_name is not None:
        legacy = raw.get(LEGACY_PARAMETER)
        if legacy is not None:
            if not isinstance(legacy, Mapping):
                problems.append(
                    EventProblem(
                        path=LEGACY_PARAMETER,
                        found=type(legacy).__name__,
                        expected="an object with project_id, task_id and optional round",
                    )
                )
            else:
                for key, value in legacy.items():
                    if key in REFERENCE_PARAMETERS:
                        reference_values[key] = value
                    elif key in signature.user_names:
                        # `param` wins: Prefect fills top-level defaults in before validation,
                        # so a top-level value cannot be told from a default here.
                        raw[key] = value
                    else:
                        problems.append(_unknown(f"{LEGACY_PARAMETER}.{key}", accepted))
        for key in REFERENCE_PARAMETERS:
            if raw.get(key) is not None:
                reference_values[key] = raw[key]

    event: EventValue | None = None
    if signature.event_name is not None:
        given = raw.get(signature.event_name)
        claim_problems: list[EventProblem] = []
        claim = _claim_reference(given, signature.event_name, claim_problems)
        problems += claim_problems
        if isinstance(given, TaskReference):
            event = given  # validated before: Prefect validates, then the runner again
        elif claim is not None:
            event = claim
        elif given is not None and not claim_problems:
            try:
                event = coerce_event(signature, given)
            except EventError as exc:
                problems += [_prefixed(p, signature.event_name) for p in exc.problems]
        elif reference_values and not (partial and not _is_complete(reference_values)):
            event = _reference(reference_values, problems)
        elif signature.event_required and not partial:
            problems.append(
                EventProblem(
                    path=signature.event_name,
                    found="nothing",
                    expected=f"{signature.event_description}, or project_id and task_id"
                    " to fetch the task",
                )
            )

    user_values = {k: raw[k] for k in signature.user_names if k in raw}
    kwargs: dict[str, Any] = {}
    try:
        validated = signature.params_model.model_validate(user_values)
        kwargs = {name: getattr(validated, name) for name in signature.user_names}
    except ValidationError as exc:
        problems += [
            p
            for p, error in zip(
                EventError.from_validation_error("parameters", exc).problems,
                exc.errors(include_url=False),
                strict=True,
            )
            if not (partial and error["type"] == "missing" and len(error["loc"]) == 1)
        ]

    _, special, special_problems = split_special_parameters(
        {k: raw[k] for k in SPECIAL_PARAMETERS if k in raw}
    )
    problems += special_problems

    if problems:
        raise ParameterError(signature.flow_name, problems)
    return PreparedCall(event=event, kwargs=kwargs, special=special)


def _claim_reference(value: Any, name: str, problems: list[EventProblem]) -> ClaimReference | None:
    """The claim reference an event parameter holds, or None; a malformed one is a problem."""
    try:
        return ClaimReference.from_parameter(value)
    except ValidationError as exc:
        problems += EventError.from_validation_error(
            "claim reference", exc, prefix=f"{name}.libnar_claim"
        ).problems
        return None


def check_parameters(
    signature: FlowSignature, parameters: Mapping[str, Any], *, partial: bool = False
) -> list[str]:
    """Every problem of a parameter dict as one line each; empty when it is valid.

    With `partial`, missing values are allowed (see `prepare_call`).
    """
    try:
        prepare_call(signature, parameters, partial=partial)
    except ParameterError as exc:
        return [str(p) for p in exc.problems]
    return []


def coerce_event(signature: FlowSignature, value: Any) -> WebhookEvent | DppEvent | Task:
    """Turn a model, dict or JSON str/bytes into one of the flow's accepted event kinds.

    Raises:
        EventError: the value is not an accepted event; one line per problem.
    """
    kinds = signature.event_kinds
    if isinstance(value, kinds):
        return value
    if isinstance(value, WebhookEvent | DppEvent) and Task in kinds:
        return value.task
    if isinstance(value, BaseModel):
        raise EventError(
            "event",
            [
                EventProblem(
                    path="body",
                    found=type(value).__name__,
                    expected=signature.event_description,
                )
            ],
        )
    if isinstance(value, bytes | bytearray | str) and kinds == (Task,):
        try:
            value = pydantic_core.from_json(value)
        except ValueError as exc:
            raise EventError(
                "task",
                [
                    EventProblem(
                        path="body", found=f"invalid JSON ({exc})", expected="a JSON object"
                    )
                ],
            ) from None
    if not isinstance(value, Mapping | bytes | bytearray | str):
        raise EventError(
            "event",
            [
                EventProblem(
                    path="body",
                    found=type(value).__name__,
                    expected=f"{signature.event_description} as an object or JSON",
                )
            ],
        )
    if kinds == (Task,):
        assert isinstance(value, Mapping)  # JSON that is no object was refused above
        body = value["task"] if isinstance(value.get("task"), Mapping) else value
        return parse_as(Task, body)
    if Task in kinds and isinstance(value, Mapping) and "task" not in value:
        return parse_as(Task, value)
    event_kinds = [k for k in kinds if k is not Task]
    if len(event_kinds) == 1:
        return parse_as(event_kinds[0], value)
    # Both event kinds accepted: the payload's shape decides which one it is.
    return parse_event(value)


def _is_complete(values: dict[str, Any]) -> bool:
    return values.get("project_id") is not None and values.get("task_id") is not None


def _reference(values: dict[str, Any], problems: list[EventProblem]) -> TaskReference | None:
    missing = [k for k in ("project_id", "task_id") if values.get(k) is None]
    if missing:
        problems += [
            EventProblem(
                path=k,
                found="nothing",
                expected="a value: a task reference needs both project_id and task_id",
            )
            for k in missing
        ]
        return None
    try:
        return TaskReference.model_validate(values)
    except ValidationError as exc:
        problems += EventError.from_validation_error("reference", exc).problems
        return None


def _unknown(name: str, accepted: tuple[str, ...]) -> EventProblem:
    return EventProblem(
        path=name,
        found="an unknown parameter",
        expected=f"one of: {', '.join(accepted)}",
    )


def _prefixed(problem: EventProblem, prefix: str) -> EventProblem:
    path = prefix if problem.path == "body" else f"{prefix}.{problem.path}"
    return EventProblem(path=path, found=problem.found, expected=problem.expected)
