"""The dispatcher: stored events to Prefect runs, in bulk per deployment, in every gateway process.

The gateway answers an event once it is stored; this loop does the rest. It leases pending
entries from the outbox (files locked by this process, or rows leased with `SKIP LOCKED`, so
dispatchers of several processes and replicas never send the same entry at once), groups them
per deployment, checks them against the deployment as the answer did, creates their runs with
one bulk call per group (same idempotency keys as ever: one run per delivery, whoever sends it
and however often) and then marks each entry:

- done, with its run id (a new run, or the one its key already had);
- rejected, with the reason, when the deployment is gone or refuses the parameters;
- still pending, retried later with a growing delay, when Prefect is unreachable or fails.

While one bulk call is in flight the next batch is already leased, so Prefect is never idle
while events wait. The backlog (count and oldest age) is read from the outbox every second:
the answer path refuses events past `LIBNAR_GATEWAY_MAX_BACKLOG`, and `/metrics` shows it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import OrderedDict
from dataclasses import dataclass

import anyio

from libnar._gateway._checks import run_request
from libnar._gateway._metrics import GatewayMetrics
from libnar._gateway._outbox import Backlog, Leased, Outbox, OutboxEntry
from libnar._gateway._trigger import (
    CreatedRun,
    Deployment,
    DeploymentNotFound,
    ParametersRejected,
    PrefectTrigger,
    RunRequest,
)

__all__ = ["Dispatcher", "Outcome", "RecentRuns", "rejection_reason"]

logger = logging.getLogger("libnar.gateway")

#: Prefect's bulk limit: the most runs one call creates.
BATCH = 100


def recent_key(entry: OutboxEntry) -> str:
    """The key of a delivery's attempt in `RecentRuns`."""
    return f"{entry.name}:{entry.attempt}"


