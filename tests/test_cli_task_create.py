"""`libnar task create` (with its progress bar), `task batch`, `task stats`, `task schema`."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from libnar.cli import app
from libnar.testing import FakeSamaHub, make_creation_schema, serve_fake_samahub

runner = CliRunner()

FRAMES = [{"url": f"https://assets.sama.test/{n:04d}.jpg", "name": f"{n:04d}"} for n in range(1200)]


def write_lines(path: Path, items: list[object]) -> Path:
    path.write_text("".join(json.dumps(item) + "\n" for item in items))
    return path


def test_task_create_uploads_a_large_file_as_one_batch(
    fake_samahub: FakeSamaHub, tmp_path: Path
) -> None:
    fake_samahub.add_project(10)
    tasks = write_lines(tmp_path / "frames.jsonl", FRAMES)

    done = runner.invoke(app, ["task", "create", "10", str(tasks), "--priority", "2"])

    assert done.exit_code == 0, done.stderr
    [batch] = fake_samahub.state.batches["10"].values()
    assert done.stdout.startswith(
        f"created 1200 tasks in batch {batch.id} (client_batch_id frames-"
    )
    assert len(fake_samahub.created_tasks(10, client_batch_id=batch.client_batch_id)) == 1200
    assert [c.route for c in fake_samahub.calls()][-2:] == ["upload_tasks", "continue_batch"]
    assert {c["priority"] for c in fake_samahub.calls("upload_tasks")[0].body} == {2}


def test_creating_the_same_file_again_creates_nothing(
    fake_samahub: FakeSamaHub, tmp_path: Path
) -> None:
    fake_samahub.add_project(10)
    tasks = tmp_path / "frames.json"
    tasks.write_text(json.dumps(FRAMES[:3]))

    first = runner.invoke(app, ["task", "create", "10", str(tasks)])
    again = runner.invoke(app, ["task", "create", "10", str(tasks)])

    assert first.exit_code == 0, first.stderr
    assert again.exit_code == 1
    assert "is already used by batch" in again.stderr
    assert "nothing was sent" in again.stderr
    assert len(fake_samahub.created_tasks(10)) == 3


def test_task_create_checks_the_creation_schema_first(
    fake_samahub: FakeSamaHub, tmp_path: Path
) -> None:
    fake_samahub.add_project(10)
    fake_samahub.schemas["10"] = {"create_task": make_creation_schema(FRAMES[0])}
    tasks = write_lines(tmp_path / "bad.jsonl", [FRAMES[0], {"url": 5, "name": "x"}])

    done = runner.invoke(app, ["task", "create", "10", str(tasks)])
    unchecked = runner.invoke(app, ["task", "create", "10", str(tasks), "--no-check"])

    assert done.exit_code == 2
    lines = [line.strip() for line in done.stderr.splitlines() if line.strip()]
    assert lines[-1] == "tasks[1].data.url: found 5; expected a string"
    assert "nothing was sent" in done.stderr
    assert unchecked.exit_code == 0, unchecked.stderr  # SamaHub then fails that one task
    [batch] = fake_samahub.state.batches["10"].values()
    assert (len(batch.task_ids), len(batch.failed)) == (1, 1)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        pytest.param("[1, 2]", "item 0 is int; each task is an object of its inputs", id="not-objects"),
        pytest.param('{"a": 1}\nnot json\n', "line 2: not JSON (Expecting value)", id="bad-line"),
        pytest.param("", "no tasks in the file", id="empty"),
    ],
)  # fmt: skip
def test_a_bad_tasks_file_names_the_line_and_exits_2(
    fake_samahub: FakeSamaHub, tmp_path: Path, content: str, message: str
) -> None:
    tasks = tmp_path / "tasks.jsonl"
    tasks.write_text(content)

    done = runner.invoke(app, ["task", "create", "10", str(tasks)])

    assert done.exit_code == 2
    assert done.stderr.startswith(f"error: {tasks}: {message}")
    assert fake_samahub.calls() == []


def test_task_batch_stats_and_schema_print_json(fake_samahub: FakeSamaHub, tmp_path: Path) -> None:
    fake_samahub.add_project(10)
    schema = make_creation_schema(FRAMES[0])
    fake_samahub.schemas["10"] = {"create_task": schema}
    runner.invoke(app, ["task", "create", "10", str(write_lines(tmp_path / "t.jsonl", FRAMES[:2]))])
    [batch] = fake_samahub.state.batches["10"].values()

    shown = runner.invoke(app, ["task", "batch", "10", str(batch.id), "--omit-failed-task-data"])
    stats = runner.invoke(app, ["task", "stats", "10"])
    printed = runner.invoke(app, ["task", "schema", "10"])

    assert json.loads(shown.stdout)["task_count"] == 2
    assert fake_samahub.calls("batch")[0].params["omit_failed_task_data"] == "true"
    assert json.loads(stats.stdout)["tasks_by_state"] == {"new": 2}
    assert json.loads(printed.stdout) == schema


def test_the_task_commands_can_use_the_secondary_key(
    fake_samahub: FakeSamaHub, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake_samahub.add_project(10)
    monkeypatch.setenv("SAMA_SECONDARY_API_KEY", fake_samahub.api_key)
    monkeypatch.setenv("SAMA_API_KEY", "another-key")

    done = runner.invoke(app, ["task", "--key", "secondary", "stats", "10"])
    wrong = runner.invoke(app, ["task", "--key", "tertiary", "stats", "10"])

    assert done.exit_code == 0, done.stderr
    assert (wrong.exit_code, wrong.stderr) == (
        2,
        "error: --key 'tertiary': choose primary or secondary\n",
    )


def test_task_create_shows_a_progress_bar_as_a_command(tmp_path: Path) -> None:
    tasks = write_lines(tmp_path / "frames.jsonl", FRAMES)
    with serve_fake_samahub(request_delay=0.05) as fake:
        fake.add_project(10)
        done = subprocess.run(
            [sys.executable, "-m", "libnar.cli", "task", "create", "10", str(tasks)],
            # As in a terminal: rich draws the bar only where it can redraw it.
            env={**os.environ, **fake.env(), "COLUMNS": "120", "TTY_COMPATIBLE": "1"},
            capture_output=True,
            text=True,
            timeout=120,
        )
        created = len(fake.created_tasks(10))
    assert done.returncode == 0, done.stderr
    assert created == 1200
    assert "created 1200 tasks in batch" in done.stdout
    assert "uploading 1200 tasks" in done.stderr
    assert re.search(r"(\d+\.\d)/\1 kB", done.stderr)  # the bar ends full
