"""Typed SamaHub payloads: tasks, webhook events, DPP events and DPP results.

Everything here follows `reference/samahub.md`. Parsing is lenient where SamaHub is known to be
inconsistent (`project_id` as int or str, odd timestamp formats, unknown states, unknown fields)
and strict where a wrong value would silently do harm (a DPP event without an integer round).

This module imports pydantic only: no Prefect, no HTTP client.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Any, ClassVar, Literal, TypeAlias

import pydantic_core
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    ValidationError,
    WithJsonSchema,
)

__all__ = [
    "DppEvent",
    "DppResult",
    "DppTask",
    "Event",
    "EventError",
    "EventProblem",
    "Task",
    "TaskReference",
    "TaskState",
    "WebhookEvent",
    "event_json_schema",
    "parse_event",
]


class TaskState(StrEnum):
    """The task states SamaHub documents. Unknown states are kept as plain strings."""

    NEW = "new"
    IN_PROGRESS = "in progress"
    COMPLETED = "completed"
    APPROVED = "approved"
    DELIVERED = "delivered"
    ACKNOWLEDGED = "acknowledged"
    REJECTED = "rejected"


class SamaTimestamp(datetime):
    """A UTC `datetime` that remembers the exact text SamaHub sent.

    Re-serialising a task gives back the original string, so a parsed and re-sent payload is
    byte-for-byte what SamaHub wrote (`2023-01-30T22:23:33.712Z` stays as it is).
    """

    raw: str | None = None


_TIMESTAMP_HINT = "an ISO-8601 timestamp such as 2023-01-30T22:23:33.712Z"
_TRAILING_ZONE_NAME = re.compile(r"\s*(?:UTC|GMT)$", re.IGNORECASE)
_DATETIME = pydantic_core.SchemaValidator(pydantic_core.core_schema.datetime_schema())


def _parse_timestamp(value: Any) -> Any:
    """Parse the timestamp formats SamaHub is known to send; naive values are taken as UTC."""
    if value is None or isinstance(value, SamaTimestamp):
        return value
    if isinstance(value, datetime):
        return _in_utc_range(value if value.tzinfo else value.replace(tzinfo=UTC))
    if not isinstance(value, str):
        raise ValueError(f"expected {_TIMESTAMP_HINT}")
    text = value.strip()
    # Old examples carry "2019-05-14 19:46:37 UTC"; pydantic's parser wants an offset instead.
    candidate = _TRAILING_ZONE_NAME.sub("", text)
    try:
        parsed = _DATETIME.validate_python(candidate)
    except ValidationError:
        raise ValueError(f"expected {_TIMESTAMP_HINT}") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    _in_utc_range(parsed)
    stamp = SamaTimestamp(
        parsed.year,
        parsed.month,
        parsed.day,
        parsed.hour,
        parsed.minute,
        parsed.second,
        parsed.microsecond,
        tzinfo=parsed.tzinfo,
    )
    stamp.raw = value
    return stamp


def _in_utc_range(value: datetime) -> datetime:
    """Refuse an instant that has no UTC time (`9999-12-31T23:00:00-05:00` is in year 10000)."""
    try:
        value.astimezone(UTC)
    except OverflowError:
        raise ValueError(
            f"{_TIMESTAMP_HINT}, between the years 1 and 9999 once converted to UTC"
        ) from None
    return value


def _serialize_timestamp(value: datetime | None) -> str | None:
    if value is None:
        return None
    raw = getattr(value, "raw", None)
    return raw if raw is not None else value.isoformat()


Timestamp: TypeAlias = Annotated[
    datetime | None,
    BeforeValidator(_parse_timestamp),
    PlainSerializer(_serialize_timestamp, when_used="always"),
    # No "format": SamaHub's older timestamps are not strict RFC 3339, and Prefect's server
    # checks deployment parameters against this schema.
    WithJsonSchema(
        {"anyOf": [{"type": "string"}, {"type": "null"}], "description": _TIMESTAMP_HINT}
    ),
]


def _parse_state(value: Any) -> TaskState | str | None:
    if value is None or isinstance(value, TaskState):
        return value
    if not isinstance(value, str):
        raise ValueError("expected a task state string such as 'delivered'")
    try:
        return TaskState(value)
    except ValueError:
        return value  # a state SamaHub added later: keep it readable, never fail on it


State: TypeAlias = Annotated[
    TaskState | str | None,
    BeforeValidator(_parse_state),
    PlainSerializer(lambda v: None if v is None else str(v), when_used="always"),
    WithJsonSchema(
        {
            "anyOf": [
                {"enum": [s.value for s in TaskState], "type": "string"},
                {"type": "string"},
                {"type": "null"},
            ],
            "description": "A known task state, or any other string SamaHub sends.",
        }
    ),
]


def _id_as_text(value: Any) -> Any:
    """SamaHub sends ids as int or str; libnar exposes str (a bool is no id)."""
    if isinstance(value, bool):
        raise ValueError("expected an id (int or str)")
    return str(value) if isinstance(value, int) else value


IdText: TypeAlias = Annotated[
    str,
    BeforeValidator(_id_as_text),
    WithJsonSchema({"anyOf": [{"type": "string"}, {"type": "integer"}]}),
]


class _KeepsUnsetOut(BaseModel):
    """Base for payload models: extra fields are kept, unset optional fields are not invented.

    `model_dump()` of a parsed payload has exactly the keys the payload had, so a task parsed and
    re-serialised is the task SamaHub sent (apart from the documented `project_id` to str).
    """

    model_config = ConfigDict(extra="allow", populate_by_name=True)

    def model_dump(self, **kwargs: Any) -> dict[str, Any]:
        kwargs.setdefault("exclude_unset", True)
        return super().model_dump(**kwargs)

    def model_dump_json(self, **kwargs: Any) -> str:
        kwargs.setdefault("exclude_unset", True)
        return super().model_dump_json(**kwargs)


class Task(_KeepsUnsetOut):
    """A SamaHub task in delivery format.

    `project_id` is accepted as int or str and always exposed as `str`. Timestamps are aware
    UTC datetimes that re-serialise to the exact text received. Any field SamaHub adds that
    libnar does not know is kept and re-serialised unchanged.
    """

    id: str = Field(min_length=1, description="The task id (24 hex characters on SamaHub).")
    project_id: IdText = Field(description="The project id; SamaHub sends int or str.")
    state: State = None
    data: dict[str, Any] = Field(default_factory=dict, description="Task inputs by name.")
    answers: dict[str, Any] | None = Field(default=None, description="Task outputs by name.")
    created_at: Timestamp = None
    delivered_at: Timestamp = None
    batch_id: str | int | None = None
    client_batch_id: str | int | None = None
    round: int | None = Field(default=None, description="Delivery round; DPP payloads only.")

    @property
    def known_state(self) -> TaskState | None:
        """The state as a `TaskState`, or None when SamaHub sent a state libnar does not know."""
        return self.state if isinstance(self.state, TaskState) else None


class DppTask(Task):
    """A task in a DPP payload: like `Task`, but `round` is required."""

    round: int = Field(description="Delivery round this post-processing is for.")


class TaskReference(BaseModel):
    """Points at a task to fetch: what scheduled and manual runs pass instead of a full event."""

    model_config = ConfigDict(extra="forbid")

    project_id: IdText
    task_id: IdText
    round: int | None = None


def _digest(*parts: object) -> str:
    text = "\x1f".join("" if p is None else str(p) for p in parts)
    return hashlib.blake2b(text.encode(), digest_size=10).hexdigest()


def _utc_text(value: datetime | None) -> str:
    """Normalise a timestamp so the same instant written two ways gives the same key."""
    return "" if value is None else value.astimezone(UTC).isoformat()


class WebhookEvent(_KeepsUnsetOut):
    """What SamaHub POSTs to a webhook: `{"task": {...}}` in delivery format."""

    source: ClassVar[Literal["webhook"]] = "webhook"
    task: Task

    @property
    def idempotency_key(self) -> str:
        """A stable key for this delivery: the same bytes re-sent give the same key.

        Made of: project id, task id, state, `delivered_at` (as a UTC instant), `round` when
        present, and a digest of `answers` as sent. Rework that changes any of them (a new
        delivery time, round, state or answers) gives a new key.
        """
        task = self.task
        answers = pydantic_core.to_json(task.answers) if task.answers is not None else b""
        return "webhook-" + _digest(
            task.project_id,
            task.id,
            task.state,
            _utc_text(task.delivered_at),
            task.round,
            hashlib.blake2b(answers, digest_size=10).hexdigest(),
        )

    @property
    def tags(self) -> list[str]:
        """Prefect tags for a run of this event (see `libnar.runs.run_tags`)."""
        from libnar.runs import run_tags

        return run_tags(self)

    def run_name(self, flow_name: str) -> str:
        """The run name `<flow>-<project_id>-<task_id>` (see `libnar.runs.run_name`)."""
        from libnar.runs import run_name

        return run_name(flow_name, self)


class DppEvent(_KeepsUnsetOut):
    """What SamaHub POSTs for delivery post-processing: script name, parameters and the task."""

    source: ClassVar[Literal["dpp"]] = "dpp"
    name: str = Field(description="The script (flow) name configured in SamaHub.")
    parameters: dict[str, Any] | None = Field(
        default=None, description="The JSON parameters configured in SamaHub."
    )
    task: DppTask

    @property
    def round(self) -> int:
        """The delivery round this post-processing is for."""
        return self.task.round

    @property
    def idempotency_key(self) -> str:
        """A stable key for this request: project id, task id, round and script name.

        The script name counts without a trailing `.py` (SamaHub's field may carry it).
        """
        task = self.task
        script = self.name.strip().removesuffix(".py")
        return "dpp-" + _digest(task.project_id, task.id, task.round, script)

    @property
    def tags(self) -> list[str]:
        """Prefect tags for a run of this event (see `libnar.runs.run_tags`)."""
        from libnar.runs import run_tags

        return run_tags(self)

    def run_name(self, flow_name: str) -> str:
        """The run name `<flow>-<project_id>-<task_id>-r<round>` (see `libnar.runs.run_name`)."""
        from libnar.runs import run_name

        return run_name(flow_name, self)

    def result(
        self, answers: Mapping[str, Any] | None = None, data: Mapping[str, Any] | None = None
    ) -> DppResult:
        """Build the result for this event, keeping the round and whatever is not replaced."""
        return DppResult(
            round=self.round,
            data=dict(data) if data is not None else dict(self.task.data),
            answers=dict(answers) if answers is not None else dict(self.task.answers or {}),
        )


class DppResult(BaseModel):
    """The body of SamaHub's `post_processed` PUT: exactly `round`, `data` and `answers`."""

    model_config = ConfigDict(extra="forbid")

    round: int = Field(description="The delivery round the result is for.")
    data: dict[str, Any] = Field(description="The task's inputs to keep (SamaHub stores them).")
    answers: dict[str, Any] = Field(description="The post-processed answers.")


Event: TypeAlias = WebhookEvent | DppEvent


class EventProblem(BaseModel):
    """One problem found in a payload: where, what was found, what was expected."""

    path: str
    found: str
    expected: str

    def __str__(self) -> str:
        return f"{self.path}: found {self.found}; expected {self.expected}"


class EventError(ValueError):
    """A payload is not a valid SamaHub event; the message has one line per problem."""

    def __init__(self, what: str, problems: list[EventProblem]) -> None:
        self.problems = problems
        lines = [f"invalid {what} ({len(problems)} problem{'s' * (len(problems) != 1)}):"]
        lines += [f"  {p}" for p in problems]
        super().__init__("\n".join(lines))

    @classmethod
    def from_validation_error(
        cls, what: str, error: ValidationError, prefix: str = ""
    ) -> EventError:
        """Turn pydantic's errors into one readable line each."""
        return cls(what, [_problem(e, prefix) for e in error.errors(include_url=False)])


def _problem(error: Any, prefix: str = "") -> EventProblem:
    path = prefix
    for part in error["loc"]:
        if isinstance(part, int):
            path += f"[{part}]"
        elif not str(part).startswith(("function-", "nullable", "union")):
            path += f".{part}" if path else str(part)
    path = path or "body"
    kind = error["type"]
    if kind == "missing":
        return EventProblem(path=path, found="nothing", expected="a value (this field is required)")
    if kind == "json_invalid":
        detail = error.get("ctx", {}).get("error", "invalid JSON")
        return EventProblem(path="body", found=f"invalid JSON ({detail})", expected="a JSON object")
    if kind == "extra_forbidden":
        return EventProblem(path=path, found="an unknown field", expected="no such field")
    message = str(error["msg"]).replace("a valid dictionary", "a JSON object")
    message = message.replace("an object", "a JSON object")
    for lead in ("Value error, ", "Input should be ", "Assertion failed, "):
        message = message.removeprefix(lead)
    message = message.removeprefix("expected ")
    return EventProblem(path=path, found=short_text(error.get("input")), expected=message)


def short_text(value: Any, limit: int = 60) -> str:
    """A value as a short, single-line text for messages and logs (at most `limit` characters).

    Strings are shown with `repr`, so control characters are escaped and cannot forge a line.
    """
    if isinstance(value, dict):
        return "an object" if value else "an empty object"
    if isinstance(value, list):
        return "a list"
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


class _Envelope(BaseModel):
    """Either event shape, parsed once; `name` present means DPP."""

    model_config = ConfigDict(extra="allow")

    task: Task
    name: str | None = None
    parameters: dict[str, Any] | None = None


def parse_event(body: bytes | bytearray | str | Mapping[str, Any]) -> WebhookEvent | DppEvent:
    """Parse a SamaHub payload into a `WebhookEvent` or a `DppEvent`, chosen by its shape.

    A payload with a top-level `name` is a DPP request; one with only `task` is a webhook.
    Bytes and str are parsed by pydantic's JSON parser directly (no `json.loads` first).

    Raises:
        EventError: the payload is not JSON, not an object, or a field is wrong; the message
            has one line per problem.
    """
    try:
        if isinstance(body, Mapping):
            envelope = _Envelope.model_validate(body)
        elif isinstance(body, bytes | bytearray | str):
            envelope = _Envelope.model_validate_json(body)
        else:
            raise EventError(
                "event",
                [
                    EventProblem(
                        path="body",
                        found=type(body).__name__,
                        expected="JSON bytes, a JSON str or a mapping",
                    )
                ],
            )
    except ValidationError as exc:
        what = "DPP event" if _looks_like_dpp(body) else "event"
        raise EventError.from_validation_error(what, exc) from None
    fields = envelope.model_fields_set
    extra = envelope.model_extra or {}
    if "name" in fields:
        if envelope.name is None:
            raise EventError(
                "DPP event",
                [EventProblem(path="name", found="None", expected="the script name (a string)")],
            )
        if envelope.task.round is None:
            raise EventError(
                "DPP event",
                [EventProblem(path="task.round", found="nothing", expected="an integer round")],
            )
        task = envelope.task
        dpp_task = DppTask.model_construct(
            _fields_set=set(task.model_fields_set), **task.__dict__, **(task.model_extra or {})
        )
        return DppEvent.model_construct(
            _fields_set=fields & {"name", "parameters", "task"} | set(extra),
            name=envelope.name,
            parameters=envelope.parameters,
            task=dpp_task,
            **extra,
        )
    if "parameters" in fields:
        raise EventError(
            "event",
            [
                EventProblem(
                    path="name",
                    found="nothing",
                    expected="the script name: a payload with 'parameters' is a DPP request",
                )
            ],
        )
    return WebhookEvent.model_construct(_fields_set={"task", *extra}, task=envelope.task, **extra)


def _looks_like_dpp(body: object) -> bool:
    if isinstance(body, Mapping):
        return "name" in body
    return False


def parse_as(
    kind: type[WebhookEvent] | type[DppEvent] | type[Task],
    body: bytes | bytearray | str | Mapping[str, Any],
) -> WebhookEvent | DppEvent | Task:
    """Parse a payload as one given model, with `EventError` messages on failure.

    A DPP request (it has `name` or `parameters`) is refused as a webhook event, and a webhook
    event (only `task`) as a DPP request: each message says which kind the payload is, so it is
    sent where it fits instead of running with its parameters dropped.
    """
    what = {WebhookEvent: "webhook event", DppEvent: "DPP event", Task: "task"}[kind]
    try:
        if isinstance(body, Mapping):
            parsed = kind.model_validate(body)
        else:
            parsed = kind.model_validate_json(body)
    except ValidationError as exc:
        error = EventError.from_validation_error(what, exc)
        if kind is DppEvent and _is_missing_name(error) and "parameters" not in _keys(body):
            others = [p for p in error.problems if p.path != "name"]
            raise EventError(what, [WEBHOOK_SENT_AS_DPP, *others]) from None
        raise error from None
    if isinstance(parsed, WebhookEvent) and {"name", "parameters"} & set(parsed.model_extra or {}):
        raise EventError(what, [DPP_SENT_AS_WEBHOOK])
    return parsed


#: The problem of a DPP request given where a webhook event is expected.
DPP_SENT_AS_WEBHOOK = EventProblem(
    path="name",
    found="a DPP request (the payload has 'name' or 'parameters')",
    expected='a webhook event, {"task": {...}} alone; a DPP request goes to a flow that takes'
    " a DppEvent (the gateway's /dpp-event)",
)
#: The problem of a webhook event given where a DPP request is expected.
WEBHOOK_SENT_AS_DPP = EventProblem(
    path="name",
    found="nothing: the payload is a webhook event (only 'task')",
    expected="a DPP request with the script 'name' and the task's 'round'; a webhook event"
    " goes to a flow that takes a WebhookEvent (the gateway's /webhook-event)",
)


def _is_missing_name(error: EventError) -> bool:
    return any(p.path == "name" and p.found == "nothing" for p in error.problems)


def _keys(body: bytes | bytearray | str | Mapping[str, Any]) -> set[str]:
    if isinstance(body, Mapping):
        return set(body)
    try:
        parsed = pydantic_core.from_json(body)
    except ValueError:
        return set()
    return set(parsed) if isinstance(parsed, dict) else set()


_SCHEMA_MODELS: dict[str, type[BaseModel]] = {
    "webhook": WebhookEvent,
    "dpp": DppEvent,
    "result": DppResult,
    "task": Task,
}


def event_json_schema(kind: Literal["webhook", "dpp", "result", "task"]) -> dict[str, Any]:
    """The JSON Schema of a payload model, as `libnar schema KIND` prints it."""
    try:
        model = _SCHEMA_MODELS[kind]
    except KeyError:
        allowed = ", ".join(_SCHEMA_MODELS)
        raise ValueError(f"unknown schema {kind!r}; choose one of: {allowed}") from None
    return model.model_json_schema(mode="serialization" if kind == "result" else "validation")
