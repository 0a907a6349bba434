"""`@nps_flow`: a function taking a SamaHub event becomes a real `prefect.Flow`.

The flow validates its parameters itself (events from dicts or JSON, task references, special
parameters), names and tags each run after its task, and calls the function with typed values.
It stays a `prefect.Flow`: `.serve()`, `.to_deployment()`, `.deploy()` and calling it work.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar, cast, overload

from prefect import Flow, tags
from prefect.artifacts import acreate_markdown_artifact, create_markdown_artifact
from prefect.context import FlowRunContext
from prefect.utilities.hashing import file_hash

from libnar.events import DppEvent, DppResult, Task, TaskReference, WebhookEvent
from libnar.flow._claims import fetch_claim, fetch_claim_async
from libnar.flow._parameters import (
    FlowSignature,
    ParameterError,
    PreparedCall,
    check_parameters,
    coerce_event,
    prepare_call,
    read_signature,
)
from libnar.flow._sama_io import (
    check_result,
    check_result_async,
    fetch_event,
    fetch_event_async,
    result_summary,
    result_to_send,
)
from libnar.naming import FlowNameError, check_flow_name
from libnar.runs import RESOURCE_PARAMETERS, ClaimReference, run_name, run_tags

if TYPE_CHECKING:
    from prefect.client.orchestration import PrefectClient, SyncPrefectClient

P = ParamSpec("P")
R = TypeVar("R")

__all__ = ["NpsFlow", "nps_flow"]


class NpsFlow(Flow[P, R]):
    """A Prefect flow made by `@nps_flow`; see `nps_flow` for what it adds."""

    user_fn: Callable[P, R]
    """The decorated function, untouched: call it in a unit test without Prefect or libnar."""
    signature: FlowSignature
    """The flow's event parameter and other parameters as libnar reads them."""
    submit_result: bool
    """Whether a DPP flow's returned result is sent back to SamaHub."""
    validate_result: bool
    """Whether a DPP result is checked against the project's delivery schema before sending."""

    def __init__(
        self,
        fn: Callable[P, R],
        *,
        name: str | None = None,
        submit_result: bool = True,
        validate_result: bool = False,
        version: str | None = None,
        **flow_options: Any,
    ) -> None:
        flow_name = name if name is not None else fn.__name__
        problem = check_flow_name(flow_name)
        if problem:
            raise FlowNameError(f"@nps_flow {fn.__qualname__}: {problem}")
        self.user_fn = fn
        self.signature = read_signature(fn, flow_name)
        self.submit_result = submit_result
        self.validate_result = validate_result
        runner = _make_runner(self, fn)
        super().__init__(
            fn=cast(Callable[P, R], runner),
            name=flow_name,
            version=version or _source_hash(fn),
            flow_run_name=self._run_name if self.signature.event_name else None,
            validate_parameters=True,
            **flow_options,
        )
        self._entrypoint = _entrypoint_of(fn)

    # -- parameters -------------------------------------------------------------------------

    def validate_parameters(self, parameters: dict[str, Any]) -> dict[str, Any]:
        """Validate run parameters the libnar way; Prefect calls this before the run starts.

        Raises:
            ParameterError: one line per problem (field, what was found, what was expected).
        """
        return prepare_call(self.signature, parameters).as_parameters(self.signature)

    def check_parameters(
        self, parameters: Mapping[str, Any], *, partial: bool = False
    ) -> list[str]:
        """Every problem of a parameter dict as one line each; empty when valid.

        With `partial=True`, missing values are allowed: what a deployment's default
        parameters need (the event comes with each run); wrong values are still problems.
        """
        return check_parameters(self.signature, parameters, partial=partial)

    def __call__(  # type: ignore[override]
        self,
        *args: Any,
        return_state: bool = False,
        wait_for: Iterable[Any] | None = None,
        **kwargs: Any,
    ) -> Any:
        """Run the flow once, locally, as a Prefect flow run tagged after its task.

        Positional arguments follow the decorated function's order. Bad arguments still
        create a Failed run (as Prefect does) and raise `ParameterError`.
        """
        parameters = _bind(self, args, kwargs)
        call_prefect: Any = super().__call__
        try:
            prepared = prepare_call(self.signature, parameters)
        except ParameterError:
            if any(
                name not in self.signature.accepted or name in RESOURCE_PARAMETERS
                for name in parameters
            ):
                # As Prefect does for unknown arguments: no run is created. Resources are not
                # in the signature Prefect sees (a run's size is set where the run is created),
                # so Prefect could not record such a call either.
                raise
            # Let Prefect's engine record the failed run; it raises the same error.
            return call_prefect(return_state=return_state, wait_for=wait_for, **parameters)
        values = prepared.as_parameters(self.signature)
        with tags(*_run_tags(prepared)):
            return call_prefect(return_state=return_state, wait_for=wait_for, **values)

    def with_options(self, **options: Any) -> NpsFlow[P, R]:
        """A copy of this flow with some options changed (as `prefect.Flow.with_options`)."""
        new = super().with_options(**options)
        new.__class__ = type(self)
        copy = cast(NpsFlow[P, R], new)
        copy.user_fn = self.user_fn
        copy.submit_result = self.submit_result
        copy.validate_result = self.validate_result
        copy.signature = (
            self.signature if new.name == self.name else read_signature(self.user_fn, new.name)
        )
        problem = check_flow_name(new.name)
        if problem:
            raise FlowNameError(problem)
        copy.fn = _make_runner(copy, self.user_fn)
        if self.flow_run_name == self._run_name and "flow_run_name" not in options:
            copy.flow_run_name = copy._run_name
        copy._entrypoint = self._entrypoint
        return copy

    # -- naming -----------------------------------------------------------------------------

    def _run_name(self) -> str:
        context = FlowRunContext.get()
        event = None
        if context is not None and self.signature.event_name is not None:
            event = (context.parameters or {}).get(self.signature.event_name)
            try:
                event = ClaimReference.from_parameter(event) or event
            except ValueError:
                event = None  # a malformed reference: the run fails on it before the body
        if isinstance(event, WebhookEvent | DppEvent | Task | TaskReference | ClaimReference):
            return run_name(self.name, event)
        return f"{self.name}-run"


