"""Per-run cost of an @nps_flow flow against a bare prefect.flow with the same body.

Both run in one process against one local Prefect server, with the same settings (flow
heartbeat off), interleaved so machine noise hits both alike. The @nps_flow side does its
extra work: parse the event from a dict, coerce a parameter, name and tag the run.
Goal: a median ratio of at most 1.10x. Run: python benchmarks/bench_flow.py [RUNS]
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("PREFECT_HOME", tempfile.mkdtemp(prefix="libnar-bench-"))
os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
os.environ["DO_NOT_TRACK"] = "1"
os.environ["PREFECT_LOGGING_LEVEL"] = "WARNING"

from libnar.testing import PrefectServer

EVENT: dict[str, Any] = json.loads(
    (Path(__file__).parents[1] / "examples" / "events" / "dpp_event.json").read_text()
)


def body(task: dict[str, Any], min_box_px: int) -> int:
    return len(task.get("answers") or {}) + min_box_px


def main(runs: int) -> None:
    with PrefectServer() as server:
        from prefect import flow
        from prefect.settings import (
            PREFECT_API_URL,
            PREFECT_FLOWS_HEARTBEAT_FREQUENCY,
            temporary_settings,
        )

        from libnar import DppEvent, nps_flow

        @flow(name="bare-flow")
        def bare(event: dict[str, Any], min_box_px: int = 4) -> int:
            return body(event["task"], min_box_px)

        @nps_flow(submit_result=False)
        def fun69_bench_ptp(event: DppEvent, min_box_px: int = 4) -> int:
            return body(event.task.model_dump(), min_box_px)

        settings = {PREFECT_API_URL: server.api_url, PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None}
        timings: dict[str, list[float]] = {"bare prefect.flow": [], "@nps_flow": []}
        with temporary_settings(updates=settings):
            for _ in range(3):  # warm up both: imports, flow registration, connections
                bare(EVENT, min_box_px="5")
                fun69_bench_ptp(EVENT, min_box_px="5")
            for _ in range(runs):
                for label, fn in (("bare prefect.flow", bare), ("@nps_flow", fun69_bench_ptp)):
                    started = time.perf_counter()
                    fn(EVENT, min_box_px="5")
                    timings[label].append(time.perf_counter() - started)
    base = statistics.median(timings["bare prefect.flow"])
    print(f"{runs} runs each, heartbeat off, one local Prefect server")
    for label, values in timings.items():
        median = statistics.median(values)
        print(
            f"{label:>18}: median {median * 1e3:7.1f} ms  min {min(values) * 1e3:7.1f} ms"
            f"  ratio {median / base:5.2f}x"
        )


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 40)
