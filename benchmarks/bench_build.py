"""Time to validate and plan one flow package, as `libnar validate` / `libnar build` do.

Generates PACKAGES flow packages in a temporary folder (a third with deploy.json schedules,
a third on narwhal with custom resources), imports Prefect and libnar first (a one-off cost of
every process, excluded), then checks and plans each package once.
Goal: under 50 ms a package. Run: python benchmarks/bench_build.py [PACKAGES]
"""

from __future__ import annotations

import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

FLOW = '''"""Benchmark flow {i}."""

from libnar import DppEvent, DppResult, nps_flow


@nps_flow
def {name}(event: DppEvent, min_box_px: int = 4, label: str = "car") -> DppResult:
    """Send the answers back."""
    return event.result(answers=event.task.answers or {{}})
'''

TABLES = [
    'amount = "med"\ndisk = "50Gi"',
    'infra = "narwhal"\namount = "custom"\ncpu = "2"\nmemory = "8Gi"\ndisk = "40Gi"',
    'infra = "gke"\namount = "high"\ndeploy-json = true',
]
DEPLOY_JSON = {
    "deploy": [
        {"name": "nightly", "schedule": {"cron": "30 2 * * *", "timezone": "Europe/Paris"}},
        {"name": "hourly", "schedule": {"interval": 3600}, "parameters": {"min_box_px": 8}},
        {"name": "weekdays", "schedule": {"rrule": "FREQ=WEEKLY;BYDAY=MO,FR;BYHOUR=6"}},
    ]
}


def write_packages(root: Path, count: int) -> list[Path]:
    packages = []
    for i in range(count):
        name = f"ben{i}_boxes_ptp"
        package = root / "ben" / f"ben{i}" / name
        package.mkdir(parents=True)
        table = TABLES[i % len(TABLES)]
        (package / "pyproject.toml").write_text(
            f'[project]\nname = "{name}"\nversion = "1.0.{i}"\ndependencies = ["libnar"]\n\n'
            f"[sama-build]\n{table}\n"
        )
        (package / f"{name}.py").write_text(FLOW.format(i=i, name=name))
        if "deploy-json" in table:
            (package / "deploy.json").write_text(json.dumps(DEPLOY_JSON))
        packages.append(package)
    return packages


def main(count: int) -> None:
    # The one-off imports of every process are not what is measured.
    import prefect.client.schemas.schedules  # noqa: F401

    from libnar._build import check_package, make_plan, plan_to_prefect_yaml
    from libnar.settings import get_settings

    settings = get_settings()
    with tempfile.TemporaryDirectory(prefix="libnar-bench-build-") as tmp:
        root = Path(tmp)
        packages = write_packages(root, count)
        times = []
        for package in packages:
            start = time.perf_counter()
            plan = make_plan(check_package(package, root), settings)
            plan_to_prefect_yaml(plan)
            times.append(time.perf_counter() - start)
    total = sum(times)
    print(f"{count} packages: {total:.2f} s in all")
    print(
        f"per package: mean {1000 * total / count:.1f} ms, median"
        f" {1000 * statistics.median(times):.1f} ms, max {1000 * max(times):.1f} ms"
        f" (first {1000 * times[0]:.1f} ms)"
    )
    print("goal: under 50 ms a package:", "met" if total / count < 0.05 else "NOT met")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 200)
