"""A flow package on disk: find it, read it, import its flow, and list everything wrong with it.

A flow package is a folder with a `pyproject.toml` and a flow script named after the folder
(`fun69_boxes_ptp/fun69_boxes_ptp.py`) that defines one `@nps_flow`. `check_package` reads
all of it and raises one `BuildError` with every problem, so a user fixes them in one go.
"""

from __future__ import annotations

import json
import re
import tomllib
import traceback
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, ValidationError

from libnar._build._config import SamaBuild, translate_errors
from libnar._build._deploy_json import DeploymentSpec, check_deploy_json
from libnar._build._errors import BuildError, BuildProblem
from libnar.naming import check_path_part, check_script_name, default_deployment_names

if TYPE_CHECKING:
    from libnar.flow import NpsFlow

__all__ = ["FlowPackage", "check_package", "check_packages", "discover_packages", "load_flow"]

_SKIP_DIRS = {"__pycache__", "node_modules", "venv", "build", "dist", "site"}
_SAMA_BUILD_KEYS = sorted(field.alias or name for name, field in SamaBuild.model_fields.items())
_DEPRECATED = {
    "skip-deploy": "skip-deploy is deprecated and ignored: every flow is deployed; remove it",
    "workspace": "workspace is deprecated and ignored: every flow deploys to the production"
    " workspace; remove it",
}


class FlowPackage(BaseModel):
    """A flow package that passed every check: what the plan is made from."""

    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)

    root: Path
    name: str
    """The package folder's name, which is also the flow script's name."""
    version: str
    flow_name: str
    flow_description: str | None
    entrypoint: str
    """`<script>.py:<function>`, relative to `root`."""
    config: SamaBuild
    dependencies: list[str]
    deployments: list[DeploymentSpec]
    parameter_schema: dict[str, Any]
    warnings: list[BuildProblem] = []


def discover_packages(path: Path) -> list[Path]:
    """Flow package folders at or under `path` (a folder with a `pyproject.toml`), sorted."""
    if (path / "pyproject.toml").is_file():
        return [path]
    return sorted(_iter_packages(path))


def _iter_packages(folder: Path) -> Iterator[Path]:
    for child in sorted(folder.iterdir()):
        if not child.is_dir() or child.name.startswith(".") or child.name in _SKIP_DIRS:
            continue
        if (child / "pyproject.toml").is_file():
            yield child
        else:
            yield from _iter_packages(child)


def check_packages(path: Path) -> list[tuple[Path, FlowPackage | BuildError]]:
    """Check every flow package at or under `path`: each with its result or its problems."""
    results: list[tuple[Path, FlowPackage | BuildError]] = []
    for root in discover_packages(path):
        try:
            results.append((root, check_package(root, path)))
        except BuildError as error:
            results.append((root, error))
    return results


def check_package(root: Path, flows_root: Path | None = None) -> FlowPackage:
    """Read and check the flow package at `root`; raise `BuildError` listing every problem.

    `flows_root` is the folder the package was found under: the names of the folders between
    the two are checked too.
    """
    problems: list[BuildProblem] = []
    pyproject = root / "pyproject.toml"

    def add(file: Path, message: str, key: str | None = None, line: int | None = None) -> None:
        problems.append(BuildProblem(file=file, message=message, key=key, line=line))

    # Names: the folders down to the package, the package (= script) name, its Python files.
    name = root.resolve().name
    parts = root.resolve().relative_to(flows_root.resolve()).parts if flows_root else ()
    for folder in parts[:-1]:
        if problem := check_path_part(folder):
            add(root, f"folder {problem}")
    if problem := check_script_name(name):
        add(root, f"package folder {problem} (the folder and its flow script share the name)")
    for file in sorted(_iter_python_files(root)):
        if problem := check_path_part(file.name):
            add(file, f"file {problem}")

    # pyproject.toml: [project] and [sama-build].
    text = pyproject.read_text(encoding="utf-8")
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        line = re.search(r"line (\d+)", str(error))
        add(pyproject, f"not valid TOML: {error}", line=int(line.group(1)) if line else None)
        raise BuildError(problems) from None
    project: dict[str, Any] = document.get("project") or {}
    if not isinstance(project, dict):
        project = {}
    version = project.get("version")
    if not isinstance(version, str) or not version:
        add(
            pyproject,
            'is required, e.g. version = "0.1.0"',
            "project.version",
            _line(text, "project", "version"),
        )
    dependencies = [str(d) for d in project.get("dependencies", []) if isinstance(d, str)]
    names = {_requirement_name(d) for d in dependencies}
    if "libnar" not in names:
        add(
            pyproject,
            'libnar is missing: the flow imports it at run time; add "libnar>=5" to the list',
            "project.dependencies",
            _line(text, "project", "dependencies"),
        )

    table = document.get("sama-build", {})
    warnings: list[BuildProblem] = []
    config: SamaBuild | None = None
    if not isinstance(table, dict):
        add(pyproject, "expected a table: [sama-build]", "sama-build")
    else:
        for key, message in _DEPRECATED.items():
            if key in table:
                warnings.append(
                    BuildProblem(
                        file=pyproject,
                        key=f"sama-build.{key}",
                        line=_line(text, "sama-build", key),
                        message=message,
                        level="warning",
                    )
                )
        try:
            config = SamaBuild.model_validate(
                table, context={"root": root, "dependencies": sorted(names)}
            )
        except ValidationError as error:
            for key, message in translate_errors(error, _SAMA_BUILD_KEYS):
                top = key.split(".", 1)[0]
                add(pyproject, message, f"sama-build.{key}", _line(text, "sama-build", top))
        if config is not None:
            warnings += _ignored_keys(config, table, pyproject, text)

    # The flow script and its flow.
    script = root / f"{name}.py"
    flow: NpsFlow[Any, Any] | None = None
    function = ""
    if not script.is_file():
        add(
            script,
            f"the flow script is missing: a package's flow lives in <package>/<package>.py ({name}.py)",
        )
    else:
        flow, function, load_problems = load_flow(script)
        problems += load_problems

    # Deployments: deploy.json, deploy-list or deploy-num, in that order.
    deployments: list[DeploymentSpec] = []
    if config is not None and flow is not None:
        deployments = _deployments(root, config, flow, problems)

    if problems or config is None or flow is None or not isinstance(version, str):
        raise BuildError(problems)
    return FlowPackage(
        root=root,
        name=name,
        version=version,
        flow_name=flow.name,
        flow_description=flow.description,
        entrypoint=f"{script.name}:{function}",
        config=config,
        dependencies=dependencies,
        deployments=deployments,
        parameter_schema=flow.parameters.model_dump(mode="json"),
        warnings=warnings,
    )


