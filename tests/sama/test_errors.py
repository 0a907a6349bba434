"""Every SamaHub error: its class, attributes and message; and no key ever leaks."""

from __future__ import annotations

import logging
import pickle
import traceback
from typing import Any

import httpx
import pytest

from libnar import DppResult
from libnar.sama import (
    SamaAuthError,
    SamaClient,
    SamaConfigError,
    SamaError,
    SamaNotFoundError,
    SamaRateLimitError,
    SamaServerError,
    SamaTransportError,
    SamaValidationError,
)
from libnar.settings import SettingsError
from libnar.testing import FakeSamaHub, make_task
from tests.sama.sama_helpers import Client, Waits, close, collect, make_client, run

TID = "5f1e2d3c4b5a69788796a5b4"


@pytest.mark.parametrize(
    ("setup", "call", "cls", "message"),
    [
        pytest.param(
            lambda f: f.add_project(10),
            lambda c: c.get_task(10, TID),
            SamaNotFoundError,
            f'GET /projects/10/tasks/{TID}.json: 404 not found (SamaHub: "Task not found"); '
            "check the project and task ids and that the API key has access",
            id="404-task",
        ),
        pytest.param(
            lambda f: None,
            lambda c: c.get_project(11),
            SamaNotFoundError,
            'GET /projects/11.json: 404 not found (SamaHub: "Project not found"); '
            "check the project and task ids and that the API key has access",
            id="404-project",
        ),
        pytest.param(
            lambda f: setattr(f, "api_key", "another-key"),
            lambda c: c.get_project(10),
            SamaAuthError,
            'GET /projects/10.json: 401 unauthorized (SamaHub: "Unauthorized: invalid '
            'access_key or API access not enabled"); check SAMA_API_KEY (or api_key=...) and '
            "that API access is enabled for the key",
            id="401-api-key",
        ),
        pytest.param(
            lambda f: (f.add_task(make_task(id=TID)), setattr(f, "dpp_key", "rotated")),
            lambda c: c.submit_dpp_result(10, TID, DppResult(round=1, data={}, answers={})),
            SamaAuthError,
            f'PUT /api/v1/projects/10/tasks/{TID}/post_processed: 401 unauthorized (SamaHub: "'
            'Unauthorized"); check SAMA_DPP_KEY (or dpp_key=...): SamaHub refused the DPP '
            "bearer key",
            id="401-dpp-key-top-level-message",
        ),
        pytest.param(
            lambda f: f.add_project(10),
            lambda c: c.submit_dpp_result(10, TID, DppResult(round=1, data={}, answers={})),
            SamaNotFoundError,
            f'PUT /api/v1/projects/10/tasks/{TID}/post_processed: 404 not found (SamaHub: "'
            'Task not found"); check SAMA_DPP_URL (or dpp_url=...) and the project and task ids',
            id="404-dpp",
        ),
        pytest.param(
            lambda f: f.add_task(make_task(id=TID)),
            lambda c: c.reject_task(10, TID, []),
            SamaValidationError,
            f'PUT /projects/10/tasks/{TID}/reject.json: 400 bad request (SamaHub: "reasons '
            'must be a non-empty list of strings"); fix the values SamaHub names; see the API '
            "reference for the expected shape",
            id="400",
        ),
        pytest.param(
            lambda f: f.fail(422, message="priority is out of range"),
            lambda c: c.update_priorities(10, [TID], 10**9),
            SamaValidationError,
            'POST /projects/10/tasks/bulk_update.json: 422 unprocessable entity (SamaHub: "'
            'priority is out of range"); fix the values SamaHub names; see the API reference for '
            "the expected shape",
            id="422",
        ),
        pytest.param(
            lambda f: f.rate_limit(times=9, retry_after=0),
            lambda c: c.get_project(10),
            SamaRateLimitError,
            'GET /projects/10.json: 429 too many requests (SamaHub: "API rate limit exceeded") '
            "after 3 attempts; SamaHub is rate limiting this key: send fewer requests, or raise "
            "max_retries",
            id="429",
        ),
        pytest.param(
            lambda f: f.fail(504, times=9, message="upstream timed out"),
            lambda c: c.get_project(10),
            SamaServerError,
            'GET /projects/10.json: 504 gateway timeout (SamaHub: "upstream timed out") after 3 '
            "attempts; SamaHub had a problem; try again later",
            id="5xx",
        ),
        pytest.param(
            lambda f: f.refuse_connection(times=9),
            lambda c: c.get_project(10),
            SamaTransportError,
            "GET /projects/10.json: no answer (ConnectError: [Errno 111] Connection refused) "
            "after 3 attempts; check the URL setting and the network, or raise SAMA_TIMEOUT",
            id="transport",
        ),
        pytest.param(
            lambda f: f.fail(405, message="Method not allowed"),
            lambda c: c.get_project(10),
            SamaError,
            'GET /projects/10.json: 405 method not allowed (SamaHub: "Method not allowed"); '
            "SamaHub did not accept this request; check the method, path and arguments",
            id="other-4xx",
        ),
    ],
)
@pytest.mark.parametrize("kind", ["sync", "async"])
async def test_error_class_and_message(
    fake_samahub: FakeSamaHub,
    waits: Waits,
    kind: str,
    setup: Any,
    call: Any,
    cls: type[SamaError],
    message: str,
) -> None:
    fake_samahub.add_project(10)
    setup(fake_samahub)
    sama = make_client(kind, waits, max_retries=2)
    with pytest.raises(SamaError) as raised:
        await run(call(sama))
    await close(sama)
    assert type(raised.value) is cls
    assert str(raised.value) == message


