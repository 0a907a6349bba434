"""A stateful fake of SamaHub's public API, its DPP endpoint and its tasks-file uploads.

It follows `reference/samahub.md`: the same paths, query parameters, bodies, paging, error
shapes and key checks. Tests add projects and tasks, run the code under test, then assert on
the fake's state (`fake.dpp_results`, `fake.tasks`, `fake.calls("create_batch")`).

The module reads top to bottom:

- `RouteName`: every route's name, typed, so that `fake.calls("taks")` fails in mypy;
- the routes: each one declared once, by `@route(name, method, path)` right above the
  function that answers it (`FakeState`, `FakeRequest`) -> `httpx.Response`. To add a route,
  add its name to `RouteName` and write its function; a test checks the two agree;
- `FakeSamaHub`: interception (respx, or a real socket with `serve_fake_samahub`), the
  fake's data (`FakeState`, `_fake_state.py`) and its faults (`Faults`, `_fake_faults.py`).
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal, Self, TypeAlias, get_args
from urllib.parse import unquote

import httpx
from pydantic import ValidationError

from libnar._local_stack._fake_faults import Fault, Faults
from libnar._local_stack._fake_state import (
    MAX_BATCH_TASKS,
    FakeBatch,
    FakeError,
    FakeState,
    bool_param,
    check_specs,
    page_of,
    time_param,
)
from libnar.events import DppEvent, DppResult, Task, WebhookEvent

if TYPE_CHECKING:
    import respx

__all__ = [
    "DEFAULT_API_URL",
    "DEFAULT_DPP_URL",
    "DEFAULT_UPLOAD_URL",
    "ROUTES",
    "FakeCall",
    "FakeRequest",
    "FakeSamaHub",
    "RouteName",
]

DEFAULT_API_URL = "https://sama.test/v2"
DEFAULT_DPP_URL = "https://dpp.sama.test"
#: Where tasks files are PUT (SamaHub hands out presigned storage URLs on another host).
DEFAULT_UPLOAD_URL = "https://uploads.sama.test/tasks"
DEFAULT_API_KEY = "fake-sama-api-key-5f1e2d3c"
DEFAULT_DPP_KEY = "fake-sama-dpp-key-9a8b7c6d"

RouteName: TypeAlias = Literal[
    "project",
    "stats",
    "creation_schema",
    "delivery_schema",
    "create_batch",
    "upload_tasks",
    "continue_batch",
    "batch",
    "cancel_batch",
    "tasks",
    "delivered",
    "delivered_since_last_call",
    "bulk_update",
    "delete_tasks",
    "reject",
    "task",
    "post_processed",
]
#: Which base URL a route is under: the public API, the DPP URL, or the tasks-file store.
Base: TypeAlias = Literal["api", "dpp", "upload"]

_NOT_JSON = object()


@dataclass(frozen=True)
class FakeRequest:
    """A request as a route sees it: query (no key), JSON body, ids from the path."""

    request: httpx.Request
    params: dict[str, str]
    body: Any
    ids: dict[str, str]

    def json_object(self) -> dict[str, Any]:
        """The body, which must be a JSON object (else 400)."""
        if self.body is _NOT_JSON or not isinstance(self.body, dict):
            raise FakeError(400, "The request body must be a JSON object")
        return self.body


Handler: TypeAlias = Callable[[FakeState, FakeRequest], httpx.Response]


@dataclass(frozen=True)
class Route:
    """One route: its name, method, path under its base URL, and the function answering it."""

    name: RouteName
    method: str
    path: str
    base: Base
    handler: Handler
    pattern: re.Pattern[str]


#: Every route, by name, in the order declared below.
ROUTES: dict[RouteName, Route] = {}


def _pattern(path: str) -> re.Pattern[str]:
    """`/projects/{pid}.json` -> a regex with one named group per `{...}` (one path segment)."""
    parts = re.split(r"\{(\w+)\}", path)
    regex = "".join(
        re.escape(part) if i % 2 == 0 else f"(?P<{part}>[^/]+)" for i, part in enumerate(parts)
    )
    return re.compile(regex + "$")


def route(
    name: RouteName, method: str, path: str, *, base: Base = "api"
) -> Callable[[Handler], Handler]:
    """Declare the route the decorated function answers."""

    def register(handler: Handler) -> Handler:
        if name in ROUTES:
            raise RuntimeError(f"route {name!r} is declared twice")
        ROUTES[name] = Route(name, method, path, base, handler, _pattern(path))
        return handler

    return register


def _ok(body: Any) -> httpx.Response:
    return httpx.Response(200, json=body)


# -- projects and schemas ----------------------------------------------------------------------


@route("project", "GET", "/projects/{pid}.json")
def _project(state: FakeState, req: FakeRequest) -> httpx.Response:
    return _ok(state.project(req.ids["pid"]))


@route("stats", "GET", "/projects/{pid}/stats.json")
def _stats(state: FakeState, req: FakeRequest) -> httpx.Response:
    pid = req.ids["pid"]
    state.project(pid)
    since = time_param(req.params["from"], "from") if "from" in req.params else None
    until = time_param(req.params["to"], "to") if "to" in req.params else None
    counts: dict[str, int] = {}
    for task in state.tasks[pid].values():
        created = task.created_at
        if created is not None and ((since and created < since) or (until and created > until)):
            continue
        counts[str(task.state)] = counts.get(str(task.state), 0) + 1
    return _ok({"project_id": pid, "tasks_by_state": counts})


def _schema(state: FakeState, pid: str, which: str) -> httpx.Response:
    state.project(pid)
    default = {
        "$schema": "http://json-schema.org/draft-07/schema#",
        "type": "object",
        "properties": {},
    }
    return _ok(state.schemas.get(pid, {}).get(which, default))


@route("creation_schema", "GET", "/projects/{pid}/schemas/create_task.json")
def _creation_schema(state: FakeState, req: FakeRequest) -> httpx.Response:
    return _schema(state, req.ids["pid"], "create_task")


@route("delivery_schema", "GET", "/projects/{pid}/schemas/deliver_task.json")
def _delivery_schema(state: FakeState, req: FakeRequest) -> httpx.Response:
    return _schema(state, req.ids["pid"], "deliver_task")


# -- batches: in the request body (1,000 tasks at most), or by file ----------------------------


@route("create_batch", "POST", "/projects/{pid}/batches.json")
def _create_batch(state: FakeState, req: FakeRequest) -> httpx.Response:
    pid = req.ids["pid"]
    state.project(pid)
    body = req.json_object()
    client_batch_id = body.get("client_batch_id")
    options = {k: body[k] for k in ("notification_email", "submit") if k in body}
    cid = None if client_batch_id is None else str(client_batch_id)
    file_name = body.get("tasks_file_name")
    if file_name is not None:
        if "tasks" in body:
            raise FakeError(400, "Send either tasks or tasks_file_name, not both")
        if not isinstance(file_name, str) or not file_name.strip():
            raise FakeError(400, "tasks_file_name must be a non-empty string")
        batch = state.new_batch(pid, cid, state="pending", **options)
        put_url = state.new_upload(batch, file_name)
        return _ok({"batch_id": batch.id, "tasks_put_url": put_url})
    specs = check_specs(body.get("tasks"), limit=MAX_BATCH_TASKS)
    batch = state.new_batch(pid, cid, **options)
    state.create_tasks(batch, specs)
    return _ok({"batch_id": batch.id, "task_ids": batch.task_ids})


@route("upload_tasks", "PUT", "/{token}/{file_name}", base="upload")
def _upload_tasks(state: FakeState, req: FakeRequest) -> httpx.Response:
    # A presigned storage URL: it carries its own signature and must never get the API key.
    if "access_key" in req.request.url.params:
        raise FakeError(400, "A tasks_put_url takes no access_key: the API key would leak")
    batch = state.uploads.get(req.ids["token"])
    if batch is None or batch.state != "pending":
        raise FakeError(403, "Request has expired or the URL is not valid")
    if req.params.get("X-Amz-Signature") != batch.upload_signature:
        raise FakeError(403, "The request signature does not match: use tasks_put_url as given")
    if req.body is _NOT_JSON or not isinstance(req.body, list):
        raise FakeError(400, "The tasks file must be a JSON array of tasks")
    batch.uploaded = req.body
    return httpx.Response(200)


@route("continue_batch", "POST", "/projects/{pid}/batches/{bid}/continue.json")
def _continue_batch(state: FakeState, req: FakeRequest) -> httpx.Response:
    batch = state.batch_of(req.ids["pid"], req.ids["bid"])
    if batch.upload_token is None:
        raise FakeError(400, f"Batch {batch.id} was not created with a tasks_file_name")
    if batch.state != "pending":
        raise FakeError(400, f"Batch {batch.id} is {batch.state}: it was continued already")
    if batch.uploaded is None:
        raise FakeError(400, f"No tasks file was uploaded for batch {batch.id}")
    state.create_tasks(batch, batch.uploaded)
    batch.state = "completed"
    return _ok({"batch_id": batch.id, "state": "processing"})


@route("batch", "GET", "/projects/{pid}/batches/{bid}.json")
def _batch(state: FakeState, req: FakeRequest) -> httpx.Response:
    pid = req.ids["pid"]
    batch = state.batch_of(pid, req.ids["bid"])
    omit = bool_param(req.params, "omit_failed_task_data")
    tasks = [state.tasks[pid][tid] for tid in batch.task_ids if tid in state.tasks[pid]]
    rows: list[dict[str, Any]] = [{"id": t.id, "state": str(t.state)} for t in tasks]
    rows += [
        {k: v for k, v in failed.items() if not (omit and k == "data")} for failed in batch.failed
    ]
    answer = {
        "id": batch.id,
        "state": batch.state,
        "client_batch_id": batch.client_batch_id,
        "task_count": len(batch.task_ids),
        "failed_task_count": len(batch.failed),
        **batch.extra,
        "tasks": page_of(rows, req.params),
    }
    return _ok(answer)


@route("cancel_batch", "POST", "/projects/{pid}/batches/{bid}/cancel.json")
def _cancel_batch(state: FakeState, req: FakeRequest) -> httpx.Response:
    batch = state.batch_of(req.ids["pid"], req.ids["bid"])
    batch.state = "canceled"
    return _ok({"id": batch.id, "state": batch.state})


# -- tasks ----------------------------------------------------------------------------------


def _matches(task: Task, params: Mapping[str, str]) -> bool:
    for name in ("batch_id", "client_batch_id"):
        wanted = params.get(name)
        if wanted is not None and str(getattr(task, name)) != wanted:
            return False
    wanted_id = params.get("task_id")
    return wanted_id is None or task.id == wanted_id


@route("tasks", "GET", "/projects/{pid}/tasks.json")
def _tasks(state: FakeState, req: FakeRequest) -> httpx.Response:
    pid, params = req.ids["pid"], req.params
    state.project(pid)
    date_type = params.get("date_type", "created_at")
    if date_type not in ("created_at", "delivered_at"):
        raise FakeError(400, f"date_type must be created_at or delivered_at, got {date_type!r}")
    since = time_param(params["from"], "from") if "from" in params else None
    until = time_param(params["to"], "to") if "to" in params else None
    wanted_state = params.get("state")
    unlisted = state.unlisted(pid)
    selected = []
    for task in state.tasks[pid].values():
        if task.id in unlisted:
            continue
        when = getattr(task, date_type)
        if wanted_state is not None and str(task.state) != wanted_state:
            continue
        if (since or until) and when is None:
            continue
        if (since and when < since) or (until and when > until):
            continue
        if _matches(task, params):
            selected.append(task)
    return state.tasks_answer(page_of(selected, params), bool_param(params, "omit_answers"))


@route("delivered", "GET", "/projects/{pid}/tasks/delivered.json")
def _delivered(state: FakeState, req: FakeRequest) -> httpx.Response:
    pid, params = req.ids["pid"], req.params
    state.project(pid)
    since = time_param(params["from"], "from") if "from" in params else None
    delivered = [
        (task.delivered_at, task)
        for task in state.tasks[pid].values()
        if task.delivered_at is not None
        and (since is None or task.delivered_at >= since)
        and _matches(task, params)
    ]
    delivered.sort(key=lambda pair: pair[0])
    return state.tasks_answer(page_of([task for _, task in delivered], params))


@route("delivered_since_last_call", "POST", "/projects/{pid}/tasks/delivered.json")
def _delivered_since_last_call(state: FakeState, req: FakeRequest) -> httpx.Response:
    pid = req.ids["pid"]
    state.project(pid)
    body = req.json_object()
    consumer = body.get("consumer")
    if not isinstance(consumer, str) or not consumer:
        raise FakeError(400, "consumer is required: a non-empty string")
    limit = body.get("limit", 1000)
    if not isinstance(limit, int) or isinstance(limit, bool) or not 1 <= limit <= 1000:
        raise FakeError(400, f"limit must be an integer from 1 to 1000, got {limit!r}")
    filters = {k: str(v) for k, v in body.items() if k not in ("consumer", "limit")}
    log = state.deliveries[pid]
    position = state.positions.get((pid, consumer), 0)
    found: list[Task] = []
    while position < len(log) and len(found) < limit:
        task = state.tasks[pid].get(log[position])
        position += 1
        if task is not None and _matches(task, filters):
            found.append(task)
    state.positions[(pid, consumer)] = position
    return state.tasks_answer(found)


def _task_ids(state: FakeState, pid: str, body: dict[str, Any]) -> list[str]:
    ids = body.get("task_ids")
    if not isinstance(ids, list) or not ids or not all(isinstance(i, str) for i in ids):
        raise FakeError(400, "task_ids must be a non-empty list of task ids")
    for tid in ids:
        state.task_of(pid, tid)
    return ids


@route("bulk_update", "POST", "/projects/{pid}/tasks/bulk_update.json")
def _bulk_update(state: FakeState, req: FakeRequest) -> httpx.Response:
    pid = req.ids["pid"]
    state.project(pid)
    body = req.json_object()
    priority = body.get("priority")
    if not isinstance(priority, int) or isinstance(priority, bool):
        raise FakeError(400, "priority must be an integer")
    for tid in _task_ids(state, pid, body):
        state.update(pid, tid, {"priority": priority})
    return _ok({})


@route("delete_tasks", "POST", "/projects/{pid}/tasks/delete_tasks.json")
def _delete_tasks(state: FakeState, req: FakeRequest) -> httpx.Response:
    pid = req.ids["pid"]
    state.project(pid)
    ids = _task_ids(state, pid, req.json_object())
    busy = [tid for tid in ids if str(state.tasks[pid][tid].state) != "new"]
    if busy:
        raise FakeError(400, f"Only tasks in state new can be deleted: {', '.join(busy)}")
    for tid in ids:
        del state.tasks[pid][tid]
    return _ok({})


@route("reject", "PUT", "/projects/{pid}/tasks/{tid}/reject.json")
def _reject(state: FakeState, req: FakeRequest) -> httpx.Response:
    pid, tid = req.ids["pid"], req.ids["tid"]
    state.task_of(pid, tid)
    reasons = req.json_object().get("reasons")
    if not isinstance(reasons, list) or not reasons or not all(isinstance(r, str) for r in reasons):
        raise FakeError(400, "reasons must be a non-empty list of strings")
    state.rejections[(pid, tid)] = reasons
    state.update(pid, tid, {"state": "rejected"})
    return _ok({})


@route("task", "GET", "/projects/{pid}/tasks/{tid}.json")
def _task(state: FakeState, req: FakeRequest) -> httpx.Response:
    bool_param(req.params, "same_as_delivery")
    task = state.task_of(req.ids["pid"], req.ids["tid"])
    return _ok({"task": state.row(task)})


# -- the DPP return path ---------------------------------------------------------------------


@route("post_processed", "PUT", "/api/v1/projects/{pid}/tasks/{tid}/post_processed", base="dpp")
def _post_processed(state: FakeState, req: FakeRequest) -> httpx.Response:
    pid, tid = req.ids["pid"], req.ids["tid"]
    if pid not in state.projects or tid not in state.tasks[pid]:
        raise FakeError(404, "Task not found", top_level=True)
    try:
        result = DppResult.model_validate_json(req.request.content)
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        where = ".".join(str(p) for p in first["loc"]) or "body"
        raise FakeError(
            400, f"Invalid DPP result: {where}: {first['msg']}", top_level=True
        ) from None
    schema = state.schemas.get(pid, {}).get("deliver_task")
    if schema is not None:  # SamaHub refuses answers that break the project's delivery schema
        from libnar.answers import answer_problems

        problems = answer_problems(result.answers, schema)
        if problems:
            raise FakeError(
                400,
                f"Invalid DPP result: the answers do not follow the delivery schema: {problems[0]}",
                top_level=True,
            )
    state.dpp_results[(pid, tid)] = result
    state.update(pid, tid, {"data": result.data, "answers": result.answers})
    return _ok({})


if set(ROUTES) != set(get_args(RouteName)):  # pragma: no cover - caught by the test suite
    raise RuntimeError("RouteName and the routes declared differ")


# -- the fake ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class FakeCall:
    """One request the fake received: route name, method, path, query (no key) and JSON body."""

    route: RouteName
    method: str
    path: str
    params: dict[str, str]
    body: Any


class FakeSamaHub:
    """A stateful, in-memory SamaHub that answers like the real one.

    Use the `fake_samahub` fixture, or `with FakeSamaHub() as fake:` to intercept httpx
    requests to `api_url`, `dpp_url` and `upload_url` (respx). Requests to other hosts pass
    through; requests to the real `api.sama.com` are refused with a 421, so no test reaches
    SamaHub. `state` holds the data, `faults` the injected faults; the methods below are the
    way to use both.
    """

    def __init__(
        self,
        *,
        api_url: str = DEFAULT_API_URL,
        dpp_url: str = DEFAULT_DPP_URL,
        api_key: str = DEFAULT_API_KEY,
        dpp_key: str = DEFAULT_DPP_KEY,
        upload_url: str = DEFAULT_UPLOAD_URL,
    ) -> None:
        self.api_url = api_url.rstrip("/")
        self.dpp_url = dpp_url.rstrip("/")
        self.api_key = api_key
        self.dpp_key = dpp_key
        self.state = FakeState()
        self.faults = Faults()
        self.upload_url = upload_url
        self._calls: list[FakeCall] = []
        self._lock = threading.RLock()
        self._router: respx.MockRouter | None = None

    def __repr__(self) -> str:
        return f"FakeSamaHub(api_url={self.api_url!r}, dpp_url={self.dpp_url!r})"

    @property
    def upload_url(self) -> str:
        """Where tasks files are PUT (`tasks_put_url`s start with it)."""
        return self.state.upload_url

    @upload_url.setter
    def upload_url(self, url: str) -> None:
        self.state.upload_url = url.rstrip("/")

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
            for base in (self.api_url, self.dpp_url, self.upload_url):
                router.route(url__startswith=base + "/").mock(side_effect=self.handle)
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
        return FakeError(421, message).response()

    # --- state ---

    @property
    def projects(self) -> dict[str, dict[str, Any]]:
        """Projects by id, as `GET /projects/{pid}.json` answers them."""
        return self.state.projects

    @property
    def tasks(self) -> dict[str, dict[str, Task]]:
        """Tasks by project id, then task id, in creation order."""
        return self.state.tasks

    @property
    def dpp_results(self) -> dict[tuple[str, str], DppResult]:
        """Every DPP result received, by (project id, task id); the last one wins."""
        return self.state.dpp_results

    @property
    def rejections(self) -> dict[tuple[str, str], list[str]]:
        """The reasons of every rejection, by (project id, task id)."""
        return self.state.rejections

    @property
    def schemas(self) -> dict[str, dict[str, dict[str, Any]]]:
        """JSON Schemas by project id: `{"create_task": {...}, "deliver_task": {...}}`.

        Both are applied: tasks whose `data` break `create_task` fail creation and are listed
        as failed in the batch's status; a DPP result whose answers break `deliver_task` is
        refused (400), as SamaHub refuses it.
        """
        return self.state.schemas

    def add_project(self, pid: str | int = 10, **fields: Any) -> dict[str, Any]:
        """Add (or update) a project; fields are what `get_project` answers."""
        with self._lock:
            return self.state.add_project(pid, fields)

    def add_task(
        self, task: Task | Mapping[str, Any], *, project_id: str | int | None = None
    ) -> Task:
        """Add a task (a `Task` or a delivery-format dict); delivered tasks join the feeds."""
        data = task.model_dump(mode="json") if isinstance(task, Task) else dict(task)
        if project_id is not None:
            data["project_id"] = project_id
        parsed = Task.model_validate(data)
        with self._lock:
            return self.state.add_task(parsed)

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
        with self._lock:
            batch = self.state.new_batch(str(pid), client_batch_id, state=state)
            batch.task_ids = list(task_ids)
            return str(batch.id)

    def add_event(self, event: WebhookEvent | DppEvent) -> Task:
        """Add the task an event is about, so the code under test can fetch and update it."""
        return self.add_task(event.task.model_dump(mode="json", exclude={"round"}))

    def task(self, pid: str | int, tid: str) -> Task:
        """Return a task as the fake holds it now."""
        return self.state.tasks[str(pid)][tid]

    def batch(self, pid: str | int, bid: str | int) -> FakeBatch:
        """Return a batch as the fake holds it now (tasks, failed tasks, upload)."""
        return self.state.batches[str(pid)][str(bid)]

    def created_tasks(self, pid: str | int, client_batch_id: str | None = None) -> list[Task]:
        """The tasks batches created in a project (those with `client_batch_id`, if given)."""
        with self._lock:
            batches = self.state.batches.get(str(pid), {}).values()
            ids = [
                tid
                for batch in batches
                if client_batch_id is None or batch.client_batch_id == client_batch_id
                for tid in batch.task_ids
            ]
            tasks = self.state.tasks.get(str(pid), {})
            return [tasks[tid] for tid in ids if tid in tasks]

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
        with self._lock:
            task = self.state.update(str(pid), tid, changes)
            self.state.deliveries[str(pid)].append(tid)
        return task

    def calls(self, route: RouteName | None = None) -> list[FakeCall]:
        """Return the requests received (for one route, or all), oldest first."""
        self._check_route(route)
        return [c for c in self._calls if route is None or c.route == route]

    # --- faults ---

    def fail(
        self,
        status: int = 503,
        *,
        route: RouteName | None = None,
        times: int = 1,
        after: int = 0,
        retry_after: str | float | None = None,
        message: str = "Service temporarily unavailable",
    ) -> None:
        """Answer `status` (SamaHub's error shape) `times` times, after `after` normal calls.

        `route` is a `RouteName`; None means any route. `retry_after` (seconds, or an HTTP
        date string) is sent as the `Retry-After` header.
        """
        self._add_fault(route, after, times, Faults.error(status, message, retry_after))

    def rate_limit(
        self,
        *,
        route: RouteName | None = None,
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
        route: RouteName | None = None,
        times: int = 1,
        after: int = 0,
        connect: bool = False,
        processed: bool = False,
    ) -> None:
        """Raise a timeout instead of answering: `ConnectTimeout` with `connect`, else
        `ReadTimeout`. With `processed`, SamaHub does the work before the answer is lost."""
        act = Faults.timeout(connect)
        self._add_fault(route, after, times, act, processed=processed and not connect)

    def drop_connection(
        self,
        *,
        route: RouteName | None = None,
        times: int = 1,
        after: int = 0,
        processed: bool = False,
    ) -> None:
        """Close the connection without answering, after `after` normal calls.

        With `processed`, SamaHub does the work before the connection drops (the answer to a
        batch creation is lost, but the batch exists).
        """
        self._add_fault(route, after, times, Faults.dropped(), processed=processed)

    def refuse_connection(
        self, *, route: RouteName | None = None, times: int = 1, after: int = 0
    ) -> None:
        """Refuse the connection (`ConnectError`): the request never reaches SamaHub."""
        self._add_fault(route, after, times, Faults.refused())

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
            self.state.listing_lag = listings

    def clear_faults(self) -> None:
        """Remove every injected fault, and the listing lag of batches created from now on."""
        with self._lock:
            self.faults.clear()
            self.state.listing_lag = 0

    def _add_fault(
        self,
        route: RouteName | None,
        after: int,
        times: int,
        act: Callable[[httpx.Request], httpx.Response],
        *,
        processed: bool = False,
    ) -> None:
        self._check_route(route)
        with self._lock:
            self.faults.add(Fault(route, after, times, act, processed))

    @staticmethod
    def _check_route(route: str | None) -> None:
        # For callers without a type checker: the same mistake, at run time.
        if route is not None and route not in ROUTES:
            raise ValueError(f"unknown route {route!r}; expected one of {', '.join(ROUTES)}")

    # --- answering ---

    def handle(self, request: httpx.Request) -> httpx.Response:
        """Answer one request like SamaHub would (or raise the transport error of a fault)."""
        url = str(request.url)
        base: Base = "api"
        root = self.api_url
        for name, prefix in (("dpp", self.dpp_url), ("upload", self.upload_url)):
            if url.startswith(prefix + "/"):
                base, root = name, prefix  # type: ignore[assignment]
        # The raw path: an id with a quoted "/" stays one path segment, as on a real server.
        raw_path = request.url.raw_path.decode("ascii").split("?", 1)[0]
        path = raw_path[len(httpx.URL(root).raw_path.decode("ascii").rstrip("/")) :]
        found = self._route(request.method, path, base)
        if isinstance(found, httpx.Response):
            return found
        matched, ids = found
        params = {k: v for k, v in request.url.params.items() if k != "access_key"}
        body = self._body(request)
        with self._lock:
            self._calls.append(FakeCall(matched.name, request.method, path, params, body))
            fault = self.faults.due(matched.name)
        if fault is not None and not fault.processed:
            return fault.act(request)
        try:
            self._check_credentials(request, base)
            with self._lock:
                response = matched.handler(self.state, FakeRequest(request, params, body, ids))
        except FakeError as error:
            response = error.response()
        if fault is not None:
            return fault.act(request)
        return response

    def _check_credentials(self, request: httpx.Request, base: Base) -> None:
        if base == "dpp":
            if request.headers.get("Authorization") != f"Bearer {self.dpp_key}":
                raise FakeError(401, "Unauthorized", top_level=True)
        elif base == "api" and request.url.params.get("access_key") != self.api_key:
            raise FakeError(401, "Unauthorized: invalid access_key or API access not enabled")

    @staticmethod
    def _route(method: str, path: str, base: Base) -> tuple[Route, dict[str, str]] | httpx.Response:
        allowed = []
        # The most specific path first: `/tasks/delivered.json` is not the task "delivered".
        candidates = sorted(
            (r for r in ROUTES.values() if r.base == base), key=lambda r: r.path.count("{")
        )
        for candidate in candidates:
            found = candidate.pattern.match(path)
            if found is None:
                continue
            if candidate.method == method:
                return candidate, {k: unquote(v) for k, v in found.groupdict().items()}
            allowed.append(candidate.method)
        if allowed:
            message = f"Method {method} not allowed; use {', '.join(allowed)}"
            return FakeError(405, message).response()
        return FakeError(404, f"No route matches {method} {path}").response()

    @staticmethod
    def _body(request: httpx.Request) -> Any:
        content = request.content
        if not content:
            return None
        try:
            return json.loads(content)
        except ValueError:
            return _NOT_JSON
