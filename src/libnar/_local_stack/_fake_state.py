"""What the fake SamaHub knows: projects, tasks, batches, uploads, schemas, results.

`FakeState` holds the data and the rules every route shares (find a project or a task or
answer 404, page a list, check a creation against the project's schema). The routes
(`_fake_samahub.py`) read and change it; faults (`_fake_faults.py`) never touch it.
Everything here runs under the fake's lock.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx

from libnar._local_stack._factories import make_task_id
from libnar.events import DppResult, Task

__all__ = ["MAX_BATCH_TASKS", "MAX_PAGE_SIZE", "FakeBatch", "FakeError", "FakeState"]

#: The largest `page_size` the fake accepts (SamaHub documents none; its SDK uses 1,000).
MAX_PAGE_SIZE = 1000
#: SamaHub's limit of tasks in one batch created with the tasks in the request body.
MAX_BATCH_TASKS = 1000


class FakeError(Exception):
    """Stop handling a request and answer with this status, in SamaHub's error shape."""

    def __init__(self, status: int, message: str, *, top_level: bool = False) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.top_level = top_level

    def response(self) -> httpx.Response:
        """The answer: `{"errors": [{"type", "message"}]}`, or `{"message"}` (DPP endpoint)."""
        if self.top_level:
            return httpx.Response(self.status, json={"message": self.message})
        return httpx.Response(
            self.status, json={"errors": [{"type": self.status, "message": self.message}]}
        )


@dataclass
class FakeBatch:
    """A batch-creation job: its tasks, and for the file-upload path its uploaded file."""

    id: int
    project_id: str
    client_batch_id: str | None
    task_ids: list[str]
    state: str = "completed"
    extra: dict[str, Any] = field(default_factory=dict)
    #: How many more task listings leave this batch's tasks out (see `lag_listing`).
    unlisted_for: int = 0
    #: Tasks that failed creation: `{"state": "failed", "errors": [...], "data": {...}}`.
    failed: list[dict[str, Any]] = field(default_factory=list)
    #: The file-upload path: where the tasks file goes, and what was put there.
    upload_token: str | None = None
    upload_signature: str | None = None
    uploaded: list[Any] | None = None


