"""What a flow run exchanges with SamaHub: fetch the task of a reference, return DPP results.

A run given only `project_id` + `task_id` (a scheduled or manual run) gets its task fetched in
delivery format; a DPP flow's returned result is sent with the `post_processed` PUT after the
function returns. A failed send raises, so the run fails and Prefect's retries apply.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from libnar.events import (
    DppEvent,
    DppResult,
    DppTask,
    EventError,
    EventProblem,
    Task,
    TaskReference,
    WebhookEvent,
)
from libnar.flow._parameters import FlowSignature

if TYPE_CHECKING:
    from libnar.sama import AsyncSamaClient, SamaClient

__all__ = [
    "DppResultError",
    "check_result",
    "check_result_async",
    "event_from_task",
    "fetch_event",
    "fetch_event_async",
    "result_summary",
    "result_to_send",
]


class DppResultError(TypeError):
    """A DPP flow returned something that cannot be sent as a DPP result."""


def event_from_task(
    signature: FlowSignature, reference: TaskReference, task: Task
) -> WebhookEvent | DppEvent | Task:
    """Wrap a fetched task in the event kind the flow takes (a DPP event needs a round)."""
    kinds = signature.event_kinds
    round_ = reference.round if reference.round is not None else task.round
    wants_dpp = DppEvent in kinds and (round_ is not None or kinds == (DppEvent,))
    if wants_dpp:
        if round_ is None:
            raise EventError(
                "task reference",
                [
                    EventProblem(
                        path="round",
                        found="nothing",
                        expected="the delivery round: a DPP flow run by reference needs round=N",
                    )
                ],
            )
        dpp_task = DppTask.model_validate({**task.model_dump(), "round": round_})
        return DppEvent(name=signature.flow_name, parameters=None, task=dpp_task)
    if WebhookEvent in kinds:
        return WebhookEvent(task=task)
    return task


def fetch_event(
    signature: FlowSignature, reference: TaskReference
) -> WebhookEvent | DppEvent | Task:
    """Fetch the referenced task from SamaHub (settings give the URL and key)."""
    from libnar.sama import SamaClient

    with SamaClient() as client:
        task = client.get_task(reference.project_id, reference.task_id, same_as_delivery=True)
    return event_from_task(signature, reference, task)


async def fetch_event_async(
    signature: FlowSignature, reference: TaskReference
) -> WebhookEvent | DppEvent | Task:
    """Fetch the referenced task from SamaHub, without blocking the event loop."""
    from libnar.sama import AsyncSamaClient

    async with AsyncSamaClient() as client:
        task = await client.get_task(reference.project_id, reference.task_id, same_as_delivery=True)
    return event_from_task(signature, reference, task)


def result_to_send(flow_name: str, event: DppEvent, value: Any) -> DppResult:
    """Turn what a DPP flow returned into the `DppResult` to send.

    Accepted: a `DppResult`, or a mapping with `answers` and/or `data` (the rest is kept from
    the event, as `event.result()` does).

    Raises:
        DppResultError: the value is None or of another shape; the message says what to return.
    """
    fix = (
        "return event.result(answers=...) (or a dict with 'answers' and/or 'data'),"
        f" or decorate with @nps_flow(submit_result=False) if {flow_name} sends nothing"
    )
    if isinstance(value, DppResult):
        return value
    if isinstance(value, Mapping):
        value = {k: _plain_answers(v) if k == "answers" else v for k, v in value.items()}
        keys = set(value)
        extra = sorted(keys - {"answers", "data", "round"})
        if extra or not keys & {"answers", "data"}:
            found = ", ".join(map(repr, sorted(keys))) or "no keys"
            raise DppResultError(
                f"{flow_name} returned a dict with {found}; a DPP result takes 'answers' and/or"
                f" 'data' only: {fix}"
            )
        result = event.result(answers=value.get("answers"), data=value.get("data"))
        if value.get("round") is not None:
            result = result.model_copy(update={"round": int(value["round"])})
        return result
    raise DppResultError(f"{flow_name} returned {type(value).__name__}, not a DPP result: {fix}")


def result_summary(event: DppEvent, result: DppResult) -> str:
    """A short Markdown note of what was sent, for the run's Prefect artifact."""
    answers = ", ".join(sorted(result.answers)) or "(none)"
    return (
        "### DPP result sent to SamaHub\n\n"
        "| project | task | round | data keys | answer keys |\n"
        "|---|---|---|---|---|\n"
        f"| {event.task.project_id} | {event.task.id} | {result.round} | {len(result.data)}"
        f" | {answers} |\n"
    )


def _plain_answers(value: Any) -> Any:
    """Typed `Answers` returned in a dict become their JSON (`to_dict()`)."""
    from libnar.answers import Answers

    return value.to_dict() if isinstance(value, Answers) else value


def _refuse_if_invalid(
    flow_name: str, event: DppEvent, result: DppResult, schema: Mapping[str, Any]
) -> None:
    """Raise `AnswersSchemaError` (one line per problem) if the result breaks the schema."""
    from libnar.answers import AnswersSchemaError, answer_problems

    problems = answer_problems(result.answers, schema)
    if problems:
        task = event.task
        count = f"{len(problems)} problem{'s' * (len(problems) != 1)}"
        raise AnswersSchemaError(
            f"{flow_name}: the result for task {task.id} (round {result.round}) does not follow"
            f" project {task.project_id}'s delivery schema ({count}); nothing was sent:",
            problems,
        )


def check_result(client: SamaClient, flow_name: str, event: DppEvent, result: DppResult) -> None:
    """Check a DPP result's answers against the project's delivery schema before sending.

    Used by `@nps_flow(validate_result=True)`: SamaHub refuses answers that break the schema,
    so a broken result fails the run here, naming every problem, and is not sent.
    """
    schema = client.get_delivery_schema(event.task.project_id)
    _refuse_if_invalid(flow_name, event, result, schema)


async def check_result_async(
    client: AsyncSamaClient, flow_name: str, event: DppEvent, result: DppResult
) -> None:
    """`check_result` for async flows."""
    schema = await client.get_delivery_schema(event.task.project_id)
    _refuse_if_invalid(flow_name, event, result, schema)
