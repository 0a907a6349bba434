"""What to send to SamaHub and how to read the answer, as plain data: no I/O here.

`SamaClient` and `AsyncSamaClient` differ only in how they send a `Call`; everything else
(paths, query strings, bodies, paging, batch splitting, parsing) lives here once.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from enum import Enum
from typing import Any, Generic, TypeVar
from urllib.parse import quote

import httpx
import pydantic_core
from pydantic import SecretStr, TypeAdapter, ValidationError

from libnar.events import DppResult, Task
from libnar.sama._errors import (
    SamaConfigError,
    SamaError,
    answer_too_large,
    error_for_response,
)
from libnar.sama._models import Batch, BatchCreated, BatchUpload, Project, TaskAnswer

T = TypeVar("T")

#: SamaHub's limit of tasks in one batch creation.
MAX_BATCH_TASKS = 1000
#: Query parameters libnar sets itself; a filter may not override them.
_RESERVED = frozenset({"access_key", "page", "page_size"})


@dataclass(frozen=True, eq=False)
class Call(Generic[T]):
    """One HTTP exchange: what to send, and how to turn a 2xx answer's body into a `T`.

    `path` is under the API's base URL (the DPP URL when `dpp` is true) and never carries the
    key. `idempotent` says whether sending it twice is harmless, which decides the retries.
    """

    method: str
    path: str
    parse: Callable[[bytes], T]
    params: Mapping[str, str] = field(default_factory=dict)
    body: bytes | None = None
    dpp: bool = False
    idempotent: bool = True
    #: An absolute URL to send to instead (a tasks file's presigned storage URL): `path` is
    #: then its path, for messages, and `hidden_query` its query, added below httpx's client
    #: so that it is never logged (it signs the upload).
    url: str | None = None
    hidden_query: str = ""
    #: Called with (bytes sent, bytes in all) while the body is sent.
    progress: Callable[[int, int], None] | None = None


_TASK_LIST: TypeAdapter[list[Task]] = TypeAdapter(list[Task])


class Pager:
    """Walk a paged task endpoint: call after call until a page is shorter than its size.

    A page is decoded in two steps so that a client can ask for the next page before it
    validates the tasks of this one: `next_call(rows)` needs only the decoded rows' count,
    `tasks(rows)` does the (slower) validation. With `read_ahead`, clients fetch the next page
    while the caller works on this one; it is off where asking moves a position on SamaHub.

    Usage: `call = pager.first_call()`, then `rows = send(call)`,
    `call = pager.next_call(rows)`, `tasks = pager.tasks(rows)` until `call` is None.
    """

    def __init__(
        self,
        make_call: Callable[[int], Call[list[Any]]],
        page_size: int,
        *,
        read_ahead: bool = True,
    ) -> None:
        if page_size < 1:
            raise ValueError(f"page_size must be at least 1, got {page_size}")
        self._make_call = make_call
        self.page_size = page_size
        self.read_ahead = read_ahead
        self._page = 1
        self._last = make_call(1)

    def first_call(self) -> Call[list[Any]]:
        """Return the call for page 1."""
        return self._last

    def next_call(self, rows: list[Any]) -> Call[list[Any]] | None:
        """Record a page's rows; return the next page's call, or None after a short page."""
        if len(rows) < self.page_size:
            return None
        self._page += 1
        self._last = self._make_call(self._page)
        return self._last

    def tasks(self, rows: list[Any]) -> list[Task]:
        """Validate a page's rows into `Task`s."""
        try:
            return _TASK_LIST.validate_python(rows)
        except ValidationError as exc:
            raise unexpected_answer(self._last, exc, prefix="tasks.") from None


# --- query strings and bodies ---------------------------------------------------------------


