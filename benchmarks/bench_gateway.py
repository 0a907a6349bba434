"""The gateway at scale: accept rate and latency, drain rate, Prefect's own ceiling, lost/duplicates.

For each database (SQLite; PostgreSQL too when its server binaries are installed), in one run
against the same Prefect server:

1. the floor: `GET /health` of the gateway under the same client at the same concurrency;
2. accept: N webhook posts (20% of them repeats) at that concurrency: rate, p50, p99, and the
   gateway's own handling time (the `latency_ms` of its audit lines);
3. drain: stored events turned into runs per second (first post to last run created);
4. ceiling: Prefect's own bulk create rate, the same runs sent straight to
   `POST /deployments/{id}/create_flow_run/bulk` (100 a call, as many calls at once as the
   gateway's LIBNAR_GATEWAY_PREFECT_CONCURRENCY);
5. lost events (accepted, no run) and duplicate runs (more than one run for an event).

SQLite: one gateway, file outbox. PostgreSQL: Prefect on PostgreSQL, two gateway replicas on one
PostgreSQL outbox, the client spreading posts over both; one replica is killed (`kill -9`)
halfway and its posts go to the other, as a load balancer would.

Goals (ratios, since the client, the gateway and Prefect share the machine's cores): accept
p50 at most 2x the floor's, accept rate at least half the floor's, audit p50 at most 10 ms,
drain rate at least 90% of Prefect's bulk rate, 0 lost, 0 duplicates.

Run: python benchmarks/bench_gateway.py [--events 2000] [--concurrency 32] [--no-postgres]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import secrets
import signal
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import datetime
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


class PrefectOnPostgres(PrefectServer):
    """A Prefect server whose database is PostgreSQL."""

    def __init__(self, database_url: str) -> None:
        super().__init__()
        self.database_url = database_url

    def environment(self) -> dict[str, str]:
        return {
            **super().environment(),
            "PREFECT_SERVER_DATABASE_CONNECTION_URL": self.database_url,
        }


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))] if ordered else 0.0


def make_events(count: int) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """`count` posts: 80% unique events, 20% repeats of earlier ones, in a shuffled order."""
    unique = [make_webhook_event().model_dump(mode="json") for _ in range(count * 4 // 5)]
    posts = unique + [random.choice(unique) for _ in range(count - len(unique))]
    random.shuffle(posts)
    return unique, posts


@dataclass
class Load:
    seconds: float = 0.0
    latencies: list[float] = field(default_factory=list)
    statuses: Counter[int] = field(default_factory=Counter)
    accepted: set[str] = field(default_factory=set)

    @property
    def rate(self) -> float:
        return len(self.latencies) / self.seconds if self.seconds else 0.0


async def run_load(
    urls: list[str],
    concurrency: int,
    count: int,
    *,
    posts: list[dict[str, Any]] | None = None,
    token: str = "",
    on_accepted: Any = None,
) -> Load:
    """`count` requests at `concurrency`, spread over `urls`: GET /health, or the posts."""
    load = Load()
    limit = asyncio.Semaphore(concurrency)
    clients = [
        httpx.AsyncClient(base_url=u, timeout=120, limits=httpx.Limits(max_connections=concurrency))
        for u in urls
    ]

    async def one(index: int) -> None:
        async with limit:
            started = time.perf_counter()
            for attempt in range(len(clients) * 3):
                client = clients[(index + attempt) % len(clients)]
                try:
                    if posts is None:
                        answer = await client.get("/health")
                    else:
                        answer = await client.post(
                            "/webhook-event", json=posts[index], headers={"x-auth-token": token}
                        )
                except httpx.HTTPError:
                    continue  # that replica is gone: the other one, as a load balancer does
                if answer.status_code < 500:
                    break
                await asyncio.sleep(0.05)
            else:
                load.statuses[-1] += 1
                return
            load.latencies.append(time.perf_counter() - started)
            load.statuses[answer.status_code] += 1
            if posts is not None and answer.status_code in (200, 202):
                load.accepted.add(posts[index]["task"]["id"])
                if on_accepted is not None:
                    on_accepted(len(load.accepted))

    started = time.perf_counter()
    try:
        await asyncio.gather(*(one(i) for i in range(count)))
    finally:
        for client in clients:
            await client.aclose()
    load.seconds = time.perf_counter() - started
    return load


def count_runs(api_url: str, deployment_id: str) -> int:
    answer = httpx.post(
        f"{api_url}/flow_runs/count",
        json={"deployments": {"id": {"any_": [deployment_id]}}},
        timeout=60,
    )
    answer.raise_for_status()
    return int(answer.json())


def runs_per_task(api_url: str, deployment_id: str) -> tuple[Counter[str], float]:
    """Runs per task id, and the creation time (Unix) of the last run."""
    found: Counter[str] = Counter()
    last = 0.0
    offset = 0
    while True:
        page = httpx.post(
            f"{api_url}/flow_runs/filter",
            json={
                "deployments": {"id": {"any_": [deployment_id]}},
                "offset": offset,
                "limit": 200,
            },
            timeout=60,
        ).json()
        for run in page:
            found[run["parameters"]["event"]["task"]["id"]] += 1
            last = max(last, datetime.fromisoformat(run["created"]).timestamp())
        if len(page) < 200:
            return found, last
        offset += 200


async def direct_bulk(api_url: str, deployment_id: str, count: int, concurrency: int) -> float:
    """Prefect's own bulk create rate: `count` new runs, 100 a call, `concurrency` at once."""
    bodies = []
    for _ in range(count):
        event = make_webhook_event().model_dump(mode="json")
        bodies.append(
            {
                "name": f"direct-{event['task']['id']}",
                "parameters": {"event": event},
                "tags": ["bench"],
                "idempotency_key": f"{deployment_id}:{uuid.uuid4().hex}",
                "state": {"type": "SCHEDULED", "name": "Scheduled"},
                "enforce_parameter_schema": False,
            }
        )
    calls = [bodies[i : i + 100] for i in range(0, count, 100)]
    limit = asyncio.Semaphore(concurrency)
    async with httpx.AsyncClient(base_url=api_url, timeout=120) as client:

        async def send(call: list[dict[str, Any]]) -> None:
            async with limit:
                for _ in range(20):  # SQLite "database is locked": send again
                    answer = await client.post(
                        f"/deployments/{deployment_id}/create_flow_run/bulk", json=call
                    )
                    if answer.status_code < 500:
                        results = answer.json()["results"]
                        failed = [
                            b
                            for b, r in zip(call, results, strict=True)
                            if r["status"] != "CREATED"
                        ]
                        if not failed:
                            return
                        call = failed
                    await asyncio.sleep(0.1)

        started = time.perf_counter()
        await asyncio.gather(*(send(c) for c in calls))
        return count / (time.perf_counter() - started)


