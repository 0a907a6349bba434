"""One event to one flow run: checks, outbox, claim check, deployment, run; and replays.

The HTTP layer (`routers`) verifies credentials and parses the body; this module does the rest
of "Data flow of one event" in `shared/design.md` and raises `Rejected` with the HTTP status
the gateway answers.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import anyio
import pydantic_core

from libnar._gateway._claims import ClaimStore
from libnar._gateway._outbox import Outbox, OutboxEntry, UnreadableEntry
from libnar._gateway._trigger import (
    CreatedRun,
    Deployment,
    DeploymentNotFound,
    ParametersRejected,
    PrefectError,
    PrefectTrigger,
    PrefectUnavailable,
    RunRequest,
)
from libnar.events import DppEvent, EventProblem, WebhookEvent, short_text
from libnar.naming import FlowNameError, deployment_for_event, normalize_flow_name
from libnar.runs import (
    SPECIAL_PARAMETERS,
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
    ) -> None:
        self.status = status
        self.detail = detail
        self.problems = problems or []
        self.extra = dict(extra or {})
        self.retry_after = retry_after
        super().__init__(detail)

    def body(self) -> dict[str, Any]:
        """The JSON answer."""
        body: dict[str, Any] = {"detail": self.detail, **self.extra}
        if self.problems:
            body["problems"] = [p.model_dump() for p in self.problems]
        return body


@dataclass(frozen=True)
class Accepted:
    """The run an event landed on."""

    entry: OutboxEntry
    run: CreatedRun

    def body(self) -> dict[str, Any]:
        """The JSON answer."""
        return {
            "flow_run_id": self.run.flow_run_id,
            "flow_run_name": self.run.flow_run_name,
            "deployment": self.entry.deployment,
            "duplicate": self.run.duplicate,
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
        tags=run_tags(event, no_round=special.no_round),
    )
    return PreparedEvent(entry, subject_of(event), body if is_large else None)


def _recent_key(entry: OutboxEntry) -> str:
    return f"{entry.file_name}:{entry.attempt}"


class _RecentRuns:
    """The runs this process created or found lately, so a repeat needs no call to Prefect.

    SamaHub retries and double deliveries arrive soon after the first; remembering runs for
    a few minutes answers them at once. Bounded in count and age: a run deleted in Prefect
    since is not noticed until its entry expires.
    """

    def __init__(self, size: int = 10_000, seconds: float = 600.0) -> None:
        self._size = size
        self._seconds = seconds
        self._runs: OrderedDict[str, tuple[float, CreatedRun]] = OrderedDict()

    def get(self, key: str) -> CreatedRun | None:
        found = self._runs.get(key)
        if found is None or time.monotonic() - found[0] > self._seconds:
            return None
        return found[1]

    def add(self, key: str, run: CreatedRun) -> None:
        self._runs[key] = (time.monotonic(), run)
        self._runs.move_to_end(key)
        while len(self._runs) > self._size:
            self._runs.popitem(last=False)


class Gateway:
    """The outbox, the claim store and the Prefect trigger together: accept events, replay."""

    def __init__(
        self,
        outbox: Outbox,
        trigger: PrefectTrigger,
        claims: ClaimStore,
        *,
        retry_after: int = 30,
        claim_check_bytes: int = 256 * 1024,
    ) -> None:
        self.outbox = outbox
        self.trigger = trigger
        self.claims = claims
        self.retry_after = retry_after
        self.claim_check_bytes = claim_check_bytes
        self._recent = _RecentRuns()

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
            )
        return prepared

    async def accept(self, prepared: PreparedEvent) -> Accepted:
        """Keep the event (and a large body) durably, then create its run or find it.

        The caller marks it done (`finish`) after answering, so the answer is not delayed.

        Raises:
            Rejected: 404 no such deployment, 422 parameters refused, 502 Prefect answered
                something unexpected, 503 Prefect or the outbox unavailable.
        """
        entry = prepared.entry
        recent = self._recent.get(_recent_key(entry))
        if recent is not None:  # it has a run already: nothing to keep, nothing to create
            return Accepted(
                entry, CreatedRun(recent.flow_run_id, recent.flow_run_name, duplicate=True)
            )
        try:
            if prepared.body is not None:
                entry = await anyio.to_thread.run_sync(self._keep_claim, prepared)
            await anyio.to_thread.run_sync(self.outbox.write, entry)
        except OSError as exc:
            logger.error("outbox %s cannot take the event: %s", self.outbox.directory, exc)
            raise Rejected(
                503,
                "the gateway cannot store the event right now; try again later",
                retry_after=self.retry_after,
            ) from None
        run = await self._trigger(entry)
        return Accepted(entry, run)

    def _keep_claim(self, prepared: PreparedEvent) -> OutboxEntry:
        assert prepared.body is not None
        self.outbox.check_room()
        reference = self.claims.keep(prepared.body, prepared.subject)
        return prepared.entry.model_copy(update={"event": reference.as_parameter()})

    async def finish(self, accepted: Accepted) -> None:
        """Mark an accepted event done in the outbox."""
        if accepted.run.duplicate and self._recent.get(_recent_key(accepted.entry)):
            return  # answered from memory: marked done when it was first created
        self._recent.add(_recent_key(accepted.entry), accepted.run)
        try:
            await anyio.to_thread.run_sync(
                self.outbox.mark_done, accepted.entry, accepted.run.flow_run_id
            )
        except OSError as exc:  # the event stays pending; a replay finds its run
            logger.error("outbox: cannot mark %s done: %s", accepted.entry.file_name, exc)

    async def _trigger(self, entry: OutboxEntry) -> CreatedRun:
        """Find the deployment and create the run, within LIBNAR_GATEWAY_PREFECT_TIMEOUT."""
        try:
            async with asyncio.timeout(self.trigger.timeout):
                deployment = await self.trigger.deployment(entry.flow, entry.deployment)
                request = self._run_request(deployment, entry)
                return await self.trigger.create_run(deployment, request)
        except TimeoutError:
            return self._unavailable(entry, "no answer in LIBNAR_GATEWAY_PREFECT_TIMEOUT")
        except DeploymentNotFound as exc:
            await self._reject(entry, str(exc))
            raise Rejected(404, str(exc), extra={"deployment": exc.deployment}) from None
        except ParametersRejected as exc:
            await self._reject(entry, str(exc))
            extra = {"accepted": exc.accepted} if exc.accepted is not None else {}
            raise Rejected(
                422,
                f"deployment {entry.deployment!r} refuses the run: {exc}",
                problems=exc.problems,
                extra=extra,
            ) from None
        except PrefectUnavailable as exc:
            return self._unavailable(entry, str(exc))
        except PrefectError as exc:
            logger.error("Prefect error; %s kept in the outbox: %s", entry.file_name, exc)
            raise Rejected(
                502,
                "Prefect answered unexpectedly; the event is kept for a replay",
                retry_after=self.retry_after,
            ) from None

    def _unavailable(self, entry: OutboxEntry, reason: str) -> CreatedRun:
        logger.warning("Prefect unavailable; %s kept in the outbox: %s", entry.file_name, reason)
        raise Rejected(
            503,
            "Prefect is unreachable; the event is kept and will be triggered by a replay"
            " or when SamaHub sends it again",
            retry_after=self.retry_after,
        )

    @staticmethod
    def _run_request(deployment: Deployment, entry: OutboxEntry) -> RunRequest:
        """The run to create; refuses what the deployment would refuse or misread.

        Prefect accepts unknown top-level parameters (the run then crashes), so those are
        refused here, with the names the deployment accepts.
        """
        flow_and_deployment = f"flow {entry.flow!r} (deployment {entry.deployment!r})"
        if deployment.event_parameter is None:
            raise ParametersRejected(f"{flow_and_deployment} takes no event")
        if not deployment.takes(entry.source):
            takes = " or ".join(deployment.event_kinds)
            raise ParametersRejected(
                f"{flow_and_deployment} takes {takes} events, not {entry.source} events; a"
                f" {'DPP request' if entry.source == 'dpp' else 'webhook'} needs a flow whose"
                f" event parameter is a {'DppEvent' if entry.source == 'dpp' else 'WebhookEvent'}"
            )
        if deployment.event_parameter in entry.parameters:
            where = "parameters" if entry.source == "dpp" else "token.parameters"
            raise ParametersRejected(
                "a parameter names the flow's event parameter",
                problems=[
                    EventProblem(
                        path=f"{where}.{deployment.event_parameter}",
                        found="a value for the flow's event parameter",
                        expected="no such parameter: the gateway passes the event itself",
                    )
                ],
            )
        parameters = entry.run_parameters(deployment.event_parameter)
        unknown = deployment.unknown_parameters(parameters)
        if unknown:
            accepted = [p for p in deployment.accepted or () if p not in SPECIAL_PARAMETERS]
            raise ParametersRejected(
                f"unknown parameter(s) {', '.join(short_text(u) for u in unknown)};"
                f" it accepts: {', '.join(accepted)}",
                accepted=accepted,
            )
        checked = deployment.is_checked_here()
        if checked:
            refusal = deployment.refusal(parameters)
            if refusal is not None:
                raise ParametersRejected(refusal)
        return RunRequest(
            idempotency_key=entry.prefect_key(deployment.id),
            name=entry.run_name,
            tags=entry.tags,
            parameters=parameters,
            checked=checked,
        )

    async def _reject(self, entry: OutboxEntry, reason: str) -> None:
        logger.warning(
            "rejected %s (%s/%s): %r", entry.file_name, entry.flow, entry.deployment, reason
        )
        try:
            await anyio.to_thread.run_sync(self.outbox.mark_rejected, entry, reason)
        except OSError as exc:
            logger.error("outbox: cannot mark %s rejected: %s", entry.file_name, exc)

    async def replay(self, *, force: bool = False, concurrency: int = 64) -> ReplayReport:
        """Trigger every pending entry again: same keys (no duplicates), or new ones with `force`.

        Each entry is handled on its own: one that cannot be read, or that Prefect refuses,
        is reported and the others go on.
        """
        report = ReplayReport()
        limit = asyncio.Semaphore(concurrency)

        async def one(entry: OutboxEntry) -> None:
            async with limit:
                try:
                    if force:
                        entry = entry.model_copy(update={"attempt": entry.attempt + 1})
                        await anyio.to_thread.run_sync(self.outbox.write, entry)
                    run = await self._trigger(entry)
                except Rejected as exc:
                    target = report.failed if exc.status >= 500 else report.rejected
                    target.append(f"{entry.file_name}: {exc.detail}")
                    return
                except Exception as exc:  # one entry never stops the replay of the others
                    logger.error("replay: %s failed: %s: %s", entry.file_name, type(exc), exc)
                    report.failed.append(f"{entry.file_name}: {type(exc).__name__}: {exc}")
                    return
                await self.finish(Accepted(entry, run))
                if run.duplicate:
                    report.duplicates += 1
                else:
                    report.triggered += 1

        found = await anyio.to_thread.run_sync(lambda: list(self.outbox.iter_pending()))
        report.unreadable = [str(f) for f in found if isinstance(f, UnreadableEntry)]
        entries = [f for f in found if isinstance(f, OutboxEntry)]
        await asyncio.gather(*(one(entry) for entry in entries))
        return report
