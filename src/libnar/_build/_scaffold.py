"""`libnar init`: write a new flow package that follows every NPS rule and passes its test."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

from libnar.naming import check_script_name, default_deployment_names

__all__ = ["ScaffoldError", "package_name", "write_flow_package"]

ScriptType = Literal["ptp", "prp", "utl"]
EventKind = Literal["webhook", "dpp", "none"]


class ScaffoldError(ValueError):
    """The package cannot be written: a bad name, or the folder exists already."""


def package_name(name: str, script_type: ScriptType = "ptp") -> str:
    """The compliant script name for `name` and a type (`fun69_boxes` + ptp -> `fun69_boxes_ptp`).

    Raises:
        ScaffoldError: the result breaks the naming rule; the message has a compliant name.
    """
    stem = name.strip().removesuffix(".py")
    if script_type == "utl":
        full = stem if stem.startswith("utl_") else f"utl_{stem}"
    else:
        full = stem if stem.endswith(f"_{script_type}") else f"{stem}_{script_type}"
    if problem := check_script_name(full):
        raise ScaffoldError(problem)
    return full


def write_flow_package(
    name: str,
    script_type: ScriptType = "ptp",
    event: EventKind = "dpp",
    flows_dir: Path = Path("flows"),
    *,
    schedules: Sequence[str] = (),
    timezone: str = "UTC",
    custom_image: bool = False,
) -> Path:
    """Write a flow package under `flows_dir/<client>/<code>/<name>/`; return its folder.

    The layout follows NPS: `fun69_boxes_ptp` goes to `flows/fun/fun69/fun69_boxes_ptp/`, a
    utility `utl_x` to `flows/utl/utl_x/`. Each cron expression of `schedules` becomes a
    deployment in `deploy.json` (with `deploy-json = true`); `custom_image` writes the
    package's own `Dockerfile` (with `custom-image = true`), starting from the recipe
    `libnar build` would write.

    Raises:
        ScaffoldError: a bad name, a bad schedule, or the package folder exists already.
    """
    from libnar import __version__
    from libnar._build._deploy_json import check_schedule

    for cron in schedules:
        for _, message in check_schedule({"cron": cron, "timezone": timezone}):
            raise ScaffoldError(f"--schedule {cron!r} / --timezone {timezone!r}: {message}")
    full = package_name(name, script_type)
    code = full.split("_", 1)[0]
    client = re.match(r"[a-z]+", code)
    root = flows_dir / "utl" / full if code == "utl" else flows_dir / client.group(0) / code / full  # type: ignore[union-attr]
    if root.exists():
        raise ScaffoldError(f"{root} exists already; choose another name or remove it")
    (root / "tests").mkdir(parents=True)
    extra_keys = ("deploy-json = true\n" if schedules else "") + (
        "custom-image = true\n" if custom_image else ""
    )
    files = {
        "pyproject.toml": _PYPROJECT.format(
            name=full, project=full.replace("_", "-"), libnar=__version__
        )
        + extra_keys,
        f"{full}.py": _FLOW[event].format(name=full),
        f"tests/test_{full}.py": _TEST[event].format(name=full),
        "README.md": _README.format(
            name=full, event=f" --event sample_{event}_event.json" if event != "none" else ""
        ),
    }
    if event != "none":
        files[f"sample_{event}_event.json"] = json.dumps(_sample(event, full), indent=2) + "\n"
    if schedules:
        names = default_deployment_names(full, len(schedules))
        entries = [
            {"name": n, "schedule": {"cron": cron, "timezone": timezone}}
            for n, cron in zip(names, schedules, strict=True)
        ]
        files["deploy.json"] = json.dumps({"deploy": entries}, indent=2) + "\n"
    if custom_image:
        files["Dockerfile"] = "# placeholder\n"  # written below, once the package can be read
    for relative, text in files.items():
        (root / relative).write_text(text, encoding="utf-8")
    if custom_image:
        (root / "Dockerfile").write_text(_custom_dockerfile(root), encoding="utf-8")
    return root


def _custom_dockerfile(root: Path) -> str:
    """The recipe `libnar build` would write, as the package's own to edit."""
    from libnar._build._image import GENERATED_MARK, image_recipe
    from libnar._build._package import check_package
    from libnar._build._plan import base_image, make_plan
    from libnar.settings import get_settings

    package = check_package(root)
    plan = make_plan(package)
    plan = plan.model_copy(update={"image_base": base_image(package.config.pyver, get_settings())})
    lines = image_recipe(package, plan).splitlines()
    assert lines[0].startswith(GENERATED_MARK)
    head = [
        "# The image recipe of this package (custom-image = true): yours to edit; libnar build",
        "# checks it (FROM first, WORKDIR where the pull step starts runs, the package installed)",
        "# and never rewrites it.",
    ]
    system = [
        "# System packages the flow needs, e.g.:",
        "# RUN apt-get update && apt-get install -y --no-install-recommends curl \\",
        "#     && rm -rf /var/lib/apt/lists/*",
    ]
    start = next(i for i, line in enumerate(lines) if line.startswith("FROM "))
    return "\n".join([*head, *lines[1 : start + 1], *system, *lines[start + 1 :]]) + "\n"