def audit_latencies(logs: list[Path]) -> list[float]:
    """The gateway's own handling time of each webhook post, from its audit lines (ms)."""
    found = []
    for log in logs:
        for line in log.read_text(errors="replace").splitlines():
            start = line.find("{")
            if "libnar.gateway.audit" not in line or start < 0:
                continue
            try:
                audit = json.loads(line[start:])
            except ValueError:
                continue
            if audit.get("path") == "/webhook-event" and audit.get("status") in (200, 202):
                found.append(float(audit["latency_ms"]))
    return found


def gateway_env(api_url: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LIBNAR_")}
    return {
        **env,
        "PREFECT_API_URL": api_url,
        "LIBNAR_GATEWAY_SECRETS": SECRET,
        "LIBNAR_GATEWAY_MAX_BACKLOG": "1000000",
        **extra,
    }


@contextmanager
def environment(
    database: str, folder: Path
) -> Iterator[tuple[PrefectServer, list[GatewayProcess], int]]:
    """Prefect and the gateway(s) for one database; yields (Prefect, gateways, concurrency)."""
    with ExitStack() as stack:
        if database == "SQLite":
            prefect = stack.enter_context(PrefectServer())
            env = gateway_env(prefect.api_url, LIBNAR_OUTBOX_DIR=str(folder / "outbox"))
            gateways = [
                GatewayProcess(env, args=["--no-access-log"], log=folder / "gw.log", cwd=ROOT)
            ]
            concurrency = 1
        else:
            from libnar.testing import PostgresServer

            postgres = stack.enter_context(PostgresServer())
            postgres.create_database("prefect")
            prefect = stack.enter_context(
                PrefectOnPostgres(postgres.url("prefect", driver="asyncpg"))
            )
            env = gateway_env(
                prefect.api_url,
                LIBNAR_OUTBOX_URL=postgres.create_database("outbox"),
                LIBNAR_OUTBOX_LEASE_SECONDS="10",
                LIBNAR_GATEWAY_PREFECT_CONCURRENCY="2",
            )
            gateways = [
                GatewayProcess(env, args=["--no-access-log"], log=folder / f"gw{i}.log", cwd=ROOT)
                for i in range(2)
            ]
            concurrency = 2
        for gateway in gateways:
            stack.enter_context(gateway)
        yield prefect, gateways, concurrency


def bench(database: str, events: int, concurrency: int) -> dict[str, Any]:
    from libnar._gateway import mint_token

    with (
        tempfile.TemporaryDirectory() as tmp,
        environment(database, Path(tmp)) as (
            prefect,
            gateways,
            prefect_concurrency,
        ),
    ):
        from prefect.settings import PREFECT_API_URL, temporary_settings

        with temporary_settings(updates={PREFECT_API_URL: prefect.api_url}):
            ids = {
                name: str(bench_hook_ptp.to_deployment(name=name).apply())
                for name in ["bench_hook_ptp_deploy", "bench_direct"]
            }
        token = mint_token(SECRET, "bench_hook_ptp")
        urls = [g.url for g in gateways]
        warm, warm_posts = make_events(50)
        asyncio.run(run_load(urls, concurrency, len(warm_posts), posts=warm_posts, token=token))
        deadline = time.monotonic() + 120
        while count_runs(prefect.api_url, ids["bench_hook_ptp_deploy"]) < len(warm):
            assert time.monotonic() < deadline, "the warm-up events never ran"
            time.sleep(0.5)

        floor = asyncio.run(run_load(urls, concurrency, events))

        unique, posts = make_events(events)
        killed: list[float] = []

        def maybe_kill(accepted: int) -> None:
            if len(gateways) > 1 and not killed and accepted >= len(unique) // 2:
                process = gateways[0].process
                assert process is not None
                os.kill(process.pid, signal.SIGKILL)
                killed.append(time.perf_counter())

        started = time.time()
        accept = asyncio.run(
            run_load(
                urls, concurrency, len(posts), posts=posts, token=token, on_accepted=maybe_kill
            )
        )
        expected = len(warm) + len(accept.accepted)
        burst_over = time.time()
        left = expected - count_runs(prefect.api_url, ids["bench_hook_ptp_deploy"])
        deadline = time.monotonic() + 600
        # Polled slowly (each count is work for Prefect); the drain's end is read from the
        # runs' creation times afterwards.
        while count_runs(prefect.api_url, ids["bench_hook_ptp_deploy"]) < expected:
            assert time.monotonic() < deadline, "the accepted events were not drained"
            time.sleep(1.0)
        _, drained_at = runs_per_task(prefect.api_url, ids["bench_hook_ptp_deploy"])
        drain_seconds = drained_at - started
        after_burst = left / (drained_at - burst_over) if left > 0 else 0.0
        handled = len(audit_latencies([g.log for g in gateways if g.log]))
        quiet, _ = make_events(50)
        quiet_load = asyncio.run(run_load(urls[-1:], 1, len(quiet), posts=quiet, token=token))
        deadline = time.monotonic() + 120
        while count_runs(prefect.api_url, ids["bench_hook_ptp_deploy"]) < expected + len(quiet):
            assert time.monotonic() < deadline, "the quiet events were not drained"
            time.sleep(0.2)
        ceiling = asyncio.run(
            direct_bulk(
                prefect.api_url, ids["bench_direct"], len(accept.accepted), prefect_concurrency
            )
        )
        time.sleep(2)  # late duplicates, if any, would show now
        runs, _ = runs_per_task(prefect.api_url, ids["bench_hook_ptp_deploy"])
        tasks = {body["task"]["id"] for body in warm + quiet} | accept.accepted
        lost = sum(1 for task in tasks if runs[task] == 0)
        duplicates = sum(count - 1 for count in runs.values() if count > 1)
        audit = audit_latencies([g.log for g in gateways if g.log])
        audit, quiet_audit = audit[len(warm_posts) : handled], audit[handled:]
        return {
            "database": database,
            "replicas": len(gateways),
            "killed": bool(killed),
            "floor_p50": percentile(floor.latencies, 0.5),
            "floor_rate": floor.rate,
            "accept_p50": percentile(accept.latencies, 0.5),
            "accept_p99": percentile(accept.latencies, 0.99),
            "accept_rate": accept.rate,
            "statuses": dict(accept.statuses),
            "audit_p50_ms": percentile(audit, 0.5),
            "quiet_p50": percentile(quiet_load.latencies, 0.5),
            "quiet_audit_p50_ms": percentile(quiet_audit, 0.5),
            "drain_rate": len(accept.accepted) / drain_seconds,
            "drain_after_burst": after_burst,
            "left_after_burst": left,
            "ceiling_rate": ceiling,
            "accepted": len(accept.accepted),
            "lost": lost,
            "duplicates": duplicates,
        }


def show(found: dict[str, Any]) -> None:
    ms = 1000
    print(
        f"\n{found['database']}: {found['replicas']} gateway(s)"
        + (", one killed (kill -9) halfway" if found["killed"] else "")
    )
    print(
        f"  floor  GET /health      {found['floor_rate']:7.1f} req/s   p50 {found['floor_p50'] * ms:6.1f} ms"
    )
    print(
        f"  accept POST webhooks    {found['accept_rate']:7.1f} ev/s    p50 {found['accept_p50'] * ms:6.1f} ms"
        f"   p99 {found['accept_p99'] * ms:6.1f} ms   answers {found['statuses']}"
    )
    print(
        f"  gateway handling (audit) p50 {found['audit_p50_ms']:.1f} ms under load;"
        f" one at a time: {found['quiet_audit_p50_ms']:.1f} ms"
        f" (answer p50 {found['quiet_p50'] * ms:.1f} ms)"
    )
    print(
        f"  drain  {found['drain_rate']:6.1f} runs/s   Prefect bulk ceiling {found['ceiling_rate']:6.1f} runs/s"
    )
    print(
        f"  drain once the burst was over: {found['drain_after_burst']:6.1f} runs/s"
        f" ({found['left_after_burst']} events left then)"
    )
    print(
        f"  {found['accepted']} events accepted; lost {found['lost']}; duplicate runs {found['duplicates']}"
    )
    checks = [
        ("accept p50 / floor p50 <= 2", found["accept_p50"] / found["floor_p50"], 2.0, "max"),
        ("accept rate / floor rate >= 0.5", found["accept_rate"] / found["floor_rate"], 0.5, "min"),
        ("audit p50 <= 10 ms", found["audit_p50_ms"], 10.0, "max"),
        ("audit p50 one at a time <= 10 ms", found["quiet_audit_p50_ms"], 10.0, "max"),
        ("drain / ceiling >= 0.9", found["drain_rate"] / found["ceiling_rate"], 0.9, "min"),
        (
            "drain after the burst / ceiling >= 0.9",
            found["drain_after_burst"] / found["ceiling_rate"],
            0.9,
            "min",
        ),
        ("lost == 0", found["lost"], 0, "max"),
        ("duplicates == 0", found["duplicates"], 0, "max"),
    ]
    for name, value, goal, kind in checks:
        ok = value <= goal if kind == "max" else value >= goal
        print(f"  {'ok  ' if ok else 'MISS'} {name}: {value:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--no-postgres", action="store_true", help="SQLite only")
    args = parser.parse_args()
    print(
        f"{args.events} webhook posts ({args.events // 5} repeats) at concurrency {args.concurrency}"
    )
    databases = ["SQLite"]
    if not args.no_postgres:
        from libnar.testing._postgres import PostgresUnavailable, find_postgres_bin

        try:
            find_postgres_bin()
            databases.append("PostgreSQL")
        except PostgresUnavailable as exc:
            print(f"PostgreSQL skipped: {exc}")
    for database in databases:
        show(bench(database, args.events, args.concurrency))


if __name__ == "__main__":
    main()
