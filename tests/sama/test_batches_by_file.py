"""Batches of any size by file, never created twice; tasks checked against the schema first."""

from __future__ import annotations

import logging

import pytest

from libnar.sama import (
    SamaBatchOutcomeUnknownError,
    SamaClient,
    SamaConfigError,
    SamaServerError,
    SamaTaskDataError,
)
from libnar.testing import FakeSamaHub, make_creation_schema
from tests.sama.sama_helpers import Client, Waits, make_client, run

TASKS = [{"url": f"https://assets.sama.test/{n:05d}.jpg", "name": f"{n:05d}"} for n in range(2500)]


async def test_more_than_1000_tasks_go_by_file_as_one_batch(
    client: Client, fake_samahub: FakeSamaHub
) -> None:
    fake_samahub.add_project(10)

    ids = await run(client.create_batch(10, TASKS, client_batch_id="frames-1", priority=3))

    start, upload, done = fake_samahub.calls()[1:]  # after the in-use check
    assert [c.route for c in (start, upload, done)] == [
        "create_batch",
        "upload_tasks",
        "continue_batch",
    ]
    assert start.body["client_batch_id"] == "frames-1"
    assert start.body["tasks_file_name"].startswith("libnar-tasks-")
    assert "tasks" not in start.body
    assert upload.body == [{"data": data, "priority": 3} for data in TASKS]
    assert "access_key" not in upload.params  # the presigned URL never gets the API key
    assert set(upload.params) == {"X-Amz-Expires", "X-Amz-Signature"}
    assert done.path == f"/projects/10/batches/{ids[0]}/continue.json"
    created = fake_samahub.created_tasks(10, client_batch_id="frames-1")
    assert (len(ids), len(created)) == (1, 2500)
    assert sorted(t.data["name"] for t in created) == [d["name"] for d in TASKS]


@pytest.mark.parametrize(
    ("count", "via", "routes"),
    [
        pytest.param(1000, "auto", ["create_batch"], id="auto-1000-in-the-body"),
        pytest.param(1001, "auto", ["create_batch", "upload_tasks", "continue_batch"], id="auto-1001-by-file"),
        pytest.param(3, "file", ["create_batch", "upload_tasks", "continue_batch"], id="file-always"),
        pytest.param(2001, "body", ["create_batch"] * 3, id="body-always"),
    ],
)  # fmt: skip
async def test_via_chooses_the_body_or_the_file(
    client: Client, fake_samahub: FakeSamaHub, count: int, via: str, routes: list[str]
) -> None:
    fake_samahub.add_project(10)

    await run(client.create_batch(10, TASKS[:count], via=via))  # type: ignore[arg-type]

    assert [c.route for c in fake_samahub.calls()] == routes
    assert len(fake_samahub.created_tasks(10)) == count


async def test_a_lost_continue_answer_is_looked_up_never_sent_again(
    served_client: Client, served_samahub: FakeSamaHub, waits: Waits
) -> None:
    served_samahub.add_project(10)
    served_samahub.lag_listing(listings=2)
    served_samahub.drop_connection(route="continue_batch", processed=True)

    ids = await run(served_client.create_batch(10, TASKS[:1200], client_batch_id="lost-1"))

    assert len(served_samahub.calls("continue_batch")) == 1  # never sent again
    assert len(served_samahub.created_tasks(10)) == 1200  # created once
    assert ids == [str(served_samahub.created_tasks(10)[0].batch_id)]
    assert waits == [1, 2]  # found on the third look-up, once listed


async def test_a_continue_that_never_happened_is_reported_not_repeated(
    served_samahub: FakeSamaHub, waits: Waits
) -> None:
    served_samahub.add_project(10)
    served_samahub.drop_connection(route="continue_batch", processed=False)
    client = make_client("sync", waits, batch_lookup_seconds=0)

    with pytest.raises(SamaBatchOutcomeUnknownError) as raised:
        client.create_batch(10, TASKS[:1200], client_batch_id="lost-2")

    assert len(served_samahub.calls("continue_batch")) == 1
    assert served_samahub.created_tasks(10) == []
    message = str(raised.value)
    assert message.startswith("POST /projects/10/batches/")
    assert "/continue.json: SamaHub may or may not have created tasks 0-1199" in message
    assert "check with iter_tasks(10, client_batch_id='lost-2')" in message


@pytest.mark.parametrize("processed", [True, False], ids=["done-then-lost", "lost"])
async def test_a_lost_start_is_sent_again_it_creates_no_task(
    served_client: Client, served_samahub: FakeSamaHub, processed: bool
) -> None:
    served_samahub.add_project(10)
    served_samahub.drop_connection(route="create_batch", processed=processed)

    [batch_id] = await run(served_client.create_batch(10, TASKS[:1500], via="file"))

    assert len(served_samahub.calls("create_batch")) == 2
    assert len(served_samahub.created_tasks(10)) == 1500
    assert {str(t.batch_id) for t in served_samahub.created_tasks(10)} == {batch_id}


async def test_a_failed_upload_is_retried(
    client: Client, fake_samahub: FakeSamaHub, waits: Waits
) -> None:
    fake_samahub.add_project(10)
    fake_samahub.fail(503, route="upload_tasks")
    fake_samahub.drop_connection(route="upload_tasks", after=1)  # a PUT is safe to repeat

    await run(client.create_batch(10, TASKS[:5], via="file"))

    assert len(fake_samahub.calls("upload_tasks")) == 3
    assert len(waits) == 2
    assert len(fake_samahub.created_tasks(10)) == 5


