"""Create flow runs on the Prefect API exactly once, grouping concurrent events per deployment.

Talks to Prefect's REST API with httpx (not `run_deployment`) because the gateway must know
whether a run is new or already existed, and Prefect's client hides that:

- each run carries `idempotency_key = "<deployment id>:<event key>"` (Prefect's keys are unique
  per flow, not per deployment, so the key holds the deployment);
- each run also carries a random request id in its `context`; Prefect returns the existing run,
  context included, when the key is taken, so "the run's request id is ours" means the run is
  new. That holds for the single and the bulk endpoint (which answers CREATED either way), for
  several gateway replicas, and for a call retried after a lost answer.

The dispatcher sends the stored events of one deployment as one
`POST /deployments/{id}/create_flow_run/bulk` (`create_runs`): one transaction instead of one
per run, which is what SQLite needs. `create_run` gathers concurrent single events per
deployment for a few milliseconds (or until a slot towards Prefect is free) into such calls.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import random
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import httpx

from libnar._gateway._metrics import GatewayMetrics
from libnar.events import EventProblem
from libnar.runs import event_parameter_of
from libnar.settings import Settings, mask_url

__all__ = [
    "CreatedRun",
    "Deployment",
    "DeploymentNotFound",
    "ParametersRejected",
    "PrefectError",
    "PrefectTrigger",
    "PrefectUnavailable",
    "RunRequest",
    "TriggerError",
    "literal_parameters",
    "prefect_api_settings",
]

logger = logging.getLogger("libnar.gateway")

_BULK_LIMIT = 100  # Prefect's BULK_CREATE_LIMIT
_MIN_BULK = 5
_CONTEXT_KEY = "libnar_gateway_request"
_RETRIED_STATUSES = frozenset({429, 502, 503, 504})


class TriggerError(Exception):
    """Creating a run failed; subclasses say why and how the gateway answers."""


class PrefectUnavailable(TriggerError):
    """Prefect did not answer, or answered that it is overloaded, until the time ran out."""


class PrefectError(TriggerError):
    """Prefect answered something the gateway did not expect (a bug on one side)."""


class DeploymentNotFound(TriggerError):
    """The flow has no deployment of that name on the Prefect API."""

    def __init__(self, flow: str, deployment: str) -> None:
        self.flow = flow
        self.deployment = deployment
        super().__init__(f"flow {flow!r} has no deployment {deployment!r} on the Prefect API")


class ParametersRejected(TriggerError):
    """The deployment refuses the run's parameters; the message is Prefect's or libnar's."""

    def __init__(
        self,
        message: str,
        accepted: list[str] | None = None,
        problems: list[EventProblem] | None = None,
    ) -> None:
        self.accepted = accepted
        self.problems = problems or []
        super().__init__(message)


@dataclass(frozen=True)
class Deployment:
    """What the gateway needs of a deployment: its id, parameter names, defaults and schema."""

    id: str
    flow: str
    name: str
    accepted: tuple[str, ...] | None
    defaults: dict[str, Any] = field(default_factory=dict)
    """Default parameters that are literal values (not Prefect placeholders)."""
    schema: dict[str, Any] | None = field(default=None, repr=False)
    """The parameter schema, prepared as Prefect prepares it; None when not enforced.

    Parameters whose default is a Prefect placeholder (filled in by the server) are not
    required in it: their value is never known here, and never echoed.
    """
    event_parameter: str | None = None
    """The flow's event parameter (marked in its schema), whatever its name."""
    event_kinds: tuple[str, ...] = ()
    """The event kinds the flow takes: `webhook`, `dpp`, `task`."""
    version: str = ""
    """The deployment's id and last update: an event checked against this version need not
    be checked again."""
    infra: str | None = None
    """The infra of its runs (its `infra:` tag, written by `libnar deploy`): the limits of
    per-run resources. None for a deployment libnar did not make."""
    pool_type: str | None = None
    """The type of its work pool (`ecs`, `kubernetes`, `process`): the units of job variables."""

    def takes(self, source: str) -> bool:
        """Whether the flow takes events of this source (`webhook` or `dpp`)."""
        return source in self.event_kinds or "task" in self.event_kinds

    def unknown_parameters(self, parameters: Mapping[str, Any]) -> list[str]:
        """Top-level parameter names the deployment's schema does not have."""
        if self.accepted is None:
            return []
        return [name for name in parameters if name not in self.accepted]

    def refusal(self, parameters: Mapping[str, Any]) -> str | None:
        """Prefect's reason for refusing the parameters, or None when its schema accepts them.

        The same check Prefect's server makes, made here: the server checks the schema itself
        on every run (about 11 ms each, most of a bulk call), the validation alone takes a
        fraction of a millisecond.
        """
        from prefect.utilities.schema_tools.validation import (
            CircularSchemaRefError,
            ValidationError,
            validate,
        )

        if self.schema is None:
            return None
        merged = {**self.defaults, **parameters}
        try:
            if not validate(merged, self.schema, preprocess=False):
                return None
            validate(merged, self.schema, raise_on_error=True, preprocess=False)
        except ValidationError as exc:
            return _shortened(str(exc))
        except CircularSchemaRefError:
            return "Invalid schema: Unable to validate schema with circular references."
        return None

    def is_checked_here(self) -> bool:
        """Whether `refusal` stands in for Prefect's check (the deployment enforces a schema)."""
        return self.schema is not None


