"""`SamaClient` and `AsyncSamaClient`: SamaHub's public API and the DPP return path.

Both clients share everything but the sending: `Endpoints` builds each `Call` (path, query,
body, parser), `retrying_options` decides the retries, `read_answer` parses or raises. Each
client owns one pooled `httpx.Client`/`AsyncClient`.

The API key travels as the `access_key` query parameter. It is added by a transport below
httpx's client, so the URL httpx logs and puts on requests, responses and errors never has it.
"""

from __future__ import annotations

import asyncio
import copy
import dataclasses
import functools
import ssl
import time
import urllib.request
from collections.abc import (
    AsyncGenerator,
    AsyncIterator,
    Awaitable,
    Callable,
    Generator,
    Iterable,
    Iterator,
    Mapping,
)
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import aclosing, closing
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, Self, TypeVar

import httpx
from pydantic import SecretStr, ValidationError
from tenacity import AsyncRetrying, Retrying

from libnar.events import DppResult, Task
from libnar.sama._batches import (
    BatchPlan,
    BatchSearch,
    Part,
    Via,
    log_lost_batch,
    lookup_waits,
    refuse_task_data,
    task_data_problems,
)
from libnar.sama._calls import (
    MAX_BATCH_TASKS,
    AnswerReader,
    Call,
    Endpoints,
    Pager,
    read_answer,
)
from libnar.sama._errors import NOT_SENT, SamaConfigError, SamaError, SamaTransportError
from libnar.sama._models import Batch, Project, whole_batch
from libnar.sama._retry import Attempts, Deadline, retrying_options
from libnar.settings import get_settings

__all__ = ["AsyncSamaClient", "SamaClient"]

T = TypeVar("T")

_USER_AGENT = "libnar"
#: The request extension carrying a query added below httpx's client (never logged).
_HIDDEN_QUERY = "libnar_hidden_query"
#: Bytes sent at a time when a body reports progress.
_CHUNK = 64 * 1024


#: Which API key a client uses when none is passed: the setting of each.
KeyName = Literal["primary", "secondary"]
_KEY_SETTINGS: dict[str, str] = {
    "primary": "SAMA_API_KEY",
    "secondary": "SAMA_SECONDARY_API_KEY",
}


@dataclass(frozen=True)
class _Config:
    base_url: str
    dpp_url: str | None
    api_key: SecretStr | None
    dpp_key: SecretStr | None
    timeout: float
    max_retries: int
    deadline: float
    max_answer_bytes: int
    batch_lookup_seconds: float
    key_setting: str = "SAMA_API_KEY"


#: The limits a client takes as arguments (and `with_options` per call): each one's
#: setting, and its lowest value (allowed or not).
_LIMITS: dict[str, tuple[str, float, bool]] = {
    "timeout": ("SAMA_TIMEOUT", 0, False),
    "max_retries": ("SAMA_MAX_RETRIES", 0, True),
    "deadline": ("SAMA_DEADLINE", 0, False),
    "max_answer_bytes": ("SAMA_MAX_ANSWER_BYTES", 0, False),
    "batch_lookup_seconds": ("SAMA_BATCH_LOOKUP_SECONDS", 0, True),
}


def _given(value: str | SecretStr | None) -> str | None:
    """Return an argument's text, or None when it is missing, empty or blank."""
    text = value.get_secret_value() if isinstance(value, SecretStr) else value
    return text if text and text.strip() else None


def _secret(value: str | SecretStr | None) -> SecretStr | None:
    text = _given(value)
    return None if text is None else SecretStr(text)


def _check_limits(limits: Mapping[str, float | None]) -> None:
    """Refuse a limit argument below its lowest value, naming the argument."""
    for name, value in limits.items():
        if value is None:
            continue
        _, low, allowed = _LIMITS[name]
        if value < low or (value == low and not allowed):
            bound = f"{low:g} or more" if allowed else f"more than {low:g}"
            raise SamaConfigError(f"{name} must be {bound}, got {value}")


