"""`libnar init`: the new package is compliant, valid, and its own tests pass."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from libnar._build import ScaffoldError, package_name
from libnar.cli import app
from libnar.testing import PrefectServer, assert_build_valid
from tests._build.conftest import write_package

runner = CliRunner(env={"COLUMNS": "300"})


@pytest.mark.slow
@pytest.mark.parametrize(
    ("args", "folder"),
    [
        pytest.param(["fun69_boxes"], "fun/fun69/fun69_boxes_ptp", id="dpp-ptp"),
        pytest.param(["fun69_count", "--event", "webhook"], "fun/fun69/fun69_count_ptp", id="webhook"),
        pytest.param(["acm12_load", "--type", "prp", "--event", "none"], "acm/acm12/acm12_load_prp", id="scheduled-prp"),
        pytest.param(["tools", "--type", "utl", "--event", "none"], "utl/utl_tools", id="utility"),
    ],
)
def test_init_writes_a_package_that_validates_and_passes_its_test(
    tmp_path: Path,
    args: list[str],
    folder: str,
    prefect_server: PrefectServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    flows = tmp_path / "flows"
    created = runner.invoke(app, ["init", *args, "--dir", str(flows)])
    assert created.exit_code == 0, created.output
    root = flows / folder
    assert (root / "pyproject.toml").is_file()

    validated = runner.invoke(app, ["validate", str(flows)])
    assert validated.exit_code == 0, validated.output
    assert "ok 1 flow package valid (1 deployment)" in validated.output

    # The generated tests, run as a flow author would run them, on this session's server.
    monkeypatch.setenv("LIBNAR_TEST_PREFECT_API_URL", prefect_server.api_url)
    quiet = ["-q", "-p", "no:cacheprovider", "-o", "asyncio_default_fixture_loop_scope=function"]
    assert pytest.main([*quiet, str(root / "tests")]) == 0


def test_init_refuses_a_name_that_breaks_the_rule_and_suggests_one(tmp_path: Path) -> None:
    result = runner.invoke(app, ["init", "Boxes Thing", "--dir", str(tmp_path)])
    assert result.exit_code == 2
    assert "use 'abc1_boxes_thing_ptp'" in " ".join(result.output.split())
    with pytest.raises(ScaffoldError):
        package_name("fun69 boxes")


def test_init_does_not_overwrite_a_package(tmp_path: Path) -> None:
    assert runner.invoke(app, ["init", "fun69_x", "--dir", str(tmp_path)]).exit_code == 0
    again = runner.invoke(app, ["init", "fun69_x_ptp", "--dir", str(tmp_path)])
    assert again.exit_code == 2
    assert "exists already" in again.output


def test_assert_build_valid_lists_every_problem(tmp_path: Path) -> None:
    write_package(tmp_path, 'amount = "huge"\ndisk = "1Ti"')
    with pytest.raises(AssertionError) as caught:
        assert_build_valid(tmp_path)
    message = str(caught.value)
    assert 'sama-build.amount: found "huge"' in message
    assert 'sama-build.disk: "1Ti" is not a size' in message


def test_assert_build_valid_needs_a_package(tmp_path: Path) -> None:
    with pytest.raises(AssertionError, match="no flow package"):
        assert_build_valid(tmp_path)


def test_importing_libnar_testing_does_not_import_prefect() -> None:
    import subprocess
    import sys

    code = "import libnar.testing, sys; print('prefect' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"