def rfc3339(value: datetime | date) -> str:
    """Format a time as RFC 3339 in UTC (`2024-05-02T09:14:03Z`); naive times are taken as UTC."""
    if not isinstance(value, datetime):
        value = datetime(value.year, value.month, value.day, tzinfo=UTC)
    elif value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def query_value(value: Any) -> str:
    """Render one query value the way SamaHub reads it: `true`, RFC 3339 times, enum values."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime | date):
        return rfc3339(value)
    if isinstance(value, Enum):
        return str(value.value)
    return str(value)


def query(filters: Mapping[str, Any]) -> dict[str, str]:
    """Build a new query dict from filters: None dropped, `since`/`until` sent as `from`/`to`."""
    params: dict[str, str] = {}
    for key, value in filters.items():
        if value is None:
            continue
        name = {"since": "from", "until": "to"}.get(key, key)
        if name in _RESERVED:
            raise ValueError(f"{key!r} is not a filter: libnar sets it itself")
        params[name] = query_value(value)
    return params


def _json_body(value: Any) -> bytes:
    return pydantic_core.to_json(value)


# --- answers ----------------------------------------------------------------------------------


def _object(content: bytes) -> dict[str, Any]:
    # pydantic_core reads bytes directly; json.loads would first copy them into a str.
    value = pydantic_core.from_json(content) if content.strip() else {}
    if not isinstance(value, dict):
        raise ValueError(f"expected a JSON object, got {type(value).__name__}")
    return value


def _nothing(content: bytes) -> None:
    return None


def _task(content: bytes) -> Task:
    return TaskAnswer.model_validate_json(content).task


def _rows(content: bytes) -> list[Any]:
    """Decode a page, `{"tasks": [...]}`, leaving the tasks to `Pager.tasks`."""
    rows = _object(content).get("tasks")
    if rows is None:
        return []
    if not isinstance(rows, list):
        raise ValueError(f"tasks: expected a list, got {type(rows).__name__}")
    return rows


def _project(content: bytes) -> Project:
    return Project.model_validate_json(content)


def _batch(content: bytes) -> Batch:
    return Batch.model_validate_json(content)


def _batch_id(content: bytes) -> str:
    return BatchCreated.model_validate_json(content).batch_id


def _batch_upload(content: bytes) -> BatchUpload:
    return BatchUpload.model_validate_json(content)


#: How much of an error answer is read: SamaHub's messages are short, and only 200
#: characters of a text answer are quoted.
ERROR_BODY_BYTES = 64 * 1024


class AnswerReader:
    """Collect an answer's body chunk by chunk, and stop before it grows past a limit.

    A 2xx answer over `limit` bytes raises `SamaAnswerTooLargeError`: at once when its
    `Content-Length` says so, else as soon as the bytes read pass the limit. Of an error
    answer only the first `ERROR_BODY_BYTES` are kept (`add` then returns False).

    Usage: `reader = AnswerReader(call, response, limit)`, then `reader.add(chunk)` for each
    decoded chunk while it returns True, then `read_answer(call, response, reader.content())`.
    """

    def __init__(self, call: Call[Any], response: httpx.Response, limit: int) -> None:
        self._call = call
        self._status = response.status_code
        self._is_answer = response.is_success
        self._limit = limit if self._is_answer else ERROR_BODY_BYTES
        # One growing buffer, each chunk let go at once: a list of chunks joined at the end
        # leaves their freed memory resident while the answer is parsed (3x the answer).
        self._buffer = bytearray()
        announced = _content_length(response)
        if self._is_answer and announced is not None and announced > limit:
            raise answer_too_large(call.method, call.path, self._status, limit, announced)

    def add(self, chunk: bytes) -> bool:
        """Keep a chunk; say whether to read on. Raise when a 2xx answer passes the limit."""
        room = self._limit - len(self._buffer)
        if len(chunk) > room:
            if self._is_answer:
                method, path = self._call.method, self._call.path
                raise answer_too_large(method, path, self._status, self._limit)
            self._buffer += chunk[:room]
            return False
        self._buffer += chunk
        return True

    def content(self) -> bytes:
        """Return the bytes read, and let the buffer go.

        Parsers take `bytes` (they would copy a bytearray), so the buffer is copied once and
        freed before parsing: the answer is held twice only during the copy.
        """
        content = bytes(self._buffer)
        self._buffer = bytearray()
        return content


def _content_length(response: httpx.Response) -> int | None:
    """The decoded size the answer announces, when it announces one (no content coding)."""
    if response.headers.get("Content-Encoding", "identity").strip().lower() != "identity":
        return None  # the length counts compressed bytes
    value = response.headers.get("Content-Length", "")
    return int(value) if value.strip().isdigit() else None


def read_answer(call: Call[T], response: httpx.Response, content: bytes) -> T:
    """Parse a 2xx answer with `call.parse`; raise the matching `SamaError` for anything else."""
    if not response.is_success:
        raise error_for_response(call.method, call.path, response, content, dpp=call.dpp)
    try:
        return call.parse(content)
    except ValueError as exc:  # includes pydantic's ValidationError
        raise unexpected_answer(call, exc) from None


def unexpected_answer(call: Call[Any], exc: ValueError, prefix: str = "") -> SamaError:
    """Build the error for a 2xx answer that does not have the documented shape."""
    if isinstance(exc, ValidationError):
        first = exc.errors(include_url=False, include_input=False)[0]
        where = prefix + ".".join(str(part) for part in first["loc"])
        problem = f"{where or 'body'}: {first['msg']}"
    else:
        problem = str(exc).split("\n")[0][:200]
    return SamaError(
        f"unexpected answer ({problem})",
        method=call.method,
        path=call.path,
        hint="SamaHub's answer does not have the documented shape; report it to NPS",
    )


# --- endpoints ----------------------------------------------------------------------------------


def _missing(setting: str, argument: str) -> SamaConfigError:
    return SamaConfigError(f"{setting} is not set: pass {argument}=... or set {setting}")


def _segment(value: str | int) -> str:
    """Quote an id for use as one path segment, so no id can change the path."""
    return quote(str(value), safe="")


class Endpoints:
    """Build the `Call` for every SamaHub operation libnar supports.

    Checks the settings each call needs before anything is sent, and names what is missing.
    """

    def __init__(
        self,
        *,
        has_api_key: bool,
        dpp_url: str | None,
        dpp_key: SecretStr | None,
        key_setting: str = "SAMA_API_KEY",
    ) -> None:
        self._has_api_key = has_api_key
        self._dpp_url = dpp_url
        self._dpp_key = dpp_key
        self._key_setting = key_setting

    def _api(
        self,
        method: str,
        path: str,
        parse: Callable[[bytes], T],
        *,
        params: Mapping[str, str] | None = None,
        body: Any = None,
        idempotent: bool | None = None,
    ) -> Call[T]:
        if not self._has_api_key:
            raise _missing(self._key_setting, "api_key")
        return Call(
            method=method,
            path=path,
            parse=parse,
            params=params or {},
            body=None if body is None else _json_body(body),
            idempotent=method != "POST" if idempotent is None else idempotent,
        )

    def project(self, pid: str | int) -> Call[Project]:
        return self._api("GET", f"/projects/{_segment(pid)}.json", _project)

    def project_stats(
        self, pid: str | int, since: datetime | str | None, until: datetime | str | None
    ) -> Call[dict[str, Any]]:
        params = query({"since": since, "until": until})
        return self._api("GET", f"/projects/{_segment(pid)}/stats.json", _object, params=params)

    def schema(self, pid: str | int, which: str) -> Call[dict[str, Any]]:
        return self._api("GET", f"/projects/{_segment(pid)}/schemas/{which}.json", _object)

    def task(self, pid: str | int, tid: str, same_as_delivery: bool) -> Call[Task]:
        path = f"/projects/{_segment(pid)}/tasks/{_segment(tid)}.json"
        params = query({"same_as_delivery": same_as_delivery})
        return self._api("GET", path, _task, params=params)

    def tasks(self, pid: str | int, filters: Mapping[str, Any], page_size: int) -> Pager:
        return self._paged(f"/projects/{_segment(pid)}/tasks.json", filters, page_size)

    def delivered(self, pid: str | int, filters: Mapping[str, Any], page_size: int) -> Pager:
        return self._paged(f"/projects/{_segment(pid)}/tasks/delivered.json", filters, page_size)

    def _paged(self, path: str, filters: Mapping[str, Any], page_size: int) -> Pager:
        base = query(filters)

        def page(number: int) -> Call[list[Any]]:
            params = {**base, "page": str(number), "page_size": str(page_size)}
            return self._api("GET", path, _rows, params=params)

        return Pager(page, page_size)

    def delivered_since_last_call(
        self, pid: str | int, consumer: str, limit: int, filters: Mapping[str, Any]
    ) -> Pager:
        if not consumer:
            raise ValueError("consumer must be a non-empty name")
        body = {**query(filters), "consumer": consumer, "limit": limit}
        # Not idempotent: SamaHub moves the consumer's position on every answer it sends.
        call = self._api(
            "POST", f"/projects/{_segment(pid)}/tasks/delivered.json", _rows, body=body
        )
        # No read-ahead: a page asked for but never read would be lost to this consumer.
        return Pager(lambda _page: call, limit, read_ahead=False)

    def create_batch(self, pid: str | int, body: Mapping[str, Any]) -> Call[str]:
        """One creation call (at most 1,000 tasks); `_batches.BatchPlan` splits and checks."""
        path = f"/projects/{_segment(pid)}/batches.json"
        return self._api("POST", path, _batch_id, body=body)

    def start_file_batch(self, pid: str | int, body: Mapping[str, Any]) -> Call[BatchUpload]:
        """Start a batch whose tasks come in a file (`tasks_file_name`): answers the PUT URL.

        Safe to send again: it creates no task, and a batch never continued stays empty.
        """
        path = f"/projects/{_segment(pid)}/batches.json"
        return self._api("POST", path, _batch_upload, body=body, idempotent=True)

    def upload_tasks(
        self,
        put_url: str,
        content: bytes,
        progress: Callable[[int, int], None] | None = None,
    ) -> Call[None]:
        """PUT a tasks file to the presigned URL SamaHub gave (no key: the URL is signed)."""
        url = httpx.URL(put_url)
        return Call(
            method="PUT",
            path=url.path,
            parse=_nothing,
            body=content,
            url=str(url.copy_with(query=None)),
            hidden_query=url.query.decode("ascii"),
            progress=progress,
        )

    def continue_batch(self, pid: str | int, batch_id: str | int) -> Call[dict[str, Any]]:
        """Tell SamaHub the tasks file is there: it creates the tasks (not safe to repeat)."""
        path = f"/projects/{_segment(pid)}/batches/{_segment(batch_id)}/continue.json"
        return self._api("POST", path, _object)

    def batch_page(
        self, pid: str | int, batch_id: str | int, page: int, omit_failed_task_data: bool
    ) -> Call[Batch]:
        """One page of a batch's task records (a batch by file can hold any number)."""
        path = f"/projects/{_segment(pid)}/batches/{_segment(batch_id)}.json"
        params = {"page": str(page), "page_size": str(MAX_BATCH_TASKS)}
        if omit_failed_task_data:
            params["omit_failed_task_data"] = "true"
        return self._api("GET", path, _batch, params=params)

    def cancel_batch(self, pid: str | int, batch_id: str | int) -> Call[dict[str, Any]]:
        path = f"/projects/{_segment(pid)}/batches/{_segment(batch_id)}/cancel.json"
        # Cancelling twice cancels once: safe to send again.
        return self._api("POST", path, _object, idempotent=True)

    def reject_task(self, pid: str | int, tid: str, reasons: Sequence[str]) -> Call[None]:
        if isinstance(reasons, str):
            reasons = [reasons]
        path = f"/projects/{_segment(pid)}/tasks/{_segment(tid)}/reject.json"
        return self._api("PUT", path, _nothing, body={"reasons": list(reasons)})

    def update_priorities(
        self, pid: str | int, task_ids: Sequence[str], priority: int
    ) -> Call[None]:
        path = f"/projects/{_segment(pid)}/tasks/bulk_update.json"
        body = {"task_ids": list(task_ids), "priority": priority}
        # Setting the same priority twice changes nothing more: safe to send again.
        return self._api("POST", path, _nothing, body=body, idempotent=True)

    def delete_tasks(self, pid: str | int, task_ids: Sequence[str]) -> Call[None]:
        path = f"/projects/{_segment(pid)}/tasks/delete_tasks.json"
        return self._api("POST", path, _nothing, body={"task_ids": list(task_ids)})

    def post_processed(self, pid: str | int, tid: str, result: DppResult) -> Call[None]:
        if not self._dpp_url:
            raise _missing("SAMA_DPP_URL", "dpp_url")
        if self._dpp_key is None:
            raise _missing("SAMA_DPP_KEY", "dpp_key")
        return Call(
            method="PUT",
            path=f"/api/v1/projects/{_segment(pid)}/tasks/{_segment(tid)}/post_processed",
            parse=_nothing,
            body=result.model_dump_json().encode(),
            dpp=True,
        )
