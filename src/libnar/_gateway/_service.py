"""One event to one stored entry: checks, claim check, backpressure, outbox; and replays.

The HTTP layer (`routers`) verifies credentials and parses the body; this module checks the
event against its deployment, stores it durably and answers; the dispatcher (`_dispatcher`)
creates its run. It raises `Rejected` with the HTTP status the gateway answers.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import anyio
import pydantic_core

from libnar._gateway._checks import run_request
from libnar._gateway._claims import ClaimStore
from libnar._gateway._dispatcher import BATCH, Dispatcher, RecentRuns, recent_key
from libnar._gateway._metrics import GatewayMetrics
from libnar._gateway._outbox import Leased, Outbox, OutboxEntry
from libnar._gateway._trigger import (
    CreatedRun,
    DeploymentNotFound,
    ParametersRejected,
    PrefectTrigger,
    TriggerError,
)
from libnar.events import DppEvent, EventProblem, WebhookEvent, short_text
from libnar.naming import FlowNameError, deployment_for_event, normalize_flow_name
from libnar.runs import (
    RunSubject,
    canonical_json,
    delivery_key,
    run_name,
    run_tags,
    split_special_parameters,
    subject_of,
)

__all__ = [
    "MAX_PARAMETERS_BYTES",
    "Accepted",
    "Gateway",
    "PreparedEvent",
    "Rejected",
    "ReplayReport",
    "prepare_event",
]

logger = logging.getLogger("libnar.gateway")

#: The largest token or DPP `parameters` object, as compact JSON: they travel as Prefect
#: parameters beside the event (large inputs belong in storage, passed by URL).
MAX_PARAMETERS_BYTES = 64 * 1024


class Rejected(Exception):
    """An event the gateway does not trigger (now): the status and body of the answer."""

    def __init__(
        self,
        status: int,
        detail: str,
        *,
        problems: list[EventProblem] | None = None,
        extra: Mapping[str, Any] | None = None,
        retry_after: int | None = None,
        reason: str | None = None,
    ) -> None:
        self.status = status
        self.detail = detail
        self.problems = problems or []
        self.extra = dict(extra or {})
        self.retry_after = retry_after
        self.reason = reason
        """Why, for the metrics (`no_deployment`, `parameters`, `backlog_full`, ...)."""
        super().__init__(detail)

    def body(self) -> dict[str, Any]:
        """The JSON answer."""
        body: dict[str, Any] = {"detail": self.detail, **self.extra}
        if self.problems:
            body["problems"] = [p.model_dump() for p in self.problems]
        return body


@dataclass(frozen=True)
class Accepted:
    """A stored event: its entry, whether the delivery was known, and its run once known."""

    entry: OutboxEntry
    duplicate: bool
    run: CreatedRun | None = None

    @property
    def status(self) -> int:
        """200 when the run is known, else 202 (stored; the run comes)."""
        return 200 if self.run is not None else 202

    def body(self) -> dict[str, Any]:
        """The JSON answer."""
        return {
            "accepted": True,
            "key": self.entry.event_key,
            "deployment": self.entry.deployment,
            "flow_run_id": self.run.flow_run_id if self.run else None,
            "flow_run_name": self.run.flow_run_name if self.run else self.entry.run_name,
            "duplicate": self.duplicate,
        }


@dataclass
class ReplayReport:
    """What a replay did, entry by entry."""

    triggered: int = 0
    duplicates: int = 0
    rejected: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    unreadable: list[str] = field(default_factory=list)

    @property
    def is_complete(self) -> bool:
        """Whether every pending entry was handled (triggered, found, or rejected)."""
        return not self.failed and not self.unreadable

    def as_dict(self) -> dict[str, Any]:
        """The report as JSON-ready data."""
        return {
            "triggered": self.triggered,
            "duplicates": self.duplicates,
            "rejected": self.rejected,
            "failed": self.failed,
            "unreadable": self.unreadable,
        }


@dataclass(frozen=True)
class PreparedEvent:
    """An event checked and ready to keep: its entry, and its body when it is large."""

    entry: OutboxEntry
    subject: RunSubject
    body: bytes | None = None
    """The event's JSON when it is over the claim-check size: kept apart, passed by reference."""