async def test_error_attributes_hold_what_samahub_said(
    client: Client, fake_samahub: FakeSamaHub
) -> None:
    fake_samahub.add_project(10)
    with pytest.raises(SamaNotFoundError) as raised:
        await run(client.get_task(10, TID))
    error = raised.value
    assert (error.status_code, error.method, error.path) == (
        404,
        "GET",
        f"/projects/10/tasks/{TID}.json",
    )
    assert error.errors == [{"type": 404, "message": "Task not found"}]
    assert isinstance(error, SamaError)


def test_errors_survive_pickling_with_their_attributes() -> None:
    error = SamaRateLimitError("429 too many requests", method="GET", path="/p", status_code=429)
    error.retry_after, error.attempts = 3.0, 4
    copy = pickle.loads(pickle.dumps(error))
    assert (type(copy), str(copy), copy.retry_after, copy.attempts) == (
        SamaRateLimitError,
        str(error),
        3.0,
        4,
    )


def test_config_error_is_a_settings_error_and_a_sama_error() -> None:
    assert issubclass(SamaConfigError, SettingsError)
    assert issubclass(SamaConfigError, SamaError)


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        pytest.param(b'{"errors": [{"type": 1, "message": "a"}]}', [{"type": 1, "message": "a"}]),
        pytest.param(b'{"message": "top"}', [{"message": "top"}], id="top-level-message"),
        pytest.param(b'{"errors": ["plain"]}', [{"message": "plain"}], id="string-errors"),
        pytest.param(b"<html>Bad Gateway</html>", [], id="html-dropped"),
        pytest.param(b"upstream reset", [{"message": "upstream reset"}], id="text"),
        pytest.param(b"", [], id="empty"),
    ],
)
def test_error_bodies_are_read_in_every_shape_samahub_uses(
    body: bytes, expected: list[dict[str, Any]]
) -> None:
    transport = httpx.MockTransport(lambda request: httpx.Response(400, content=body))
    sama = SamaClient("k", base_url="https://sama.test/v2", transport=transport)
    with sama, pytest.raises(SamaValidationError) as raised:
        sama.get_project(1)
    assert raised.value.errors == expected


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        pytest.param(b"[1, 2]", "expected a JSON object, got list", id="not-an-object"),
        pytest.param(b"{not json", "key must be a string at line 1 column 2", id="not-json"),
    ],
)
def test_an_unexpected_answer_is_an_error_not_data(body: bytes, problem: str) -> None:
    transport = httpx.MockTransport(lambda request: httpx.Response(200, content=body))
    sama = SamaClient("k", base_url="https://sama.test/v2", transport=transport)
    with sama, pytest.raises(SamaError, match="unexpected answer") as raised:
        sama.get_project_stats(1)
    assert problem in str(raised.value)


def test_a_task_without_an_id_is_an_unexpected_answer() -> None:
    answer = httpx.Response(200, json={"task": {"project_id": 1}})
    transport = httpx.MockTransport(lambda request: answer)
    sama = SamaClient("k", base_url="https://sama.test/v2", transport=transport)
    with sama, pytest.raises(SamaError) as raised:
        sama.get_task(1, "t")
    assert str(raised.value).startswith(
        "GET /projects/1/tasks/t.json: unexpected answer (task.id: Field required)"
    )


