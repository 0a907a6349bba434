"""SamaClient and AsyncSamaClient against the fake SamaHub: every method, paging, settings."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from libnar import DppResult, Task, TaskState
from libnar.sama import (
    AsyncSamaClient,
    Batch,
    Project,
    SamaAuthError,
    SamaClient,
    SamaConfigError,
    SamaNotFoundError,
    SamaValidationError,
)
from libnar.testing import FakeSamaHub, make_task
from tests.sama.sama_helpers import Client, Waits, close, collect, make_client, run


def add_tasks(fake: FakeSamaHub, count: int, **overrides: Any) -> list[Task]:
    return fake.add_tasks(make_task(**overrides) for _ in range(count))


# --- one-shot reads ---------------------------------------------------------------------------


async def test_get_project_returns_a_project_that_keeps_unknown_fields(
    client: Client, fake_samahub: FakeSamaHub
) -> None:
    fake_samahub.add_project(10, name="Cars", workflow_version=3)
    project = await run(client.get_project(10))
    assert isinstance(project, Project)
    assert (project.id, project.name) == ("10", "Cars")
    assert project.model_dump()["workflow_version"] == 3


@pytest.mark.parametrize(
    ("since", "sent"),
    [
        pytest.param(datetime(2024, 5, 1, tzinfo=UTC), "2024-05-01T00:00:00Z", id="aware-utc"),
        pytest.param(datetime(2024, 5, 1, 2, 30), "2024-05-01T02:30:00Z", id="naive-taken-as-utc"),
        pytest.param(
            datetime(2024, 5, 1, 2, 0, tzinfo=timezone(timedelta(hours=2))),
            "2024-05-01T00:00:00Z",
            id="offset-converted-to-utc",
        ),
        pytest.param("2024-05-01T00:00:00+00:00", "2024-05-01T00:00:00+00:00", id="str-as-given"),
    ],
)
async def test_get_project_stats_sends_times_as_rfc3339(
    client: Client, fake_samahub: FakeSamaHub, since: Any, sent: str
) -> None:
    add_tasks(fake_samahub, 2)
    stats = await run(client.get_project_stats(10, since=since, until=datetime(2030, 1, 1)))
    assert stats["tasks_by_state"] == {"delivered": 2}
    assert fake_samahub.calls("stats")[0].params == {"from": sent, "to": "2030-01-01T00:00:00Z"}


async def test_schemas_are_returned_as_dicts(client: Client, fake_samahub: FakeSamaHub) -> None:
    creation = {"type": "object", "properties": {"image_url": {"type": "string"}}}
    delivery = {"type": "object", "properties": {"weather": {"enum": ["clear", "rain"]}}}
    fake_samahub.add_project(10)
    fake_samahub.schemas["10"] = {"create_task": creation, "deliver_task": delivery}
    assert await run(client.get_creation_schema(10)) == creation
    assert await run(client.get_delivery_schema(10)) == delivery


async def test_get_task_returns_the_task_in_delivery_format(
    client: Client, fake_samahub: FakeSamaHub
) -> None:
    task = fake_samahub.add_task(make_task())
    got = await run(client.get_task(10, task.id))
    assert isinstance(got, Task)
    assert got.model_dump(mode="json") == task.model_dump(mode="json")
    assert fake_samahub.calls("task")[0].params == {"same_as_delivery": "true"}


async def test_get_task_sends_false_lowercase(client: Client, fake_samahub: FakeSamaHub) -> None:
    task = fake_samahub.add_task(make_task())
    await run(client.get_task(10, task.id, same_as_delivery=False))
    assert fake_samahub.calls("task")[0].params == {"same_as_delivery": "false"}


async def test_get_task_quotes_ids_so_they_cannot_change_the_path(
    client: Client, fake_samahub: FakeSamaHub
) -> None:
    fake_samahub.add_project(10)
    with pytest.raises(SamaNotFoundError):
        await run(client.get_task(10, "../../11/tasks/x"))
    assert fake_samahub.calls("task")[0].path == "/projects/10/tasks/..%2F..%2F11%2Ftasks%2Fx.json"


# --- paging -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("count", "requests"),
    [
        pytest.param(0, 1, id="empty-project-one-request"),
        pytest.param(3, 2, id="short-last-page-stops"),
        pytest.param(4, 3, id="exact-multiple-needs-an-empty-page"),
        pytest.param(5, 3, id="one-over"),
    ],
)
async def test_iter_tasks_reads_pages_until_a_short_or_empty_one(
    client: Client, fake_samahub: FakeSamaHub, count: int, requests: int
) -> None:
    fake_samahub.add_project(10)
    added = add_tasks(fake_samahub, count)
    got = await collect(client.iter_tasks(10, page_size=2))
    assert [t.id for t in got] == [t.id for t in added]
    pages = [(c.params["page"], c.params["page_size"]) for c in fake_samahub.calls("tasks")]
    assert pages == [(str(n), "2") for n in range(1, requests + 1)]


async def test_iter_tasks_sends_filters_without_changing_the_callers_dict(
    client: Client, fake_samahub: FakeSamaHub
) -> None:
    new = add_tasks(fake_samahub, 2, state="new", batch_id=5)
    add_tasks(fake_samahub, 2, state="delivered", batch_id=5)
    filters: dict[str, Any] = {"state": TaskState.NEW, "batch_id": 5, "omit_answers": True}
    kept = dict(filters)
    got = await collect(client.iter_tasks(10, page_size=1, **filters))
    assert [t.id for t in got] == [t.id for t in new]
    assert filters == kept
    first = fake_samahub.calls("tasks")[0].params
    assert first == {
        "state": "new",
        "batch_id": "5",
        "omit_answers": "true",
        "page": "1",
        "page_size": "1",
    }


@pytest.mark.parametrize("name", ["page", "access_key"])
async def test_iter_tasks_refuses_filters_libnar_sets_itself(
    client: Client, fake_samahub: FakeSamaHub, name: str
) -> None:
    with pytest.raises(ValueError, match=f"'{name}' is not a filter"):
        client.iter_tasks(10, **{name: 1})


async def test_iter_delivered_tasks_returns_tasks_delivered_since_in_order(
    client: Client, fake_samahub: FakeSamaHub
) -> None:
    fake_samahub.add_project(10)
    base = datetime(2024, 6, 1, tzinfo=UTC)
    tasks = add_tasks(fake_samahub, 4, state="in progress")
    for offset, task in zip([3, 1, 2, -1], tasks, strict=True):
        fake_samahub.deliver(10, task.id, at=base + timedelta(hours=offset))
    got = await collect(client.iter_delivered_tasks(10, since=base, page_size=2))
    assert [t.id for t in got] == [tasks[1].id, tasks[2].id, tasks[0].id]
    assert fake_samahub.calls("delivered")[0].params["from"] == "2024-06-01T00:00:00Z"


async def test_iter_delivered_since_last_call_resumes_where_each_consumer_stopped(
    client: Client, fake_samahub: FakeSamaHub
) -> None:
    first = add_tasks(fake_samahub, 3)
    got = await collect(client.iter_delivered_since_last_call(10, "nightly", limit=2))
    assert [t.id for t in got] == [t.id for t in first]
    assert len(fake_samahub.calls("delivered_since_last_call")) == 2  # 2, then 1 < limit

    later = add_tasks(fake_samahub, 1)
    again = await collect(client.iter_delivered_since_last_call(10, "nightly", limit=2))
    assert [t.id for t in again] == [later[0].id]
    other = await collect(client.iter_delivered_since_last_call(10, "audit"))
    assert len(other) == 4
    bodies = [c.body for c in fake_samahub.calls("delivered_since_last_call")]
    assert bodies[0] == {"consumer": "nightly", "limit": 2}


async def test_iter_delivered_since_last_call_sends_filters_in_the_body(
    client: Client, fake_samahub: FakeSamaHub
) -> None:
    wanted = add_tasks(fake_samahub, 1, batch_id=8)
    add_tasks(fake_samahub, 1, batch_id=9)
    got = await collect(client.iter_delivered_since_last_call(10, "c", batch_id=8))
    assert [t.id for t in got] == [wanted[0].id]
    assert fake_samahub.calls("delivered_since_last_call")[0].body == {
        "batch_id": "8",
        "consumer": "c",
        "limit": 1000,
    }


async def wait_until(condition: Any, seconds: float = 5.0) -> bool:
    """Poll `condition` until it holds (the read-ahead runs in a thread or a task)."""
    for _ in range(int(seconds / 0.01)):
        if condition():
            return True
        await asyncio.sleep(0.01)
    return condition()


async def first(items: Any) -> Any:
    return await anext(items) if hasattr(items, "__anext__") else next(items)


async def stop(items: Any) -> None:
    await run(items.aclose() if hasattr(items, "aclose") else items.close())


async def test_iter_tasks_fetches_the_next_page_while_the_caller_works(
    client: Client, fake_samahub: FakeSamaHub
) -> None:
    added = add_tasks(fake_samahub, 5)
    tasks = client.iter_tasks(10, page_size=2)
    assert (await first(tasks)).id == added[0].id
    assert await wait_until(lambda: len(fake_samahub.calls("tasks")) == 2)
    await stop(tasks)
    assert (await run(client.get_task(10, added[4].id))).id == added[4].id  # still usable


async def test_delivered_since_last_call_never_asks_for_a_page_the_caller_did_not_reach(
    client: Client, fake_samahub: FakeSamaHub
) -> None:
    added = add_tasks(fake_samahub, 5)
    tasks = client.iter_delivered_since_last_call(10, "nightly", limit=2)
    assert [(await first(tasks)).id, (await first(tasks)).id] == [t.id for t in added[:2]]
    assert not await wait_until(lambda: len(fake_samahub.calls()) > 1, seconds=0.2)
    await stop(tasks)
    rest = await collect(client.iter_delivered_since_last_call(10, "nightly", limit=2))
    assert [t.id for t in rest] == [t.id for t in added[2:]]


# --- writes -----------------------------------------------------------------------------------


async def test_create_batch_creates_tasks_and_returns_the_batch_id(
    client: Client, fake_samahub: FakeSamaHub
) -> None:
    fake_samahub.add_project(10)
    ids = await run(
        client.create_batch(
            10,
            [{"image_url": "a.jpg"}, {"image_url": "b.jpg"}],
            client_batch_id="nightly-1",
            priority=-2,
            submit=True,
            notification_email="ops@example.com",
        )
    )
    assert len(ids) == 1
    body = fake_samahub.calls("create_batch")[0].body
    assert body == {
        "tasks": [
            {"data": {"image_url": "a.jpg"}, "priority": -2},
            {"data": {"image_url": "b.jpg"}, "priority": -2},
        ],
        "client_batch_id": "nightly-1",
        "submit": True,
        "notification_email": "ops@example.com",
    }
    batch = await run(client.get_batch(10, ids[0]))
    assert isinstance(batch, Batch)
    assert (batch.id, batch.client_batch_id, len(batch.tasks)) == (ids[0], "nightly-1", 2)


@pytest.mark.parametrize(
    ("count", "sizes"),
    [
        pytest.param(1000, [1000], id="1000-in-one-batch"),
        pytest.param(1001, [1000, 1], id="1001-split-in-two"),
    ],
)
async def test_create_batch_in_the_body_splits_more_than_1000_tasks(
    client: Client, fake_samahub: FakeSamaHub, count: int, sizes: list[int]
) -> None:
    fake_samahub.add_project(10)
    tasks = ({"n": str(n)} for n in range(count))
    ids = await run(client.create_batch(10, tasks, via="body"))
    assert len(ids) == len(sizes) == len(set(ids))
    assert [len(c.body["tasks"]) for c in fake_samahub.calls("create_batch")] == sizes


async def test_create_batch_needs_a_task(client: Client, fake_samahub: FakeSamaHub) -> None:
    with pytest.raises(ValueError, match="at least one task"):
        await run(client.create_batch(10, []))


async def test_cancel_batch_cancels_it(client: Client, fake_samahub: FakeSamaHub) -> None:
    fake_samahub.add_project(10)
    [batch_id] = await run(client.create_batch(10, [{"n": "1"}]))
    answer = await run(client.cancel_batch(10, batch_id))
    assert answer["state"] == "canceled"
    assert (await run(client.get_batch(10, batch_id))).state == "canceled"


async def test_reject_task_sends_the_reasons(client: Client, fake_samahub: FakeSamaHub) -> None:
    task = fake_samahub.add_task(make_task())
    await run(client.reject_task(10, task.id, ["box 2 is too loose"]))
    assert fake_samahub.rejections[("10", task.id)] == ["box 2 is too loose"]
    assert fake_samahub.task(10, task.id).state == TaskState.REJECTED


async def test_update_priorities_sets_each_task(client: Client, fake_samahub: FakeSamaHub) -> None:
    tasks = add_tasks(fake_samahub, 2, state="new")
    await run(client.update_priorities(10, (t.id for t in tasks), -5))
    assert [fake_samahub.task(10, t.id).model_dump()["priority"] for t in tasks] == [-5, -5]


async def test_delete_tasks_deletes_new_tasks(client: Client, fake_samahub: FakeSamaHub) -> None:
    tasks = add_tasks(fake_samahub, 2, state="new")
    await run(client.delete_tasks(10, [t.id for t in tasks]))
    assert fake_samahub.tasks["10"] == {}


async def test_delete_tasks_refuses_a_delivered_task(
    client: Client, fake_samahub: FakeSamaHub
) -> None:
    task = fake_samahub.add_task(make_task(state="delivered"))
    with pytest.raises(SamaValidationError, match="Only tasks in state new can be deleted"):
        await run(client.delete_tasks(10, [task.id]))


async def test_submit_dpp_result_puts_exactly_the_result_with_the_dpp_key(
    client: Client, fake_samahub: FakeSamaHub
) -> None:
    task = fake_samahub.add_task(make_task())
    result = DppResult(round=2, data={"image_url": "x.jpg"}, answers={"weather": "rain"})
    await run(client.submit_dpp_result(10, task.id, result))
    assert fake_samahub.dpp_results[("10", task.id)] == result
    [call] = fake_samahub.calls("post_processed")
    assert (call.path, call.params) == (f"/api/v1/projects/10/tasks/{task.id}/post_processed", {})
    assert call.body == {"round": 2, "data": {"image_url": "x.jpg"}, "answers": {"weather": "rain"}}
    assert fake_samahub.task(10, task.id).answers == {"weather": "rain"}


# --- AsyncSamaClient.get_tasks ------------------------------------------------------------------


async def test_get_tasks_returns_tasks_in_the_order_asked(fake_samahub: FakeSamaHub) -> None:
    tasks = add_tasks(fake_samahub, 5)
    wanted = [t.id for t in reversed(tasks)]
    async with AsyncSamaClient() as sama:
        got = await sama.get_tasks(10, wanted, concurrency=2)
    assert [t.id for t in got] == wanted


async def test_get_tasks_never_runs_more_than_concurrency_at_once() -> None:
    running = peak = 0

    async def handler(request: httpx.Request) -> httpx.Response:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        await asyncio.sleep(0.001)
        running -= 1
        tid = request.url.path.rsplit("/", 1)[1].removesuffix(".json")
        return httpx.Response(200, json={"task": {"id": tid, "project_id": 1}})

    async with AsyncSamaClient(
        "k", base_url="https://sama.test/v2", transport=httpx.MockTransport(handler)
    ) as sama:
        got = await sama.get_tasks(1, [str(n) for n in range(20)], concurrency=3)
    assert [t.id for t in got] == [str(n) for n in range(20)]
    assert peak == 3


async def test_get_tasks_raises_the_first_failure(fake_samahub: FakeSamaHub) -> None:
    tasks = add_tasks(fake_samahub, 3)
    async with AsyncSamaClient() as sama:
        with pytest.raises(SamaNotFoundError):
            await sama.get_tasks(10, [tasks[0].id, "000000000000000000000000", tasks[1].id])


@pytest.mark.parametrize("concurrency", [0, -1])
async def test_get_tasks_needs_a_positive_concurrency(concurrency: int) -> None:
    async with AsyncSamaClient("k", base_url="https://sama.test/v2") as sama:
        with pytest.raises(ValueError, match="concurrency must be at least 1"):
            await sama.get_tasks(1, ["a"], concurrency=concurrency)


# --- settings -----------------------------------------------------------------------------------


DPP_RESULT = DppResult(round=1, data={}, answers={})
# setting -> (a method that needs it, its arguments, the error when it is missing)
MISSING = [
    pytest.param(
        "SAMA_API_KEY",
        "get_task",
        (10, "t"),
        "SAMA_API_KEY is not set: pass api_key=... or set SAMA_API_KEY",
        id="api-key",
    ),
    pytest.param(
        "SAMA_API_KEY",
        "iter_tasks",
        (10,),
        "SAMA_API_KEY is not set: pass api_key=... or set SAMA_API_KEY",
        id="api-key-on-iter",
    ),
    pytest.param(
        "SAMA_DPP_URL",
        "submit_dpp_result",
        (10, "t", DPP_RESULT),
        "SAMA_DPP_URL is not set: pass dpp_url=... or set SAMA_DPP_URL",
        id="dpp-url",
    ),
    pytest.param(
        "SAMA_DPP_KEY",
        "submit_dpp_result",
        (10, "t", DPP_RESULT),
        "SAMA_DPP_KEY is not set: pass dpp_key=... or set SAMA_DPP_KEY",
        id="dpp-key",
    ),
]


@pytest.mark.parametrize("kind", ["sync", "async"])
@pytest.mark.parametrize(("unset", "method", "args", "message"), MISSING)
async def test_a_call_missing_a_setting_names_it_before_any_request(
    fake_samahub: FakeSamaHub,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    waits: Waits,
    kind: str,
    unset: str,
    method: str,
    args: tuple[Any, ...],
    message: str,
) -> None:
    monkeypatch.delenv(unset)
    monkeypatch.chdir(tmp_path)  # no `.env` file supplies the setting either
    sama = make_client(kind, waits)
    with pytest.raises(SamaConfigError) as raised:
        await run(getattr(sama, method)(*args))
    assert str(raised.value) == message
    assert fake_samahub.calls() == []
    await close(sama)


@pytest.mark.parametrize("kind", ["sync", "async"])
@pytest.mark.parametrize("value", ["", "  ", "\t\n"], ids=["empty", "spaces", "whitespace"])
@pytest.mark.parametrize(("unset", "method", "args", "message"), MISSING)
async def test_an_empty_setting_counts_as_missing(
    served_samahub: FakeSamaHub,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    waits: Waits,
    kind: str,
    value: str,
    unset: str,
    method: str,
    args: tuple[Any, ...],
    message: str,
) -> None:
    monkeypatch.setenv(unset, value)
    monkeypatch.chdir(tmp_path)
    sama = make_client(kind, waits)
    with pytest.raises(SamaConfigError) as raised:
        await run(getattr(sama, method)(*args))
    assert str(raised.value) == message
    assert served_samahub.calls() == []
    await close(sama)


BLANK_ARGUMENTS = [
    pytest.param("api_key", "", id="api-key-empty"),
    pytest.param("api_key", SecretStr(" "), id="api-key-blank-secret"),
    pytest.param("dpp_url", " ", id="dpp-url-blank"),
    pytest.param("dpp_key", "", id="dpp-key-empty"),
    pytest.param("dpp_key", SecretStr(""), id="dpp-key-empty-secret"),
]


def _use(sama: SamaClient, argument: str) -> None:
    if argument == "api_key":
        sama.get_project(10)
    else:
        sama.submit_dpp_result(10, "000000000000000000000000", DPP_RESULT)


@pytest.mark.parametrize(("argument", "value"), BLANK_ARGUMENTS)
def test_an_empty_argument_counts_as_not_given(
    served_samahub: FakeSamaHub,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    argument: str,
    value: Any,
) -> None:
    served_samahub.add_task(make_task(id="000000000000000000000000"))
    monkeypatch.chdir(tmp_path)
    with SamaClient(**{argument: value}) as sama:
        _use(sama, argument)  # the setting is used
    setting = f"SAMA_{argument.upper()}"
    monkeypatch.delenv(setting)
    with SamaClient(**{argument: value}) as sama, pytest.raises(SamaConfigError) as raised:
        _use(sama, argument)
    assert str(raised.value) == f"{setting} is not set: pass {argument}=... or set {setting}"
    assert len(served_samahub.calls()) == 1


def test_an_empty_sama_api_url_counts_as_unset(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SAMA_API_URL", " ")
    with SamaClient("key") as sama:
        assert sama.base_url == "https://api.sama.com/v2"


def test_an_empty_key_in_a_dotenv_file_counts_as_missing(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("SAMA_API_KEY", raising=False)
    monkeypatch.chdir(tmp_path)
    (tmp_path / ".env").write_text("SAMA_API_KEY=\nSAMA_API_URL=https://sama.test/v2\n")
    with SamaClient() as sama, pytest.raises(SamaConfigError, match="SAMA_API_KEY is not set"):
        sama.get_project(10)


def test_settings_are_read_when_the_client_is_created(
    fake_samahub: FakeSamaHub, monkeypatch: pytest.MonkeyPatch
) -> None:
    task = fake_samahub.add_task(make_task())
    monkeypatch.setenv("SAMA_API_KEY", "wrong-key")
    with SamaClient(max_retries=0) as wrong:
        monkeypatch.setenv("SAMA_API_KEY", fake_samahub.api_key)
        with pytest.raises(SamaAuthError):
            wrong.get_task(10, task.id)
        with SamaClient() as right:
            assert right.get_task(10, task.id).id == task.id


def test_arguments_override_settings(fake_samahub: FakeSamaHub) -> None:
    sama = SamaClient(base_url="https://other.test/v2/", max_retries=0, timeout=3)
    assert (sama.base_url, sama.max_retries) == ("https://other.test/v2", 0)
    assert repr(sama) == (
        "SamaClient(base_url='https://other.test/v2', dpp_url='https://dpp.sama.test', "
        "timeout=3, max_retries=0)"
    )
    sama.close()


def test_an_invalid_setting_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SAMA_TIMEOUT", "soon")
    with pytest.raises(SamaConfigError, match=r"^SAMA_TIMEOUT is invalid"):
        SamaClient("key")


def test_the_clients_are_usable_without_with(fake_samahub: FakeSamaHub) -> None:
    task = fake_samahub.add_task(make_task())
    sama = SamaClient()
    assert sama.get_task(10, task.id).id == task.id
    sama.close()


def test_libnar_re_exports_the_client_lazily() -> None:
    import libnar
    import libnar.sama

    assert libnar.SamaClient is SamaClient
    assert libnar.SamaError is libnar.sama.SamaError
    assert set(libnar.sama.__all__) - {"Batch", "Project"} <= set(libnar.__all__)


def test_the_key_is_added_whatever_the_case_of_the_base_urls_host(
    fake_samahub: FakeSamaHub,
) -> None:
    task = fake_samahub.add_task(make_task())
    with SamaClient(base_url="https://SAMA.test/v2") as sama:
        assert sama.get_task(10, task.id).id == task.id


@pytest.mark.parametrize(
    ("env", "proxy"),
    [
        pytest.param({}, None, id="none"),
        pytest.param({"HTTPS_PROXY": "http://proxy:3128"}, "http://proxy:3128", id="https-proxy"),
        pytest.param(
            {"HTTPS_PROXY": "http://proxy:3128", "NO_PROXY": "sama.test"}, None, id="no-proxy"
        ),
        pytest.param({"HTTP_PROXY": "http://proxy:3128"}, None, id="other-scheme"),
        pytest.param({"ALL_PROXY": "http://proxy:1"}, "http://proxy:1", id="all-proxy"),
        pytest.param(
            {"HTTPS_PROXY": "http://p:1", "NO_PROXY": "other.test,.sama.test"}, None, id="suffix"
        ),
    ],
)
def test_proxies_come_from_the_environment_for_the_api_host(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], proxy: str | None
) -> None:
    from libnar.sama._client import _env_proxy

    for name in ("HTTPS_PROXY", "HTTP_PROXY", "NO_PROXY", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert _env_proxy("https://sama.test/v2") == proxy