class FakeState:
    """The fake's data, and the lookups every route shares."""

    def __init__(self) -> None:
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
        self.batches: dict[str, dict[str, FakeBatch]] = {}
        self.deliveries: dict[str, list[str]] = {}  # per project: task ids in delivery order
        self.positions: dict[tuple[str, str], int] = {}  # (project, consumer) -> log index
        self.uploads: dict[str, FakeBatch] = {}  # upload token -> its batch
        self.upload_url = ""
        self.listing_lag = 0
        self._rows: dict[int, tuple[Task, dict[str, Any]]] = {}
        self._next_batch = 1000

    # -- adding ---------------------------------------------------------------------------

    def add_project(self, pid: str | int, fields: Mapping[str, Any]) -> dict[str, Any]:
        key = str(pid)
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
        self.batches.setdefault(key, {})
        self.deliveries.setdefault(key, [])
        return project

    def add_task(self, task: Task) -> Task:
        self.add_project(task.project_id, {})
        self.tasks[task.project_id][task.id] = task
        if task.delivered_at is not None:
            self.deliveries[task.project_id].append(task.id)
        return task

    def new_batch(
        self, pid: str, client_batch_id: str | None, *, state: str = "completed", **extra: Any
    ) -> FakeBatch:
        self.add_project(pid, {})
        batch = FakeBatch(self._next_batch, pid, client_batch_id, [], state, dict(extra))
        self._next_batch += 1
        self.batches[pid][str(batch.id)] = batch
        return batch

    def new_upload(self, batch: FakeBatch, file_name: str) -> str:
        """Open the tasks file of a batch; return its URL, presigned as storage URLs are.

        The URL carries its own signature in the query (and never the API key).
        """
        batch.upload_token = secrets.token_hex(8)
        batch.upload_signature = secrets.token_hex(16)
        self.uploads[batch.upload_token] = batch
        query = f"X-Amz-Expires=14400&X-Amz-Signature={batch.upload_signature}"
        return f"{self.upload_url}/{batch.upload_token}/{file_name}?{query}"

    def update(self, pid: str, tid: str, changes: Mapping[str, Any]) -> Task:
        task = self.tasks[pid][tid]
        task = Task.model_validate({**task.model_dump(mode="json"), **changes})
        self.tasks[pid][tid] = task
        return task

    # -- creating tasks -------------------------------------------------------------------

    def create_tasks(self, batch: FakeBatch, specs: Any) -> None:
        """Create a batch's tasks from their specs; those failing the schema are recorded."""
        specs = check_specs(specs)
        schema = self.schemas.get(batch.project_id, {}).get("create_task")
        now = datetime.now(UTC).isoformat().replace("+00:00", "Z")
        for spec in specs:
            errors = self._schema_errors(spec["data"], schema)
            if errors:
                batch.failed.append({"state": "failed", "errors": errors, "data": spec["data"]})
                continue
            fields: dict[str, Any] = {
                "id": make_task_id(),
                "project_id": batch.project_id,
                "state": "new",
                "data": spec["data"],
                "created_at": now,
                "batch_id": batch.id,
                "priority": spec.get("priority", 0),
            }
            if batch.client_batch_id is not None:
                fields["client_batch_id"] = batch.client_batch_id
            task = Task.model_validate(fields)
            self.tasks[batch.project_id][task.id] = task
            batch.task_ids.append(task.id)
        batch.unlisted_for = self.listing_lag

    @staticmethod
    def _schema_errors(data: Any, schema: Mapping[str, Any] | None) -> list[str]:
        if schema is None:
            return []
        from libnar.answers import schema_problems

        return [str(problem) for problem in schema_problems(data, schema, root="data")]

    # -- looking up -----------------------------------------------------------------------

    def project(self, pid: str) -> dict[str, Any]:
        project = self.projects.get(pid)
        if project is None:
            raise FakeError(404, "Project not found")
        return project

    def task_of(self, pid: str, tid: str) -> Task:
        self.project(pid)
        task = self.tasks[pid].get(tid)
        if task is None:
            raise FakeError(404, "Task not found")
        return task

    def batch_of(self, pid: str, bid: str) -> FakeBatch:
        self.project(pid)
        batch = self.batches[pid].get(bid)
        if batch is None:
            raise FakeError(404, "Batch not found")
        return batch

    def unlisted(self, pid: str) -> set[str]:
        """The tasks a task listing leaves out now (counting this listing)."""
        hidden: set[str] = set()
        for batch in self.batches[pid].values():
            if batch.unlisted_for > 0:
                batch.unlisted_for -= 1
                hidden.update(batch.task_ids)
        return hidden

    def row(self, task: Task) -> dict[str, Any]:
        """Return a task's JSON, dumped once per task object (answers can be large)."""
        cached = self._rows.get(id(task))
        if cached is None or cached[0] is not task:
            cached = (task, task.model_dump(mode="json"))
            self._rows[id(task)] = cached
        return cached[1]

    def tasks_answer(self, tasks: Iterable[Task], omit_answers: bool = False) -> httpx.Response:
        rows = [self.row(task) for task in tasks]
        if omit_answers:
            rows = [{k: v for k, v in row.items() if k != "answers"} for row in rows]
        return httpx.Response(200, json={"tasks": rows})


def check_specs(specs: Any, *, limit: int | None = None) -> list[dict[str, Any]]:
    """Check a list of task creation specs as SamaHub does (400 naming the first problem)."""
    if not isinstance(specs, list) or not specs:
        raise FakeError(400, "tasks must be a non-empty list")
    if limit is not None and len(specs) > limit:
        raise FakeError(400, f"A batch holds at most {limit} tasks, got {len(specs)}")
    for index, spec in enumerate(specs):
        if not isinstance(spec, dict) or not isinstance(spec.get("data"), dict):
            raise FakeError(400, f"tasks[{index}].data must be an object")
        priority = spec.get("priority", 0)
        if not isinstance(priority, int) or isinstance(priority, bool):
            raise FakeError(400, f"tasks[{index}].priority must be an integer")
    return specs


def time_param(value: str, name: str) -> datetime:
    try:
        when = datetime.fromisoformat(value)
    except ValueError:
        raise FakeError(400, f"{name} must be an RFC 3339 timestamp, got {value!r}") from None
    if when.tzinfo is None:
        raise FakeError(400, f"{name} must carry a UTC offset (RFC 3339), got {value!r}")
    return when


def int_param(params: Mapping[str, str], name: str, default: int, low: int, high: int) -> int:
    raw = params.get(name)
    if raw is None:
        return default
    if not raw.isdigit() or not low <= int(raw) <= high:
        raise FakeError(400, f"{name} must be an integer from {low} to {high}, got {raw!r}")
    return int(raw)


def bool_param(params: Mapping[str, str], name: str) -> bool:
    raw = params.get(name)
    if raw is None:
        return False
    if raw not in ("true", "false"):
        raise FakeError(400, f"{name} must be true or false, got {raw!r}")
    return raw == "true"


def page_of(tasks: list[Any], params: Mapping[str, str]) -> list[Any]:
    page = int_param(params, "page", 1, 1, 1_000_000)
    size = int_param(params, "page_size", 100, 1, MAX_PAGE_SIZE)
    return tasks[(page - 1) * size : page * size]