@dataclass(frozen=True)
class RunRequest:
    """One run to create."""

    idempotency_key: str
    name: str
    tags: list[str]
    parameters: dict[str, Any]
    checked: bool = False
    """The parameters were checked against the deployment's schema: Prefect need not."""
    job_variables: dict[str, Any] | None = None
    """The run's own job variables (its resources); None: the deployment's."""


@dataclass(frozen=True)
class CreatedRun:
    """The run an event landed on, and whether it existed before."""

    flow_run_id: str
    flow_run_name: str
    duplicate: bool


@dataclass
class _Waiting:
    request: RunRequest
    future: asyncio.Future[CreatedRun]
    request_id: str = field(default_factory=lambda: uuid.uuid4().hex)


def prefect_api_settings() -> tuple[str | None, dict[str, str]]:
    """Prefect's configured API URL and the auth header its own client would send."""
    from prefect.settings import get_current_settings

    api = get_current_settings().api
    headers: dict[str, str] = {}
    if api.auth_string is not None:
        token = base64.b64encode(api.auth_string.get_secret_value().encode()).decode()
        headers["Authorization"] = f"Basic {token}"
    elif api.key is not None:
        headers["Authorization"] = f"Bearer {api.key.get_secret_value()}"
    return api.url, headers


def literal_parameters(parameters: Mapping[str, Any]) -> dict[str, Any]:
    """Parameters that Prefect's server passes to the run exactly as given.

    The server *hydrates* values shaped `{"__prefect_kind": ...}` when it creates a run from a
    deployment (a workspace variable's value, a rendered Jinja template, parsed JSON). A value
    that holds one anywhere is wrapped as `{"__prefect_kind": "json", "value": "<its JSON>"}`:
    the server only parses that text back, so the run gets the value literally and nothing a
    sender wrote is evaluated. Other values are sent as they are.
    """
    return {
        name: {"__prefect_kind": "json", "value": json.dumps(value)}
        if _has_placeholder(value)
        else value
        for name, value in parameters.items()
    }