def prepare_event(
    event: WebhookEvent | DppEvent,
    flow_name: str,
    parameters: Mapping[str, Any] | None,
    *,
    claim_check_bytes: int,
) -> PreparedEvent:
    """Check the flow name and the token's or DPP request's parameters; build the entry.

    Raises:
        Rejected: 422 with one problem per bad field.
    """
    is_dpp = isinstance(event, DppEvent)
    name_field = "name" if is_dpp else "token.name"
    where = "parameters" if is_dpp else "token.parameters"
    problems: list[EventProblem] = []
    try:
        flow = normalize_flow_name(flow_name)
    except FlowNameError as exc:
        flow = "invalid"
        problems.append(
            EventProblem(path=name_field, found=short_text(flow_name), expected=str(exc))
        )
    given = dict(parameters or {})
    extra, special, special_problems = split_special_parameters(given, where)
    problems += special_problems
    for name in extra:
        if name.startswith("__prefect"):
            problems.append(
                EventProblem(
                    path=f"{where}.{short_text(name)}",
                    found="a name Prefect reserves",
                    expected="a parameter of the flow",
                )
            )
    if len(canonical_json(extra)) > MAX_PARAMETERS_BYTES:
        problems.append(
            EventProblem(
                path=where,
                found=f"more than {MAX_PARAMETERS_BYTES} bytes of JSON",
                expected="small parameters; pass large inputs by reference (a storage URL)",
            )
        )
    if problems:
        raise Rejected(422, "the event cannot be triggered as sent", problems=problems)
    event_json = event.model_dump(mode="json")
    body = pydantic_core.to_json(event_json)
    is_large = len(body) > claim_check_bytes
    entry = OutboxEntry(
        source=event.source,
        flow=flow,
        deployment=deployment_for_event(flow, special.dep_name),
        event_key=delivery_key(event, given),
        event={} if is_large else event_json,
        parameters=extra,
        run_name=run_name(flow, event),
        tags=run_tags(event, no_round=special.no_round, resources=special.resources),
        resources=special.resources.as_parameters() if special.resources else None,
    )
    return PreparedEvent(entry, subject_of(event), body if is_large else None)