def _resolve(
    api_key: str | SecretStr | None,
    base_url: str | None,
    dpp_url: str | None,
    dpp_key: str | SecretStr | None,
    key: KeyName = "primary",
    **limits: float | None,
) -> _Config:
    """Take each value from the arguments, else from libnar's settings (read now).

    An empty or blank argument counts as not given, as an empty setting counts as unset.
    `key` names the setting the API key comes from when `api_key` is not given.
    """
    _check_limits(limits)
    if key not in _KEY_SETTINGS:
        raise SamaConfigError(f"key must be 'primary' or 'secondary', got {key!r}")
    keys = {"api_key": _secret(api_key), "dpp_key": _secret(dpp_key)}
    urls = {"base_url": _given(base_url), "dpp_url": _given(dpp_url)}
    filled: dict[str, Any] = dict(limits)
    if None in (*keys.values(), *urls.values(), *limits.values()):
        try:
            settings = get_settings()
        except ValidationError as exc:
            first = exc.errors(include_url=False)[0]
            name = str(first["loc"][0]).upper() if first["loc"] else "a setting"
            raise SamaConfigError(f"{name} is invalid: {first['msg']}") from None
        chosen = settings.sama_api_key if key == "primary" else settings.sama_secondary_api_key
        keys["api_key"] = keys["api_key"] or chosen
        keys["dpp_key"] = keys["dpp_key"] or settings.sama_dpp_key
        urls["base_url"] = urls["base_url"] or settings.sama_api_url
        urls["dpp_url"] = urls["dpp_url"] or settings.sama_dpp_url
        for name, value in limits.items():
            if value is None:
                filled[name] = getattr(settings, f"sama_{name}")
    base, dpp = urls["base_url"] or "", urls["dpp_url"]
    return _Config(
        base_url=base.rstrip("/"),
        dpp_url=dpp.rstrip("/") if dpp else None,
        api_key=keys["api_key"],
        dpp_key=keys["dpp_key"],
        key_setting=_KEY_SETTINGS[key],
        **filled,
    )


def _env_proxy(url: str) -> str | None:
    """Return the proxy the environment names for `url` (`HTTPS_PROXY`, `NO_PROXY`...), if any.

    Environment variables only, as httpx reads them (no system settings, no DNS lookups).
    """
    parsed = httpx.URL(url)
    proxies = urllib.request.getproxies_environment()
    proxy = proxies.get(parsed.scheme) or proxies.get("all")
    if not proxy:
        return None
    for entry in proxies.get("no", "").split(","):
        entry = entry.strip().lstrip(".").split(":")[0].lower()
        if entry == "*" or (entry and (parsed.host == entry or parsed.host.endswith("." + entry))):
            return None
    return proxy


@functools.cache
def _ssl_context() -> ssl.SSLContext:
    """Return one SSL context for every client: loading the CA bundle takes ~20 ms each time.

    Built once per process from httpx's defaults (certifi, or `SSL_CERT_FILE`/`SSL_CERT_DIR`).
    """
    return httpx.create_ssl_context(trust_env=True)


class _AccessKey:
    """Add `access_key` to requests for the public API, and to nothing else."""

    def __init__(self, base_url: str, key: SecretStr | None) -> None:
        self._prefix = str(httpx.URL(base_url + "/"))  # as httpx writes it (lowercase host)
        self._key = key

    def sign(self, request: httpx.Request) -> httpx.Request:
        hidden = request.extensions.get(_HIDDEN_QUERY)
        if hidden:  # a presigned URL's own signature: never the API key
            url = request.url.copy_with(query=hidden.encode("ascii"))
        elif self._key is not None and str(request.url).startswith(self._prefix):
            url = request.url.copy_add_param("access_key", self._key.get_secret_value())
        else:
            return request
        return httpx.Request(
            request.method,
            url,
            headers=request.headers,
            stream=request.stream,
            extensions=request.extensions,
        )


class _SigningTransport(httpx.BaseTransport):
    def __init__(self, inner: httpx.BaseTransport, key: _AccessKey) -> None:
        self._inner = inner
        self._key = key

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        return self._inner.handle_request(self._key.sign(request))

    def close(self) -> None:
        self._inner.close()


class _AsyncSigningTransport(httpx.AsyncBaseTransport):
    def __init__(self, inner: httpx.AsyncBaseTransport, key: _AccessKey) -> None:
        self._inner = inner
        self._key = key

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        return await self._inner.handle_async_request(self._key.sign(request))

    async def aclose(self) -> None:
        await self._inner.aclose()


def _chunks(body: bytes, progress: Callable[[int, int], None]) -> Iterator[bytes]:
    """Yield a body in chunks, reporting the bytes sent after each."""
    progress(0, len(body))
    for start in range(0, len(body), _CHUNK):
        chunk = body[start : start + _CHUNK]
        yield chunk
        progress(start + len(chunk), len(body))


async def _achunks(body: bytes, progress: Callable[[int, int], None]) -> AsyncIterator[bytes]:
    """The async twin of `_chunks`."""
    for chunk in _chunks(body, progress):
        yield chunk


