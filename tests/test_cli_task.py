"""`libnar task get` and `libnar task export` against the fake SamaHub (in-process)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
from typer.testing import CliRunner

from libnar.cli import app
from libnar.testing import FakeSamaHub, make_task, serve_fake_samahub

runner = CliRunner()


def test_task_get_prints_the_task_as_json(fake_samahub: FakeSamaHub) -> None:
    task = fake_samahub.add_task(make_task())
    done = runner.invoke(app, ["task", "get", "10", task.id])
    assert done.exit_code == 0, done.stderr
    assert json.loads(done.stdout) == task.model_dump(mode="json")


def test_task_export_writes_delivered_tasks_as_json_lines(
    fake_samahub: FakeSamaHub, tmp_path: Path
) -> None:
    fake_samahub.add_project(10)
    tasks = fake_samahub.add_tasks(make_task(state="in progress") for _ in range(3))
    for hour, task in zip([9, 10, 11], tasks, strict=True):
        fake_samahub.deliver(10, task.id, at=datetime(2024, 6, 1, hour, tzinfo=UTC))
    out = tmp_path / "delivered.jsonl"
    done = runner.invoke(
        app,
        ["task", "export", "10", "--delivered-since", "2024-06-01T10:00:00Z", "--out", str(out)],
    )
    assert done.exit_code == 0, done.stderr
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert [line["id"] for line in lines] == [tasks[1].id, tasks[2].id]
    assert f"exported 2 tasks to {out}" in done.stdout
    assert fake_samahub.calls("delivered")[0].params["from"] == "2024-06-01T10:00:00Z"


def test_task_export_takes_a_date_as_midnight_utc(
    fake_samahub: FakeSamaHub, tmp_path: Path
) -> None:
    fake_samahub.add_project(10)
    out = tmp_path / "none.jsonl"
    done = runner.invoke(
        app, ["task", "export", "10", "--delivered-since", "2024-06-01", "--out", str(out)]
    )
    assert done.exit_code == 0, done.stderr
    assert out.read_text() == ""
    assert fake_samahub.calls("delivered")[0].params["from"] == "2024-06-01T00:00:00Z"


@pytest.mark.parametrize(
    ("args", "setup", "code", "message"),
    [
        pytest.param(
            ["task", "get", "10", "5f1e2d3c4b5a69788796a5b4"],
            lambda f: f.add_project(10),
            1,
            "error: GET /projects/10/tasks/5f1e2d3c4b5a69788796a5b4.json: 404 not found (SamaHub: "
            '"Task not found"); check the project and task ids and that the API key has access',
            id="unknown-task",
        ),
        pytest.param(
            ["task", "get", "10", "t"],
            lambda f: setattr(f, "api_key", "rotated"),
            1,
            "error: GET /projects/10/tasks/t.json: 401 unauthorized",
            id="bad-key",
        ),
        pytest.param(
            ["task", "export", "10", "--delivered-since", "yesterday", "--out", "x.jsonl"],
            lambda f: None,
            2,
            "error: --delivered-since 'yesterday': expected an ISO date or time, e.g. "
            "2024-05-01 or 2024-05-01T08:00:00Z",
            id="bad-date",
        ),
        pytest.param(
            ["task", "export", "10", "--delivered-since", "2024-06-01", "--out", "no/dir/x.jsonl"],
            lambda f: f.add_project(10),
            2,
            "error: --out no/dir/x.jsonl: No such file or directory",
            id="bad-out-dir",
        ),
    ],
)
def test_task_commands_print_one_error_line_and_exit_nonzero(
    fake_samahub: FakeSamaHub,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    args: list[str],
    setup: object,
    code: int,
    message: str,
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SAMA_MAX_RETRIES", "0")
    setup(fake_samahub)  # type: ignore[operator]
    done = runner.invoke(app, args)
    assert done.exit_code == code
    assert done.stderr.startswith(message)
    assert len(done.stderr.strip().splitlines()) == 1
    assert list(tmp_path.iterdir()) == []  # no partial export left behind


def test_task_get_names_a_missing_key(
    fake_samahub: FakeSamaHub, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("SAMA_API_KEY")
    monkeypatch.chdir(tmp_path)
    done = runner.invoke(app, ["task", "get", "10", "t"])
    assert done.exit_code == 2
    assert done.stderr == "error: SAMA_API_KEY is not set: pass api_key=... or set SAMA_API_KEY\n"


def test_a_failed_export_keeps_the_previous_file(fake_samahub: FakeSamaHub, tmp_path: Path) -> None:
    fake_samahub.add_tasks(make_task() for _ in range(3))
    fake_samahub.fail(500, route="delivered")
    out = tmp_path / "x.jsonl"
    out.write_text("yesterday's export\n")
    done = runner.invoke(
        app, ["task", "export", "10", "--delivered-since", "2020-01-01", "--out", str(out)]
    )
    assert done.exit_code == 1
    assert out.read_text() == "yesterday's export\n"
    assert [p.name for p in tmp_path.iterdir()] == ["x.jsonl"]


def test_task_export_runs_as_a_command_against_a_served_fake(tmp_path: Path) -> None:
    with serve_fake_samahub() as fake:
        tasks = fake.add_tasks(make_task() for _ in range(3))
        env = {**os.environ, **fake.env(), "SAMA_MAX_RETRIES": "0"}
        args = ["task", "export", "10", "--delivered-since", "2020-01-01", "--out", "out.jsonl"]
        done = subprocess.run(
            [sys.executable, "-m", "libnar.cli", *args],
            env=env,
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert done.returncode == 0, done.stderr
    ids = [json.loads(line)["id"] for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert sorted(ids) == sorted(task.id for task in tasks)
    assert "exported 3 tasks to out.jsonl" in done.stdout
