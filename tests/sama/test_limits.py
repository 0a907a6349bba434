"""The limits of one call: the time it may take in all, and the size of an answer it reads."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest

from libnar.sama import (
    AsyncSamaClient,
    SamaAnswerTooLargeError,
    SamaClient,
    SamaConfigError,
    SamaDeadlineError,
    SamaRateLimitError,
    SamaServerError,
)
from libnar.testing import FakeSamaHub, serve_fake_samahub
from tests.sama.sama_helpers import Client, Waits, close, make_client, run

# --- the deadline of a call -----------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["sync", "async"])
async def test_a_wait_that_would_end_past_the_deadline_is_not_started(
    served_samahub: FakeSamaHub, waits: Waits, kind: str
) -> None:
    served_samahub.add_project(10)
    served_samahub.rate_limit(retry_after=30)
    sama = make_client(kind, waits, deadline=10)
    with pytest.raises(SamaDeadlineError) as raised:
        await run(sama.get_project(10))
    await close(sama)
    assert str(raised.value) == (
        "GET /projects/10.json: no answer within SAMA_DEADLINE (10 s); last: 429 too many "
        'requests (SamaHub: "API rate limit exceeded"); raise SAMA_DEADLINE (or deadline=..., '
        "or with_options(deadline=...) for one call), or check SamaHub's status"
    )
    assert isinstance(raised.value.__cause__, SamaRateLimitError)
    assert (raised.value.status_code, raised.value.outcome_unknown) == (429, False)
    assert (waits, len(served_samahub.calls())) == ([], 1)


@pytest.mark.parametrize("kind", ["sync", "async"])
async def test_retries_and_the_waits_between_them_end_at_the_deadline(
    served_samahub: FakeSamaHub, kind: str
) -> None:
    served_samahub.add_project(10)
    served_samahub.fail(503, times=100)
    # Real waits: 0.5-1 s, 1-1.5 s, 2-2.5 s, ... fit 15 s of retries in a 1.5 s deadline.
    sama = (SamaClient if kind == "sync" else AsyncSamaClient)(deadline=1.5, max_retries=5)
    with pytest.raises(SamaDeadlineError) as raised:
        await run(sama.get_project(10))
    await close(sama)
    assert isinstance(raised.value.__cause__, SamaServerError)
    assert raised.value.attempts == len(served_samahub.calls()) < 6


@pytest.mark.parametrize("kind", ["sync", "async"])
async def test_a_slow_answer_is_cut_off_at_the_deadline(waits: Waits, kind: str) -> None:
    with serve_fake_samahub(request_delay=2.0) as fake:
        fake.add_project(10)
        sama = make_client(kind, waits, **_served(fake), deadline=0.3)
        with pytest.raises(SamaDeadlineError) as raised:
            await run(sama.get_project(10))
        await close(sama)
    assert str(raised.value).startswith(
        "GET /projects/10.json: no answer within SAMA_DEADLINE (0.3 s); raise SAMA_DEADLINE"
    )
    assert raised.value.outcome_unknown  # it was under way: SamaHub may have done the work
    assert waits == []


def _served(fake: FakeSamaHub) -> dict[str, str]:
    return {"api_key": fake.api_key, "base_url": fake.api_url}


def _trickling_transport(kind: str, chunks: int, pause: float) -> httpx.BaseTransport:
    """An answer sent one small chunk at a time, each well within the read timeout.

    The fake SamaHub answers all at once; no per-read timeout ends this answer, only the
    call's deadline does.
    """

    def body() -> Iterator[bytes]:
        yield b'{"id": 1, "name": "'
        for _ in range(chunks):
            time.sleep(pause)
            yield b"x"
        yield b'"}'

    async def abody() -> AsyncIterator[bytes]:
        yield b'{"id": 1, "name": "'
        for _ in range(chunks):
            await asyncio.sleep(pause)
            yield b"x"
        yield b'"}'

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=body() if kind == "sync" else abody())

    return httpx.MockTransport(handler)


@pytest.mark.parametrize("kind", ["sync", "async"])
async def test_an_answer_trickling_in_is_cut_off_at_the_deadline(kind: str) -> None:
    transport = _trickling_transport(kind, chunks=100, pause=0.05)  # 5 s in all
    sama = _client(kind, transport, 10**6, deadline=0.5)
    with pytest.raises(SamaDeadlineError) as raised:
        await run(sama.get_project(1))
    await close(sama)
    assert raised.value.outcome_unknown


async def test_the_deadline_comes_from_the_setting_and_with_options_overrides_it(
    served_samahub: FakeSamaHub,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    waits: Waits,
) -> None:
    served_samahub.add_project(10)
    served_samahub.rate_limit(retry_after=10, times=2)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SAMA_DEADLINE", "20")
    with SamaClient(sleep=waits.sleep) as sama:
        assert (sama.deadline, sama.with_options(deadline=5).deadline) == (20, 5)
        with pytest.raises(SamaDeadlineError, match=r"within SAMA_DEADLINE \(5 s\)"):
            sama.with_options(deadline=5).get_project(10)  # a 10 s wait does not fit in 5 s
        assert sama.get_project(10).id == "10"  # it does in 20 s
    assert waits == [10]


@pytest.mark.parametrize(
    ("options", "message"),
    [
        pytest.param({"deadline": 0}, "deadline must be more than 0, got 0", id="deadline"),
        pytest.param({"timeout": -1}, "timeout must be more than 0, got -1", id="timeout"),
        pytest.param({"max_retries": -1}, "max_retries must be 0 or more, got -1", id="retries"),
    ],
)
def test_limits_out_of_range_are_refused_naming_them(
    options: dict[str, float], message: str
) -> None:
    with pytest.raises(SamaConfigError) as raised:
        SamaClient("k", base_url="https://sama.test/v2", **options)  # type: ignore[arg-type]
    assert str(raised.value) == message
    sama = SamaClient("k", base_url="https://sama.test/v2")
    with sama, pytest.raises(SamaConfigError) as raised:
        sama.with_options(**options)  # type: ignore[arg-type]
    assert str(raised.value) == message


def test_an_invalid_deadline_setting_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SAMA_DEADLINE", "0")
    with pytest.raises(SamaConfigError, match=r"^SAMA_DEADLINE is invalid"):
        SamaClient("k")


# --- the size of an answer ----------------------------------------------------------------------


def _big_project(fake: FakeSamaHub) -> int:
    """Give project 10 a 5,000-character field; return the size of its answer in bytes."""
    fake.add_project(10, notes="n" * 5_000)
    return len(httpx.Response(200, json=fake.projects["10"]).content)


@pytest.mark.parametrize("kind", ["sync", "async"])
async def test_an_answer_over_max_answer_bytes_is_refused_naming_the_setting(
    served_samahub: FakeSamaHub, waits: Waits, kind: str
) -> None:
    size = _big_project(served_samahub)
    sama = make_client(kind, waits, max_answer_bytes=1_000)
    with pytest.raises(SamaAnswerTooLargeError) as raised:
        await run(sama.get_project(10))
    await close(sama)
    assert str(raised.value) == (
        f"GET /projects/10.json: the answer ({size:,} bytes) is larger than "
        "SAMA_MAX_ANSWER_BYTES (1,000 bytes); ask for less at a time (e.g. a smaller "
        "page_size), or raise SAMA_MAX_ANSWER_BYTES (or max_answer_bytes=...)"
    )
    assert (raised.value.limit, raised.value.status_code) == (1_000, 200)
    assert len(served_samahub.calls()) == 1  # not retried: the answer would be as large
    assert waits == []


async def test_max_answer_bytes_comes_from_the_setting_and_with_options_overrides_it(
    served_samahub: FakeSamaHub, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    _big_project(served_samahub)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SAMA_MAX_ANSWER_BYTES", "1000")
    with SamaClient() as sama:
        assert sama.max_answer_bytes == 1_000
        with pytest.raises(SamaAnswerTooLargeError):
            sama.get_project(10)
        roomy = sama.with_options(max_answer_bytes=1_000_000)
        assert roomy.get_project(10).id == "10"
        assert roomy.max_answer_bytes == 1_000_000
        with pytest.raises(SamaAnswerTooLargeError):
            sama.get_project(10)  # the client itself keeps its limit
    async with AsyncSamaClient() as asama:
        assert (await asama.with_options(max_answer_bytes=1_000_000).get_project(10)).id == "10"


@pytest.mark.parametrize("value", [0, -1])
def test_max_answer_bytes_must_be_positive(value: int) -> None:
    with pytest.raises(
        SamaConfigError, match=f"^max_answer_bytes must be more than 0, got {value}"
    ):
        SamaClient("k", base_url="https://sama.test/v2", max_answer_bytes=value)
    sama = SamaClient("k", base_url="https://sama.test/v2")
    with sama, pytest.raises(SamaConfigError, match=r"^max_answer_bytes must be more than 0"):
        sama.with_options(max_answer_bytes=value)


BODY = b'{"id": 1, "name": "' + b"x" * 1_000 + b'"}'


def _counting_transport(kind: str, status: int, chunks: list[bytes], read: list[int]) -> object:
    """A transport answering `chunks` without a Content-Length, counting the chunks read.

    The fake SamaHub always announces its answers' length; this is the answer that does not
    (chunked transfer), which a client only learns the size of by reading it.
    """

    def body() -> Iterator[bytes]:
        for chunk in chunks:
            read.append(len(chunk))
            yield chunk

    async def abody() -> AsyncIterator[bytes]:
        for chunk in body():
            yield chunk

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(status, content=body() if kind == "sync" else abody())

    return httpx.MockTransport(handler)


def _client(kind: str, transport: object, limit: int, **more: float) -> Client:
    options = {"base_url": "https://sama.test/v2", "max_retries": 0, "max_answer_bytes": limit}
    options.update(more)
    if kind == "sync":
        return SamaClient("k", transport=transport, **options)  # type: ignore[arg-type]
    return AsyncSamaClient("k", transport=transport, **options)  # type: ignore[arg-type]


@pytest.mark.parametrize("kind", ["sync", "async"])
@pytest.mark.parametrize(
    ("limit", "fits"),
    [
        pytest.param(len(BODY), True, id="exactly-the-limit"),
        pytest.param(len(BODY) - 1, False, id="one-byte-over"),
    ],
)
async def test_an_answer_without_a_length_is_measured_as_it_is_read(
    kind: str, limit: int, fits: bool
) -> None:
    read: list[int] = []
    chunks = [BODY[:500], BODY[500:]]
    sama = _client(kind, _counting_transport(kind, 200, chunks, read), limit)
    if fits:
        assert (await run(sama.get_project(1))).name == "x" * 1_000
    else:
        with pytest.raises(SamaAnswerTooLargeError, match=r"^GET /projects/1.json: the answer is"):
            await run(sama.get_project(1))
    await close(sama)


@pytest.mark.parametrize("kind", ["sync", "async"])
async def test_an_endless_answer_is_read_only_up_to_the_limit(kind: str) -> None:
    read: list[int] = []
    endless = [b"[" + b"0," * 32_767] * 100_000  # 6.5 GB if it were read to the end
    sama = _client(kind, _counting_transport(kind, 200, endless, read), 1_000_000)
    with pytest.raises(SamaAnswerTooLargeError):
        await run(sama.get_project_stats(1))
    await close(sama)
    assert sum(read) <= 1_000_000 + 65_536


@pytest.mark.parametrize("kind", ["sync", "async"])
async def test_an_error_answer_is_read_only_up_to_64_kib(kind: str) -> None:
    read: list[int] = []
    endless = [b"upstream failed " * 4_096] * 100_000  # 6.5 GB of text
    sama = _client(kind, _counting_transport(kind, 500, endless, read), 10**9)
    with pytest.raises(SamaServerError) as raised:
        await run(sama.get_project(1))
    await close(sama)
    assert sum(read) <= 2 * 65_536
    assert raised.value.errors == [{"message": ("upstream failed " * 13)[:200].strip()}]
