"""`libnar init`: the new package is compliant, valid, and its own tests pass."""

from __future__ import annotations

import json
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from typer.testing import CliRunner

import libnar
from libnar._build import ScaffoldError, package_name
from libnar.cli import app
from libnar.testing import PrefectServer, assert_build_valid
from tests._build.conftest import write_package

runner = CliRunner(env={"COLUMNS": "300"})
ROOT = Path(__file__).parents[2]


@pytest.mark.slow
@pytest.mark.parametrize(
    ("args", "folder"),
    [
        pytest.param(["fun69_boxes"], "fun/fun69/fun69_boxes_ptp", id="dpp-ptp"),
        pytest.param(
            ["fun69_count", "--event", "webhook"], "fun/fun69/fun69_count_ptp", id="webhook"
        ),
        pytest.param(
            ["acm12_load", "--type", "prp", "--event", "none"],
            "acm/acm12/acm12_load_prp",
            id="scheduled-prp",
        ),
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


@pytest.mark.slow
def test_the_scaffolds_libnar_requirement_resolves_to_a_libnar_wheel(tmp_path: Path) -> None:
    """The documented wheel route: `pip install --find-links dist` finds this pre-release."""
    assert runner.invoke(app, ["init", "fun69_boxes", "--dir", str(tmp_path)]).exit_code == 0
    pyproject = tmp_path / "fun" / "fun69" / "fun69_boxes_ptp" / "pyproject.toml"
    (requirement,) = tomllib.loads(pyproject.read_text())["project"]["dependencies"]
    assert requirement == f"libnar>={libnar.__version__}"
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    dist = tmp_path / "dist"
    subprocess.run([*pip, "wheel", "--no-deps", "-w", dist, ROOT], check=True, timeout=300)
    report = subprocess.run(
        [
            *pip,
            "install",
            "--dry-run",
            "--ignore-installed",
            "--no-deps",
            "--no-index",
            "--find-links",
            dist,
            "--report",
            "-",
            requirement,
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    installs = json.loads(report.stdout)["install"]
    assert [i["metadata"]["version"] for i in installs] == [libnar.__version__]


def test_the_scaffold_says_where_libnar_comes_from(tmp_path: Path) -> None:
    assert runner.invoke(app, ["init", "fun69_boxes", "--dir", str(tmp_path)]).exit_code == 0
    root = tmp_path / "fun" / "fun69" / "fun69_boxes_ptp"
    assert "libnar is on no public index" in (root / "pyproject.toml").read_text()
    readme = (root / "README.md").read_text()
    assert "libnar run fun69_boxes_ptp.py --event sample_dpp_event.json" in readme
    assert "pip install pytest respx" in readme


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
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "False"
