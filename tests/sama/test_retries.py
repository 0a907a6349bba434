"""Which failures are retried for which calls, how long retries wait, and safe batch creation."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any

import pytest

from libnar import DppResult, Task
from libnar.sama import (
    SamaClient,
    SamaError,
    SamaRateLimitError,
    SamaServerError,
    SamaTransportError,
)
from libnar.testing import FakeSamaHub, make_task
from tests.sama.sama_helpers import Client, Waits, close, collect, make_client, run


@dataclass
class Given:
    """What every operation below works on: a new task in a batch."""

    task: Task
    batch_id: str


# operation name -> (route it calls, how to call it)
OPERATIONS: dict[str, tuple[str, Callable[[Client, Given], Any]]] = {
    "GET task": ("task", lambda c, g: c.get_task(10, g.task.id)),
    "PUT reject": ("reject", lambda c, g: c.reject_task(10, g.task.id, ["redo"])),
    "PUT post_processed": (
        "post_processed",
        lambda c, g: c.submit_dpp_result(10, g.task.id, DppResult(round=1, data={}, answers={})),
    ),
    "POST delete_tasks": ("delete_tasks", lambda c, g: c.delete_tasks(10, [g.task.id])),
    "POST create_batch": ("create_batch", lambda c, g: c.create_batch(10, [{"n": "1"}])),
    "POST delivered since last call": (
        "delivered_since_last_call",
        lambda c, g: collect(c.iter_delivered_since_last_call(10, "c")),
    ),
    "POST bulk_update": ("bulk_update", lambda c, g: c.update_priorities(10, [g.task.id], 1)),
    "POST cancel_batch": ("cancel_batch", lambda c, g: c.cancel_batch(10, g.batch_id)),
}

# fault name -> how to inject it once on a route
FAULTS: dict[str, Callable[[FakeSamaHub, str], None]] = {
    "429": lambda f, r: f.rate_limit(route=r, retry_after=0),
    "500": lambda f, r: f.fail(500, route=r),
    "502": lambda f, r: f.fail(502, route=r),
    "503": lambda f, r: f.fail(503, route=r),
    "504": lambda f, r: f.fail(504, route=r),
    "connection refused": lambda f, r: f.refuse_connection(route=r),
    "connect timeout": lambda f, r: f.time_out(route=r, connect=True),
    "read timeout": lambda f, r: f.time_out(route=r),
    "dropped connection": lambda f, r: f.drop_connection(route=r),
}

RETRIED = {("GET task", fault) for fault in FAULTS if fault != "500"} | {
    ("PUT reject", "502"),
    ("PUT reject", "read timeout"),
    ("PUT reject", "dropped connection"),
    ("PUT post_processed", "504"),
    ("PUT post_processed", "read timeout"),
    ("POST delete_tasks", "429"),
    ("POST delete_tasks", "503"),
    ("POST delete_tasks", "connection refused"),
    ("POST delete_tasks", "connect timeout"),
    ("POST create_batch", "503"),
    ("POST create_batch", "connection refused"),
    ("POST bulk_update", "read timeout"),
    ("POST bulk_update", "502"),
    ("POST cancel_batch", "dropped connection"),
}
NOT_RETRIED = {
    ("GET task", "500"),
    ("POST delete_tasks", "502"),
    ("POST delete_tasks", "504"),
    ("POST delete_tasks", "read timeout"),
    ("POST delete_tasks", "dropped connection"),
    ("POST create_batch", "read timeout"),
    ("POST create_batch", "dropped connection"),
    ("POST create_batch", "502"),
    ("POST delivered since last call", "read timeout"),
    ("POST delivered since last call", "dropped connection"),
}


def _cases(pairs: set[tuple[str, str]]) -> list[Any]:
    return [pytest.param(op, fault, id=f"{op}-{fault}") for op, fault in sorted(pairs)]


def _given(fake: FakeSamaHub) -> Given:
    task = fake.add_task(make_task(state="new"))
    return Given(task=task, batch_id=fake.add_batch(10, [task.id]))


@pytest.mark.parametrize(("operation", "fault"), _cases(RETRIED))
async def test_failure_is_retried(
    client: Client, fake_samahub: FakeSamaHub, waits: Waits, operation: str, fault: str
) -> None:
    route, call = OPERATIONS[operation]
    given = _given(fake_samahub)
    FAULTS[fault](fake_samahub, route)
    await run(call(client, given))
    assert len(fake_samahub.calls(route)) == 2
    assert len(waits) == 1


@pytest.mark.parametrize(("operation", "fault"), _cases(NOT_RETRIED))
async def test_failure_is_raised_without_retrying(
    client: Client, fake_samahub: FakeSamaHub, waits: Waits, operation: str, fault: str
) -> None:
    route, call = OPERATIONS[operation]
    given = _given(fake_samahub)
    FAULTS[fault](fake_samahub, route)
    with pytest.raises(SamaError) as raised:
        await run(call(client, given))
    assert len(fake_samahub.calls(route)) == 1
    assert (waits, raised.value.attempts) == ([], 1)


async def test_max_retries_zero_never_retries(fake_samahub: FakeSamaHub, waits: Waits) -> None:
    task = fake_samahub.add_task(make_task())
    fake_samahub.fail(503)
    sama = make_client("sync", waits, max_retries=0)
    with pytest.raises(SamaServerError):
        await run(sama.get_task(10, task.id))
    assert len(fake_samahub.calls()) == 1
    await close(sama)


@pytest.mark.parametrize("kind", ["sync", "async"])
async def test_retries_stop_after_max_retries_and_say_how_many_attempts(
    fake_samahub: FakeSamaHub, waits: Waits, kind: str
) -> None:
    task = fake_samahub.add_task(make_task())
    fake_samahub.fail(503, times=10, message="Down for maintenance")
    sama = make_client(kind, waits, max_retries=2)
    with pytest.raises(SamaServerError) as raised:
        await run(sama.get_task(10, task.id))
    assert str(raised.value) == (
        f'GET /projects/10/tasks/{task.id}.json: 503 service unavailable (SamaHub: "Down for '
        'maintenance") after 3 attempts; SamaHub had a problem; try again later'
    )
    assert (raised.value.attempts, len(fake_samahub.calls())) == (3, 3)
    await close(sama)


def _http_date(seconds: float) -> Callable[[], str]:
    """An HTTP date `seconds` from when the test runs (not from when it is collected)."""
    return lambda: format_datetime(datetime.now(UTC) + timedelta(seconds=seconds), usegmt=True)


@pytest.mark.parametrize(
    ("retry_after", "low", "high"),
    [
        pytest.param("7", 7, 7, id="seconds"),
        pytest.param("0", 0, 0, id="zero"),
        pytest.param("2.5", 2.5, 2.5, id="fractional-seconds"),
        pytest.param("3600", 60, 60, id="capped-at-a-minute"),
        pytest.param(_http_date(30), 28, 30, id="http-date"),
        pytest.param(_http_date(-30), 0, 0, id="http-date-in-the-past"),
        pytest.param("soon", 0.5, 1.0, id="unreadable-backs-off"),
        pytest.param(None, 0.5, 1.0, id="absent-backs-off"),
    ],
)
async def test_429_waits_as_retry_after_says(
    client: Client,
    fake_samahub: FakeSamaHub,
    waits: Waits,
    retry_after: str | Callable[[], str] | None,
    low: float,
    high: float,
) -> None:
    task = fake_samahub.add_task(make_task())
    fake_samahub.rate_limit(retry_after=retry_after() if callable(retry_after) else retry_after)
    await run(client.get_task(10, task.id))
    [waited] = waits
    assert low <= waited <= high


async def test_backoff_grows_between_attempts(
    client: Client, fake_samahub: FakeSamaHub, waits: Waits
) -> None:
    task = fake_samahub.add_task(make_task())
    fake_samahub.fail(502, times=3)
    await run(client.get_task(10, task.id))
    assert [int(w * 2) for w in waits] == [1, 2, 4]  # 0.5, 1, 2 s plus up to 0.5 s of jitter


async def test_rate_limit_error_after_retries_keeps_retry_after(
    client: Client, fake_samahub: FakeSamaHub
) -> None:
    task = fake_samahub.add_task(make_task())
    fake_samahub.rate_limit(retry_after=12, times=10)
    with pytest.raises(SamaRateLimitError) as raised:
        await run(client.get_task(10, task.id))
    assert (raised.value.retry_after, raised.value.attempts) == (12.0, 6)


def test_each_retry_logs_a_warning_without_the_query_string(
    fake_samahub: FakeSamaHub, waits: Waits, caplog: pytest.LogCaptureFixture
) -> None:
    task = fake_samahub.add_task(make_task())
    fake_samahub.fail(503)
    fake_samahub.time_out(route="task", after=1)
    caplog.set_level(logging.WARNING, logger="libnar.sama")
    with SamaClient(sleep=waits.sleep) as sama:
        sama.get_task(10, task.id)
    messages = [r.getMessage() for r in caplog.records if r.name == "libnar.sama"]
    path = f"/projects/10/tasks/{task.id}.json"
    assert messages == [
        f"GET {path}: attempt 1 of 6 failed (503 service unavailable); retrying in {waits[0]:.2f}s",
        f"GET {path}: attempt 2 of 6 failed (no answer (ReadTimeout: timed out)); retrying in "
        f"{waits[1]:.2f}s",
    ]
    assert all(r.levelno == logging.WARNING for r in caplog.records if r.name == "libnar.sama")


# --- create_batch: safe retries with a client_batch_id ----------------------------------------


@pytest.mark.parametrize(
    ("processed", "posts"),
    [
        pytest.param(True, 1, id="created-then-answer-lost-is-found"),
        pytest.param(False, 2, id="not-created-is-sent-again"),
    ],
)
@pytest.mark.parametrize("fault", ["dropped connection", "read timeout"])
async def test_create_batch_with_client_batch_id_looks_up_before_retrying(
    client: Client, fake_samahub: FakeSamaHub, processed: bool, posts: int, fault: str
) -> None:
    fake_samahub.add_project(10)
    if fault == "read timeout":
        fake_samahub.time_out(route="create_batch", processed=processed)
    else:
        fake_samahub.drop_connection(route="create_batch", processed=processed)
    ids = await run(client.create_batch(10, [{"n": "1"}, {"n": "2"}], client_batch_id="cb-7"))
    batches = {str(t.batch_id) for t in fake_samahub.tasks["10"].values()}
    assert batches == set(ids)
    assert len(ids) == 1
    assert len(fake_samahub.tasks["10"]) == 2  # no duplicate tasks
    assert len(fake_samahub.calls("create_batch")) == posts
    lookup = fake_samahub.calls("tasks")[0].params
    assert (lookup["client_batch_id"], lookup["omit_answers"]) == ("cb-7", "true")


async def test_create_batch_lookup_tells_split_batches_apart(
    client: Client, fake_samahub: FakeSamaHub
) -> None:
    fake_samahub.add_project(10)
    fake_samahub.drop_connection(route="create_batch", after=1, processed=True)
    ids = await run(
        client.create_batch(10, [{"n": str(n)} for n in range(1001)], client_batch_id="big")
    )
    assert len(ids) == 2 == len(set(ids))
    assert len(fake_samahub.tasks["10"]) == 1001
    assert len(fake_samahub.calls("create_batch")) == 2


async def test_create_batch_without_client_batch_id_raises_when_the_answer_is_lost(
    client: Client, fake_samahub: FakeSamaHub
) -> None:
    fake_samahub.add_project(10)
    fake_samahub.drop_connection(route="create_batch", processed=True)
    with pytest.raises(SamaTransportError) as raised:
        await run(client.create_batch(10, [{"n": "1"}]))
    assert raised.value.outcome_unknown
    assert "SamaHub may have received the request" in str(raised.value)
    assert len(fake_samahub.tasks["10"]) == 1
    assert fake_samahub.calls("tasks") == []
