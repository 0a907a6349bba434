"""SamaClient and AsyncSamaClient against the public `sama` SDK 0.5.12, on an emulated SamaHub.

A fake SamaHub (libnar.testing's, over HTTP/1.1 with keep-alive) runs in its own process on
127.0.0.1 with 5,000 delivered tasks. It charges what a remote HTTPS API costs: 10 ms per
request, and 20 ms more per new connection (TCP and TLS handshakes). Each client then
(1) pages through all delivered tasks and (2) fetches 100 tasks by id:

  (a) the `sama` SDK 0.5.12 (a new connection per request; returns dicts)
  (b) SamaClient (pooled connections; returns typed Tasks)
  (c) AsyncSamaClient.get_tasks(concurrency=16) (single fetches only)

Goals: (b) at least as fast as (a) on paging, at least 2x faster on single fetches; (c) at
least 6x faster than (a) on single fetches. Each figure is the median of RUNS runs (default 3).

Run: python benchmarks/bench_sama.py [RUNS]
Needs the SDK, which is a benchmark-only dependency: pip install sama==0.5.12
"""

from __future__ import annotations

import asyncio
import gc
import multiprocessing
import statistics
import sys
import time
from collections.abc import Callable
from multiprocessing.synchronize import Event
from typing import Any

TASKS = 5_000
FETCHES = 100
REQUEST_DELAY = 0.010
CONNECTION_DELAY = 0.020
SINCE = "2020-01-01T00:00:00Z"
SDK_URL = "https://api.sama.com/v2"


def serve(tasks: list[dict[str, Any]], ready: Any, stop: Event) -> None:
    """Run the fake SamaHub in this (child) process until `stop` is set."""
    import httpx

    from libnar.testing import FakeSamaHub, serve_fake_samahub

    fake = FakeSamaHub()
    fake.add_tasks(tasks)
    # The emulated latency stands for SamaHub's work: answer repeated reads from a cache so
    # the fake's own CPU time (filtering, JSON encoding) does not come on top of it.
    answers: dict[str, httpx.Response] = {}
    handle = fake.handle

    def cached(request: httpx.Request) -> httpx.Response:
        if request.method != "GET":
            return handle(request)
        key = str(request.url)
        if key not in answers:
            answers[key] = handle(request)
        return answers[key]

    fake.handle = cached  # type: ignore[method-assign]
    gc.freeze()  # the 5,000 tasks live to the end: keep them out of every collection
    with serve_fake_samahub(
        fake, request_delay=REQUEST_DELAY, connection_delay=CONNECTION_DELAY
    ) as served:
        ready.put((served.api_url, served.api_key))
        stop.wait()


def redirect_sdk(api_url: str) -> None:
    """Send the SDK's requests (its URLs are fixed to api.sama.com) to the fake instead."""
    import requests
    import sama.client

    class Redirected:
        def __getattr__(self, name: str) -> Any:
            return getattr(requests, name)

        def get(self, url: str, **kwargs: Any) -> Any:
            return requests.get(url.replace(SDK_URL, api_url), **kwargs)

        def post(self, url: str, **kwargs: Any) -> Any:
            return requests.post(url.replace(SDK_URL, api_url), **kwargs)

        def put(self, url: str, **kwargs: Any) -> Any:
            return requests.put(url.replace(SDK_URL, api_url), **kwargs)

    sama.client.requests = Redirected()  # type: ignore[assignment]


def sdk_paging(key: str, url: str, ids: list[str]) -> int:
    import sama

    client = sama.Client(key, silent=True)
    return len(list(client.get_delivered_tasks("10", from_timestamp=SINCE)))


def sdk_fetches(key: str, url: str, ids: list[str]) -> int:
    import sama

    client = sama.Client(key, silent=True)
    return len([next(client.get_task_status("10", tid)) for tid in ids])


def libnar_paging(key: str, url: str, ids: list[str]) -> int:
    from libnar.sama import SamaClient

    with SamaClient(key, base_url=url) as client:
        return len(list(client.iter_delivered_tasks(10, since=SINCE)))


def libnar_fetches(key: str, url: str, ids: list[str]) -> int:
    from libnar.sama import SamaClient

    with SamaClient(key, base_url=url) as client:
        return len([client.get_task(10, tid) for tid in ids])


def libnar_async_fetches(key: str, url: str, ids: list[str]) -> int:
    from libnar.sama import AsyncSamaClient

    async def fetch() -> int:
        async with AsyncSamaClient(key, base_url=url) as client:
            return len(await client.get_tasks(10, ids, concurrency=16))

    return asyncio.run(fetch())


Work = Callable[[str, str, list[str]], int]
CASES: list[tuple[str, Work | None, Work]] = [
    ("(a) sama SDK 0.5.12", sdk_paging, sdk_fetches),
    ("(b) SamaClient", libnar_paging, libnar_fetches),
    ("(c) AsyncSamaClient.get_tasks(16)", None, libnar_async_fetches),
]


def timed(work: Work, key: str, url: str, ids: list[str], expected: int) -> float:
    start = time.perf_counter()
    count = work(key, url, ids)
    seconds = time.perf_counter() - start
    if count != expected:
        raise SystemExit(f"{work.__name__} returned {count} tasks, expected {expected}")
    return seconds


def main(runs: int) -> None:
    try:
        import sama  # noqa: F401
    except ImportError:
        raise SystemExit(
            "bench_sama.py compares libnar with the public SamaHub SDK, which is not installed.\n"
            "Install it (for this benchmark only; libnar does not depend on it):\n"
            "    pip install sama==0.5.12"
        ) from None
    from libnar.testing import make_task

    tasks = [make_task().model_dump(mode="json") for _ in range(TASKS)]
    ids = [task["id"] for task in tasks[:: TASKS // FETCHES]][:FETCHES]
    spawn = multiprocessing.get_context("spawn")
    ready, stop = spawn.Queue(), spawn.Event()
    server = spawn.Process(target=serve, args=(tasks, ready, stop), daemon=True)
    server.start()
    del tasks  # the clients' garbage collections should not walk the test data
    try:
        url, key = ready.get(timeout=120)
        redirect_sdk(url)
        paging: dict[str, list[float]] = {}
        fetches: dict[str, list[float]] = {}
        for round_ in range(runs + 1):  # round 0 warms up imports, caches and the server
            for name, page_work, fetch_work in CASES:
                if page_work is not None:
                    seconds = timed(page_work, key, url, ids, TASKS)
                    if round_:
                        paging.setdefault(name, []).append(seconds)
                seconds = timed(fetch_work, key, url, ids, FETCHES)
                if round_:
                    fetches.setdefault(name, []).append(seconds)
    finally:
        stop.set()
        server.join(timeout=10)

    print(
        f"{TASKS:,} delivered tasks, {FETCHES} single fetches; {REQUEST_DELAY * 1000:.0f} ms "
        f"a request, +{CONNECTION_DELAY * 1000:.0f} ms a new connection; median of {runs} runs"
    )
    print(f"{'client':36} {'paging':>9} {'vs (a)':>7} {'100 fetches':>12} {'vs (a)':>7}")
    base_page = statistics.median(paging[CASES[0][0]])
    base_fetch = statistics.median(fetches[CASES[0][0]])
    for name, _, _ in CASES:
        page = f"{'-':>9} {'':>7}"
        if name in paging:
            median = statistics.median(paging[name])
            page = f"{median:8.3f}s {base_page / median:6.2f}x"
        median = statistics.median(fetches[name])
        print(f"{name:36} {page} {median:11.3f}s {base_fetch / median:6.2f}x")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 3)