def _deployments(
    root: Path, config: SamaBuild, flow: Any, problems: list[BuildProblem]
) -> list[DeploymentSpec]:
    if not config.deploy_json:
        names = config.deploy_list or default_deployment_names(flow.name, config.deploy_num)
        return [DeploymentSpec(name=n) for n in names]
    path = root / "deploy.json"
    if not path.is_file():
        problems.append(
            BuildProblem(
                file=path,
                message="deploy-json = true needs deploy.json at the package root; add it"
                " (libnar deploy-json FLOW prints one) or set deploy-json = false",
            )
        )
        return []
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        problems.append(
            BuildProblem(file=path, line=error.lineno, message=f"not valid JSON: {error.msg}")
        )
        return []
    specs, found = check_deploy_json(data)
    problems += [
        BuildProblem(file=path, key=key or None, message=message) for key, message in found
    ]
    # Parameters are checked for every entry, also one whose schedule is wrong.
    entries = data.get("deploy") if isinstance(data, dict) else None
    for index, entry in enumerate(entries if isinstance(entries, list) else []):
        parameters = entry.get("parameters") if isinstance(entry, dict) else None
        for line in _default_parameter_problems(flow, parameters):
            key = f"deploy[{index}].parameters"
            problems.append(BuildProblem(file=path, key=key, message=line))
    return specs


def _default_parameter_problems(flow: NpsFlow[Any, Any], parameters: Any) -> list[str]:
    """Problems of a deployment's default parameters.

    A deployment holds defaults: the event (or project_id/task_id) and any other value can come
    with each run, so only wrong values are problems, not missing ones.
    """
    if not isinstance(parameters, dict):
        return []
    return flow.check_parameters(parameters, partial=True)


def _ignored_keys(
    config: SamaBuild, table: dict[str, Any], pyproject: Path, text: str
) -> list[BuildProblem]:
    """Warn about keys that a key of higher precedence makes pointless."""
    ignored: list[tuple[str, str]] = []
    if config.deploy_json:
        ignored += [(k, "deploy-json = true") for k in ("deploy-list", "deploy-num") if k in table]
    elif config.deploy_list and "deploy-num" in table:
        ignored.append(("deploy-num", "deploy-list is set"))
    return [
        BuildProblem(
            file=pyproject,
            key=f"sama-build.{key}",
            line=_line(text, "sama-build", key),
            message=f"is ignored because {reason}; remove it",
            level="warning",
        )
        for key, reason in ignored
    ]


def load_flow(script: Path) -> tuple[NpsFlow[Any, Any] | None, str, list[BuildProblem]]:
    """Import a flow script and find its one `@nps_flow`: `(flow, function name, problems)`."""
    from libnar.flow._loading import FlowLoadError
    from libnar.flow._loading import load_flow as import_flow

    try:
        flow = import_flow(str(script))
    except FlowLoadError as error:
        cause = error.__cause__
        frames = traceback.extract_tb(cause.__traceback__) if cause else []
        line = next(
            (f.lineno for f in reversed(frames) if f.filename == str(script.resolve())), None
        )
        message = str(error).removeprefix(f"{script}: ")
        if message.startswith("several flows"):
            message = message.split(";")[0] + "; keep one @nps_flow per package"
        return None, "", [BuildProblem(file=script, line=line, message=message)]
    return flow, flow.user_fn.__name__, []


def _iter_python_files(root: Path) -> Iterator[Path]:
    for child in root.iterdir():
        if child.name.startswith(".") or child.name in _SKIP_DIRS:
            continue
        if child.is_dir():
            yield from _iter_python_files(child)
        elif child.suffix == ".py":
            yield child


def _requirement_name(requirement: str) -> str:
    name = re.split(r"[\s<>=!~;\[(@]", requirement.strip(), maxsplit=1)[0]
    return re.sub(r"[-_.]+", "-", name).lower()


def _line(text: str, table: str, key: str) -> int | None:
    """The line of `key = ...` in `[table]` of a TOML text (tomllib keeps no positions)."""
    in_table = False
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if line.startswith("["):
            in_table = line.strip("[] ").strip('"') == table
        elif in_table and re.match(rf'^"?{re.escape(key)}"?\s*=', line):
            return number
    return None
