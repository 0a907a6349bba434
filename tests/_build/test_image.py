"""The image of a flow package: its recipe, the prefect.yaml steps that build it, a replay."""

from __future__ import annotations

import importlib
import inspect
import io
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from dockerfile_parse import DockerfileParser
from typer.testing import CliRunner

from libnar._build import (
    check_package,
    discover_packages,
    image_recipe,
    make_plan,
    plan_to_prefect_yaml,
)
from libnar.cli import app
from tests._build.conftest import write_package

EXAMPLES = Path(__file__).parents[2] / "examples" / "flows"
runner = CliRunner(env={"COLUMNS": "300"})


def instructions(text: str) -> list[tuple[str, str]]:
    parser = DockerfileParser(fileobj=io.BytesIO(text.encode()))
    return [
        (i["instruction"], i["value"]) for i in parser.structure if i["instruction"] != "COMMENT"
    ]


def recipe_of(package: Path) -> str:
    found = check_package(package)
    return image_recipe(found, make_plan(found))


def copy_example(tmp_path: Path, name: str) -> Path:
    [source] = [p for p in discover_packages(EXAMPLES) if p.name == name]
    return Path(shutil.copytree(source, tmp_path / name))


def test_same_package_in_two_places_gives_the_same_recipe_byte_for_byte(tmp_path: Path) -> None:
    first = copy_example(tmp_path / "a", "fun69_boxes_ptp")
    second = copy_example(tmp_path / "b", "fun69_boxes_ptp")
    assert recipe_of(first) == recipe_of(second)


@pytest.mark.parametrize(
    ("table", "base"),
    [('pyver = "3.11"', "nps/nps-base:py3.11"), ('pyver = "3.13"', "nps/nps-base:py3.13")],
)
def test_recipe_installs_the_package_on_the_base_image_where_the_pull_step_starts(
    tmp_path: Path, table: str, base: str
) -> None:
    package = write_package(tmp_path, table)
    steps = instructions(recipe_of(package))
    assert steps[0] == ("FROM", base)
    pull = yaml.safe_load(plan_to_prefect_yaml(make_plan(check_package(package))))["pull"]
    directory = pull[0]["prefect.deployments.steps.set_working_directory"]["directory"]
    assert [v for k, v in steps if k == "WORKDIR"] == [directory]
    runs = [v for k, v in steps if k == "RUN"]
    assert runs[0] == "python -m pip install ."
    assert "load_flow_from_entrypoint('fun69_boxes_ptp.py:fun69_boxes_ptp'," in runs[-1]
    assert ("COPY", ". ./") in steps


def test_nps_ext_installers_run_after_the_package_is_installed(tmp_path: Path) -> None:
    package = write_package(
        tmp_path,
        'nps-ext = ["slam"]',
        project='version = "1.0.0"\ndependencies = ["libnar", "slamus"]',
    )
    runs = [v for k, v in instructions(recipe_of(package)) if k == "RUN"]
    assert runs[:2] == ["python -m pip install .", "python -m slamus install"]


def test_locked_dependencies_are_installed_first(tmp_path: Path) -> None:
    pinned = write_package(tmp_path / "req", files={"requirements.txt": "six==1.17.0\n"})
    steps = instructions(recipe_of(pinned))
    assert steps.index(("COPY", "requirements.txt ./")) < steps.index(("COPY", ". ./"))
    assert ("RUN", "python -m pip install -r requirements.txt") in steps
    uv = write_package(tmp_path / "uv", files={"uv.lock": "version = 1\n"})
    runs = [v for k, v in instructions(recipe_of(uv)) if k == "RUN"]
    assert "uv export --frozen --no-dev --no-emit-project" in runs[0]
    assert runs[0].startswith("python -m pip install uv==")


