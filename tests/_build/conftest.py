"""Helpers for the build tests: write a flow package, list its problems."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

FLOW_SOURCE = '''"""A test flow."""

from libnar import DppEvent, DppResult, nps_flow


@nps_flow
def {name}(event: DppEvent, min_box_px: int = 4) -> DppResult:
    """Send the answers back."""
    return event.result(answers=event.task.answers or {{}})
'''


def write_package(
    root: Path,
    sama_build: str = "",
    *,
    name: str = "fun69_boxes_ptp",
    deploy_json: Any = None,
    project: str = 'version = "1.0.0"\ndependencies = ["libnar"]',
    source: str | None = None,
    files: Mapping[str, str] | None = None,
) -> Path:
    """Write a flow package `root/name` and return its folder."""
    package = root / name
    package.mkdir(parents=True, exist_ok=True)
    (package / "pyproject.toml").write_text(
        f'[project]\nname = "{name}"\n{project}\n\n[sama-build]\n{sama_build}\n'
    )
    (package / f"{name}.py").write_text(
        source if source is not None else FLOW_SOURCE.format(name=name)
    )
    if deploy_json is not None:
        text = deploy_json if isinstance(deploy_json, str) else json.dumps(deploy_json)
        (package / "deploy.json").write_text(text)
    for relative, text in (files or {}).items():
        (package / relative).parent.mkdir(parents=True, exist_ok=True)
        (package / relative).write_text(text)
    return package


def problems_of(package: Path, flows_root: Path | None = None) -> list[str]:
    """Every problem `check_package` finds, as text; an empty list when the package is valid."""
    from libnar._build import BuildError, check_package

    try:
        check_package(package, flows_root)
    except BuildError as error:
        return [str(problem) for problem in error.problems]
    return []