async def test_an_upload_that_keeps_failing_creates_nothing(
    client: Client, fake_samahub: FakeSamaHub
) -> None:
    fake_samahub.add_project(10)
    fake_samahub.fail(500, route="upload_tasks", times=100)

    with pytest.raises(SamaServerError) as raised:
        await run(client.create_batch(10, TASKS[:5], via="file"))

    assert str(raised.value).startswith("PUT /tasks/")  # the path only: no signature
    assert fake_samahub.calls("continue_batch") == []
    assert fake_samahub.created_tasks(10) == []


async def test_progress_reports_bytes_sent_up_to_the_total(
    client: Client, fake_samahub: FakeSamaHub
) -> None:
    fake_samahub.add_project(10)
    by_file: list[tuple[int, int]] = []
    in_body: list[tuple[int, int]] = []

    await run(client.create_batch(10, TASKS, progress=lambda *p: by_file.append(p)))
    await run(client.create_batch(10, TASKS, via="body", progress=lambda *p: in_body.append(p)))

    for reports in (by_file, in_body):
        sent = [done for done, _ in reports]
        assert sent == sorted(sent)
        assert reports[0][0] == 0
        assert reports[-1][0] == reports[-1][1] > 0
    assert len(by_file) > 3  # the upload reports as it goes, chunk by chunk
    assert len(in_body) == 4  # at the start, then after each batch of 1,000


def test_the_upload_signature_never_reaches_the_logs(
    fake_samahub: FakeSamaHub, caplog: pytest.LogCaptureFixture
) -> None:
    fake_samahub.add_project(10)
    with caplog.at_level(logging.DEBUG), SamaClient() as sama:
        sama.create_batch(10, TASKS[:3], via="file")
    [upload] = fake_samahub.calls("upload_tasks")

    assert upload.params["X-Amz-Signature"] not in caplog.text
    assert fake_samahub.api_key not in caplog.text
    assert "PUT https://uploads.sama.test/tasks/" in caplog.text  # httpx logs the bare URL


async def test_get_batch_reads_every_page_and_can_omit_failed_data(
    client: Client, fake_samahub: FakeSamaHub
) -> None:
    fake_samahub.add_project(10)
    fake_samahub.schemas["10"] = {"create_task": make_creation_schema(TASKS[0])}
    tasks = [*TASKS[:1500], {"url": 7, "name": "bad"}]
    [batch_id] = await run(client.create_batch(10, tasks))

    batch = await run(client.get_batch(10, batch_id))
    lean = await run(client.get_batch(10, batch_id, omit_failed_task_data=True))

    assert len(batch.tasks) == 1501
    assert batch.tasks[-1] == {
        "state": "failed",
        "errors": ["data.url: found 7; expected a string"],
        "data": {"url": 7, "name": "bad"},
    }
    assert "data" not in lean.tasks[-1]
    assert [c.params.get("page") for c in fake_samahub.calls("batch")] == ["1", "2", "1", "2"]


async def test_check_schema_lists_every_problem_and_sends_nothing(
    client: Client, fake_samahub: FakeSamaHub
) -> None:
    fake_samahub.add_project(10)
    fake_samahub.schemas["10"] = {"create_task": make_creation_schema(TASKS[0])}
    tasks = [TASKS[0], {"url": 3, "name": "x"}, {"name": "y"}, {**TASKS[1], "extra": "z"}]

    with pytest.raises(SamaTaskDataError) as raised:
        await run(client.create_batch(10, tasks, client_batch_id="c", check_schema=True))

    assert raised.value.problems == [
        "tasks[1].data.url: found 3; expected a string",
        "tasks[2].data.url: found nothing; expected a value (the schema requires it)",
        "tasks[3].data.extra: found an unknown field; expected no other fields (the schema lists the fields allowed)",
    ]
    assert str(raised.value).startswith(
        "3 problems in the 4 tasks' data against project 10's creation schema; nothing was sent;"
    )
    assert [c.route for c in fake_samahub.calls()] == ["creation_schema"]


async def test_check_schema_passes_good_tasks_through(
    client: Client, fake_samahub: FakeSamaHub
) -> None:
    fake_samahub.add_project(10)
    fake_samahub.schemas["10"] = {"create_task": make_creation_schema(TASKS[0])}

    await run(client.create_batch(10, TASKS[:10], check_schema=True))

    assert len(fake_samahub.created_tasks(10)) == 10


# --- the secondary key --------------------------------------------------------------------


def test_a_client_with_the_secondary_key_sends_that_key(
    fake_samahub: FakeSamaHub, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake_samahub.add_project(10)
    monkeypatch.setenv("SAMA_SECONDARY_API_KEY", fake_samahub.api_key)
    monkeypatch.setenv("SAMA_API_KEY", "the-primary-key")

    with SamaClient(key="secondary") as sama:
        assert sama.get_project(10).id == "10"
    with SamaClient() as sama, pytest.raises(Exception, match="401 unauthorized"):
        sama.get_project(10)  # the primary key, which this fake does not take


def test_a_missing_secondary_key_names_its_setting(
    fake_samahub: FakeSamaHub, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SAMA_SECONDARY_API_KEY", raising=False)

    with SamaClient(key="secondary") as sama, pytest.raises(SamaConfigError) as raised:
        sama.get_project(10)

    assert str(raised.value) == (
        "SAMA_SECONDARY_API_KEY is not set: pass api_key=... or set SAMA_SECONDARY_API_KEY"
    )
    with pytest.raises(SamaConfigError, match="key must be 'primary' or 'secondary', got 'other'"):
        SamaClient(key="other")  # type: ignore[arg-type]
