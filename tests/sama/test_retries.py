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
    SamaBatchIdInUseError,
    SamaBatchOutcomeUnknownError,
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


# --- create_batch: never twice, never another batch ------------------------------------------


def _lose_answer(fake: FakeSamaHub, fault: str, *, processed: bool, after: int = 0) -> None:
    """Lose the answer to a batch creation, once it was done (`processed`) or before."""
    if fault == "read timeout":
        fake.time_out(route="create_batch", processed=processed, after=after)
    else:
        fake.drop_connection(route="create_batch", processed=processed, after=after)


def _batches_of(fake: FakeSamaHub) -> dict[str, int]:
    """How many tasks each batch of project 10 holds."""
    counts: dict[str, int] = {}
    for task in fake.tasks["10"].values():
        counts[str(task.batch_id)] = counts.get(str(task.batch_id), 0) + 1
    return counts


@pytest.mark.parametrize("fault", ["dropped connection", "read timeout"])
async def test_create_batch_finds_a_batch_whose_answer_was_lost_once_it_is_listed(
    served_client: Client, served_samahub: FakeSamaHub, waits: Waits, fault: str
) -> None:
    served_samahub.add_project(10)
    served_samahub.lag_listing(listings=3)  # the look-ups at 0, 1 and 3 s do not see it yet
    _lose_answer(served_samahub, fault, processed=True)
    ids = await run(served_client.create_batch(10, [{"n": "1"}, {"n": 2}], client_batch_id="cb-7"))
    assert _batches_of(served_samahub) == {ids[0]: 2}  # created once
    assert len(served_samahub.calls("create_batch")) == 1  # never sent again
    assert waits == [1, 2, 4]
    in_use, *lookups = served_samahub.calls("tasks")
    assert in_use.params == {
        "client_batch_id": "cb-7",
        "omit_answers": "true",
        "page": "1",
        "page_size": "1",
    }
    assert len(lookups) == 4
    assert lookups[0].params["page_size"] == "1000"


@pytest.mark.parametrize(
    "processed",
    [pytest.param(True, id="created"), pytest.param(False, id="not-created")],
)
async def test_create_batch_raises_outcome_unknown_naming_the_id_when_the_batch_is_not_listed(
    served_samahub: FakeSamaHub, waits: Waits, processed: bool
) -> None:
    served_samahub.add_project(10)
    served_samahub.lag_listing(listings=1000)
    _lose_answer(served_samahub, "dropped connection", processed=processed)
    sama = make_client("sync", waits, batch_lookup_seconds=10)
    with pytest.raises(SamaBatchOutcomeUnknownError) as raised:
        sama.create_batch(10, [{"n": "1"}, {"n": "2"}], client_batch_id="cb-7")
    await close(sama)
    assert str(raised.value) == (
        "POST /projects/10/batches.json: SamaHub may or may not have created tasks 0-1: the "
        "answer was lost (no answer (RemoteProtocolError: Server disconnected without sending a "
        "response.)), and no batch with client_batch_id 'cb-7' holding these tasks was listed "
        "within 10 s (SAMA_BATCH_LOOKUP_SECONDS); check with iter_tasks(10, "
        "client_batch_id='cb-7') before creating these tasks again"
    )
    error = raised.value
    assert (error.client_batch_id, error.created, error.in_doubt) == ("cb-7", (), (0, 2))
    assert isinstance(error, SamaTransportError)
    assert error.outcome_unknown
    assert isinstance(error.__cause__, SamaTransportError)
    assert waits == [1, 2, 4, 3]  # 10 s of look-ups in all
    assert len(served_samahub.calls("create_batch")) == 1  # never sent blindly
    assert len(served_samahub.tasks["10"]) == (2 if processed else 0)


async def test_create_batch_never_takes_an_earlier_batch_with_the_same_id_for_its_own(
    served_client: Client, served_samahub: FakeSamaHub, waits: Waits
) -> None:
    served_samahub.add_project(10)
    # An earlier creation with the same id, not listed yet when the next call checks the id.
    served_samahub.lag_listing(listings=1)
    [earlier] = await run(served_client.create_batch(10, [{"n": "1"}], client_batch_id="cb-7"))
    served_samahub.lag_listing(listings=0)
    _lose_answer(served_samahub, "dropped connection", processed=False)
    with pytest.raises(SamaBatchOutcomeUnknownError) as raised:
        await run(served_client.create_batch(10, [{"n": "2"}], client_batch_id="cb-7"))
    assert f"batch {earlier} has the same client_batch_id and other tasks" in str(raised.value)
    assert _batches_of(served_samahub) == {earlier: 1}


