"""Gateway throughput and correctness against `run_deployment(timeout=0)`, on one Prefect server.

Starts a Prefect server, then for each gateway configuration (each event sent alone, and
grouped into Prefect's bulk create call) starts `libnar gateway serve` as a subprocess and
POSTs N webhook events (20% of them repeats) at concurrency 32; then sends the same unique
events straight to `run_deployment(timeout=0)` from this process. Each side has a deployment
of its own; every run of it is read back to count lost events and duplicate runs.

Goals: zero lost, zero duplicates, gateway/direct throughput at least 1.0 (at least 2.0 with
bulk grouping) with p50 latency under 100 ms.

Run: python benchmarks/bench_gateway.py [--events 2000] [--concurrency 32]
         [--direct-concurrency 4] [--window-ms 10]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import secrets
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

os.environ.setdefault("PREFECT_HOME", tempfile.mkdtemp(prefix="libnar-bench-"))
os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
os.environ["DO_NOT_TRACK"] = "1"
os.environ["PREFECT_LOGGING_LEVEL"] = "WARNING"

import httpx

from libnar import WebhookEvent, nps_flow
from libnar.testing import GatewayProcess, PrefectServer, make_webhook_event

ROOT = Path(__file__).parents[1]
SECRET = secrets.token_urlsafe(32)


@nps_flow
def bench_hook_ptp(event: WebhookEvent) -> str:
    return event.task.id


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def make_events(count: int) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """`count` posts: 80% unique events, 20% repeats of earlier ones, in a shuffled order."""
    unique = [make_webhook_event().model_dump(mode="json") for _ in range(count * 4 // 5)]
    posts = unique + [random.choice(unique) for _ in range(count - len(unique))]
    random.shuffle(posts)
    return unique, posts


def gateway(api_url: str, window_ms: float, outbox: Path) -> GatewayProcess:
    """`libnar gateway serve` for one side of the benchmark; its log goes beside the outbox."""
    env = {
        **os.environ,
        "PREFECT_API_URL": api_url,
        "LIBNAR_GATEWAY_SECRETS": SECRET,
        "LIBNAR_OUTBOX_DIR": str(outbox / "outbox"),
        "LIBNAR_GATEWAY_BULK_WINDOW_MS": str(window_ms),
        "LIBNAR_GATEWAY_PREFECT_TIMEOUT": "60",
    }
    return GatewayProcess(env, args=["--no-access-log"], log=outbox / "gateway.log", cwd=ROOT)


async def post_all(
    url: str, token: str, posts: list[dict[str, Any]], concurrency: int
) -> tuple[float, list[float], Counter[int], dict[str, str]]:
    limit = asyncio.Semaphore(concurrency)
    latencies: list[float] = []
    statuses: Counter[int] = Counter()
    answered: dict[str, str] = {}
    async with httpx.AsyncClient(
        base_url=url, timeout=120, limits=httpx.Limits(max_connections=concurrency)
    ) as client:

        async def one(body: dict[str, Any]) -> None:
            async with limit:
                started = time.perf_counter()
                answer = await client.post(
                    "/webhook-event", json=body, headers={"x-auth-token": token}
                )
                latencies.append(time.perf_counter() - started)
                statuses[answer.status_code] += 1
                if answer.status_code == 200:
                    task = body["task"]["id"]
                    run_id = answer.json()["flow_run_id"]
                    if answered.setdefault(task, run_id) != run_id:
                        statuses[-1] += 1  # the same event answered with two run ids

        started = time.perf_counter()
        await asyncio.gather(*(one(body) for body in posts))
        return time.perf_counter() - started, latencies, statuses, answered


async def direct_all(
    deployment: str, deployment_id: str, unique: list[dict[str, Any]], concurrency: int
) -> tuple[float, list[float]]:
    from prefect.deployments import run_deployment

    limit = asyncio.Semaphore(concurrency)
    latencies: list[float] = []

    async def one(body: dict[str, Any]) -> None:
        event = WebhookEvent.model_validate(body)
        async with limit:
            started = time.perf_counter()
            await run_deployment(
                deployment,
                parameters={"event": body},
                timeout=0,
                idempotency_key=f"{deployment_id}:{event.idempotency_key}",
                tags=event.tags,
            )
            latencies.append(time.perf_counter() - started)

    started = time.perf_counter()
    await asyncio.gather(*(one(body) for body in unique))
    return time.perf_counter() - started, latencies


async def runs_per_task(deployment_id: str) -> Counter[str]:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterId

    found: Counter[str] = Counter()
    async with get_client() as client:
        offset = 0
        while True:
            page = await client.read_flow_runs(
                deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[deployment_id])),
                offset=offset,
                limit=200,
            )
            for run in page:
                found[run.parameters["event"]["task"]["id"]] += 1
            if len(page) < 200:
                return found
            offset += 200


def check(unique: list[dict[str, Any]], runs: Counter[str]) -> tuple[int, int]:
    """Lost events (no run) and duplicate runs (more than one run for an event)."""
    tasks = {body["task"]["id"] for body in unique}
    lost = sum(1 for task in tasks if runs[task] == 0)
    duplicates = sum(count - 1 for count in runs.values() if count > 1)
    duplicates += sum(count for task, count in runs.items() if task not in tasks)
    return lost, duplicates


def report(name: str, count: int, seconds: float, latencies: list[float]) -> float:
    rate = count / seconds
    print(
        f"{name:<28} {count:>5} in {seconds:6.1f} s = {rate:6.1f} events/s;"
        f" p50 {percentile(latencies, 0.5) * 1000:6.1f} ms, p99 {percentile(latencies, 0.99) * 1000:7.1f} ms"
    )
    return rate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--direct-concurrency", type=int, default=4)
    parser.add_argument("--window-ms", type=float, default=10.0)
    parser.add_argument("--bulk-only", action="store_true", help="skip the unbatched gateway")
    args = parser.parse_args()

    from prefect.settings import PREFECT_API_URL, temporary_settings

    from libnar._gateway import mint_token

    with PrefectServer() as server, temporary_settings(updates={PREFECT_API_URL: server.api_url}):
        sides = {"gateway, alone": 0.0, "gateway, bulk": args.window_ms}
        if args.bulk_only:
            del sides["gateway, alone"]
        ids = {
            name: str(bench_hook_ptp.to_deployment(name=name).apply())
            for name in ["bench_gateway_alone", "bench_gateway_bulk", "bench_direct"]
        }
        print(
            f"{args.events} webhook posts ({args.events // 5} repeats) at concurrency"
            f" {args.concurrency}; direct: the {args.events * 4 // 5} unique events at"
            f" concurrency {args.direct_concurrency}; Prefect on SQLite"
        )
        rates: dict[str, float] = {}
        p50s: dict[str, float] = {}
        outcomes = []
        for (side, window), deployment in zip(
            sides.items(), ["bench_gateway_alone", "bench_gateway_bulk"][-len(sides) :], strict=True
        ):
            unique, posts = make_events(args.events)
            token = mint_token(SECRET, "bench_hook_ptp", {"dep_name": deployment})
            with (
                tempfile.TemporaryDirectory() as folder,
                gateway(server.api_url, window, Path(folder)) as running,
            ):
                url = running.url
                warm = make_events(25)[0]  # warm up: imports, connections, caches
                asyncio.run(post_all(url, token, warm, args.concurrency))
                unique += warm
                seconds, latencies, statuses, answered = asyncio.run(
                    post_all(url, token, posts, args.concurrency)
                )
                # One event at a time, as a quiet SamaHub project sends them.
                lone_unique = make_events(50)[0]
                _, lone, _, _ = asyncio.run(post_all(url, token, lone_unique, 1))
                unique += lone_unique
            rates[side] = report(side, len(posts), seconds, latencies)
            print(
                f"{'  one at a time':<28} p50 {percentile(lone, 0.5) * 1000:6.1f} ms,"
                f" p99 {percentile(lone, 0.99) * 1000:7.1f} ms"
            )
            p50s[side] = percentile(latencies, 0.5)
            runs = asyncio.run(runs_per_task(ids[deployment]))
            lost, duplicates = check(unique, runs)
            outcomes.append((side, statuses, lost, duplicates, len(answered)))

        unique, _ = make_events(args.events)
        seconds, latencies = asyncio.run(
            direct_all(
                "bench_hook_ptp/bench_direct", ids["bench_direct"], unique, args.direct_concurrency
            )
        )
        rates["direct"] = report("run_deployment(timeout=0)", len(unique), seconds, latencies)
        lost, duplicates = check(unique, asyncio.run(runs_per_task(ids["bench_direct"])))
        outcomes.append(("direct", Counter(), lost, duplicates, len(unique)))

        print()
        for side, statuses, lost, duplicates, _answered in outcomes:
            shown = dict(statuses) if statuses else "-"
            print(f"{side:<28} answers {shown}; lost {lost}; duplicate runs {duplicates}")
        print()
        for side in sides:
            ratio = rates[side] / rates["direct"]
            print(
                f"{side:<28} throughput ratio to direct: {ratio:4.2f}x (p50 {p50s[side] * 1000:.0f} ms)"
            )


if __name__ == "__main__":
    main()
