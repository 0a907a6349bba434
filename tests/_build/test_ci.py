"""A flow repository's CI: the printed pipelines, the changed packages, and `libnar init`'s extras."""

from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from libnar.cli import app

EXAMPLES = Path(__file__).parents[2] / "examples" / "flows"
runner = CliRunner(env={"COLUMNS": "300"})


def scripts(kind: str) -> tuple[dict[str, object], dict[str, str]]:
    """The parsed pipeline and the shell of each job, by job name."""
    result = runner.invoke(app, ["ci-template", kind])
    assert result.exit_code == 0, result.output
    document = yaml.safe_load(result.stdout)
    if kind == "github":
        jobs = document["jobs"]
        shell = {
            name: "\n".join(str(s["run"]) for s in job["steps"] if "run" in s)
            for name, job in jobs.items()
        }
    else:
        shell = {name: "\n".join(document[name]["script"]) for name in ("check", "deploy")}
    return document, shell


def command_lines(shell: str) -> list[list[str]]:
    """Each `libnar ...` and `prefect ...` command of a script, as argv."""
    found = []
    for line in shell.splitlines():
        for match in re.finditer(r"\b((?:libnar|prefect) [^;|)&]*)", line):
            found.append(shlex.split(match.group(1).replace("$(", "")))
    return found


@pytest.mark.parametrize("kind", ["github", "gitlab"])
def test_ci_template_is_yaml_whose_commands_exist(kind: str) -> None:
    _, shell = scripts(kind)
    commands = [c for job in shell.values() for c in command_lines(job)]
    subcommands = {tuple(c[:2]) for c in commands}
    assert ("libnar", "validate") in subcommands
    assert ("libnar", "packages") in subcommands
    assert ("libnar", "build") in subcommands
    for argv in commands:
        if argv[0] == "libnar":
            help_ = runner.invoke(app, [argv[1], "--help"])
            assert help_.exit_code == 0, argv
            for option in (a for a in argv[2:] if a.startswith("--")):
                assert option in help_.output, (argv, option)
        else:  # prefect: run its own CLI
            done = subprocess.run(
                [sys.executable, "-m", "prefect", *argv[1:], "--help"],
                capture_output=True,
                text=True,
                timeout=120,
                check=False,
            )
            assert done.returncode == 0, done.stderr
            assert "--all" in done.stdout


def test_github_deploys_only_on_main_and_honours_skip_ci() -> None:
    document, shell = scripts("github")
    jobs = document["jobs"]
    assert "refs/heads/main" in jobs["deploy"]["if"]
    assert "[skip ci]" in jobs["deploy"]["if"]
    assert "[skip ci]" in jobs["check"]["if"]
    assert jobs["deploy"]["needs"] == "check"
    assert '--changed-since "${{ github.event.before }}"' in shell["deploy"]
    assert "prefect --no-prompt deploy --all" in shell["deploy"]
    assert "pytest" in shell["check"]
    assert "libnar build" not in shell["check"]


def test_gitlab_deploys_only_on_main_and_honours_skip_ci() -> None:
    document, shell = scripts("gitlab")
    assert document["workflow"]["rules"][0] == {
        "if": "$CI_COMMIT_MESSAGE =~ /\\[skip ci\\]/",
        "when": "never",
    }
    assert document["deploy"]["rules"] == [{"if": '$CI_COMMIT_BRANCH == "main"'}]
    assert '--changed-since "$CI_COMMIT_BEFORE_SHA"' in shell["deploy"]
    assert "libnar build" not in shell["check"]


def git(repo: Path, *args: str) -> str:
    done = subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@example.invalid", *args],
        cwd=repo,
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout.strip()


@pytest.mark.skipif(shutil.which("git") is None, reason="needs git")
def test_packages_lists_only_those_changed_since_a_commit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = tmp_path / "repo"
    shutil.copytree(EXAMPLES, repo / "flows")
    git(repo, "init", "-q")
    git(repo, "add", ".")
    git(repo, "commit", "-qm", "flows")
    before = git(repo, "rev-parse", "HEAD")
    script = repo / "flows" / "fun" / "fun69" / "fun69_boxes_ptp" / "fun69_boxes_ptp.py"
    script.write_text(script.read_text() + "\n# changed\n")
    git(repo, "commit", "-qam", "change one flow")
    monkeypatch.chdir(repo)

    changed = runner.invoke(app, ["packages", "flows", "--changed-since", before])
    assert changed.exit_code == 0, changed.output
    assert changed.stdout.splitlines() == ["flows/fun/fun69/fun69_boxes_ptp"]
    every_package = runner.invoke(app, ["packages", "flows"]).stdout.splitlines()
    assert len(every_package) > 1
    first_push = runner.invoke(app, ["packages", "flows", "--changed-since", "0" * 40])
    assert first_push.stdout.splitlines() == every_package
    assert runner.invoke(app, ["packages", "flows", "--changed-since", "HEAD"]).stdout == ""
    unknown = runner.invoke(app, ["packages", "flows", "--changed-since", "deadbeef"])
    assert unknown.exit_code == 2
    assert "fetch the whole history" in unknown.output


def test_init_writes_deploy_json_for_schedules_and_it_validates(tmp_path: Path) -> None:
    args = ["init", "acm12_load", "--type", "prp", "--event", "none", "--dir", str(tmp_path)]
    created = runner.invoke(
        app,
        [
            *args,
            "--schedule",
            "30 2 * * *",
            "--schedule",
            "0 */8 * * *",
            "--timezone",
            "Europe/Paris",
        ],
    )
    assert created.exit_code == 0, created.output
    root = tmp_path / "acm" / "acm12" / "acm12_load_prp"
    assert "deploy-json = true" in (root / "pyproject.toml").read_text()
    assert json.loads((root / "deploy.json").read_text()) == {
        "deploy": [
            {
                "name": "acm12_load_prp_deploy_1",
                "schedule": {"cron": "30 2 * * *", "timezone": "Europe/Paris"},
            },
            {
                "name": "acm12_load_prp_deploy_2",
                "schedule": {"cron": "0 */8 * * *", "timezone": "Europe/Paris"},
            },
        ]
    }
    validated = runner.invoke(app, ["validate", str(root)])
    assert validated.exit_code == 0, validated.output
    assert "(2 deployments)" in validated.output


def test_init_refuses_a_bad_schedule_and_writes_nothing(tmp_path: Path) -> None:
    result = runner.invoke(
        app, ["init", "acm12_load", "--schedule", "nightly", "--dir", str(tmp_path)]
    )
    assert result.exit_code == 2
    assert '"nightly" is not a cron expression' in result.output
    assert not any(tmp_path.iterdir())


def test_init_writes_a_custom_dockerfile_that_validates_and_builds(tmp_path: Path) -> None:
    created = runner.invoke(app, ["init", "fun69_ocr", "--custom-image", "--dir", str(tmp_path)])
    assert created.exit_code == 0, created.output
    root = tmp_path / "fun" / "fun69" / "fun69_ocr_ptp"
    assert "custom-image = true" in (root / "pyproject.toml").read_text()
    dockerfile = (root / "Dockerfile").read_text()
    assert "FROM nps/nps-base:py3.11" in dockerfile
    assert "# RUN apt-get update" in dockerfile
    assert runner.invoke(app, ["validate", str(root)]).exit_code == 0
    built = runner.invoke(app, ["build", str(root)])
    assert built.exit_code == 0, built.output
    assert f"checked {root / 'Dockerfile'}" in " ".join(built.output.split())
    assert (root / "Dockerfile").read_text() == dockerfile