async def test_create_batch_refuses_a_client_batch_id_in_use_before_sending_anything(
    served_client: Client, served_samahub: FakeSamaHub
) -> None:
    served_samahub.add_project(10)
    [earlier] = await run(served_client.create_batch(10, [{"n": "1"}], client_batch_id="cb-7"))
    with pytest.raises(SamaBatchIdInUseError) as raised:
        await run(served_client.create_batch(10, [{"n": "2"}], client_batch_id="cb-7"))
    assert str(raised.value) == (
        f"POST /projects/10/batches.json: client_batch_id 'cb-7' is already used by batch "
        f"{earlier}; nothing was sent; a client_batch_id must be new for each create_batch "
        "call, so that a creation whose answer is lost can be found by it: choose a new one "
        f"(e.g. with the date); if batch {earlier} is this creation done before, it is there "
        f"already (get_batch(10, '{earlier}'))"
    )
    assert (raised.value.client_batch_id, raised.value.batch_id) == ("cb-7", earlier)
    assert len(served_samahub.calls("create_batch")) == 1
    assert _batches_of(served_samahub) == {earlier: 1}


async def test_create_batch_looks_up_after_a_5xx_that_may_have_done_the_work(
    served_client: Client, served_samahub: FakeSamaHub, waits: Waits
) -> None:
    served_samahub.add_project(10)
    served_samahub.fail(502, route="create_batch")
    with pytest.raises(SamaBatchOutcomeUnknownError) as raised:
        await run(
            served_client.with_options(batch_lookup_seconds=0).create_batch(
                10, [{"n": "1"}], client_batch_id="cb-7"
            )
        )
    assert "the answer was lost (502 bad gateway)" in str(raised.value)
    assert isinstance(raised.value.__cause__, SamaServerError)
    assert len(served_samahub.calls("tasks")) == 2  # the in-use check, then one look-up
    assert len(served_samahub.calls("create_batch")) == 1


async def test_create_batch_tells_split_batches_apart_when_an_answer_is_lost(
    served_client: Client, served_samahub: FakeSamaHub
) -> None:
    served_samahub.add_project(10)
    _lose_answer(served_samahub, "dropped connection", processed=True, after=1)
    ids = await run(
        served_client.create_batch(
            10, [{"n": str(n)} for n in range(1001)], client_batch_id="big", via="body"
        )
    )
    assert _batches_of(served_samahub) == {ids[0]: 1000, ids[1]: 1}
    assert len(served_samahub.calls("create_batch")) == 2


async def test_create_batch_says_what_was_created_when_a_later_part_is_in_doubt(
    served_client: Client, served_samahub: FakeSamaHub
) -> None:
    served_samahub.add_project(10)
    _lose_answer(served_samahub, "dropped connection", processed=False, after=1)
    sama = served_client.with_options(batch_lookup_seconds=0)
    tasks = [{"n": str(n)} for n in range(2500)]
    with pytest.raises(SamaBatchOutcomeUnknownError) as raised:
        await run(sama.create_batch(10, tasks, client_batch_id="big", via="body"))
    [first] = _batches_of(served_samahub)
    assert (raised.value.created, raised.value.in_doubt) == ((first,), (1000, 2000))
    assert str(raised.value).startswith(
        "POST /projects/10/batches.json: SamaHub may or may not have created tasks 1000-1999:"
    )
    assert f"; batch {first} was created for tasks 0-999; tasks 2000-2499 were not sent;" in str(
        raised.value
    )


async def test_create_batch_without_client_batch_id_raises_outcome_unknown_when_the_answer_is_lost(
    served_client: Client, served_samahub: FakeSamaHub
) -> None:
    served_samahub.add_project(10)
    _lose_answer(served_samahub, "dropped connection", processed=True)
    with pytest.raises(SamaBatchOutcomeUnknownError) as raised:
        await run(served_client.create_batch(10, [{"n": "1"}]))
    assert raised.value.outcome_unknown
    assert raised.value.client_batch_id is None
    assert str(raised.value).endswith(
        "without a client_batch_id libnar cannot look the batch up: check the project's newest "
        "batches before creating these tasks again, and pass client_batch_id=... to make "
        "create_batch safe"
    )
    assert len(served_samahub.tasks["10"]) == 1
    assert served_samahub.calls("tasks") == []


@pytest.mark.parametrize(
    ("sent", "listed", "same"),
    [
        pytest.param({"n": 1, "ok": True}, {"ok": "true", "n": "1"}, True, id="numbers-as-text"),
        pytest.param({"url": "a.jpg"}, {"url": "a.jpg", "extra": "x"}, False, id="more-data"),
        pytest.param({"n": [1, {"m": 2.5}]}, {"n": ["1", {"m": "2.5"}]}, True, id="nested"),
        pytest.param({"n": "1"}, {"n": "2"}, False, id="other-value"),
    ],
)
def test_task_fingerprints_compare_data_as_samahub_sends_it_back(
    sent: dict[str, Any], listed: dict[str, Any], same: bool
) -> None:
    from libnar.sama._batches import task_fingerprint

    assert (task_fingerprint(sent) == task_fingerprint(listed)) is same


def test_lookup_waits_back_off_and_add_up_to_the_budget() -> None:
    from libnar.sama._batches import lookup_waits

    assert list(lookup_waits(0)) == [0]
    assert list(lookup_waits(60)) == [0, 1, 2, 4, 8, 15, 15, 15]
    assert sum(lookup_waits(100.5)) == 100.5