class RecentRuns:
    """The runs this process created or found lately, so a repeat needs no outbox or Prefect.

    SamaHub retries and double deliveries arrive soon after the first; remembering runs for
    a few minutes answers them at once. Bounded in count and age.
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


@dataclass(frozen=True)
class Outcome:
    """What became of one stored event: its run, or why it was rejected (or left pending)."""

    entry: OutboxEntry
    run: CreatedRun | None = None
    rejected: Exception | None = None
    deferred: str | None = None


def rejection_reason(error: Exception) -> str:
    """The metrics label of a rejection."""
    if isinstance(error, DeploymentNotFound):
        return "no_deployment"
    return "parameters"


class Dispatcher:
    """Drain the outbox into Prefect; one per gateway process (see the module's docstring).

    Args:
        outbox: The store to lease from.
        trigger: Prefect's API.
        metrics: Counts of outcomes, the backlog, accept-to-run time.
        recent: Runs this process knows, for answering repeats.
        window_seconds: After a new event, how long to gather more before leasing.
        max_backlog: The bound the answer path checks (`is_full`).
        poll_seconds: How often an idle dispatcher looks for events others stored.
        max_retry_seconds: The longest delay before an event Prefect failed on is sent again.
    """

    def __init__(
        self,
        outbox: Outbox,
        trigger: PrefectTrigger,
        metrics: GatewayMetrics,
        recent: RecentRuns,
        *,
        window_seconds: float = 0.01,
        max_backlog: int = 10_000,
        poll_seconds: float = 1.0,
        max_retry_seconds: float = 30.0,
        concurrency: int = 1,
    ) -> None:
        self.outbox = outbox
        self.trigger = trigger
        self.metrics = metrics
        self.recent = recent
        self.window_seconds = window_seconds
        self.max_backlog = max_backlog
        self.poll_seconds = poll_seconds
        self.max_retry_seconds = max_retry_seconds
        self.backlog = Backlog(0, 0.0)
        self._stored_since_count = 0
        self._wakeup = asyncio.Event()
        self._in_flight = asyncio.Semaphore(concurrency + 1)
        self._batches: set[asyncio.Task[None]] = set()
        self._waiters: dict[str, list[asyncio.Future[Outcome]]] = {}
        self._failures: dict[str, int] = {}
        self._paused_until = 0.0
        self._loops: list[asyncio.Task[None]] = []
        metrics.backlog_limit.set(max_backlog)

    # -- life --------------------------------------------------------------------------------

    def start(self) -> None:
        """Start draining and watching the backlog (in the running event loop)."""
        self._loops = [
            asyncio.ensure_future(self._drain_forever()),
            asyncio.ensure_future(self._watch_backlog()),
        ]

    async def stop(self) -> None:
        """Stop: batches in flight are cancelled; their entries stay pending (files unlock,
        leases end) and are sent again by the next dispatcher."""
        for task in [*self._loops, *self._batches]:
            task.cancel()
        for task in [*self._loops, *self._batches]:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._loops = []

    # -- the answer path's side --------------------------------------------------------------

    def is_full(self) -> bool:
        """Whether the backlog has reached `max_backlog` (answer 503 instead of storing)."""
        return self.backlog.count + self._stored_since_count >= self.max_backlog

    def stored(self) -> None:
        """Note one more stored event and wake the dispatcher."""
        self._stored_since_count += 1
        self._wakeup.set()

    async def wait_for(self, entry: OutboxEntry, seconds: float) -> Outcome | None:
        """The outcome of `entry` once this process has dispatched it; None after `seconds`
        (another process may be sending it, or Prefect is slow: it stays stored)."""
        future: asyncio.Future[Outcome] = asyncio.get_running_loop().create_future()
        waiters = self._waiters.setdefault(entry.name, [])
        waiters.append(future)
        self._wakeup.set()
        try:
            async with asyncio.timeout(seconds):
                return await future
        except TimeoutError:
            return None
        finally:
            if future in waiters:
                waiters.remove(future)
            if not waiters:
                self._waiters.pop(entry.name, None)

    # -- draining ----------------------------------------------------------------------------

    async def drain_once(self, limit: int = BATCH) -> list[Outcome]:
        """Lease up to `limit` entries and dispatch them now (for `replay`): their outcomes."""
        leased = await anyio.to_thread.run_sync(self.outbox.lease, limit)
        return await self.dispatch(leased)

    async def _drain_forever(self) -> None:
        while True:
            try:
                await self._drain_step()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the loop must outlive any one failure
                logger.error("dispatcher: %s: %s; trying again", type(exc).__name__, exc)
                await asyncio.sleep(self.poll_seconds)

    async def _drain_step(self) -> None:
        pause = self._paused_until - time.monotonic()
        if pause > 0:
            await self._sleep_or_wake(pause, wake=False)
            return
        await self._in_flight.acquire()
        try:
            leased = await anyio.to_thread.run_sync(self.outbox.lease, BATCH)
        except BaseException:
            self._in_flight.release()
            raise
        if not leased:
            self._in_flight.release()
            woken = await self._sleep_or_wake(self.poll_seconds, wake=True)
            if woken and self.window_seconds > 0:
                await asyncio.sleep(self.window_seconds)  # let a burst gather into one call
            return
        task = asyncio.ensure_future(self._dispatch_and_release(leased))
        self._batches.add(task)
        task.add_done_callback(self._batches.discard)

    async def _sleep_or_wake(self, seconds: float, *, wake: bool) -> bool:
        if not wake:
            await asyncio.sleep(seconds)
            return False
        self._wakeup.clear()
        try:
            async with asyncio.timeout(seconds):
                await self._wakeup.wait()
        except TimeoutError:
            return False
        return True

    async def _dispatch_and_release(self, leased: list[Leased]) -> None:
        try:
            await self.dispatch(leased)
        except Exception as exc:
            logger.error("dispatcher: a batch failed: %s: %s", type(exc).__name__, exc)
            await self._settle([Outcome(item.entry, deferred=str(exc)) for item in leased], leased)
        finally:
            self._in_flight.release()

    async def dispatch(self, leased: list[Leased]) -> list[Outcome]:
        """Send the leased entries, grouped per deployment, and settle each in the outbox."""
        groups: dict[tuple[str, str], list[Leased]] = {}
        for item in leased:
            groups.setdefault((item.entry.flow, item.entry.deployment), []).append(item)
        results = await asyncio.gather(
            *(self._dispatch_group(flow, name, items) for (flow, name), items in groups.items())
        )
        outcomes = [outcome for group in results for outcome in group]
        order = {id(item.entry): index for index, item in enumerate(leased)}
        outcomes.sort(key=lambda outcome: order.get(id(outcome.entry), 0))
        await self._settle(outcomes, leased)
        return outcomes

    async def _dispatch_group(self, flow: str, name: str, items: list[Leased]) -> list[Outcome]:
        try:
            deployment = await self.trigger.deployment(flow, name)
        except DeploymentNotFound as exc:
            return [Outcome(item.entry, rejected=exc) for item in items]
        except Exception as exc:
            return [Outcome(item.entry, deferred=f"{type(exc).__name__}: {exc}") for item in items]
        outcomes: dict[int, Outcome] = {}
        requests: list[tuple[int, RunRequest]] = []
        for index, item in enumerate(items):
            try:
                requests.append((index, run_request(deployment, item.entry)))
            except ParametersRejected as exc:
                outcomes[index] = Outcome(item.entry, rejected=exc)
        if requests:
            created = await self.trigger.create_runs(deployment, [r for _, r in requests])
            for (index, _), result in zip(requests, created, strict=True):
                outcomes[index] = self._outcome(items[index].entry, deployment, result)
        return [outcomes[index] for index in range(len(items))]

    @staticmethod
    def _outcome(
        entry: OutboxEntry, deployment: Deployment, result: CreatedRun | Exception
    ) -> Outcome:
        if isinstance(result, CreatedRun):
            return Outcome(entry, run=result)
        if isinstance(result, ParametersRejected | DeploymentNotFound):
            return Outcome(entry, rejected=result)
        return Outcome(entry, deferred=f"{type(result).__name__}: {result}")

    async def _settle(self, outcomes: list[Outcome], leased: list[Leased]) -> None:
        """Mark each entry done, rejected or pending (in one thread hop), then count and tell
        whoever waits."""
        by_entry = {id(item.entry): item for item in leased}
        delays = {}
        deferred = [o for o in outcomes if o.deferred is not None]
        for outcome in deferred:
            failures = self._failures.get(outcome.entry.name, 0) + 1
            self._failures[outcome.entry.name] = failures
            delays[outcome.entry.name] = min(self.max_retry_seconds, 2.0 ** (failures - 1))
        if deferred:
            first = deferred[0]
            logger.warning(
                "Prefect unavailable or failing; %d event(s) stay stored and are sent again"
                " in %.0f s or more: %s",
                len(deferred),
                min(delays.values()),
                first.deferred,
            )
            self._paused_until = time.monotonic() + min(delays.values())
        elif outcomes:
            self._paused_until = 0.0

        items = [
            (
                by_entry[id(outcome.entry)],
                outcome.run.flow_run_id if outcome.run is not None else None,
                str(outcome.rejected) if outcome.rejected is not None else None,
                delays.get(outcome.entry.name, 1.0),
            )
            for outcome in outcomes
            if id(outcome.entry) in by_entry
        ]
        # An entry that cannot be settled stays pending: it is sent again, and found.
        problems = await anyio.to_thread.run_sync(self.outbox.settle, items)
        for problem in problems:
            logger.error("outbox: cannot settle %s", problem)
        for outcome in outcomes:
            self._count(outcome)
            if outcome.deferred is None:
                self._failures.pop(outcome.entry.name, None)
                for waiter in self._waiters.pop(outcome.entry.name, []):
                    if not waiter.done():
                        waiter.set_result(outcome)

    def _count(self, outcome: Outcome) -> None:
        entry = outcome.entry
        dispatched = self.metrics.dispatched
        if outcome.run is not None:
            self.recent.add(recent_key(entry), outcome.run)
            kind = "existing" if outcome.run.duplicate else "created"
            dispatched.labels(entry.flow, kind, "").inc()
            waited = entry.seconds_since_received()
            if waited is not None:
                self.metrics.accept_to_run.observe(waited)
        elif outcome.rejected is not None:
            logger.warning(
                "rejected %s (%s/%s): %r",
                entry.name,
                entry.flow,
                entry.deployment,
                str(outcome.rejected),
            )
            dispatched.labels(entry.flow, "rejected", rejection_reason(outcome.rejected)).inc()
        else:
            dispatched.labels(entry.flow, "deferred", "prefect").inc()

    # -- the backlog -------------------------------------------------------------------------

    async def refresh_backlog(self) -> Backlog:
        """Read the backlog from the outbox now."""
        backlog = await anyio.to_thread.run_sync(self.outbox.backlog)
        self.backlog = backlog
        self._stored_since_count = 0
        self.metrics.backlog.set(backlog.count)
        self.metrics.backlog_oldest.set(backlog.oldest_seconds)
        return backlog

    async def _watch_backlog(self, every: float = 1.0) -> None:
        while True:
            try:
                await self.refresh_backlog()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                logger.warning("outbox: cannot read the backlog: %s", exc)
            await asyncio.sleep(every)