@pytest.mark.parametrize("name", [p.name for p in discover_packages(EXAMPLES)])
def test_build_writes_the_recipe_beside_prefect_yaml_with_build_and_push_steps(
    tmp_path: Path, name: str
) -> None:
    package = copy_example(tmp_path, name)
    result = runner.invoke(app, ["build", str(package)])
    assert result.exit_code == 0, result.output
    assert f"wrote {package / 'Dockerfile'}" in result.output
    document = yaml.safe_load((package / "prefect.yaml").read_text())
    [build] = document["build"]
    [push] = document["push"]
    plan = make_plan(check_package(package))
    step = build["prefect_docker.deployments.steps.build_docker_image"]
    assert f"{step['image_name']}:{step['tag']}" == plan.image
    assert step["dockerfile"] == "Dockerfile"
    assert (
        push["prefect_docker.deployments.steps.push_docker_image"]["tag"] == "{{ build-image.tag }}"
    )
    # Built once for the package: top-level steps, none per deployment, every deployment
    # running the image they build.
    for deployment in document["deployments"]:
        assert "build" not in deployment
        assert "push" not in deployment
        assert deployment["work_pool"]["job_variables"]["image"] == plan.image
    again = runner.invoke(app, ["build", str(package)])
    assert again.exit_code == 0
    assert (package / "Dockerfile").read_text() == recipe_of(package)


def test_image_registry_setting_names_the_image_built_and_pushed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LIBNAR_IMAGE_REGISTRY", "registry.example/nps")
    package = write_package(tmp_path)
    assert runner.invoke(app, ["build", str(package)]).exit_code == 0
    [build] = yaml.safe_load((package / "prefect.yaml").read_text())["build"]
    step = build["prefect_docker.deployments.steps.build_docker_image"]
    assert step["image_name"] == "registry.example/nps/fun69_boxes_ptp"
    assert instructions((package / "Dockerfile").read_text())[0] == (
        "FROM",
        "registry.example/nps/nps-base:py3.11",
    )


def test_build_does_not_overwrite_a_dockerfile_it_did_not_write(tmp_path: Path) -> None:
    package = write_package(tmp_path, files={"Dockerfile": "FROM python:3.11\n"})
    result = runner.invoke(app, ["build", str(package)])
    assert result.exit_code == 1
    assert "libnar build did not write it: set custom-image = true" in " ".join(
        result.output.split()
    )
    assert (package / "Dockerfile").read_text() == "FROM python:3.11\n"
    assert not (package / "prefect.yaml").exists()


GOOD_CUSTOM = """\
FROM python:3.11-slim
RUN apt-get update && apt-get install -y --no-install-recommends curl
WORKDIR /opt/prefect/fun69_boxes_ptp
COPY . ./
RUN python -m pip install .
"""


@pytest.mark.parametrize(
    ("dockerfile", "message"),
    [
        pytest.param(GOOD_CUSTOM, None, id="good"),
        pytest.param(
            GOOD_CUSTOM.replace("/opt/prefect/fun69_boxes_ptp", "/app"),
            "WORKDIR /app, but the deployments' pull step starts runs in"
            " /opt/prefect/fun69_boxes_ptp; end with WORKDIR /opt/prefect/fun69_boxes_ptp",
            id="workdir",
        ),
        pytest.param(
            "RUN echo\n" + GOOD_CUSTOM, "the first instruction must be FROM", id="no-from-first"
        ),
        pytest.param(
            GOOD_CUSTOM.replace("RUN python -m pip install .\n", ""),
            "nothing installs the package; add RUN python -m pip install .",
            id="no-install",
        ),
    ],
)
def test_a_custom_image_dockerfile_is_checked(
    tmp_path: Path, dockerfile: str, message: str | None
) -> None:
    package = write_package(tmp_path, "custom-image = true", files={"Dockerfile": dockerfile})
    result = runner.invoke(app, ["build", str(package)])
    output = " ".join(result.output.split())
    if message is None:
        assert result.exit_code == 0, result.output
        assert f"checked {package / 'Dockerfile'}" in output
        assert (package / "Dockerfile").read_text() == dockerfile  # used as it is
    else:
        assert result.exit_code == 1
        assert message in output