def _make_runner(flow: NpsFlow[Any, Any], fn: Callable[..., Any]) -> Callable[..., Any]:
    """The function Prefect runs: validate, resolve the event, call `fn`, return the result."""
    signature = flow.signature

    if inspect.iscoroutinefunction(fn):

        @functools.wraps(fn)
        async def run_async(**parameters: Any) -> Any:
            prepared = prepare_call(signature, parameters)
            await _add_missing_tags_async(prepared)
            if isinstance(prepared.event, ClaimReference):
                prepared.event = coerce_event(signature, await fetch_claim_async(prepared.event))
            if isinstance(prepared.event, TaskReference):
                prepared.event = await fetch_event_async(signature, prepared.event)
            value = await fn(**_arguments(signature, prepared))
            result = _result_to_send(flow, prepared, value)
            if result is None:
                return value
            event = cast(DppEvent, prepared.event)
            from libnar.sama import AsyncSamaClient

            async with AsyncSamaClient() as client:
                if flow.validate_result:
                    await check_result_async(client, flow.name, event, result)
                await client.submit_dpp_result(event.task.project_id, event.task.id, result)
            await acreate_markdown_artifact(
                markdown=result_summary(event, result), description="DPP result sent"
            )
            return result

        run_async.__signature__ = signature.exposed_signature()  # type: ignore[attr-defined]
        return run_async

    @functools.wraps(fn)
    def run_sync(**parameters: Any) -> Any:
        prepared = prepare_call(signature, parameters)
        _add_missing_tags_sync(prepared)
        if isinstance(prepared.event, ClaimReference):
            prepared.event = coerce_event(signature, fetch_claim(prepared.event))
        if isinstance(prepared.event, TaskReference):
            prepared.event = fetch_event(signature, prepared.event)
        value = fn(**_arguments(signature, prepared))
        result = _result_to_send(flow, prepared, value)
        if result is None:
            return value
        event = cast(DppEvent, prepared.event)
        from libnar.sama import SamaClient

        with SamaClient() as client:
            if flow.validate_result:
                check_result(client, flow.name, event, result)
            client.submit_dpp_result(event.task.project_id, event.task.id, result)
        create_markdown_artifact(
            markdown=result_summary(event, result), description="DPP result sent"
        )
        return result

    run_sync.__signature__ = signature.exposed_signature()  # type: ignore[attr-defined]
    return run_sync


def _result_to_send(
    flow: NpsFlow[Any, Any], prepared: PreparedCall, value: Any
) -> DppResult | None:
    """The DPP result to send for this run, or None when nothing is to be sent."""
    if not flow.submit_result or not isinstance(prepared.event, DppEvent):
        return None
    return result_to_send(flow.name, prepared.event, value)


def _arguments(signature: FlowSignature, prepared: PreparedCall) -> dict[str, Any]:
    arguments = dict(prepared.kwargs)
    if signature.event_name is not None:
        arguments[signature.event_name] = prepared.event
    return arguments


def _run_tags(prepared: PreparedCall) -> list[str]:
    """Tags that let the Prefect UI filter runs by project, task, source, state, round and the
    run's own resources (`amount:`), as the gateway tags the runs it creates."""
    if prepared.event is None:
        return []
    return run_tags(
        prepared.event, no_round=prepared.no_round, resources=prepared.special.resources
    )