class Gateway:
    """The outbox, the claim store, the Prefect trigger and the dispatcher together."""

    def __init__(
        self,
        outbox: Outbox,
        trigger: PrefectTrigger,
        claims: ClaimStore,
        *,
        metrics: GatewayMetrics | None = None,
        retry_after: int = 30,
        claim_check_bytes: int = 256 * 1024,
        check_timeout: float = 5.0,
        max_backlog: int = 10_000,
        window_seconds: float = 0.01,
        wait_for_run: bool = False,
    ) -> None:
        self.outbox = outbox
        self.trigger = trigger
        self.claims = claims
        self.metrics = metrics or GatewayMetrics()
        self.retry_after = retry_after
        self.claim_check_bytes = claim_check_bytes
        self.check_timeout = check_timeout
        self.wait_for_run = wait_for_run
        self.recent = RecentRuns()
        self.dispatcher = Dispatcher(
            outbox,
            trigger,
            self.metrics,
            self.recent,
            window_seconds=window_seconds,
            max_backlog=max_backlog,
            max_retry_seconds=float(retry_after),
        )

    def prepare(
        self, event: WebhookEvent | DppEvent, flow_name: str, parameters: Mapping[str, Any] | None
    ) -> PreparedEvent:
        """`prepare_event` with this gateway's claim-check size; refuses large events that
        cannot be passed by reference (413, naming the setting)."""
        prepared = prepare_event(
            event, flow_name, parameters, claim_check_bytes=self.claim_check_bytes
        )
        if prepared.body is not None and not self.claims.can_refer:
            raise Rejected(
                413,
                f"the event is {len(prepared.body)} bytes, over LIBNAR_CLAIM_CHECK_BYTES"
                f" ({self.claim_check_bytes}); the gateway passes such events by reference, which"
                " needs LIBNAR_GATEWAY_PUBLIC_URL (the URL runs reach the gateway at)",
                reason="too_large",
            )
        return prepared

    async def accept(self, prepared: PreparedEvent) -> Accepted:
        """Check the event against its deployment, store it durably (with a large body) and
        say so; the dispatcher creates the run. With `wait_for_run`, wait for the run too.

        Raises:
            Rejected: 404 no such deployment, 422 parameters refused, 503 the backlog is full
                or the outbox cannot store it (with Retry-After).
        """
        entry = prepared.entry
        recent = self.recent.get(recent_key(entry))
        if recent is not None:  # it has a run already: nothing to store, nothing to create
            run = CreatedRun(recent.flow_run_id, recent.flow_run_name, duplicate=True)
            return Accepted(entry, duplicate=True, run=run)
        entry = await self._check(entry)
        if self.dispatcher.is_full():
            logger.warning(
                "backlog full (%d events stored, LIBNAR_GATEWAY_MAX_BACKLOG=%d): answering 503",
                self.dispatcher.backlog.count,
                self.dispatcher.max_backlog,
            )
            raise Rejected(
                503,
                "the gateway holds as many events as Prefect can take for now"
                " (LIBNAR_GATEWAY_MAX_BACKLOG); try again later",
                retry_after=self.retry_after,
                reason="backlog_full",
            )
        try:
            if prepared.body is not None:
                entry = await anyio.to_thread.run_sync(self._keep_claim, prepared)
            stored = await anyio.to_thread.run_sync(self.outbox.add, entry)
        except OSError as exc:
            logger.error("outbox %s cannot take the event: %s", self.outbox.location, exc)
            raise Rejected(
                503,
                "the gateway cannot store the event right now; try again later",
                retry_after=self.retry_after,
                reason="outbox_unavailable",
            ) from None
        if stored.state == "done":
            assert stored.flow_run_id is not None
            run = CreatedRun(stored.flow_run_id, entry.run_name, duplicate=True)
            self.recent.add(recent_key(entry), run)
            return Accepted(entry, duplicate=True, run=run)
        if stored.state == "new":
            self.dispatcher.stored()
        if self.wait_for_run:
            return await self._wait_for_run(entry, stored.is_duplicate)
        return Accepted(entry, duplicate=stored.is_duplicate)

    async def _wait_for_run(self, entry: OutboxEntry, duplicate: bool) -> Accepted:
        outcome = await self.dispatcher.wait_for(entry, self.trigger.timeout)
        if outcome is not None and outcome.run is not None:
            return Accepted(entry, duplicate=duplicate or outcome.run.duplicate, run=outcome.run)
        if outcome is not None and outcome.rejected is not None:
            raise refusal(entry, outcome.rejected)
        return Accepted(entry, duplicate=duplicate)  # stored; its run comes later

    async def _check(self, entry: OutboxEntry) -> OutboxEntry:
        """Refuse what the deployment would refuse, from the cached deployment.

        When Prefect cannot tell within LIBNAR_GATEWAY_CHECK_TIMEOUT (the deployment never
        looked up, Prefect unreachable) the event is stored unchecked: the dispatcher checks
        it, and rejects it with the reason if it must. Returns the entry, marked with the
        deployment version it was checked against.
        """
        try:
            async with asyncio.timeout(self.check_timeout):
                deployment = await self.trigger.deployment(
                    entry.flow, entry.deployment, stale_ok=True
                )
        except DeploymentNotFound as exc:
            raise refusal(entry, exc) from None
        except (TimeoutError, TriggerError) as exc:
            logger.warning(
                "cannot look up %s/%s on Prefect (%s); storing the event unchecked",
                entry.flow,
                entry.deployment,
                str(exc) or "no answer in LIBNAR_GATEWAY_CHECK_TIMEOUT",
            )
            return entry
        try:
            run_request(deployment, entry)
        except ParametersRejected as exc:
            raise refusal(entry, exc) from None
        return entry.model_copy(update={"checked_against": deployment.version or None})

    def _keep_claim(self, prepared: PreparedEvent) -> OutboxEntry:
        assert prepared.body is not None
        reference = self.claims.keep(prepared.body, prepared.subject)
        return prepared.entry.model_copy(update={"event": reference.as_parameter()})

    async def replay(self, *, force: bool = False) -> ReplayReport:
        """Send every pending entry now: same keys (no duplicates), or new ones with `force`.

        Entries another dispatcher holds are left to it. Each entry is handled on its own:
        one that cannot be read, or that Prefect refuses, is reported and the others go on;
        one Prefect fails on is reported failed and stays pending.
        """
        report = ReplayReport()
        forced: set[str] = set()
        handled: set[str] = set()
        while True:
            leased = await anyio.to_thread.run_sync(self.outbox.lease, BATCH)
            if not leased:
                break
            to_send: list[Leased] = []
            to_force: list[Leased] = []
            later: list[Leased] = []
            for item in leased:
                name = item.entry.name
                if force and name not in forced:
                    forced.add(name)
                    to_force.append(item)
                elif name in handled:
                    later.append(item)  # failed once in this replay: left for later
                else:
                    handled.add(name)
                    to_send.append(item)
            if to_force or later:
                await anyio.to_thread.run_sync(self._next_attempts, to_force, later)
            if not to_send and not to_force:
                break
            for outcome in await self.dispatcher.dispatch(to_send):
                name = outcome.entry.name
                if outcome.run is not None:
                    if outcome.run.duplicate:
                        report.duplicates += 1
                    else:
                        report.triggered += 1
                elif outcome.rejected is not None:
                    report.rejected.append(f"{name}: {outcome.rejected}")
                else:
                    report.failed.append(f"{name}: {outcome.deferred}")
        report.unreadable = [str(u) for u in self.outbox.unreadable()]
        return report

    def _next_attempts(self, to_force: list[Leased], later: list[Leased]) -> None:
        """Store forced entries with their next attempt; let go of the others for later."""
        for item in to_force:
            self.outbox.write(item.entry.model_copy(update={"attempt": item.entry.attempt + 1}))
            self.outbox.release(item, 0.0)
        for item in later:
            self.outbox.release(item, 1.0)


def refusal(entry: OutboxEntry, error: Exception) -> Rejected:
    """The answer to an event its deployment refuses: 404 no deployment, else 422."""
    if isinstance(error, DeploymentNotFound):
        return Rejected(
            404, str(error), extra={"deployment": error.deployment}, reason="no_deployment"
        )
    extra: dict[str, Any] = {}
    problems: list[EventProblem] = []
    if isinstance(error, ParametersRejected):
        problems = error.problems
        if error.accepted is not None:
            extra["accepted"] = error.accepted
    return Rejected(
        422,
        f"deployment {entry.deployment!r} refuses the run: {error}",
        problems=problems,
        extra=extra,
        reason="parameters",
    )
