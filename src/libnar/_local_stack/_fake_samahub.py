"""A stateful fake of SamaHub's public API and DPP endpoint, on respx.

It follows `reference/samahub.md`: the same paths, query parameters, bodies, paging, error
shapes and key checks. Tests add projects and tasks, run the code under test, then assert on
the fake's state (`fake.dpp_results`, `fake.tasks`, `fake.calls(...)`). Faults (429, 5xx,
timeouts, dropped connections) can be injected per route or for every route, and new batches
can be listed late, as SamaHub's batch-creation jobs are (`lag_listing`).

`FakeSamaHub.handle` is independent of respx, so the same fake can sit behind a real HTTP
server (the benchmark and subprocess tests do that).
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Self
from urllib.parse import unquote

import httpx
from pydantic import ValidationError

from libnar._local_stack._factories import make_task_id
from libnar.events import DppEvent, DppResult, Task, WebhookEvent

if TYPE_CHECKING:
    import respx

__all__ = ["DEFAULT_API_URL", "DEFAULT_DPP_URL", "ROUTES", "FakeCall", "FakeSamaHub"]

DEFAULT_API_URL = "https://sama.test/v2"
DEFAULT_DPP_URL = "https://dpp.sama.test"
DEFAULT_API_KEY = "fake-sama-api-key-5f1e2d3c"
DEFAULT_DPP_KEY = "fake-sama-dpp-key-9a8b7c6d"
#: The largest `page_size` the fake accepts (SamaHub documents none; its SDK uses 1,000).
MAX_PAGE_SIZE = 1000
MAX_BATCH_TASKS = 1000

_ID = r"(?P<pid>[^/]+)"
_TID = r"(?P<tid>[^/]+)"
_BID = r"(?P<bid>[^/]+)"
#: Route name -> (method, path under the API base URL). `post_processed` is on the DPP URL.
ROUTES: dict[str, tuple[str, str]] = {
    "project": ("GET", rf"/projects/{_ID}\.json"),
    "stats": ("GET", rf"/projects/{_ID}/stats\.json"),
    "creation_schema": ("GET", rf"/projects/{_ID}/schemas/create_task\.json"),
    "delivery_schema": ("GET", rf"/projects/{_ID}/schemas/deliver_task\.json"),
    "create_batch": ("POST", rf"/projects/{_ID}/batches\.json"),
    "batch": ("GET", rf"/projects/{_ID}/batches/{_BID}\.json"),
    "cancel_batch": ("POST", rf"/projects/{_ID}/batches/{_BID}/cancel\.json"),
    "tasks": ("GET", rf"/projects/{_ID}/tasks\.json"),
    "delivered": ("GET", rf"/projects/{_ID}/tasks/delivered\.json"),
    "delivered_since_last_call": ("POST", rf"/projects/{_ID}/tasks/delivered\.json"),
    "bulk_update": ("POST", rf"/projects/{_ID}/tasks/bulk_update\.json"),
    "delete_tasks": ("POST", rf"/projects/{_ID}/tasks/delete_tasks\.json"),
    "reject": ("PUT", rf"/projects/{_ID}/tasks/{_TID}/reject\.json"),
    "task": ("GET", rf"/projects/{_ID}/tasks/{_TID}\.json"),
    "post_processed": ("PUT", rf"/api/v1/projects/{_ID}/tasks/{_TID}/post_processed"),
}
_PATTERNS = [(name, method, re.compile(path + "$")) for name, (method, path) in ROUTES.items()]


class _Answer(Exception):
    """Stop handling a request and answer with this status and body."""

    def __init__(self, status: int, message: str, *, top_level: bool = False) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.top_level = top_level

    def response(self) -> httpx.Response:
        if self.top_level:
            return httpx.Response(self.status, json={"message": self.message})
        return httpx.Response(
            self.status, json={"errors": [{"type": self.status, "message": self.message}]}
        )


@dataclass(frozen=True)
class FakeCall:
    """One request the fake received: route name, method, path, query (no key) and JSON body."""

    route: str
    method: str
    path: str
    params: dict[str, str]
    body: Any


@dataclass
class _Fault:
    route: str | None
    after: int
    times: int
    act: Callable[[httpx.Request], httpx.Response]
    processed: bool = False
    seen: int = 0
    fired: int = 0

    def counts(self, route: str) -> bool:
        """Count a call to `route` if this fault watches it; say whether it does."""
        if self.route is not None and self.route != route:
            return False
        self.seen += 1
        return True

    def is_due(self) -> bool:
        """Say whether the call just counted is one this fault acts on."""
        return self.seen > self.after and self.fired < self.times


@dataclass
class _Batch:
    id: int
    project_id: str
    client_batch_id: str | None
    task_ids: list[str]
    state: str = "completed"
    extra: dict[str, Any] = field(default_factory=dict)
    #: How many more task listings leave this batch's tasks out (see `lag_listing`).
    unlisted_for: int = 0


def _time(value: str, name: str) -> datetime:
    try:
        when = datetime.fromisoformat(value)
    except ValueError:
        raise _Answer(400, f"{name} must be an RFC 3339 timestamp, got {value!r}") from None
    if when.tzinfo is None:
        raise _Answer(400, f"{name} must carry a UTC offset (RFC 3339), got {value!r}")
    return when


def _int(params: Mapping[str, str], name: str, default: int, low: int, high: int) -> int:
    raw = params.get(name)
    if raw is None:
        return default
    if not raw.isdigit() or not low <= int(raw) <= high:
        raise _Answer(400, f"{name} must be an integer from {low} to {high}, got {raw!r}")
    return int(raw)


def _bool(params: Mapping[str, str], name: str) -> bool:
    raw = params.get(name)
    if raw is None:
        return False
    if raw not in ("true", "false"):
        raise _Answer(400, f"{name} must be true or false, got {raw!r}")
    return raw == "true"


class FakeSamaHub:
    """A stateful, in-memory SamaHub that answers like the real one.

    Use the `fake_samahub` fixture, or `with FakeSamaHub() as fake:` to intercept httpx
    requests to `api_url` and `dpp_url` (respx). Requests to other hosts pass through;
    requests to the real `api.sama.com` are refused with a 421, so no test reaches SamaHub.
    """

    def __init__(
        self,
        *,
        api_url: str = DEFAULT_API_URL,
        dpp_url: str = DEFAULT_DPP_URL,
        api_key: str = DEFAULT_API_KEY,
        dpp_key: str = DEFAULT_DPP_KEY,
    ) -> None:
        self.api_url = api_url.rstrip("/")
        self.dpp_url = dpp_url.rstrip("/")
        self.api_key = api_key
        self.dpp_key = dpp_key
        #: Projects by id, as `GET /projects/{pid}.json` answers them.
        self.projects: dict[str, dict[str, Any]] = {}
        #: Tasks by project id, then task id, in creation order.
        self.tasks: dict[str, dict[str, Task]] = {}
        #: Every DPP result received, by (project id, task id); the last one wins.
        self.dpp_results: dict[tuple[str, str], DppResult] = {}
        #: The reasons of every rejection, by (project id, task id).
        self.rejections: dict[tuple[str, str], list[str]] = {}
        #: JSON Schemas by project id: `{"create_task": {...}, "deliver_task": {...}}`.
        self.schemas: dict[str, dict[str, dict[str, Any]]] = {}
        self._batches: dict[str, dict[str, _Batch]] = {}
        self._deliveries: dict[str, list[str]] = {}  # per project: task ids in delivery order
        self._positions: dict[tuple[str, str], int] = {}  # (project, consumer) -> log index
        self._faults: list[_Fault] = []
        self._calls: list[FakeCall] = []
        self._rows: dict[int, tuple[Task, dict[str, Any]]] = {}
        self._next_batch = 1000
        self._listing_lag = 0
        self._lock = threading.RLock()
        self._router: respx.MockRouter | None = None

    def __repr__(self) -> str:
        return f"FakeSamaHub(api_url={self.api_url!r}, dpp_url={self.dpp_url!r})"

    def env(self) -> dict[str, str]:
        """Return the settings that point libnar at this fake (`SAMA_API_URL`, ...)."""
        return {
            "SAMA_API_URL": self.api_url,
            "SAMA_API_KEY": self.api_key,
            "SAMA_DPP_URL": self.dpp_url,
            "SAMA_DPP_KEY": self.dpp_key,
        }

    # --- interception ---

    def start(self) -> Self:
        """Start answering httpx requests to the fake's URLs (respx)."""
        if self._router is None:
            import respx  # a test extra: serving the fake over HTTP (libnar dev) needs none

            router = respx.MockRouter(assert_all_called=False, assert_all_mocked=False)
            router.route(url__startswith=self.api_url + "/").mock(side_effect=self.handle)
            router.route(url__startswith=self.dpp_url + "/").mock(side_effect=self.handle)
            router.route(host="api.sama.com").mock(side_effect=self._refuse_real_samahub)
            router.route().pass_through()
            router.start()
            self._router = router
        return self

    def stop(self) -> None:
        """Stop intercepting requests."""
        if self._router is not None:
            self._router.stop()
            self._router = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def _refuse_real_samahub(self, request: httpx.Request) -> httpx.Response:
        message = (
            f"the fake SamaHub refuses requests to the real SamaHub; point the client at "
            f"{self.api_url} (SAMA_API_URL)"
        )
        return _Answer(421, message).response()

    # --- state ---

    def add_project(self, pid: str | int = 10, **fields: Any) -> dict[str, Any]:
        """Add (or update) a project; fields are what `get_project` answers."""
        key = str(pid)
        with self._lock:
            project = self.projects.setdefault(
                key,
                {
                    "id": int(key) if key.isdigit() else key,
                    "name": f"Project {key}",
                    "state": "active",
                    "type": "image",
                },
            )
            project.update(fields)
            self.tasks.setdefault(key, {})
            self._batches.setdefault(key, {})
            self._deliveries.setdefault(key, [])
            return project

    def add_task(
        self, task: Task | Mapping[str, Any], *, project_id: str | int | None = None
    ) -> Task:
        """Add a task (a `Task` or a delivery-format dict); delivered tasks join the feeds."""
        data = task.model_dump(mode="json") if isinstance(task, Task) else dict(task)
        if project_id is not None:
            data["project_id"] = project_id
        parsed = Task.model_validate(data)
        with self._lock:
            self.add_project(parsed.project_id)
            self.tasks[parsed.project_id][parsed.id] = parsed
            if parsed.delivered_at is not None:
                self._deliveries[parsed.project_id].append(parsed.id)
        return parsed

    def add_tasks(self, tasks: Iterable[Task | Mapping[str, Any]]) -> list[Task]:
        """Add several tasks; return them parsed."""
        return [self.add_task(task) for task in tasks]

    def add_batch(
        self,
        pid: str | int,
        task_ids: Iterable[str] = (),
        *,
        client_batch_id: str | None = None,
        state: str = "completed",
    ) -> str:
        """Add a batch holding tasks already added; return its id."""
        key = str(pid)
        with self._lock:
            self.add_project(key)
            batch = _Batch(self._next_batch, key, client_batch_id, list(task_ids), state)
            self._next_batch += 1
            self._batches[key][str(batch.id)] = batch
            return str(batch.id)

    def add_event(self, event: WebhookEvent | DppEvent) -> Task:
        """Add the task an event is about, so the code under test can fetch and update it."""
        return self.add_task(event.task.model_dump(mode="json", exclude={"round"}))

    def task(self, pid: str | int, tid: str) -> Task:
        """Return a task as the fake holds it now."""
        return self.tasks[str(pid)][tid]

    def deliver(
        self,
        pid: str | int,
        tid: str,
        *,
        answers: dict[str, Any] | None = None,
        at: datetime | None = None,
    ) -> Task:
        """Mark a task delivered (now, or `at`) and append it to the delivery feeds."""
        when = (at or datetime.now(UTC)).astimezone(UTC).isoformat().replace("+00:00", "Z")
        changes: dict[str, Any] = {"state": "delivered", "delivered_at": when}
        if answers is not None:
            changes["answers"] = answers
        task = self._update(str(pid), tid, changes)
        with self._lock:
            self._deliveries[str(pid)].append(tid)
        return task

    def _update(self, pid: str, tid: str, changes: Mapping[str, Any]) -> Task:
        with self._lock:
            task = self.tasks[pid][tid]
            task = Task.model_validate({**task.model_dump(mode="json"), **changes})
            self.tasks[pid][tid] = task
            return task

    def calls(self, route: str | None = None) -> list[FakeCall]:
        """Return the requests received (for one route, or all), oldest first."""
        self._check_route(route)
        return [c for c in self._calls if route is None or c.route == route]

    # --- faults ---

    def fail(
        self,
        status: int = 503,
        *,
        route: str | None = None,
        times: int = 1,
        after: int = 0,
        retry_after: str | float | None = None,
        message: str = "Service temporarily unavailable",
    ) -> None:
        """Answer `status` (SamaHub's error shape) `times` times, after `after` normal calls.

        `route` is a name from `ROUTES`; None means any route. `retry_after` (seconds, or an
        HTTP date string) is sent as the `Retry-After` header.
        """
        headers = {} if retry_after is None else {"Retry-After": str(retry_after)}

        def act(request: httpx.Request) -> httpx.Response:
            body = {"errors": [{"type": status, "message": message}]}
            return httpx.Response(status, json=body, headers=headers)

        self._add_fault(route, after, times, act)

    def rate_limit(
        self,
        *,
        route: str | None = None,
        times: int = 1,
        after: int = 0,
        retry_after: str | float | None = 1,
    ) -> None:
        """Answer 429 with a `Retry-After` header, like a rate-limited SamaHub."""
        self.fail(
            429,
            route=route,
            times=times,
            after=after,
            retry_after=retry_after,
            message="API rate limit exceeded",
        )

    def time_out(
        self,
        *,
        route: str | None = None,
        times: int = 1,
        after: int = 0,
        connect: bool = False,
        processed: bool = False,
    ) -> None:
        """Raise a timeout instead of answering: `ConnectTimeout` with `connect`, else
        `ReadTimeout`. With `processed`, SamaHub does the work before the answer is lost."""

        def act(request: httpx.Request) -> httpx.Response:
            if connect:
                raise httpx.ConnectTimeout("timed out", request=request)
            raise httpx.ReadTimeout("timed out", request=request)

        self._add_fault(route, after, times, act, processed=processed and not connect)

    def drop_connection(
        self,
        *,
        route: str | None = None,
        times: int = 1,
        after: int = 0,
        processed: bool = False,
    ) -> None:
        """Close the connection without answering, after `after` normal calls.

        With `processed`, SamaHub does the work before the connection drops (the answer to a
        batch creation is lost, but the batch exists).
        """

        def act(request: httpx.Request) -> httpx.Response:
            raise httpx.RemoteProtocolError(
                "Server disconnected without sending a response.", request=request
            )

        self._add_fault(route, after, times, act, processed=processed)

    def refuse_connection(
        self, *, route: str | None = None, times: int = 1, after: int = 0
    ) -> None:
        """Refuse the connection (`ConnectError`): the request never reaches SamaHub."""

        def act(request: httpx.Request) -> httpx.Response:
            raise httpx.ConnectError("[Errno 111] Connection refused", request=request)

        self._add_fault(route, after, times, act)

    def lag_listing(self, listings: int = 1) -> None:
        """Leave each batch created from now on out of the task listing for a while.

        SamaHub creates a batch as a job, so its tasks appear in `GET /tasks.json` some time
        after the creation answered. Here each new batch's tasks are left out of its project's
        next `listings` task listings (counted in requests, so tests need no clock); 0 turns
        the lag off for batches created afterwards.
        """
        if listings < 0:
            raise ValueError(f"listings must be 0 or more, got {listings}")
        with self._lock:
            self._listing_lag = listings

    def clear_faults(self) -> None:
        """Remove every injected fault, and the listing lag of batches created from now on."""
        with self._lock:
            self._faults.clear()
            self._listing_lag = 0

    def _add_fault(
        self,
        route: str | None,
        after: int,
        times: int,
        act: Callable[[httpx.Request], httpx.Response],
        *,
        processed: bool = False,
    ) -> None:
        self._check_route(route)
        with self._lock:
            self._faults.append(_Fault(route, after, times, act, processed))

    @staticmethod
    def _check_route(route: str | None) -> None:
        if route is not None and route not in ROUTES:
            raise ValueError(f"unknown route {route!r}; expected one of {', '.join(ROUTES)}")

    # --- answering ---

    def handle(self, request: httpx.Request) -> httpx.Response:
        """Answer one request like SamaHub would (or raise the transport error of a fault)."""
        url = str(request.url)
        is_dpp = url.startswith(self.dpp_url + "/")
        base = self.dpp_url if is_dpp else self.api_url
        # The raw path: an id with a quoted "/" stays one path segment, as on a real server.
        raw_path = request.url.raw_path.decode("ascii").split("?", 1)[0]
        path = raw_path[len(httpx.URL(base).raw_path.decode("ascii").rstrip("/")) :]
        match = self._route(request.method, path, is_dpp)
        if isinstance(match, httpx.Response):
            return match
        name, ids = match
        params = {k: v for k, v in request.url.params.items() if k != "access_key"}
        body = self._body(request)
        with self._lock:
            self._calls.append(FakeCall(name, request.method, path, params, body))
            fault = None
            for candidate in self._faults:  # every fault counts the call; the first due acts
                if candidate.counts(name) and fault is None and candidate.is_due():
                    candidate.fired += 1
                    fault = candidate
        if fault is not None and not fault.processed:
            return fault.act(request)
        try:
            if is_dpp:
                self._check_bearer(request)
            elif request.url.params.get("access_key") != self.api_key:
                raise _Answer(401, "Unauthorized: invalid access_key or API access not enabled")
            handler: Callable[..., httpx.Response] = getattr(self, f"_on_{name}")
            with self._lock:
                response = handler(request, params, body, **ids)
        except _Answer as answer:
            response = answer.response()
        if fault is not None:
            return fault.act(request)
        return response

    def _route(
        self, method: str, path: str, is_dpp: bool
    ) -> tuple[str, dict[str, str]] | httpx.Response:
        allowed = []
        for name, route_method, pattern in _PATTERNS:
            if (name == "post_processed") != is_dpp:
                continue
            found = pattern.match(path)
            if found is None:
                continue
            if route_method == method:
                return name, {key: unquote(value) for key, value in found.groupdict().items()}
            allowed.append(route_method)
        if allowed:
            return _Answer(405, f"Method {method} not allowed; use {', '.join(allowed)}").response()
        return _Answer(404, f"No route matches {method} {path}").response()

    @staticmethod
    def _body(request: httpx.Request) -> Any:
        content = request.content
        if not content:
            return None
        try:
            return json.loads(content)
        except ValueError:
            return _NOT_JSON

    def _check_bearer(self, request: httpx.Request) -> None:
        if request.headers.get("Authorization") != f"Bearer {self.dpp_key}":
            raise _Answer(401, "Unauthorized", top_level=True)

    def _project(self, pid: str) -> dict[str, Any]:
        project = self.projects.get(pid)
        if project is None:
            raise _Answer(404, "Project not found")
        return project

    def _task_of(self, pid: str, tid: str) -> Task:
        self._project(pid)
        task = self.tasks[pid].get(tid)
        if task is None:
            raise _Answer(404, "Task not found")
        return task

    @staticmethod
    def _json_object(body: Any) -> dict[str, Any]:
        if body is _NOT_JSON or not isinstance(body, dict):
            raise _Answer(400, "The request body must be a JSON object")
        return body

    def _page(self, tasks: list[Task], params: Mapping[str, str]) -> list[Task]:
        page = _int(params, "page", 1, 1, 1_000_000)
        size = _int(params, "page_size", 100, 1, MAX_PAGE_SIZE)
        return tasks[(page - 1) * size : page * size]

    def _row(self, task: Task) -> dict[str, Any]:
        """Return a task's JSON, dumped once per task object (answers can be large)."""
        cached = self._rows.get(id(task))
        if cached is None or cached[0] is not task:
            cached = (task, task.model_dump(mode="json"))
            self._rows[id(task)] = cached
        return cached[1]

    def _tasks_answer(self, tasks: Iterable[Task], omit_answers: bool = False) -> httpx.Response:
        rows = [self._row(task) for task in tasks]
        if omit_answers:
            rows = [{k: v for k, v in row.items() if k != "answers"} for row in rows]
        return httpx.Response(200, json={"tasks": rows})

    @staticmethod
    def _matches(task: Task, params: Mapping[str, str]) -> bool:
        for name in ("batch_id", "client_batch_id"):
            wanted = params.get(name)
            if wanted is not None and str(getattr(task, name)) != wanted:
                return False
        wanted_id = params.get("task_id")
        return wanted_id is None or task.id == wanted_id

    # one method per route: _on_<route name>(request, params, body, **path ids)

    def _on_project(
        self, request: httpx.Request, params: dict[str, str], body: Any, pid: str
    ) -> httpx.Response:
        return httpx.Response(200, json=self._project(pid))

    def _on_stats(
        self, request: httpx.Request, params: dict[str, str], body: Any, pid: str
    ) -> httpx.Response:
        self._project(pid)
        since = _time(params["from"], "from") if "from" in params else None
        until = _time(params["to"], "to") if "to" in params else None
        counts: dict[str, int] = {}
        for task in self.tasks[pid].values():
            created = task.created_at
            if created is not None and ((since and created < since) or (until and created > until)):
                continue
            counts[str(task.state)] = counts.get(str(task.state), 0) + 1
        return httpx.Response(200, json={"project_id": pid, "tasks_by_state": counts})

    def _schema(self, pid: str, which: str) -> httpx.Response:
        self._project(pid)
        default = {
            "$schema": "http://json-schema.org/draft-07/schema#",
            "type": "object",
            "properties": {},
        }
        return httpx.Response(200, json=self.schemas.get(pid, {}).get(which, default))

    def _on_creation_schema(
        self, request: httpx.Request, params: dict[str, str], body: Any, pid: str
    ) -> httpx.Response:
        return self._schema(pid, "create_task")

    def _on_delivery_schema(
        self, request: httpx.Request, params: dict[str, str], body: Any, pid: str
    ) -> httpx.Response:
        return self._schema(pid, "deliver_task")

    def _on_task(
        self, request: httpx.Request, params: dict[str, str], body: Any, pid: str, tid: str
    ) -> httpx.Response:
        _bool(params, "same_as_delivery")
        task = self._task_of(pid, tid)
        return httpx.Response(200, json={"task": self._row(task)})

    def _on_tasks(
        self, request: httpx.Request, params: dict[str, str], body: Any, pid: str
    ) -> httpx.Response:
        self._project(pid)
        date_type = params.get("date_type", "created_at")
        if date_type not in ("created_at", "delivered_at"):
            raise _Answer(400, f"date_type must be created_at or delivered_at, got {date_type!r}")
        since = _time(params["from"], "from") if "from" in params else None
        until = _time(params["to"], "to") if "to" in params else None
        state = params.get("state")
        unlisted: set[str] = set()
        for batch in self._batches[pid].values():
            if batch.unlisted_for > 0:
                batch.unlisted_for -= 1
                unlisted.update(batch.task_ids)
        selected = []
        for task in self.tasks[pid].values():
            if task.id in unlisted:
                continue
            when = getattr(task, date_type)
            if state is not None and str(task.state) != state:
                continue
            if (since or until) and when is None:
                continue
            if (since and when < since) or (until and when > until):
                continue
            if self._matches(task, params):
                selected.append(task)
        return self._tasks_answer(self._page(selected, params), _bool(params, "omit_answers"))

    def _on_delivered(
        self, request: httpx.Request, params: dict[str, str], body: Any, pid: str
    ) -> httpx.Response:
        self._project(pid)
        since = _time(params["from"], "from") if "from" in params else None
        delivered = [
            (task.delivered_at, task)
            for task in self.tasks[pid].values()
            if task.delivered_at is not None
            and (since is None or task.delivered_at >= since)
            and self._matches(task, params)
        ]
        delivered.sort(key=lambda pair: pair[0])
        return self._tasks_answer(self._page([task for _, task in delivered], params))

    def _on_delivered_since_last_call(
        self, request: httpx.Request, params: dict[str, str], body: Any, pid: str
    ) -> httpx.Response:
        self._project(pid)
        body = self._json_object(body)
        consumer = body.get("consumer")
        if not isinstance(consumer, str) or not consumer:
            raise _Answer(400, "consumer is required: a non-empty string")
        limit = body.get("limit", 1000)
        if not isinstance(limit, int) or isinstance(limit, bool) or not 1 <= limit <= 1000:
            raise _Answer(400, f"limit must be an integer from 1 to 1000, got {limit!r}")
        filters = {k: str(v) for k, v in body.items() if k not in ("consumer", "limit")}
        log = self._deliveries[pid]
        position = self._positions.get((pid, consumer), 0)
        found: list[Task] = []
        while position < len(log) and len(found) < limit:
            task = self.tasks[pid].get(log[position])
            position += 1
            if task is not None and self._matches(task, filters):
                found.append(task)
        self._positions[(pid, consumer)] = position
        return self._tasks_answer(found)

    def _on_create_batch(
        self, request: httpx.Request, params: dict[str, str], body: Any, pid: str
    ) -> httpx.Response:
        self._project(pid)
        body = self._json_object(body)
        specs = body.get("tasks")
        if not isinstance(specs, list) or not specs:
            raise _Answer(400, "tasks must be a non-empty list")
        if len(specs) > MAX_BATCH_TASKS:
            raise _Answer(400, f"A batch holds at most {MAX_BATCH_TASKS} tasks, got {len(specs)}")
        for index, spec in enumerate(specs):
            if not isinstance(spec, dict) or not isinstance(spec.get("data"), dict):
                raise _Answer(400, f"tasks[{index}].data must be an object")
            priority = spec.get("priority", 0)
            if not isinstance(priority, int) or isinstance(priority, bool):
                raise _Answer(400, f"tasks[{index}].priority must be an integer")
        client_batch_id = body.get("client_batch_id")
        batch = _Batch(
            id=self._next_batch,
            project_id=pid,
            client_batch_id=None if client_batch_id is None else str(client_batch_id),
            task_ids=[],
            extra={k: body[k] for k in ("notification_email", "submit") if k in body},
            unlisted_for=self._listing_lag,
        )
        self._next_batch += 1
        now = datetime.now(UTC).isoformat().replace("+00:00", "Z")
        for spec in specs:
            fields: dict[str, Any] = {
                "id": make_task_id(),
                "project_id": pid,
                "state": "new",
                "data": spec["data"],
                "created_at": now,
                "batch_id": batch.id,
                "priority": spec.get("priority", 0),
            }
            if batch.client_batch_id is not None:
                fields["client_batch_id"] = batch.client_batch_id
            task = Task.model_validate(fields)
            self.tasks[pid][task.id] = task
            batch.task_ids.append(task.id)
        self._batches[pid][str(batch.id)] = batch
        return httpx.Response(200, json={"batch_id": batch.id, "task_ids": batch.task_ids})

    def _batch_of(self, pid: str, bid: str) -> _Batch:
        self._project(pid)
        batch = self._batches[pid].get(bid)
        if batch is None:
            raise _Answer(404, "Batch not found")
        return batch

    def _on_batch(
        self, request: httpx.Request, params: dict[str, str], body: Any, pid: str, bid: str
    ) -> httpx.Response:
        batch = self._batch_of(pid, bid)
        tasks = [self.tasks[pid][tid] for tid in batch.task_ids if tid in self.tasks[pid]]
        rows = [{"id": t.id, "state": str(t.state)} for t in self._page(tasks, params)]
        answer = {
            "id": batch.id,
            "state": batch.state,
            "client_batch_id": batch.client_batch_id,
            "task_count": len(batch.task_ids),
            **batch.extra,
            "tasks": rows,
        }
        return httpx.Response(200, json=answer)

    def _on_cancel_batch(
        self, request: httpx.Request, params: dict[str, str], body: Any, pid: str, bid: str
    ) -> httpx.Response:
        batch = self._batch_of(pid, bid)
        batch.state = "canceled"
        return httpx.Response(200, json={"id": batch.id, "state": batch.state})

    def _on_reject(
        self, request: httpx.Request, params: dict[str, str], body: Any, pid: str, tid: str
    ) -> httpx.Response:
        self._task_of(pid, tid)
        reasons = self._json_object(body).get("reasons")
        if (
            not isinstance(reasons, list)
            or not reasons
            or not all(isinstance(r, str) for r in reasons)
        ):
            raise _Answer(400, "reasons must be a non-empty list of strings")
        self.rejections[(pid, tid)] = reasons
        self._update(pid, tid, {"state": "rejected"})
        return httpx.Response(200, json={})

    def _task_ids(self, pid: str, body: dict[str, Any]) -> list[str]:
        ids = body.get("task_ids")
        if not isinstance(ids, list) or not ids or not all(isinstance(i, str) for i in ids):
            raise _Answer(400, "task_ids must be a non-empty list of task ids")
        for tid in ids:
            self._task_of(pid, tid)
        return ids

    def _on_bulk_update(
        self, request: httpx.Request, params: dict[str, str], body: Any, pid: str
    ) -> httpx.Response:
        self._project(pid)
        body = self._json_object(body)
        priority = body.get("priority")
        if not isinstance(priority, int) or isinstance(priority, bool):
            raise _Answer(400, "priority must be an integer")
        for tid in self._task_ids(pid, body):
            self._update(pid, tid, {"priority": priority})
        return httpx.Response(200, json={})

    def _on_delete_tasks(
        self, request: httpx.Request, params: dict[str, str], body: Any, pid: str
    ) -> httpx.Response:
        self._project(pid)
        ids = self._task_ids(pid, self._json_object(body))
        busy = [tid for tid in ids if str(self.tasks[pid][tid].state) != "new"]
        if busy:
            raise _Answer(400, f"Only tasks in state new can be deleted: {', '.join(busy)}")
        for tid in ids:
            del self.tasks[pid][tid]
        return httpx.Response(200, json={})

    def _on_post_processed(
        self, request: httpx.Request, params: dict[str, str], body: Any, pid: str, tid: str
    ) -> httpx.Response:
        if pid not in self.projects or tid not in self.tasks[pid]:
            raise _Answer(404, "Task not found", top_level=True)
        try:
            result = DppResult.model_validate_json(request.content)
        except ValidationError as exc:
            first = exc.errors(include_url=False)[0]
            where = ".".join(str(p) for p in first["loc"]) or "body"
            raise _Answer(
                400, f"Invalid DPP result: {where}: {first['msg']}", top_level=True
            ) from None
        self.dpp_results[(pid, tid)] = result
        self._update(pid, tid, {"data": result.data, "answers": result.answers})
        return httpx.Response(200, json={})


_NOT_JSON = object()