def test_a_page_with_an_invalid_task_is_an_unexpected_answer() -> None:
    answer = httpx.Response(200, json={"tasks": [{"id": "a", "project_id": 1}, {"id": "b"}]})
    transport = httpx.MockTransport(lambda request: answer)
    sama = SamaClient("k", base_url="https://sama.test/v2", transport=transport)
    with sama, pytest.raises(SamaError) as raised:
        list(sama.iter_tasks(1))
    assert str(raised.value).startswith(
        "GET /projects/1/tasks.json: unexpected answer (tasks.1.project_id: Field required)"
    )


# --- secrets ------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["sync", "async"])
async def test_keys_never_appear_in_logs_errors_reprs_or_tracebacks(
    fake_samahub: FakeSamaHub,
    waits: Waits,
    caplog: pytest.LogCaptureFixture,
    kind: str,
) -> None:
    caplog.set_level(logging.DEBUG)  # httpx logs every URL at INFO, httpcore more at DEBUG
    task = fake_samahub.add_task(make_task())
    result = DppResult(round=1, data={}, answers={})
    seen: list[str] = []
    sama = make_client(kind, waits, max_retries=1)
    seen.append(repr(sama))

    # Successes, retried failures and final failures, on both the API and the DPP URL.
    fake_samahub.fail(503)
    await run(sama.get_task(10, task.id))
    await collect(sama.iter_delivered_tasks(10, since="2020-01-01T00:00:00Z"))
    await run(sama.submit_dpp_result(10, task.id, result))
    fake_samahub.time_out(times=2)
    fake_samahub.drop_connection(times=2, after=2)
    fake_samahub.refuse_connection(times=2, after=4)
    fake_samahub.fail(404, times=2, after=6)
    for _ in range(4):
        with pytest.raises(SamaError) as raised:
            await run(sama.get_task(10, task.id))
        seen += [repr(raised.value), *traceback.format_exception(raised.value)]
    with pytest.raises(SamaError) as raised:
        await run(sama.submit_dpp_result(10, "000000000000000000000000", result))
    seen += [repr(raised.value), *traceback.format_exception(raised.value)]
    await close(sama)

    seen += [record.getMessage() for record in caplog.records]
    seen += [str(record.args) for record in caplog.records]
    text = "\n".join(seen)
    assert "HTTP Request: GET https://sama.test/v2/projects/10/tasks/" in text  # httpx's log
    assert "SamaTransportError" in text
    assert "SamaNotFoundError" in text
    assert fake_samahub.api_key not in text
    assert fake_samahub.dpp_key not in text
    assert "access_key" not in text


@pytest.mark.parametrize("kind", ["sync", "async"])
async def test_keys_never_appear_in_limit_and_batch_errors(
    served_samahub: FakeSamaHub, waits: Waits, caplog: pytest.LogCaptureFixture, kind: str
) -> None:
    caplog.set_level(logging.DEBUG)
    served_samahub.add_project(10, notes="n" * 5_000)
    sama = make_client(kind, waits, deadline=10, batch_lookup_seconds=1)
    raised: list[SamaError] = []

    async def expect(call: Any) -> None:
        with pytest.raises(SamaError) as error:
            await run(call())
        raised.append(error.value)

    await expect(lambda: sama.with_options(max_answer_bytes=100).get_project(10))
    served_samahub.rate_limit(retry_after=30)
    await expect(lambda: sama.get_project(10))
    served_samahub.drop_connection(route="create_batch", processed=True)
    served_samahub.lag_listing(listings=2)  # the two look-ups (at 0 and 1 s) do not see it
    await expect(lambda: sama.create_batch(10, [{"n": "1"}], client_batch_id="cb"))
    await expect(lambda: sama.create_batch(10, [{"n": "1"}], client_batch_id="cb"))
    await close(sama)

    assert [type(error).__name__ for error in raised] == [
        "SamaAnswerTooLargeError",
        "SamaDeadlineError",
        "SamaBatchOutcomeUnknownError",
        "SamaBatchIdInUseError",
    ]
    seen = [repr(error) for error in raised]
    seen += [line for error in raised for line in traceback.format_exception(error)]
    seen += [record.getMessage() for record in caplog.records]
    text = "\n".join(seen)
    assert served_samahub.api_key not in text
    assert "access_key" not in text


def test_the_key_still_reaches_samahub(fake_samahub: FakeSamaHub) -> None:
    task = fake_samahub.add_task(make_task())
    with SamaClient() as sama:
        sama.get_task(10, task.id)
    [request] = fake_samahub.calls()
    assert request.params == {"same_as_delivery": "true"}  # the fake checked access_key


def test_an_error_built_by_hand_reads_well() -> None:
    assert str(SamaError("something broke")) == "something broke"
    assert str(SamaError("409 conflict", method="POST", path="/p")) == "POST /p: 409 conflict"
