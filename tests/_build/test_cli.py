"""`libnar validate` and `libnar build`: what a user sees and the exit codes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from libnar.cli import app
from tests._build.conftest import write_package

EXAMPLES = Path(__file__).parents[2] / "examples" / "flows"
runner = CliRunner(env={"COLUMNS": "400"})


def test_validate_examples_prints_a_one_line_summary() -> None:
    result = runner.invoke(app, ["validate", str(EXAMPLES)])
    assert result.exit_code == 0, result.output
    assert result.output.strip() == "ok 4 flow packages valid (9 deployments)"


def test_validate_reports_every_problem_grouped_by_package_and_exits_1(tmp_path: Path) -> None:
    write_package(tmp_path / "fun", name="fun69_a_ptp", sama_build='ammount = "low"\ndisk = "1Ti"')
    write_package(tmp_path / "fun", name="fun69_b_ptp")
    write_package(tmp_path / "fun", name="fun69_c_pos_proc", sama_build='infra = "narwal"')
    result = runner.invoke(app, ["validate", str(tmp_path)])
    assert result.exit_code == 1
    output = " ".join(result.output.split())  # rich wraps long lines
    assert f"x {tmp_path / 'fun' / 'fun69_a_ptp'} (2 problems)" in output
    assert 'sama-build.ammount: unknown key (did you mean "amount"?)' in output
    assert 'sama-build.disk: "1Ti" is not a size in Mi or Gi' in output
    assert f"x {tmp_path / 'fun' / 'fun69_c_pos_proc'} (2 problems)" in output
    assert "use 'fun69_c_ptp'" in output
    assert "fun69_b_ptp" not in output
    assert "2 of 3 flow packages have problems" in output


def test_validate_shows_deprecation_warnings_and_passes(tmp_path: Path) -> None:
    write_package(tmp_path, 'workspace = "test"')
    result = runner.invoke(app, ["validate", str(tmp_path)])
    assert result.exit_code == 0
    assert "workspace is deprecated and ignored" in result.output
    assert "ok 1 flow package valid (1 deployment)" in result.output


def test_messages_print_brackets_as_written_not_as_markup(tmp_path: Path) -> None:
    write_package(tmp_path, 'nps-ext = ["slam"]')
    result = runner.invoke(app, ["validate", str(tmp_path)])
    assert result.exit_code == 1
    assert "needs the 'slamus' package in the flow's [project].dependencies" in result.output


def test_validate_without_packages_is_a_usage_error(tmp_path: Path) -> None:
    result = runner.invoke(app, ["validate", str(tmp_path)])
    assert result.exit_code == 2
    assert "no flow package (a folder with a pyproject.toml)" in result.output


@pytest.mark.parametrize(
    "args",
    [["validate"], ["validate", "nope"], ["build", "nope"], ["deploy"], ["deploy", "nope"]],
    ids=["validate-default-flows", "validate", "build", "deploy-default-flows", "deploy"],
)
def test_a_missing_path_is_one_line_and_exit_2(
    args: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # no flows/ folder here
    result = runner.invoke(app, args)
    assert result.exit_code == 2, result.output
    missing = args[1] if len(args) > 1 else "flows"
    assert result.output.startswith(f"error: {missing}: no such folder; give a flow package")
    assert len(result.output.strip().splitlines()) == 1, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)


def test_a_file_instead_of_a_folder_is_one_line_and_exit_2(tmp_path: Path) -> None:
    (tmp_path / "flow.py").write_text("")
    result = runner.invoke(app, ["validate", str(tmp_path / "flow.py")])
    assert result.exit_code == 2
    assert "flow.py: not a folder" in result.output


def test_build_writes_prefect_yaml_and_prints_a_table(tmp_path: Path) -> None:
    package = write_package(tmp_path, 'infra = "narwhal"\ndisk = "40Gi"')
    result = runner.invoke(app, ["build", str(package)])
    assert result.exit_code == 0, result.output
    assert "fun69_boxes_ptp_deploy" in result.output
    assert "narpool-aws-us / narq_fun69_boxes_ptp" in result.output
    document = yaml.safe_load((package / "prefect.yaml").read_text())
    assert document["deployments"][0]["work_pool"]["job_variables"]["ephemeral_storage"] == 40


def test_build_prints_json_and_yaml_and_honours_output(tmp_path: Path) -> None:
    package = write_package(tmp_path)
    target = tmp_path / "out.yaml"
    as_json = runner.invoke(
        app, ["build", str(package), "--format", "json", "--output", str(target)]
    )
    assert as_json.exit_code == 0, as_json.output
    plan = json.loads(as_json.stdout)
    assert plan["deployments"][0]["name"] == "fun69_boxes_ptp_deploy"
    as_yaml = runner.invoke(
        app, ["build", str(package), "--format", "yaml", "--output", str(target)]
    )
    assert yaml.safe_load(as_yaml.stdout) == yaml.safe_load(target.read_text())
    assert not (package / "prefect.yaml").exists()


def test_build_of_an_invalid_package_writes_nothing(tmp_path: Path) -> None:
    package = write_package(tmp_path, 'amount = "huge"')
    result = runner.invoke(app, ["build", str(package)])
    assert result.exit_code == 1
    assert not (package / "prefect.yaml").exists()


def test_build_output_needs_a_single_package() -> None:
    result = runner.invoke(app, ["build", str(EXAMPLES), "--output", "x.yaml"])
    assert result.exit_code == 2
    assert "holds 4 flow packages; --output needs one package" in result.output