class _ClientBase:
    """What both clients share: configuration, request building, `repr`, `with_options`."""

    def __init__(
        self,
        api_key: str | SecretStr | None,
        base_url: str | None,
        dpp_url: str | None,
        dpp_key: str | SecretStr | None,
        key: KeyName = "primary",
        **limits: float | None,
    ) -> None:
        self._config = _resolve(api_key, base_url, dpp_url, dpp_key, key, **limits)
        self._endpoints = Endpoints(
            has_api_key=self._config.api_key is not None,
            dpp_url=self._config.dpp_url,
            dpp_key=self._config.dpp_key,
            key_setting=self._config.key_setting,
        )
        self._access_key = _AccessKey(self._config.base_url, self._config.api_key)

    @property
    def base_url(self) -> str:
        """The public API's base URL, e.g. `https://api.sama.com/v2`."""
        return self._config.base_url

    @property
    def dpp_url(self) -> str | None:
        """The base URL DPP results are returned to, if configured."""
        return self._config.dpp_url

    @property
    def max_retries(self) -> int:
        """How many times a failed call that is safe to retry is sent again."""
        return self._config.max_retries

    @property
    def deadline(self) -> float:
        """The longest one call may take in all, retries and waits included, in seconds."""
        return self._config.deadline

    @property
    def max_answer_bytes(self) -> int:
        """The largest answer a call reads, in bytes; a larger one is refused."""
        return self._config.max_answer_bytes

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(base_url={self.base_url!r}, dpp_url={self.dpp_url!r}, "
            f"timeout={self._config.timeout}, max_retries={self.max_retries})"
        )

    def with_options(
        self,
        *,
        timeout: float | None = None,
        max_retries: int | None = None,
        deadline: float | None = None,
        max_answer_bytes: int | None = None,
        batch_lookup_seconds: float | None = None,
    ) -> Self:
        """Return a client with other limits for the calls made through it.

        It shares this client's connections (close this one when done, not the copy):
        `sama.with_options(max_answer_bytes=2**30).get_task(pid, tid)`. Arguments left out
        keep this client's values.
        """
        given = {
            "timeout": timeout,
            "max_retries": max_retries,
            "deadline": deadline,
            "max_answer_bytes": max_answer_bytes,
            "batch_lookup_seconds": batch_lookup_seconds,
        }
        _check_limits(given)
        changes: dict[str, Any] = {
            name: value for name, value in given.items() if value is not None
        }
        other = copy.copy(self)
        other._config = dataclasses.replace(self._config, **changes)
        return other

    def _client_options(self) -> dict[str, Any]:
        return {
            "timeout": httpx.Timeout(self._config.timeout),
            "headers": {"User-Agent": _USER_AGENT, "Accept": "application/json"},
            # Proxies come from the transport (`_env_proxy`): httpx's own would bypass signing.
            "trust_env": False,
        }

    def _transport_options(self) -> dict[str, Any]:
        return {"proxy": _env_proxy(self._config.base_url), "verify": _ssl_context()}

    def _time_for_attempt(self, call: Call[Any], attempts: Attempts, deadline: Deadline) -> float:
        """Return how long the attempt may wait for the network; raise when no time is left."""
        remaining = deadline.remaining()
        if remaining <= 0:
            raise attempts.out_of_time(call, deadline, under_way=False)
        return min(self._config.timeout, remaining)

    def _failed(
        self,
        call: Call[Any],
        attempts: Attempts,
        deadline: Deadline,
        wait: float,
        exc: httpx.TransportError,
    ) -> SamaTransportError:
        """Build the error of an attempt that got no answer: a timeout the deadline cut short
        is the deadline's."""
        if isinstance(exc, httpx.TimeoutException) and wait < self._config.timeout:
            under_way = not isinstance(exc, NOT_SENT)
            return attempts.out_of_time(call, deadline, under_way=under_way)
        return attempts.failed(call, exc)

    def _request(
        self,
        http: httpx.Client | httpx.AsyncClient,
        call: Call[Any],
        wait: float,
        content: Any = None,
    ) -> httpx.Request:
        """Build the request of a call; `content` streams the body (it reports progress)."""
        base = self._config.dpp_url if call.dpp else self._config.base_url
        headers = {}
        if call.body is not None:
            headers["Content-Type"] = "application/json"
            headers["Content-Length"] = str(len(call.body))  # storage refuses chunked PUTs
        if call.dpp and self._config.dpp_key is not None:
            headers["Authorization"] = f"Bearer {self._config.dpp_key.get_secret_value()}"
        return http.build_request(
            call.method,
            call.url or f"{base}{call.path}",
            params=call.params,
            content=call.body if content is None else content,
            headers=headers,
            timeout=httpx.Timeout(wait),
            extensions={_HIDDEN_QUERY: call.hidden_query} if call.hidden_query else None,
        )