def _rectangle(index: int, x1: int, y1: int, x2: int, y2: int, **tags: str) -> dict[str, object]:
    """A vector-layer group of one rectangle; corners top-left, top-right, bottom-left, bottom-right."""
    points = [[x1, y1], [x2, y1], [x1, y2], [x2, y2]]
    shape = {"type": "rectangle", "index": index, "points": points, "tags": tags}
    return {"group_type": None, "shapes": [shape]}


def _sample(event: EventKind, name: str) -> dict[str, object]:
    """A sample event in SamaHub's delivery format, the same as libnar's `examples/events/`."""
    sign = {
        "type": "polygon",
        "index": 4,
        "points": [[5, 5], [9, 5], [7, 8]],
        "tags": {"label": "sign"},
    }
    task: dict[str, object] = {
        "id": "64b7f0c2a1e3d4f5a6b7c8d9",
        "project_id": 10423,
        "state": "delivered",
        "created_at": "2023-11-22T18:04:11.052Z",
        "delivered_at": "2023-11-23T02:31:07.712Z",
        "data": {"image_url": "https://assets.example.invalid/frames/000123.jpg"},
        "answers": {
            "image": {
                "layers": {
                    "vector_tagging": [
                        _rectangle(1, 10, 10, 60, 40, label="car", occluded="0"),
                        _rectangle(2, 100, 100, 102, 103, label="car", occluded="1"),
                        _rectangle(3, 200, 50, 260, 120, label="truck", occluded="0"),
                        {"group_type": None, "shapes": [sign]},
                    ]
                }
            },
            "weather": "sunny",
            "quality": {"blurry": "0", "dark": "1"},
        },
    }
    if event == "dpp":
        return {"name": name, "parameters": {}, "task": {**task, "round": 1}}
    return {"task": task}


_README = """\
# {name}

- Run it once on a local Prefect: `libnar run {name}.py{event}`
- Run the tests (they need pytest and respx: `pip install pytest respx`): `pytest`
- Check the build: `libnar validate .`
"""

_PYPROJECT = """\
[project]
name = "{project}"
version = "0.1.0"
description = "NPS flow {name}."
requires-python = ">=3.11"
# libnar is on no public index: install it first from your package index, a git URL or a
# wheel (libnar's docs: Getting started, Install); then this line finds it.
dependencies = ["libnar>={libnar}"]

# How NPS builds and deploys this flow: see `libnar validate` and the build docs.
[sama-build]
amount = "low"
"""

_FLOW = {
    "dpp": '''\
"""{name}: delivery post-processing of one SamaHub task."""

from __future__ import annotations

from typing import Any

from libnar import DppEvent, DppResult, nps_flow


def process(answers: dict[str, Any]) -> dict[str, Any]:
    """The post-processing itself: return the answers SamaHub should deliver."""
    return answers


@nps_flow
def {name}(event: DppEvent) -> DppResult:
    """Post-process the task's answers and send them back to SamaHub."""
    return event.result(answers=process(event.task.answers or {{}}))
''',
    "webhook": '''\
"""{name}: handle a SamaHub webhook for one task."""

from __future__ import annotations

from typing import Any

from libnar import WebhookEvent, nps_flow


def process(answers: dict[str, Any]) -> dict[str, Any]:
    """The work itself, on the task's answers."""
    return {{"answer_keys": sorted(answers)}}


@nps_flow
def {name}(event: WebhookEvent) -> dict[str, Any]:
    """Process the task that SamaHub reported."""
    return process(event.task.answers or {{}})
''',
    "none": '''\
"""{name}: a flow that runs on a schedule (no SamaHub event)."""

from __future__ import annotations

from libnar import nps_flow


def process(batch_size: int) -> int:
    """The work itself; return how many items were handled."""
    return batch_size


@nps_flow
def {name}(batch_size: int = 100) -> int:
    """Run one batch."""
    return process(batch_size)
''',
}

_TEST_HEAD = '''\
"""Tests of {name}: the build is valid and the flow runs on a real Prefect.

`prefect_server` (from libnar.testing) starts one Prefect server for the test session.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from libnar.testing import assert_build_valid

PACKAGE = Path(__file__).parents[1]
sys.path.insert(0, str(PACKAGE))  # the flow script sits beside tests/, as in its image

from {name} import {name}  # noqa: E402


def test_build_is_valid() -> None:
    assert_build_valid(PACKAGE)
'''

_TEST = {
    "dpp": _TEST_HEAD
    + """

@pytest.mark.usefixtures("prefect_server")
def test_sample_event_goes_back_to_samahub(fake_samahub) -> None:
    from libnar import DppEvent

    event = DppEvent.model_validate(json.loads((PACKAGE / "sample_dpp_event.json").read_text()))
    fake_samahub.add_event(event)  # the result goes back to the fake, never to SamaHub
    result = {name}(event)
    assert result.answers == event.task.answers
    assert len(fake_samahub.calls("post_processed")) == 1
""",
    "webhook": _TEST_HEAD
    + """

@pytest.mark.usefixtures("prefect_server")
def test_sample_event_is_processed() -> None:
    from libnar import WebhookEvent

    event = WebhookEvent.model_validate(
        json.loads((PACKAGE / "sample_webhook_event.json").read_text())
    )
    assert {name}(event) == {{"answer_keys": ["image", "quality", "weather"]}}
""",
    "none": _TEST_HEAD
    + """

@pytest.mark.usefixtures("prefect_server")
def test_a_batch_is_processed() -> None:
    assert {name}(batch_size=3) == 3
""",
}
