"""One event to one flow run: parameters, outbox, deployment, run; and replaying the outbox.

The HTTP layer (`_app`) verifies credentials and parses the body; this module does the rest of
"Data flow of one event" in `shared/design.md` and raises `Rejected` with the HTTP status the
gateway answers.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import anyio

from libnar._gateway._outbox import Outbox, OutboxEntry
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
from libnar.events import DppEvent, EventProblem, WebhookEvent
from libnar.naming import FlowNameError, deployment_for_event, normalize_flow_name

__all__ = ["Accepted", "Gateway", "Rejected", "ReplayReport", "prepare_entry"]

logger = logging.getLogger("libnar.gateway")

#: Parameters that choose how the run is made and never reach the flow.
SPECIAL_PARAMETERS = ("dep_name", "no_round")


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

    def as_dict(self) -> dict[str, Any]:
        """The report as JSON-ready data."""
        return {
            "triggered": self.triggered,
            "duplicates": self.duplicates,
            "rejected": self.rejected,
            "failed": self.failed,
        }


def prepare_entry(
    event: WebhookEvent | DppEvent, flow_name: str, parameters: Mapping[str, Any] | None
) -> OutboxEntry:
    """Check the flow name and extra parameters and build the outbox entry of an event.

    Raises:
        Rejected: 422 with one problem per bad field.
    """
    problems: list[EventProblem] = []
    name_field = "name" if isinstance(event, DppEvent) else "token.name"
    try:
        flow = normalize_flow_name(flow_name)
    except FlowNameError as exc:
        flow = flow_name
        problems.append(EventProblem(path=name_field, found=repr(flow_name), expected=str(exc)))
    extra = dict(parameters or {})
    where = "parameters" if isinstance(event, DppEvent) else "token.parameters"
    dep_name = extra.pop("dep_name", None)
    no_round = extra.pop("no_round", False)
    if dep_name is not None and (not isinstance(dep_name, str) or not dep_name.strip()):
        problems.append(
            EventProblem(
                path=f"{where}.dep_name", found=repr(dep_name), expected="a deployment name"
            )
        )
    if not isinstance(no_round, bool):
        problems.append(
            EventProblem(path=f"{where}.no_round", found=repr(no_round), expected="true or false")
        )
    if "event" in extra:
        problems.append(
            EventProblem(
                path=f"{where}.event",
                found="a parameter named 'event'",
                expected="no such parameter: the gateway passes the event itself",
            )
        )
    if problems:
        raise Rejected(422, "the event cannot be triggered as sent", problems=problems)
    tags = event.tags
    if no_round:
        tags = [t for t in tags if not t.startswith("round:")]
    return OutboxEntry(
        source=event.source,
        flow=flow,
        deployment=deployment_for_event(flow, dep_name),
        event_key=event.idempotency_key,
        parameters={"event": event.model_dump(mode="json"), **extra},
        run_name=event.run_name(flow),
        tags=tags,
    )


class Gateway:
    """The outbox and the Prefect trigger together: accept events, replay what is pending."""

    def __init__(self, outbox: Outbox, trigger: PrefectTrigger, *, retry_after: int = 30) -> None:
        self.outbox = outbox
        self.trigger = trigger
        self.retry_after = retry_after

    async def accept(self, entry: OutboxEntry) -> Accepted:
        """Keep the event in the outbox, then create its run (or find the existing one).

        The caller marks it done (`finish`) after answering, so the answer is not delayed.

        Raises:
            Rejected: 404 no such deployment, 422 parameters refused, 502 Prefect answered
                something unexpected, 503 Prefect or the outbox unavailable.
        """
        try:
            await anyio.to_thread.run_sync(self.outbox.write, entry)
        except OSError as exc:
            logger.error("outbox %s is not writable: %s", self.outbox.directory, exc)
            raise Rejected(
                503,
                "the gateway cannot store the event right now; try again later",
                retry_after=self.retry_after,
            ) from None
        run = await self._trigger(entry)
        return Accepted(entry, run)

    async def finish(self, accepted: Accepted) -> None:
        """Mark an accepted event done in the outbox."""
        try:
            await anyio.to_thread.run_sync(
                self.outbox.mark_done, accepted.entry, accepted.run.flow_run_id
            )
        except OSError as exc:  # the event stays pending; a replay finds its run
            logger.error("outbox: cannot mark %s done: %s", accepted.entry.file_name, exc)

    async def _trigger(self, entry: OutboxEntry) -> CreatedRun:
        try:
            deployment = await self.trigger.deployment(entry.flow, entry.deployment)
            self._check_parameters(deployment, entry)
            request = RunRequest(
                idempotency_key=entry.prefect_key(deployment.id),
                name=entry.run_name,
                tags=entry.tags,
                parameters=entry.parameters,
            )
            return await self.trigger.create_run(deployment, request)
        except DeploymentNotFound as exc:
            await self._reject(entry, str(exc))
            raise Rejected(404, str(exc), extra={"deployment": exc.deployment}) from None
        except ParametersRejected as exc:
            await self._reject(entry, str(exc))
            extra = {"accepted": exc.accepted} if exc.accepted is not None else {}
            raise Rejected(
                422, f"deployment {entry.deployment!r} refuses the parameters: {exc}", extra=extra
            ) from None
        except PrefectUnavailable as exc:
            logger.warning("Prefect unavailable; %s kept in the outbox: %s", entry.file_name, exc)
            raise Rejected(
                503,
                "Prefect is unreachable; the event is kept and will be triggered by a replay"
                " or when SamaHub sends it again",
                retry_after=self.retry_after,
            ) from None
        except PrefectError as exc:
            logger.error("Prefect error; %s kept in the outbox: %s", entry.file_name, exc)
            raise Rejected(
                502,
                "Prefect answered unexpectedly; the event is kept for a replay",
                retry_after=self.retry_after,
            ) from None

    @staticmethod
    def _check_parameters(deployment: Deployment, entry: OutboxEntry) -> None:
        unknown = deployment.unknown_parameters(entry.parameters)
        if unknown:
            accepted = [p for p in deployment.accepted or () if p not in SPECIAL_PARAMETERS]
            raise ParametersRejected(
                f"unknown parameter(s) {', '.join(unknown)}; it accepts: {', '.join(accepted)}",
                accepted=accepted,
            )

    async def _reject(self, entry: OutboxEntry, reason: str) -> None:
        logger.warning(
            "rejected %s (%s/%s): %s", entry.file_name, entry.flow, entry.deployment, reason
        )
        try:
            await anyio.to_thread.run_sync(self.outbox.mark_rejected, entry, reason)
        except OSError as exc:
            logger.error("outbox: cannot mark %s rejected: %s", entry.file_name, exc)

    async def replay(self, *, force: bool = False, concurrency: int = 64) -> ReplayReport:
        """Trigger every pending entry again: same keys (no duplicates), or new ones with `force`."""
        report = ReplayReport()
        limit = asyncio.Semaphore(concurrency)

        async def one(entry: OutboxEntry) -> None:
            async with limit:
                if force:
                    entry = entry.model_copy(update={"attempt": entry.attempt + 1})
                    await anyio.to_thread.run_sync(self.outbox.write, entry)
                try:
                    run = await self._trigger(entry)
                except Rejected as exc:
                    target = report.failed if exc.status >= 500 else report.rejected
                    target.append(f"{entry.file_name}: {exc.detail}")
                    return
                await self.finish(Accepted(entry, run))
                if run.duplicate:
                    report.duplicates += 1
                else:
                    report.triggered += 1

        entries = await anyio.to_thread.run_sync(lambda: list(self.outbox.iter_pending()))
        await asyncio.gather(*(one(entry) for entry in entries))
        return report