@pytest.mark.parametrize("name", [p.name for p in discover_packages(EXAMPLES)])
def test_each_step_names_a_prefect_docker_function_that_takes_its_arguments(name: str) -> None:
    """What `prefect deploy` imports and calls: a missing function or keyword fails here."""
    import docker

    [package] = [p for p in discover_packages(EXAMPLES) if p.name == name]
    document = yaml.safe_load(plan_to_prefect_yaml(make_plan(check_package(package))))
    steps: list[dict[str, Any]] = document["build"] + document["push"]
    assert steps
    for step in steps:
        [(path, arguments)] = step.items()
        module, _, function = path.rpartition(".")
        callable_ = getattr(importlib.import_module(module), function)
        kwargs = {k: v for k, v in arguments.items() if k not in ("id", "requires")}
        signature = inspect.signature(callable_)
        signature.bind(**kwargs)  # raises TypeError for an unknown or missing argument
        named = {p.name for p in signature.parameters.values() if p.kind is not p.VAR_KEYWORD}
        extra = set(kwargs) - named
        if extra:  # build_docker_image passes the rest to docker-py's build()
            assert set(inspect.signature(docker.APIClient.build).parameters) >= extra


def docker_daemon_answers() -> bool:
    docker = shutil.which("docker")
    if docker is None:
        return False
    return (
        subprocess.run([docker, "info"], capture_output=True, timeout=30, check=False).returncode
        == 0
    )


@pytest.mark.slow
@pytest.mark.skipif(not docker_daemon_answers(), reason="needs a Docker daemon (none answers here)")
def test_the_recipe_builds_an_image_that_loads_the_flow(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LIBNAR_BASE_IMAGE", "python:3.11-slim")
    package = copy_example(tmp_path, "fun69_boxes_ptp")
    plan = make_plan(check_package(package))
    (package / "Dockerfile").write_text(image_recipe(check_package(package), plan))
    subprocess.run(["docker", "build", "-t", plan.image, str(package)], check=True, timeout=1800)


@pytest.mark.slow
def test_check_replays_the_recipe_in_a_fresh_venv_and_loads_the_flow(tmp_path: Path) -> None:
    package = copy_example(tmp_path, "fun69_boxes_ptp")
    result = runner.invoke(app, ["build", str(package), "--check"])
    assert result.exit_code == 0, result.output
    assert "install steps ran and flow fun69_boxes_ptp loaded from its entrypoint" in result.output


@pytest.mark.slow
def test_check_fails_a_package_whose_flow_imports_what_it_does_not_declare(
    tmp_path: Path,
) -> None:
    """respx is installed here (the test extra) but not in the flow's dependencies."""
    original = (EXAMPLES / "fun" / "fun69" / "fun69_boxes_ptp" / "fun69_boxes_ptp.py").read_text()
    future = "from __future__ import annotations\n"
    source = original.replace(future, future + "import respx  # noqa: F401\n")
    package = copy_example(tmp_path, "fun69_boxes_ptp")
    (package / "fun69_boxes_ptp.py").write_text(source)
    assert runner.invoke(app, ["validate", str(package)]).exit_code == 0  # fine here
    result = runner.invoke(app, ["build", str(package), "--check"])
    assert result.exit_code == 1
    output = " ".join(result.output.split())
    # The recipe's own check fails, as `docker build` would: the flow does not load.
    assert "load_flow_from_entrypoint('fun69_boxes_ptp.py:fun69_boxes_ptp'" in output
    assert "failed (exit 1) in a fresh venv" in output
    assert "No module named 'respx'" in output


@pytest.mark.slow
def test_check_fails_a_package_whose_dependencies_do_not_install(tmp_path: Path) -> None:
    package = write_package(
        tmp_path,
        project='version = "1.0.0"\ndependencies = ["libnar", "no-such-package-libnar-test==0.0.1"]',
    )
    result = runner.invoke(app, ["build", str(package), "--check", "--check-timeout", "300"])
    assert result.exit_code == 1
    output = " ".join(result.output.split())
    assert "RUN python -m pip install . failed" in output
    assert "no-such-package-libnar-test" in output
