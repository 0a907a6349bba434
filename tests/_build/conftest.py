"""Fixtures for the build tests.

Until `libnar.flow` lands on main, a small stand-in with the same interface (`nps_flow`,
`NpsFlow.check_parameters`) is installed, so the build can be tested against it.
"""

from __future__ import annotations

import importlib.util
import inspect
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import types
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import TypeAdapter, ValidationError

_LIBNAR_EXTRAS = ("project_id", "task_id", "round", "param", "dep_name", "no_round")


def _install_flow_stand_in() -> None:
    from prefect import Flow

    class NpsFlow(Flow):  # type: ignore[type-arg]
        def check_parameters(self, parameters: Mapping[str, Any]) -> list[str]:
            signature = inspect.signature(self.fn)
            accepted = [*signature.parameters, *_LIBNAR_EXTRAS]
            problems = []
            for name, value in parameters.items():
                if name in _LIBNAR_EXTRAS:
                    continue
                if name not in signature.parameters:
                    problems.append(f"unknown parameter {name!r}; accepted: {', '.join(accepted)}")
                    continue
                annotation = signature.parameters[name].annotation
                try:
                    TypeAdapter(annotation).validate_python(value)
                except ValidationError as error:
                    message = error.errors()[0]["msg"].lower()
                    problems.append(f"parameter {name}: found {value!r}; expected {message}")
            return problems

    def nps_flow(fn: Callable[..., Any] | None = None, /, **options: Any) -> Any:
        def wrap(function: Callable[..., Any]) -> NpsFlow:
            return NpsFlow(function, **{"name": function.__name__, **options})

        return wrap(fn) if fn is not None else wrap

    module = types.ModuleType("libnar.flow")
    module.NpsFlow = NpsFlow  # type: ignore[attr-defined]
    module.nps_flow = nps_flow  # type: ignore[attr-defined]
    module.ParameterError = ValueError  # type: ignore[attr-defined]
    sys.modules["libnar.flow"] = module


if importlib.util.find_spec("libnar.flow") is None:
    _install_flow_stand_in()


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


@pytest.fixture(scope="session")
def prefect_api() -> Iterator[str]:
    """A real `prefect server` on 127.0.0.1 for the session; yields its API URL.

    Stopped (and its temporary PREFECT_HOME removed) at the end of the session.
    """
    from prefect.settings import PREFECT_API_URL, temporary_settings

    home = tempfile.TemporaryDirectory(prefix="libnar-build-prefect-")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"http://127.0.0.1:{port}/api"
    env = {
        **os.environ,
        "PREFECT_HOME": home.name,
        "DO_NOT_TRACK": "1",
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_SERVER_UI_ENABLED": "false",
        "PREFECT_API_URL": url,
    }
    command = [sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1"]
    log = Path(home.name) / "server.log"
    with log.open("wb") as sink:
        server = subprocess.Popen([*command, "--port", str(port)], env=env, stdout=sink, stderr=sink)
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if server.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"prefect server did not start:\n{log.read_text()[-2000:]}")
            time.sleep(0.5)
        previous = os.environ.get("PREFECT_API_URL")
        os.environ["PREFECT_API_URL"] = url
        try:
            with temporary_settings(updates={PREFECT_API_URL: url}):
                yield url
        finally:
            if previous is None:
                os.environ.pop("PREFECT_API_URL", None)
            else:
                os.environ["PREFECT_API_URL"] = previous
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        home.cleanup()
