"""Time to validate and plan one flow package, as `libnar validate` / `libnar build` do.

Generates PACKAGES flow packages in a temporary folder (a third with deploy.json schedules,
a third on narwhal with custom resources), imports Prefect and libnar first (a one-off cost of
every process, excluded), then checks and plans each package once.
Goal: under 50 ms a package. Also times writing the image recipe (the Dockerfile) of each
package, and checking it (parsing it back). Run: python benchmarks/bench_build.py [PACKAGES]
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

    from libnar._build import (
        check_package,
        check_recipe,
        make_plan,
        plan_to_prefect_yaml,
        write_recipe,
    )
    from libnar.settings import get_settings

    settings = get_settings()
    with tempfile.TemporaryDirectory(prefix="libnar-bench-build-") as tmp:
        root = Path(tmp)
        packages = write_packages(root, count)
        times = []
        recipe_times = []
        for package in packages:
            start = time.perf_counter()
            found = check_package(package, root)
            plan = make_plan(found, settings)
            plan_to_prefect_yaml(plan)
            times.append(time.perf_counter() - start)
            start = time.perf_counter()
            path = write_recipe(found, plan)
            assert check_recipe(path, plan) == []
            recipe_times.append(time.perf_counter() - start)
    total = sum(times)
    print(f"{count} packages: {total:.2f} s in all")
    print(
        f"per package: mean {1000 * total / count:.1f} ms, median"
        f" {1000 * statistics.median(times):.1f} ms, max {1000 * max(times):.1f} ms"
        f" (first {1000 * times[0]:.1f} ms)"
    )
    print("goal: under 50 ms a package:", "met" if total / count < 0.05 else "NOT met")
    print(
        f"image recipe (write + parse back): mean {1000 * sum(recipe_times) / count:.2f} ms,"
        f" median {1000 * statistics.median(recipe_times):.2f} ms a package"
    )


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 200)
