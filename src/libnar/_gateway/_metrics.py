"""The gateway's Prometheus metrics, served at `GET /metrics`.

Each gateway app has its own registry (tests run several apps in one process); the count of
open connections is per process, kept by the guarded uvicorn protocol (`_server`).

With `--workers N` the worker processes share nothing in memory, so a scrape that lands on one
of them would see a part of the counts. `libnar gateway serve --workers N` therefore sets
`PROMETHEUS_MULTIPROC_DIR` (a fresh temporary folder, unless it is set already) before the
workers start: prometheus-client then keeps every value in files there, and `/metrics` adds up
the files of every worker. Gauges of a global value (the backlog, read by every worker from the
shared outbox) show the most recent worker's reading; dead workers' files are forgotten when a
worker starts.
"""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

__all__ = [
    "CONTENT_TYPE",
    "MULTIPROCESS_DIR",
    "GatewayMetrics",
    "forget_dead_processes",
    "open_connections",
]

logger = logging.getLogger("libnar.gateway")

#: The environment variable prometheus-client reads for its multiprocess mode.
MULTIPROCESS_DIR = "PROMETHEUS_MULTIPROC_DIR"
CONTENT_TYPE = CONTENT_TYPE_LATEST

_PROCESS_REGISTRY = CollectorRegistry()

#: Open client connections of this process (all processes added up with `--workers N`).
open_connections = Gauge(
    "libnar_gateway_open_connections",
    "Client connections the gateway holds open now.",
    registry=_PROCESS_REGISTRY,
    multiprocess_mode="livesum",
)

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 60.0)
_WAIT_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0)


def is_multiprocess() -> bool:
    """Whether values are kept in `PROMETHEUS_MULTIPROC_DIR` for several processes."""
    return bool(os.environ.get(MULTIPROCESS_DIR))


class GatewayMetrics:
    """Every metric of one gateway app; `render()` is the `/metrics` answer."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        registry = self.registry
        self.events = Counter(
            "libnar_gateway_events",
            "SamaHub events answered, by source, flow and outcome (accepted, duplicate,"
            " rejected) and, for rejected ones, the reason.",
            ["source", "flow", "outcome", "reason"],
            registry=registry,
        )
        self.dispatched = Counter(
            "libnar_gateway_dispatched_events",
            "Stored events the dispatcher handled, by flow and outcome: created (a new run),"
            " existing (the run existed), rejected (with the reason), deferred (Prefect"
            " unavailable or failing: sent again later).",
            ["flow", "outcome", "reason"],
            registry=registry,
        )
        self.backlog = Gauge(
            "libnar_gateway_backlog_events",
            "Stored events waiting for their run (all replicas sharing the outbox).",
            registry=registry,
            multiprocess_mode="livemostrecent",
        )
        self.backlog_oldest = Gauge(
            "libnar_gateway_backlog_oldest_seconds",
            "Seconds the oldest stored event has waited for its run (0 when none waits).",
            registry=registry,
            multiprocess_mode="livemostrecent",
        )
        self.backlog_limit = Gauge(
            "libnar_gateway_backlog_limit",
            "LIBNAR_GATEWAY_MAX_BACKLOG: past it events are answered 503.",
            registry=registry,
            multiprocess_mode="livemax",
        )
        self.accept_to_run = Histogram(
            "libnar_gateway_accept_to_run_seconds",
            "Seconds from an event's acceptance to its run being created (or found).",
            registry=registry,
            buckets=_WAIT_BUCKETS,
        )
        self.prefect_seconds = Histogram(
            "libnar_gateway_prefect_request_seconds",
            "Seconds of each call to Prefect's API, retries included, by operation.",
            ["operation"],
            registry=registry,
            buckets=_LATENCY_BUCKETS,
        )
        self.escalations = Counter(
            "libnar_gateway_escalations",
            "Calls of /escalate (runs out of memory) by outcome: escalated, repeated,"
            " last_preset (nothing more runs: look at it), not_memory, not_listed.",
            ["outcome"],
            registry=registry,
        )
        self.prefect_errors = Counter(
            "libnar_gateway_prefect_errors",
            "Calls to Prefect's API that failed, by operation and kind (unavailable, unexpected).",
            ["operation", "kind"],
            registry=registry,
        )

    def count_escalation(self, outcome: str) -> None:
        """Count one `/escalate` call by its outcome."""
        self.escalations.labels(outcome=outcome).inc()

    def render(self) -> bytes:
        """The metrics in Prometheus' text format (every worker's, in multiprocess mode)."""
        if is_multiprocess():
            from prometheus_client import multiprocess

            merged = CollectorRegistry()
            multiprocess.MultiProcessCollector(merged)  # type: ignore[no-untyped-call]
            return generate_latest(merged)
        return generate_latest(self.registry) + generate_latest(_PROCESS_REGISTRY)


_FILE = re.compile(r"^gauge_live\w+?_(?P<pid>\d+)\.db$")


def forget_dead_processes() -> None:
    """Drop the live gauges of processes that are gone (workers that died or were replaced)."""
    folder = os.environ.get(MULTIPROCESS_DIR)
    if not folder:
        return
    from prometheus_client import multiprocess

    pids = set()
    for path in Path(folder).glob("gauge_live*.db"):
        match = _FILE.match(path.name)
        if match:
            pids.add(int(match["pid"]))
    for pid in pids:
        if not _is_alive(pid):
            multiprocess.mark_process_dead(pid, folder)  # type: ignore[no-untyped-call]


def _is_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
