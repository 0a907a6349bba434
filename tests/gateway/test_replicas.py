"""Two gateway replicas on one PostgreSQL outbox, Prefect on PostgreSQL, one replica killed.

As production runs it: no shared volume, a load balancer sending each request to either
replica (and a retry to the other when one dies), `kill -9` mid-load. Every accepted event
must end with exactly one run, and nothing may stay pending.
"""

from __future__ import annotations

import os
import random
import signal
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
from prefect.settings import PREFECT_API_URL, temporary_settings

from libnar._gateway import mint_token
from libnar.testing import GatewayProcess, PostgresServer, PrefectServer

from .conftest import ADMIN_KEY, SECRET, wait_until, webhook_body
from .flows import gw_hook_ptp
from .test_durability import runs_by_task

pytestmark = pytest.mark.slow

ROOT = Path(__file__).parents[2]


class PrefectOnPostgres(PrefectServer):
    """A Prefect server of its own whose database is PostgreSQL."""

    def __init__(self, database_url: str) -> None:
        super().__init__()
        self.database_url = database_url

    def environment(self) -> dict[str, str]:
        return {
            **super().environment(),
            "PREFECT_SERVER_DATABASE_CONNECTION_URL": self.database_url,
        }


@pytest.fixture
def prefect_on_postgres(postgres_server: PostgresServer) -> Iterator[PrefectServer]:
    postgres_server.create_database("prefect_replicas")
    with PrefectOnPostgres(postgres_server.url("prefect_replicas", driver="asyncpg")) as server:
        yield server


def replica(prefect: PrefectServer, outbox_url: str, log: Path) -> GatewayProcess:
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("LIBNAR_")},
        "PREFECT_API_URL": prefect.api_url,
        "LIBNAR_GATEWAY_SECRETS": SECRET,
        "LIBNAR_GATEWAY_ADMIN_KEY": ADMIN_KEY,
        "LIBNAR_OUTBOX_URL": outbox_url,
        "LIBNAR_OUTBOX_LEASE_SECONDS": "5",
        "LIBNAR_GATEWAY_PREFECT_TIMEOUT": "4",
        "LIBNAR_GATEWAY_PREFECT_CONCURRENCY": "2",
    }
    return GatewayProcess(env, args=["--no-access-log"], log=log, cwd=ROOT)


def test_two_replicas_one_killed_mid_load_every_accepted_event_has_one_run(
    postgres_server: PostgresServer, prefect_on_postgres: PrefectServer, tmp_path: Path
) -> None:
    from libnar._gateway._outbox_pg import PostgresOutbox

    with temporary_settings(updates={PREFECT_API_URL: prefect_on_postgres.api_url}):
        deployment_id = str(gw_hook_ptp.to_deployment(name="gw_hook_ptp_deploy").apply())
    outbox_url = postgres_server.create_database("outbox_replicas")
    token = mint_token(SECRET, "gw_hook_ptp")
    bodies = [webhook_body() for _ in range(300)]
    bodies += random.sample(bodies, 60)  # SamaHub's repeats
    random.shuffle(bodies)
    accepted: dict[str, str] = {}
    lock = threading.Lock()
    with (
        replica(prefect_on_postgres, outbox_url, tmp_path / "a.log") as doomed,
        replica(prefect_on_postgres, outbox_url, tmp_path / "b.log") as survivor,
    ):
        assert doomed.process is not None
        killed = threading.Event()

        def post(numbered: tuple[int, dict[str, Any]]) -> None:
            index, body = numbered
            targets = [doomed, survivor] if index % 2 else [survivor, doomed]
            for target in targets * 2:  # as a load balancer: the other replica on failure
                try:
                    with httpx.Client(base_url=target.url, timeout=30) as client:
                        answer = client.post(
                            "/webhook-event", json=body, headers={"x-auth-token": token}
                        )
                except httpx.HTTPError:
                    continue
                if answer.status_code in (200, 202):
                    with lock:
                        accepted[body["task"]["id"]] = answer.json()["key"]
                        if len(accepted) == 120 and not killed.is_set():
                            killed.set()
                            os.kill(doomed.process.pid, signal.SIGKILL)  # type: ignore[union-attr]
                    return
                time.sleep(0.05)

        with ThreadPoolExecutor(16) as pool:
            list(pool.map(post, enumerate(bodies)))
        assert killed.is_set()
        assert doomed.process.wait(10) == -signal.SIGKILL

        # The survivor drains everything, the dead replica's leased events after their lease.
        outbox = PostgresOutbox(outbox_url, pool_size=1)
        try:
            wait_until(lambda: outbox.backlog().count == 0, timeout=120, what="an empty backlog")
            rows = outbox.entries()
        finally:
            outbox.close()

    assert len(accepted) == 300  # every event accepted by one replica or the other
    assert {row["state"] for row in rows} == {"done"}
    assert len(rows) == 300
    with temporary_settings(updates={PREFECT_API_URL: prefect_on_postgres.api_url}):
        runs = runs_by_task(deployment_id)
    for task, key in accepted.items():
        assert len(runs.get(task, [])) == 1, task
        assert runs[task][0].idempotency_key == f"{deployment_id}:{key}"
    assert len(runs) == 300
    assert {str(run[0].id) for run in runs.values()} == {row["flow_run_id"] for row in rows}