class SamaClient(_ClientBase):
    """Call SamaHub's public API and return DPP results, with retries and typed answers.

    Use it as a context manager (`with SamaClient() as sama: ...`) or call `close()`; one
    client keeps its connections open between calls. Values not passed are read from libnar's
    settings (`SAMA_API_KEY`, `SAMA_API_URL`, `SAMA_DPP_URL`, `SAMA_DPP_KEY`, `SAMA_TIMEOUT`,
    `SAMA_MAX_RETRIES`, `SAMA_DEADLINE`, `SAMA_MAX_ANSWER_BYTES`, `SAMA_BATCH_LOOKUP_SECONDS`)
    when the client is created; `key="secondary"` takes the API key from
    `SAMA_SECONDARY_API_KEY` instead of `SAMA_API_KEY`; `with_options` changes the limits for some calls. `sleep` is
    how retries and batch look-ups wait (tests pass a function that records the wait instead).
    """

    def __init__(
        self,
        api_key: str | SecretStr | None = None,
        *,
        base_url: str | None = None,
        dpp_url: str | None = None,
        dpp_key: str | SecretStr | None = None,
        timeout: float | None = None,
        max_retries: int | None = None,
        deadline: float | None = None,
        max_answer_bytes: int | None = None,
        batch_lookup_seconds: float | None = None,
        key: KeyName = "primary",
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        super().__init__(
            api_key,
            base_url,
            dpp_url,
            dpp_key,
            key,
            timeout=timeout,
            max_retries=max_retries,
            deadline=deadline,
            max_answer_bytes=max_answer_bytes,
            batch_lookup_seconds=batch_lookup_seconds,
        )
        inner = transport or httpx.HTTPTransport(**self._transport_options())
        self._http = httpx.Client(
            transport=_SigningTransport(inner, self._access_key), **self._client_options()
        )
        self._sleep = sleep

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the pooled connections."""
        self._http.close()

    # --- sending: the only part that differs from AsyncSamaClient ---

    def _send(self, call: Call[T]) -> T:
        attempts, deadline = Attempts(), Deadline(self._config.deadline)
        options = retrying_options(call, self.max_retries, self._sleep, deadline)
        try:
            result: T = Retrying(**options)(self._attempt, call, attempts, deadline)
            return result
        except SamaError as error:
            error.attempts = attempts.count
            raise

    def _attempt(self, call: Call[T], attempts: Attempts, deadline: Deadline) -> T:
        attempts.count += 1
        wait = self._time_for_attempt(call, attempts, deadline)
        content = _chunks(call.body, call.progress) if call.progress and call.body else None
        try:
            request = self._request(self._http, call, wait, content)
            response = self._http.send(request, stream=True)
            try:
                reader = AnswerReader(call, response, self._config.max_answer_bytes)
                for chunk in response.iter_bytes():
                    if not reader.add(chunk):
                        break
                    # A blocking read cannot be interrupted: check between reads.
                    if deadline.has_passed():
                        raise attempts.out_of_time(call, deadline, under_way=True)
            finally:
                response.close()
        except httpx.TransportError as exc:
            raise self._failed(call, attempts, deadline, wait, exc) from None
        return read_answer(call, response, reader.content())

    def _find_lost_batch(
        self, plan: BatchPlan, part: Part, created: list[str], lost: SamaError
    ) -> str:
        if plan.client_batch_id is None:
            raise plan.outcome_unknown(part, created, lost) from lost
        log_lost_batch(plan, part, lost)
        search, budget = None, self._config.batch_lookup_seconds
        for wait in lookup_waits(budget):
            if wait:
                self._sleep(wait)
            search = BatchSearch(part, created)
            try:
                with closing(self._iterate(plan.lookup())) as tasks:
                    for task in tasks:
                        search.add(task)
            except SamaError as error:
                raise plan.outcome_unknown(
                    part, created, lost, search=search, lookup_failed=error
                ) from error
            if (found := search.found()) is not None:
                return found
        raise plan.outcome_unknown(part, created, lost, search=search, seconds=budget) from lost

    def _iterate(self, pager: Pager) -> Generator[Task, None, None]:
        if not pager.read_ahead:
            call: Call[list[Any]] | None = pager.first_call()
            while call is not None:
                rows = self._send(call)
                call = pager.next_call(rows)
                yield from pager.tasks(rows)
            return
        # Fetch the next page in a thread while the caller works through this one.
        ahead = ThreadPoolExecutor(max_workers=1, thread_name_prefix="libnar-sama-page")
        try:
            pending: Future[list[Any]] | None = ahead.submit(self._send, pager.first_call())
            while pending is not None:
                rows = pending.result()
                call = pager.next_call(rows)
                pending = ahead.submit(self._send, call) if call is not None else None
                yield from pager.tasks(rows)
        finally:
            ahead.shutdown(wait=False, cancel_futures=True)

    # --- the API ---

    def get_project(self, pid: str | int) -> Project:
        """Fetch a project's information."""
        return self._send(self._endpoints.project(pid))

    def get_project_stats(
        self,
        pid: str | int,
        since: datetime | str | None = None,
        until: datetime | str | None = None,
    ) -> dict[str, Any]:
        """Fetch a project's statistics, optionally for a time range (sent as RFC 3339)."""
        return self._send(self._endpoints.project_stats(pid, since, until))

    def get_creation_schema(self, pid: str | int) -> dict[str, Any]:
        """Fetch the JSON Schema a new task's `data` must follow."""
        return self._send(self._endpoints.schema(pid, "create_task"))

    def get_delivery_schema(self, pid: str | int) -> dict[str, Any]:
        """Fetch the JSON Schema of the project's delivered `answers`."""
        return self._send(self._endpoints.schema(pid, "deliver_task"))

    def get_task(self, pid: str | int, tid: str, same_as_delivery: bool = True) -> Task:
        """Fetch one task, by default in delivery format."""
        return self._send(self._endpoints.task(pid, tid, same_as_delivery))

    def iter_tasks(self, pid: str | int, *, page_size: int = 100, **filters: Any) -> Iterator[Task]:
        """Iterate over a project's tasks, page by page.

        Filters are SamaHub's (`state`, `batch_id`, `client_batch_id`, `date_type`,
        `omit_answers`, ...); `since`/`until` are sent as `from`/`to`.
        """
        return self._iterate(self._endpoints.tasks(pid, filters, page_size))

    def iter_delivered_tasks(
        self,
        pid: str | int,
        since: datetime | str | None = None,
        *,
        page_size: int = 1000,
        **filters: Any,
    ) -> Iterator[Task]:
        """Iterate over the tasks delivered since a time (`batch_id`, `task_id`... filter more)."""
        filters = {"since": since, **filters}
        return self._iterate(self._endpoints.delivered(pid, filters, page_size))

    def iter_delivered_since_last_call(
        self, pid: str | int, consumer: str, limit: int = 1000, **filters: Any
    ) -> Iterator[Task]:
        """Iterate over the tasks delivered since `consumer` last asked; SamaHub remembers.

        Each page moves the consumer's position on SamaHub, so a page lost to a dropped
        connection is not asked for again: the error is raised instead.
        """
        return self._iterate(
            self._endpoints.delivered_since_last_call(pid, consumer, limit, filters)
        )

    def create_batch(
        self,
        pid: str | int,
        tasks: Iterable[Mapping[str, Any]],
        *,
        client_batch_id: str | None = None,
        priority: int | None = None,
        submit: bool | None = None,
        notification_email: str | None = None,
        via: Via = "auto",
        check_schema: bool = False,
        progress: Callable[[int, int], None] | None = None,
    ) -> list[str]:
        """Create tasks from their `data` mappings; return the new batches' ids.

        `via="auto"` sends up to 1,000 tasks in the request body and more as a file (one
        batch of any size: `tasks_file_name`, a PUT of the file, then `continue`); "body"
        splits any number into batches of 1,000, "file" always uploads. A creation is never
        sent twice: when its answer is lost, the batch is looked up by `client_batch_id`
        (which must be new: a used one is refused with `SamaBatchIdInUseError`, before
        anything is sent), and `SamaBatchOutcomeUnknownError` is raised when it is not found
        in time or there is no `client_batch_id`. See the docs' "Creating tasks safely".

        `check_schema` checks every task's data against the project's creation schema first
        (`SamaTaskDataError` lists every problem; nothing is sent). `progress` is called with
        (bytes sent, bytes in all) as the tasks go out.
        """
        tasks = list(tasks)
        if check_schema:
            schema = self.get_creation_schema(pid)
            problems = task_data_problems(tasks, schema)
            if problems:
                raise refuse_task_data(pid, problems, len(tasks))
        plan = BatchPlan(
            self._endpoints,
            pid,
            tasks,
            client_batch_id=client_batch_id,
            priority=priority,
            submit=submit,
            notification_email=notification_email,
            via=via,
        )
        if plan.in_use is not None:
            plan.check_not_in_use(self._send(plan.in_use.first_call()))
        if plan.by_file:
            return [self._create_by_file(plan, progress)]
        created: list[str] = []
        sent, total = 0, plan.total_bytes
        if progress is not None:
            progress(sent, total)
        for part in plan.parts:
            try:
                batch_id = self._send(part.call)
            except SamaError as error:
                if not plan.answer_lost(error):
                    raise
                batch_id = self._find_lost_batch(plan, part, created, error)
            created.append(batch_id)
            sent += plan.part_bytes(part)
            if progress is not None:
                progress(sent, total)
        return created

    def _create_by_file(self, plan: BatchPlan, progress: Callable[[int, int], None] | None) -> str:
        upload = self._send(plan.file_start)
        self._send(self._endpoints.upload_tasks(upload.tasks_put_url, plan.file_content, progress))
        part = plan.continue_part(upload.batch_id)
        try:
            self._send(part.call)
        except SamaError as error:
            if not plan.answer_lost(error):
                raise
            return self._find_lost_batch(plan, part, [], error)
        return upload.batch_id

    def get_batch(
        self, pid: str | int, batch_id: str | int, *, omit_failed_task_data: bool = False
    ) -> Batch:
        """Fetch a batch-creation job's status and every task record, page by page.

        `omit_failed_task_data` leaves out the data of tasks that failed creation (their
        errors stay).
        """
        pages = [self._send(self._endpoints.batch_page(pid, batch_id, 1, omit_failed_task_data))]
        while len(pages[-1].tasks) >= MAX_BATCH_TASKS:
            call = self._endpoints.batch_page(pid, batch_id, len(pages) + 1, omit_failed_task_data)
            pages.append(self._send(call))
        return whole_batch(pages)

    def cancel_batch(self, pid: str | int, batch_id: str | int) -> dict[str, Any]:
        """Cancel a batch-creation job; return SamaHub's answer."""
        return self._send(self._endpoints.cancel_batch(pid, batch_id))

    def reject_task(self, pid: str | int, tid: str, reasons: Iterable[str]) -> None:
        """Send a task back for rework, with the reasons the annotators will see."""
        self._send(self._endpoints.reject_task(pid, tid, list(reasons)))

    def update_priorities(self, pid: str | int, task_ids: Iterable[str], priority: int) -> None:
        """Set the priority of several tasks (lower numbers first)."""
        self._send(self._endpoints.update_priorities(pid, list(task_ids), priority))

    def delete_tasks(self, pid: str | int, task_ids: Iterable[str]) -> None:
        """Delete tasks; SamaHub deletes only tasks still in state `new`."""
        self._send(self._endpoints.delete_tasks(pid, list(task_ids)))

    def submit_dpp_result(self, pid: str | int, tid: str, result: DppResult) -> None:
        """Return a DPP result to SamaHub (`PUT .../post_processed` with the DPP key)."""
        self._send(self._endpoints.post_processed(pid, tid, result))


def _forget(future: asyncio.Future[Any]) -> None:
    """Mark an abandoned read-ahead as seen, so asyncio does not log its exception."""
    if not future.cancelled():
        future.exception()


class AsyncSamaClient(_ClientBase):
    """The async twin of `SamaClient`: the same methods, awaited; iterators are async.

    Use `async with AsyncSamaClient() as sama: ...` or `await aclose()`. `get_tasks` fetches
    many tasks concurrently. `sleep` is how retries wait (an async function).
    """

    def __init__(
        self,
        api_key: str | SecretStr | None = None,
        *,
        base_url: str | None = None,
        dpp_url: str | None = None,
        dpp_key: str | SecretStr | None = None,
        timeout: float | None = None,
        max_retries: int | None = None,
        deadline: float | None = None,
        max_answer_bytes: int | None = None,
        batch_lookup_seconds: float | None = None,
        key: KeyName = "primary",
        transport: httpx.AsyncBaseTransport | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        super().__init__(
            api_key,
            base_url,
            dpp_url,
            dpp_key,
            key,
            timeout=timeout,
            max_retries=max_retries,
            deadline=deadline,
            max_answer_bytes=max_answer_bytes,
            batch_lookup_seconds=batch_lookup_seconds,
        )
        inner = transport or httpx.AsyncHTTPTransport(**self._transport_options())
        self._http = httpx.AsyncClient(
            transport=_AsyncSigningTransport(inner, self._access_key), **self._client_options()
        )
        self._sleep = sleep

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the pooled connections."""
        await self._http.aclose()

    # --- sending: the only part that differs from SamaClient ---

    async def _send(self, call: Call[T]) -> T:
        attempts, deadline = Attempts(), Deadline(self._config.deadline)
        options = retrying_options(call, self.max_retries, self._sleep, deadline)
        try:
            return await AsyncRetrying(**options)(self._attempt, call, attempts, deadline)
        except SamaError as error:
            error.attempts = attempts.count
            raise

    async def _attempt(self, call: Call[T], attempts: Attempts, deadline: Deadline) -> T:
        attempts.count += 1
        wait = self._time_for_attempt(call, attempts, deadline)
        content = _achunks(call.body, call.progress) if call.progress and call.body else None
        try:
            async with asyncio.timeout(deadline.remaining()):
                request = self._request(self._http, call, wait, content)
                response = await self._http.send(request, stream=True)
                try:
                    reader = AnswerReader(call, response, self._config.max_answer_bytes)
                    async for chunk in response.aiter_bytes():
                        if not reader.add(chunk):
                            break
                finally:
                    await response.aclose()
        except TimeoutError:
            raise attempts.out_of_time(call, deadline, under_way=True) from None
        except httpx.TransportError as exc:
            raise self._failed(call, attempts, deadline, wait, exc) from None
        return read_answer(call, response, reader.content())

    async def _find_lost_batch(
        self, plan: BatchPlan, part: Part, created: list[str], lost: SamaError
    ) -> str:
        if plan.client_batch_id is None:
            raise plan.outcome_unknown(part, created, lost) from lost
        log_lost_batch(plan, part, lost)
        search, budget = None, self._config.batch_lookup_seconds
        for wait in lookup_waits(budget):
            if wait:
                await self._sleep(wait)
            search = BatchSearch(part, created)
            try:
                async with aclosing(self._iterate(plan.lookup())) as tasks:
                    async for task in tasks:
                        search.add(task)
            except SamaError as error:
                raise plan.outcome_unknown(
                    part, created, lost, search=search, lookup_failed=error
                ) from error
            if (found := search.found()) is not None:
                return found
        raise plan.outcome_unknown(part, created, lost, search=search, seconds=budget) from lost

    async def _iterate(self, pager: Pager) -> AsyncGenerator[Task, None]:
        if not pager.read_ahead:
            call: Call[list[Any]] | None = pager.first_call()
            while call is not None:
                rows = await self._send(call)
                call = pager.next_call(rows)
                for task in pager.tasks(rows):
                    yield task
            return
        # Fetch the next page in a task while the caller works through this one.
        pending: asyncio.Future[list[Any]] | None = asyncio.ensure_future(
            self._send(pager.first_call())
        )
        try:
            while pending is not None:
                rows = await pending
                call = pager.next_call(rows)
                pending = asyncio.ensure_future(self._send(call)) if call is not None else None
                for task in pager.tasks(rows):
                    yield task
        finally:
            if pending is not None:
                pending.cancel()
                pending.add_done_callback(_forget)

    # --- the API (documented on SamaClient) ---

    async def get_project(self, pid: str | int) -> Project:
        """Fetch a project's information."""
        return await self._send(self._endpoints.project(pid))

    async def get_project_stats(
        self,
        pid: str | int,
        since: datetime | str | None = None,
        until: datetime | str | None = None,
    ) -> dict[str, Any]:
        """Fetch a project's statistics, optionally for a time range (sent as RFC 3339)."""
        return await self._send(self._endpoints.project_stats(pid, since, until))

    async def get_creation_schema(self, pid: str | int) -> dict[str, Any]:
        """Fetch the JSON Schema a new task's `data` must follow."""
        return await self._send(self._endpoints.schema(pid, "create_task"))

    async def get_delivery_schema(self, pid: str | int) -> dict[str, Any]:
        """Fetch the JSON Schema of the project's delivered `answers`."""
        return await self._send(self._endpoints.schema(pid, "deliver_task"))

    async def get_task(self, pid: str | int, tid: str, same_as_delivery: bool = True) -> Task:
        """Fetch one task, by default in delivery format."""
        return await self._send(self._endpoints.task(pid, tid, same_as_delivery))

    async def get_tasks(
        self,
        pid: str | int,
        task_ids: Iterable[str],
        concurrency: int = 8,
        same_as_delivery: bool = True,
    ) -> list[Task]:
        """Fetch many tasks, at most `concurrency` at a time; return them in `task_ids` order.

        The first failure cancels the fetches still running and is raised.
        """
        if concurrency < 1:
            raise ValueError(f"concurrency must be at least 1, got {concurrency}")
        ids = list(task_ids)
        calls = [self._endpoints.task(pid, tid, same_as_delivery) for tid in ids]
        results: list[Task | None] = [None] * len(ids)
        todo = iter(enumerate(calls))

        async def worker() -> None:
            for index, call in todo:  # shared iterator: each call is taken by one worker
                task = await self._send(call)
                results[index] = task

        workers = [asyncio.ensure_future(worker()) for _ in range(min(concurrency, len(ids)))]
        try:
            await asyncio.gather(*workers)
        except BaseException:
            for pending in workers:
                pending.cancel()
            await asyncio.gather(*workers, return_exceptions=True)
            raise
        return [task for task in results if task is not None]

    def iter_tasks(
        self, pid: str | int, *, page_size: int = 100, **filters: Any
    ) -> AsyncIterator[Task]:
        """Iterate over a project's tasks, page by page (see `SamaClient.iter_tasks`)."""
        return self._iterate(self._endpoints.tasks(pid, filters, page_size))

    def iter_delivered_tasks(
        self,
        pid: str | int,
        since: datetime | str | None = None,
        *,
        page_size: int = 1000,
        **filters: Any,
    ) -> AsyncIterator[Task]:
        """Iterate over the tasks delivered since a time."""
        filters = {"since": since, **filters}
        return self._iterate(self._endpoints.delivered(pid, filters, page_size))

    def iter_delivered_since_last_call(
        self, pid: str | int, consumer: str, limit: int = 1000, **filters: Any
    ) -> AsyncIterator[Task]:
        """Iterate over the tasks delivered since `consumer` last asked; SamaHub remembers."""
        return self._iterate(
            self._endpoints.delivered_since_last_call(pid, consumer, limit, filters)
        )

    async def create_batch(
        self,
        pid: str | int,
        tasks: Iterable[Mapping[str, Any]],
        *,
        client_batch_id: str | None = None,
        priority: int | None = None,
        submit: bool | None = None,
        notification_email: str | None = None,
        via: Via = "auto",
        check_schema: bool = False,
        progress: Callable[[int, int], None] | None = None,
    ) -> list[str]:
        """Create tasks from their `data` mappings; return the new batches' ids."""
        tasks = list(tasks)
        if check_schema:
            schema = await self.get_creation_schema(pid)
            problems = task_data_problems(tasks, schema)
            if problems:
                raise refuse_task_data(pid, problems, len(tasks))
        plan = BatchPlan(
            self._endpoints,
            pid,
            tasks,
            client_batch_id=client_batch_id,
            priority=priority,
            submit=submit,
            notification_email=notification_email,
            via=via,
        )
        if plan.in_use is not None:
            plan.check_not_in_use(await self._send(plan.in_use.first_call()))
        if plan.by_file:
            return [await self._create_by_file(plan, progress)]
        created: list[str] = []
        sent, total = 0, plan.total_bytes
        if progress is not None:
            progress(sent, total)
        for part in plan.parts:
            try:
                batch_id = await self._send(part.call)
            except SamaError as error:
                if not plan.answer_lost(error):
                    raise
                batch_id = await self._find_lost_batch(plan, part, created, error)
            created.append(batch_id)
            sent += plan.part_bytes(part)
            if progress is not None:
                progress(sent, total)
        return created

    async def _create_by_file(
        self, plan: BatchPlan, progress: Callable[[int, int], None] | None
    ) -> str:
        upload = await self._send(plan.file_start)
        await self._send(
            self._endpoints.upload_tasks(upload.tasks_put_url, plan.file_content, progress)
        )
        part = plan.continue_part(upload.batch_id)
        try:
            await self._send(part.call)
        except SamaError as error:
            if not plan.answer_lost(error):
                raise
            return await self._find_lost_batch(plan, part, [], error)
        return upload.batch_id

    async def get_batch(
        self, pid: str | int, batch_id: str | int, *, omit_failed_task_data: bool = False
    ) -> Batch:
        """Fetch a batch-creation job's status and every task record, page by page."""
        first = self._endpoints.batch_page(pid, batch_id, 1, omit_failed_task_data)
        pages = [await self._send(first)]
        while len(pages[-1].tasks) >= MAX_BATCH_TASKS:
            call = self._endpoints.batch_page(pid, batch_id, len(pages) + 1, omit_failed_task_data)
            pages.append(await self._send(call))
        return whole_batch(pages)

    async def cancel_batch(self, pid: str | int, batch_id: str | int) -> dict[str, Any]:
        """Cancel a batch-creation job; return SamaHub's answer."""
        return await self._send(self._endpoints.cancel_batch(pid, batch_id))

    async def reject_task(self, pid: str | int, tid: str, reasons: Iterable[str]) -> None:
        """Send a task back for rework, with the reasons the annotators will see."""
        await self._send(self._endpoints.reject_task(pid, tid, list(reasons)))

    async def update_priorities(
        self, pid: str | int, task_ids: Iterable[str], priority: int
    ) -> None:
        """Set the priority of several tasks (lower numbers first)."""
        await self._send(self._endpoints.update_priorities(pid, list(task_ids), priority))

    async def delete_tasks(self, pid: str | int, task_ids: Iterable[str]) -> None:
        """Delete tasks; SamaHub deletes only tasks still in state `new`."""
        await self._send(self._endpoints.delete_tasks(pid, list(task_ids)))

    async def submit_dpp_result(self, pid: str | int, tid: str, result: DppResult) -> None:
        """Return a DPP result to SamaHub (`PUT .../post_processed` with the DPP key)."""
        await self._send(self._endpoints.post_processed(pid, tid, result))