class PrefectTrigger:
    """Resolve deployments and create runs on one Prefect API; use as an async context manager.

    Args:
        api_url: Prefect's API URL (`PREFECT_API_URL`).
        headers: Extra headers for every call (Prefect's auth).
        concurrency: Most calls in flight towards Prefect at once.
        bulk_window_ms: How long to gather events per deployment; 0 sends each alone.
        cache_seconds: How long a deployment lookup is reused (and, with `stale_ok`, how
            often it is refreshed in the background).
        timeout: Seconds one call may take, retries included, before `PrefectUnavailable`.
        metrics: Where to count calls' latency and errors.
    """

    def __init__(
        self,
        api_url: str,
        *,
        headers: Mapping[str, str] | None = None,
        concurrency: int = 1,
        bulk_window_ms: float = 10.0,
        cache_seconds: float = 30.0,
        timeout: float = 20.0,
        metrics: GatewayMetrics | None = None,
    ) -> None:
        self.api_url = api_url.rstrip("/")
        self.shown_url = mask_url(self.api_url)
        self.timeout = timeout
        self._http = httpx.AsyncClient(
            base_url=self.api_url + "/",
            headers=dict(headers or {}),
            # A bulk call on a busy Prefect can take seconds: only the whole deadline bounds it
            # (a call cut short would be sent again, and Prefect would do the work twice).
            timeout=httpx.Timeout(timeout, connect=min(timeout, 3.0)),
            limits=httpx.Limits(max_connections=concurrency + 2),
        )
        self._slots = asyncio.Semaphore(concurrency)
        self._window = bulk_window_ms / 1000
        self._cache_seconds = cache_seconds
        self._timeout = timeout
        self._deployments: dict[tuple[str, str], tuple[float, Deployment]] = {}
        self._lookups: dict[tuple[str, str], asyncio.Future[Deployment]] = {}
        self._queues: dict[str, list[_Waiting]] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._metrics = metrics
        self._bulk_size = _BULK_LIMIT

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        api_url: str,
        headers: Mapping[str, str] | None = None,
        metrics: GatewayMetrics | None = None,
    ) -> PrefectTrigger:
        """The trigger the gateway's settings describe (the one place it is built)."""
        return cls(
            api_url,
            headers=headers,
            concurrency=settings.gateway_prefect_concurrency,
            bulk_window_ms=settings.gateway_bulk_window_ms,
            cache_seconds=settings.gateway_deployment_cache_seconds,
            timeout=settings.gateway_prefect_timeout,
            metrics=metrics,
        )

    async def __aenter__(self) -> PrefectTrigger:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Wait for runs being created, then close the HTTP connections."""
        for lookup in list(self._lookups.values()):
            lookup.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._http.aclose()

    # -- health ------------------------------------------------------------------------------

    async def is_reachable(self) -> bool:
        """Whether Prefect's `/health` answers 200 within 2 s."""
        try:
            response = await self._http.get("health", timeout=2.0)
        except httpx.HTTPError:
            return False
        return response.status_code == 200

    # -- deployments -------------------------------------------------------------------------

    async def deployment(self, flow: str, name: str, *, stale_ok: bool = False) -> Deployment:
        """The deployment `flow/name`, from the cache when it was read recently.

        Concurrent lookups of one deployment share one request. With `stale_ok`, an entry
        older than the cache time is returned at once and refreshed in the background (what
        an event waiting for its answer wants: the dispatcher checks again before creating
        the run); a refresh that finds no deployment drops it, one that fails keeps it.

        Raises:
            DeploymentNotFound: Prefect has no such deployment.
            PrefectUnavailable: Prefect did not answer in time.
        """
        key = (flow, name)
        cached = self._deployments.get(key)
        if cached is not None and time.monotonic() - cached[0] < self._cache_seconds:
            return cached[1]
        lookup = self._lookup(flow, name)
        if cached is not None and stale_ok:
            return cached[1]
        return await asyncio.shield(lookup)

    def _lookup(self, flow: str, name: str) -> asyncio.Future[Deployment]:
        key = (flow, name)
        lookup = self._lookups.get(key)
        if lookup is None:
            # The lookup is a task of its own: a caller that gives up (its own deadline) does
            # not cancel it for the others waiting on it.
            lookup = asyncio.ensure_future(self._read_and_cache(flow, name))
            self._lookups[key] = lookup
            lookup.add_done_callback(lambda _: self._lookups.pop(key, None))
            lookup.add_done_callback(_retrieve_exception)
        return lookup

    async def _read_and_cache(self, flow: str, name: str) -> Deployment:
        try:
            found = await self._read_deployment(flow, name)
        except DeploymentNotFound:
            self._deployments.pop((flow, name), None)
            raise
        self._deployments[(flow, name)] = (time.monotonic(), found)
        return found

    def forget(self, deployment: Deployment) -> None:
        """Drop a deployment from the cache (it was deleted or replaced)."""
        self._deployments.pop((deployment.flow, deployment.name), None)

    async def _read_deployment(self, flow: str, name: str) -> Deployment:
        response = await self._send(
            "GET",
            f"deployments/name/{quote(flow, safe='')}/{quote(name, safe='')}",
            operation="read_deployment",
        )
        if response.status_code == 404:
            raise DeploymentNotFound(flow, name)
        _expect(response, 200)
        body = response.json()
        schema = body.get("parameter_openapi_schema")
        accepted = None
        if isinstance(schema, dict) and isinstance(schema.get("properties"), dict):
            accepted = tuple(schema["properties"])
        defaults = body.get("parameters") or {}
        literal = {k: v for k, v in defaults.items() if not _has_placeholder(v)}
        prepared = None
        if body.get("enforce_parameter_schema") and isinstance(schema, dict):
            from prefect.utilities.schema_tools.validation import preprocess_schema

            prepared = dict(preprocess_schema(schema))
            filled_by_server = set(defaults) - set(literal)
            if filled_by_server and isinstance(prepared.get("required"), list):
                prepared["required"] = [
                    r for r in prepared["required"] if r not in filled_by_server
                ]
        event = event_parameter_of(schema if isinstance(schema, dict) else None)
        infra = next(
            (t.removeprefix("infra:") for t in body.get("tags") or [] if t.startswith("infra:")),
            None,
        )
        pool_type = await self._pool_type(body.get("work_pool_name")) if infra else None
        return Deployment(
            id=str(body["id"]),
            flow=flow,
            name=name,
            accepted=accepted,
            defaults=literal,
            schema=prepared,
            event_parameter=event[0] if event else None,
            event_kinds=event[1] if event else (),
            version=f"{body['id']}@{body.get('updated') or ''}",
            infra=infra,
            pool_type=pool_type,
        )

    async def _pool_type(self, pool: str | None) -> str | None:
        """The type of a work pool (`ecs`, `kubernetes`, `process`); None when unknown."""
        if not pool:
            return None
        response = await self._send(
            "GET", f"work_pools/{quote(pool, safe='')}", operation="read_work_pool"
        )
        if response.status_code != 200:
            return None
        kind = response.json().get("type")
        return str(kind) if kind else None

    async def read(self, path: str, what: str, *, operation: str = "read") -> dict[str, Any]:
        """One object of Prefect's API (`flow_runs/<id>`, `deployments/<id>`...).

        Raises:
            LookupError: Prefect has no such object (`what` names it).
            TriggerError: Prefect failed.
        """
        response = await self._send("GET", path, operation=operation)
        if response.status_code == 404:
            raise LookupError(f"{what} does not exist on the Prefect API")
        _expect(response, 200)
        found: dict[str, Any] = response.json()
        return found

    # -- runs --------------------------------------------------------------------------------

    async def create_runs(
        self, deployment: Deployment, requests: list[RunRequest]
    ) -> list[CreatedRun | Exception]:
        """Create the runs (or find those with their keys) in bulk calls of up to 100.

        Returns one outcome per request, in order: the run, or the error for that request
        (`ParametersRejected`, `DeploymentNotFound`, `PrefectUnavailable`, `PrefectError`).
        The same key twice is one run; the later ones are duplicates.

        The size of a call adapts to Prefect's pace: calls are kept to about a quarter of the
        timeout (fewer runs a call when Prefect is slow, up to 100 when it is fast), so a
        busy Prefect is never given more than it can answer in time.
        """
        waiting = [
            _Waiting(request, asyncio.get_running_loop().create_future()) for request in requests
        ]
        start = 0
        while start < len(waiting):
            batch = waiting[start : start + self._bulk_size]
            start += len(batch)
            async with self._slots:
                began = time.monotonic()
                await self._run_batch(deployment, batch, have_slot=True)
                self._adapt_bulk_size(len(batch), time.monotonic() - began, batch)
        outcomes: list[CreatedRun | Exception] = []
        for item in waiting:
            error = item.future.exception()
            outcomes.append(error if isinstance(error, Exception) else item.future.result())
        return outcomes

    def _adapt_bulk_size(self, sent: int, seconds: float, batch: list[_Waiting]) -> None:
        timed_out = any(
            isinstance(w.future.exception(), PrefectUnavailable)
            for w in batch
            if w.future.done() and not w.future.cancelled()
        )
        if timed_out:
            self._bulk_size = max(_MIN_BULK, self._bulk_size // 2)
        elif sent >= self._bulk_size and seconds > 0:
            fitting = int(sent * (self._timeout / 4) / seconds)
            self._bulk_size = max(_MIN_BULK, min(_BULK_LIMIT, fitting))

    async def create_run(self, deployment: Deployment, request: RunRequest) -> CreatedRun:
        """Create the run (or find the one with its key); does not wait for it to start.

        Raises:
            ParametersRejected: the deployment's schema refuses the parameters.
            DeploymentNotFound: the deployment was deleted since it was looked up.
            PrefectUnavailable: Prefect did not answer in time.
            PrefectError: Prefect answered something unexpected.
        """
        waiting = _Waiting(request, asyncio.get_running_loop().create_future())
        if self._window <= 0:
            await self._run_batch(deployment, [waiting])
            return await waiting.future
        queue = self._queues.setdefault(deployment.id, [])
        queue.append(waiting)
        if len(queue) == 1:
            self._start(self._flush_later(deployment))
        return await waiting.future

    def _start(self, coroutine: Any) -> None:
        task = asyncio.ensure_future(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _flush_later(self, deployment: Deployment) -> None:
        await asyncio.sleep(self._window)
        while self._queues.get(deployment.id):
            # Wait for a free slot before taking the queue: events that arrive meanwhile join
            # this batch, so batches grow with the load instead of queueing up one by one.
            async with self._slots:
                queue = self._queues.pop(deployment.id, [])
                batch, rest = queue[:_BULK_LIMIT], queue[_BULK_LIMIT:]
                if rest:
                    self._queues[deployment.id] = rest
                await self._run_batch(deployment, batch, have_slot=True)

    async def _run_batch(
        self, deployment: Deployment, batch: list[_Waiting], *, have_slot: bool = False
    ) -> None:
        groups: dict[str, list[_Waiting]] = {}
        for waiting in batch:
            groups.setdefault(waiting.request.idempotency_key, []).append(waiting)
        firsts = [group[0] for group in groups.values()]
        try:
            if len(firsts) == 1:
                outcomes: list[CreatedRun | TriggerError] = [
                    await self._create_one(deployment, firsts[0], have_slot=have_slot)
                ]
            else:
                outcomes = await self._create_bulk(deployment, firsts, have_slot=have_slot)
        except Exception as exc:
            if isinstance(exc, DeploymentNotFound):
                self.forget(deployment)
            for waiting in batch:
                if not waiting.future.done():
                    waiting.future.set_exception(exc)
            return
        for group, outcome in zip(groups.values(), outcomes, strict=True):
            for index, waiting in enumerate(group):
                if waiting.future.done():
                    continue
                if isinstance(outcome, TriggerError):
                    waiting.future.set_exception(outcome)
                elif index:  # the same event twice in one batch: the later ones are repeats
                    waiting.future.set_result(
                        CreatedRun(outcome.flow_run_id, outcome.flow_run_name, duplicate=True)
                    )
                else:
                    waiting.future.set_result(outcome)

    def _run_body(self, waiting: _Waiting) -> dict[str, Any]:
        request = waiting.request
        return {
            "name": request.name,
            "parameters": literal_parameters(request.parameters),
            "tags": request.tags,
            "idempotency_key": request.idempotency_key,
            "context": {_CONTEXT_KEY: waiting.request_id},
            "state": {"type": "SCHEDULED", "name": "Scheduled"},
            **({"enforce_parameter_schema": False} if request.checked else {}),
            **({"job_variables": request.job_variables} if request.job_variables else {}),
        }

    async def _create_one(
        self, deployment: Deployment, waiting: _Waiting, *, have_slot: bool
    ) -> CreatedRun:
        response = await self._send(
            "POST",
            f"deployments/{deployment.id}/create_flow_run",
            json=self._run_body(waiting),
            have_slot=have_slot,
            operation="create_run",
        )
        if response.status_code == 404:
            raise DeploymentNotFound(deployment.flow, deployment.name)
        if response.status_code in _REFUSED_STATUSES:
            raise _refused(response)
        _expect(response, 200, 201)
        return _created(response.json(), waiting, created=response.status_code == 201)

    async def _create_bulk(
        self, deployment: Deployment, batch: list[_Waiting], *, have_slot: bool
    ) -> list[CreatedRun | TriggerError]:
        """Create the batch in one call; retry the items Prefect failed for passing reasons.

        The bulk endpoint answers CREATED for new and existing runs alike, and reports a
        database error (SQLite's "database is locked") per item: those items are sent again
        (their keys make that safe), and a run is taken as created only once it is read back.
        """
        outcomes: dict[int, CreatedRun | TriggerError] = {}
        remaining = list(range(len(batch)))
        deadline = time.monotonic() + self._timeout
        delay = 0.05
        while True:
            response = await self._send(
                "POST",
                f"deployments/{deployment.id}/create_flow_run/bulk",
                json=[self._run_body(batch[i]) for i in remaining],
                have_slot=have_slot,
                operation="create_runs",
            )
            if response.status_code == 404:
                raise DeploymentNotFound(deployment.flow, deployment.name)
            if response.status_code in _REFUSED_STATUSES:
                # Prefect refuses a whole bulk call for one bad item (e.g. over its size
                # limit): create each alone, so only the bad one fails.
                return await self._create_each(deployment, batch, outcomes, remaining, have_slot)
            _expect(response, 200, 201)
            results = response.json()["results"]
            ids = [str(r["flow_run_id"]) for r in results if r.get("status") == "CREATED"]
            runs = await self._read_runs(ids, have_slot=have_slot) if ids else {}
            again = []
            for index, result in zip(remaining, results, strict=True):
                error = str(result.get("error") or "")
                run = runs.get(str(result.get("flow_run_id")))
                if result.get("status") == "CREATED" and run is not None:
                    outcomes[index] = _created(run, batch[index], created=None)
                elif "validation failed" in error.lower():
                    outcomes[index] = ParametersRejected(
                        "the deployment's parameter schema refuses them"
                    )
                elif result.get("status") == "CREATED" or _is_passing(error):
                    again.append(index)
                else:
                    outcomes[index] = PrefectError(f"Prefect did not create the run: {error}")
            if not again:
                break
            if time.monotonic() + delay > deadline:
                for index in again:
                    outcomes[index] = PrefectUnavailable("Prefect kept failing to create the run")
                break
            logger.debug(
                "bulk create: %d of %d runs again in %.2f s", len(again), len(batch), delay
            )
            await asyncio.sleep(delay * (0.5 + random.random()))  # noqa: S311 - jitter
            delay = min(delay * 2, 2.0)
            remaining = again
        return [outcomes[i] for i in range(len(batch))]

    async def _create_each(
        self,
        deployment: Deployment,
        batch: list[_Waiting],
        outcomes: dict[int, CreatedRun | TriggerError],
        remaining: list[int],
        have_slot: bool,
    ) -> list[CreatedRun | TriggerError]:
        logger.info("bulk create refused as a whole; creating %d runs one by one", len(remaining))
        for index in remaining:
            try:
                outcomes[index] = await self._create_one(
                    deployment, batch[index], have_slot=have_slot
                )
            except (ParametersRejected, PrefectError) as exc:
                outcomes[index] = exc
        return [outcomes[i] for i in range(len(batch))]

    async def _read_runs(self, ids: list[str], *, have_slot: bool) -> dict[str, dict[str, Any]]:
        response = await self._send(
            "POST",
            "flow_runs/filter",
            json={"flow_runs": {"id": {"any_": ids}}, "limit": len(ids)},
            have_slot=have_slot,
            operation="read_runs",
        )
        _expect(response, 200)
        return {str(run["id"]): run for run in response.json()}

    # -- HTTP --------------------------------------------------------------------------------

    async def _send(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        have_slot: bool = False,
        operation: str = "other",
    ) -> httpx.Response:
        """Send one call, retrying what is safe to retry until the time runs out.

        Every call the gateway makes is safe to repeat: reads, and creates with an
        idempotency key. Its latency (retries included) and failures are counted.
        """
        started = time.perf_counter()
        try:
            response = await self._send_retrying(method, path, json, have_slot)
        except PrefectUnavailable:
            self._count_error(operation, "unavailable")
            raise
        finally:
            if self._metrics is not None:
                self._metrics.prefect_seconds.labels(operation).observe(
                    time.perf_counter() - started
                )
        if response.status_code >= 500:
            self._count_error(operation, "unexpected")
        return response

    def _count_error(self, operation: str, kind: str) -> None:
        if self._metrics is not None:
            self._metrics.prefect_errors.labels(operation, kind).inc()

    async def _send_retrying(
        self, method: str, path: str, json: Any, have_slot: bool
    ) -> httpx.Response:
        deadline = time.monotonic() + self._timeout
        delay = 0.05
        while True:
            problem: str
            try:
                if have_slot:
                    response = await self._http.request(method, path, json=json)
                else:
                    async with self._slots:
                        response = await self._http.request(method, path, json=json)
            except httpx.TransportError as exc:
                problem = f"{type(exc).__name__}: {exc}"
            else:
                if response.status_code not in _RETRIED_STATUSES:
                    return response
                problem = f"HTTP {response.status_code}: {_detail(response)}"
            if time.monotonic() + delay > deadline:
                raise PrefectUnavailable(f"Prefect API at {self.shown_url}: {problem}")
            logger.debug("Prefect %s %s: %s; retrying in %.2f s", method, path, problem, delay)
            await asyncio.sleep(delay * (0.5 + random.random()))  # noqa: S311 - jitter
            delay = min(delay * 2, 2.0)


def _retrieve_exception(future: asyncio.Future[Any]) -> None:
    """Mark a finished lookup's exception as seen: its waiters re-raise it themselves."""
    if not future.cancelled():
        future.exception()


def _created(run: Mapping[str, Any], waiting: _Waiting, *, created: bool | None) -> CreatedRun:
    """A created-run answer; new when the run carries this request's id."""
    context = run.get("context") or {}
    if _CONTEXT_KEY in context:
        is_new = context[_CONTEXT_KEY] == waiting.request_id
    else:  # a run created by something else (e.g. another tool) with the same key
        is_new = bool(created)
    return CreatedRun(flow_run_id=str(run["id"]), flow_run_name=run["name"], duplicate=not is_new)


def _has_placeholder(value: Any) -> bool:
    """Whether a value holds a Prefect placeholder (`__prefect_kind`) the server fills in."""
    if isinstance(value, Mapping):
        return "__prefect_kind" in value or any(_has_placeholder(v) for v in value.values())
    if isinstance(value, list):
        return any(_has_placeholder(v) for v in value)
    return False


#: Statuses with which Prefect refuses a run's parameters: 400 a placeholder it cannot fill,
#: 409 its schema check, 422 its size limit.
_REFUSED_STATUSES = frozenset({400, 409, 422})


def _refused(response: httpx.Response) -> ParametersRejected:
    """Prefect's refusal, without echoing the parameters (they may hold values it filled in)."""
    if response.status_code == 422 and "bytes when serialized" in response.text[:2000]:
        return ParametersRejected(
            "the run's parameters are over Prefect's size limit"
            " (PREFECT_SERVER_API_MAX_PARAMETER_SIZE)"
        )
    if response.status_code == 409:
        return ParametersRejected("the deployment's parameter schema refuses them")
    return ParametersRejected(f"Prefect refused the run ({response.status_code})")


def _shortened(text: str, limit: int = 500) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _is_passing(error: str) -> bool:
    """Whether a per-item bulk error is one that passes (a busy or briefly gone database)."""
    lowered = error.lower()
    return any(word in lowered for word in ("locked", "operationalerror", "timeout", "connection"))


def _expect(response: httpx.Response, *statuses: int) -> None:
    if response.status_code not in statuses:
        raise PrefectError(
            f"Prefect answered {response.status_code} to {response.request.method}"
            f" {response.request.url.path}: {_detail(response)}"
        )


def _detail(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text[:500]
    if isinstance(body, dict) and "detail" in body:
        return str(body["detail"])
    return str(body)[:500]