def _missing_tags(prepared: PreparedCall) -> tuple[Any, list[str]] | None:
    context = FlowRunContext.get()
    if context is None or context.flow_run is None:
        return None
    wanted = _run_tags(prepared)
    have = list(context.flow_run.tags or [])
    missing = [t for t in wanted if t not in have]
    if not missing:
        return None
    context.flow_run.tags = have + missing
    return context.flow_run.id, have + missing


def _add_missing_tags_sync(prepared: PreparedCall) -> None:
    """Tag deployment runs (scheduled, manual) that were created without libnar's tags."""
    update = _missing_tags(prepared)
    context = FlowRunContext.get()
    if update is not None and context is not None:
        client = cast("SyncPrefectClient", context.client)
        client.update_flow_run(update[0], tags=update[1])


async def _add_missing_tags_async(prepared: PreparedCall) -> None:
    update = _missing_tags(prepared)
    context = FlowRunContext.get()
    if update is not None and context is not None:
        client = cast("PrefectClient", context.client)
        await client.update_flow_run(update[0], tags=update[1])


def _bind(flow: NpsFlow[Any, Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any]:
    """Map positional arguments to names in the decorated function's order."""
    names = list(flow.signature.user_signature.parameters)
    if len(args) > len(names):
        raise TypeError(f"{flow.name}() takes {len(names)} positional arguments, got {len(args)}")
    parameters = dict(zip(names, args, strict=False))
    for key, value in kwargs.items():
        if key in parameters:
            raise TypeError(f"{flow.name}() got multiple values for argument {key!r}")
        parameters[key] = value
    return parameters


def _source_hash(fn: Callable[..., Any]) -> str | None:
    try:
        source = inspect.getsourcefile(fn)
        return file_hash(source) if source else None
    except (TypeError, OSError):
        return None


def _entrypoint_of(fn: Callable[..., Any]) -> str:
    module = fn.__module__
    if module == "__main__" or module.startswith("__prefect_loader_"):
        module = inspect.getfile(fn)
    return f"{module}:{fn.__qualname__}"


@overload
def nps_flow(fn: Callable[P, R], /) -> NpsFlow[P, R]: ...


@overload
def nps_flow(
    *,
    name: str | None = None,
    submit_result: bool = True,
    validate_result: bool = False,
    description: str | None = None,
    version: str | None = None,
    retries: int | None = None,
    retry_delay_seconds: float | None = None,
    timeout_seconds: float | None = None,
    log_prints: bool | None = None,
    persist_result: bool | None = None,
    on_completion: list[Callable[..., Any]] | None = None,
    on_failure: list[Callable[..., Any]] | None = None,
    on_cancellation: list[Callable[..., Any]] | None = None,
    on_crashed: list[Callable[..., Any]] | None = None,
    on_running: list[Callable[..., Any]] | None = None,
    **flow_options: Any,
) -> Callable[[Callable[P, R]], NpsFlow[P, R]]: ...


def nps_flow(
    fn: Callable[P, R] | None = None, /, **options: Any
) -> NpsFlow[P, R] | Callable[[Callable[P, R]], NpsFlow[P, R]]:
    """Turn a function that takes a SamaHub event into an NPS flow (a real `prefect.Flow`).

    The event parameter is found by its annotation (`WebhookEvent`, `DppEvent`, `Task`, or a
    union) and accepts the model, a dict, or JSON str/bytes. Other parameters are coerced to
    their annotations. A run may instead carry `project_id` + `task_id` (+ `round`) or the
    earlier `{"param": {...}}` to fetch the task; `dep_name` and `no_round` are accepted and
    never reach the function. Bad parameters fail the run before the function body, one line
    per problem. Runs are named `<flow>-<project_id>-<task_id>[-r<round>]` and tagged
    `project:`, `task:`, `source:`, `state:` and `round:`.

    Options are Prefect's `@flow` options (`retries`, `timeout_seconds`, `log_prints`,
    `on_failure`, ...) plus `name` (default: the function's name; it must follow the NPS
    naming rule), `submit_result` (send a DPP flow's result to SamaHub; default True) and
    `validate_result` (check the result's answers against the project's delivery schema
    first, and fail the run naming every problem instead of sending; default False).

    Example:
        ```python
        @nps_flow
        def fun69_boxes_ptp(event: DppEvent, min_box_px: int = 4) -> DppResult:
            return event.result(answers=drop_small_boxes(event.task.answers, min_box_px))
        ```
    """
    if fn is not None:
        return NpsFlow(fn, **options)

    def decorate(function: Callable[P, R]) -> NpsFlow[P, R]:
        return NpsFlow(function, **options)

    return decorate
