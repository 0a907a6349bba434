"""`libnar trigger` and `trigger_run`: one run per event, with the gateway's rules, on a real
Prefect server (and a real worker for `--watch`)."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from libnar.cli import app
from libnar.trigger import TriggerRefused, trigger_run
from tests._build.conftest import write_package

EVENTS = Path(__file__).parents[1] / "examples" / "events"
SOURCE = """
from libnar import WebhookEvent, nps_flow

@nps_flow
def {name}(event: WebhookEvent, mib: int = 10) -> int:
    block = bytearray(mib * 1024 * 1024)
    return len(block) // (1024 * 1024)
"""


@pytest.fixture(scope="module")
def deployed(prefect_server: Any, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A flow deployed as `libnar dev` deploys it: on the local pool, infra narwhal."""
    from libnar._build import apply_plan_sync, base_job_template
    from libnar._dev import dev_plans

    root = tmp_path_factory.mktemp("flows")
    write_package(
        root,
        'infra = "narwhal"\namount = "low"',
        name="fun69_trig_ptp",
        source=SOURCE.format(name="fun69_trig_ptp"),
    )
    template = {"local": base_job_template("local", python=sys.executable)}
    for _, plan in dev_plans(root, warn=pytest.fail):
        apply_plan_sync(plan, create_pools=True, pool_templates=template)
    return root


def event_file(tmp_path: Path, task_id: str) -> Path:
    body = json.loads((EVENTS / "webhook_event.json").read_text())
    body["task"]["id"] = task_id
    path = tmp_path / f"{task_id}.json"
    path.write_text(json.dumps(body))
    return path


def invoke(*args: str) -> Any:
    return CliRunner().invoke(app, ["trigger", *args], env={"COLUMNS": "200"})


def test_the_same_event_twice_is_one_run(deployed: Path, tmp_path: Path) -> None:
    event = event_file(tmp_path, "trig-once")
    first = invoke("fun69_trig_ptp", "--event", str(event))
    assert first.exit_code == 0, first.output
    again = invoke("fun69_trig_ptp", "--event", str(event))
    assert again.exit_code == 0, again.output
    run_id = next(line.split()[1] for line in first.output.splitlines() if line.startswith("id:"))
    assert f"id:       {run_id}" in again.output
    assert "triggered before" in again.output
    assert "run:      fun69_trig_ptp-10423-trig-once" in first.output


def test_amount_becomes_the_runs_job_variables_and_tag(deployed: Path, tmp_path: Path) -> None:
    from prefect.client.orchestration import get_client

    run = trigger_run(
        "fun69_trig_ptp",
        event_file(tmp_path, "trig-high"),
        amount="high",
        parameters={"mib": 20},
    )
    assert run.job_variables == {"cpu": "2", "memory": "4Gi"}
    with get_client(sync_client=True) as client:
        found = client.read_flow_run(run.flow_run_id)  # type: ignore[arg-type]
    assert found.job_variables == {"cpu": "2", "memory": "4Gi"}
    assert "amount:high" in found.tags
    assert found.parameters["mib"] == 20
    assert "amount" not in found.parameters
    # Another amount is another delivery of the same event: another run.
    other = trigger_run("fun69_trig_ptp", event_file(tmp_path, "trig-high"), amount="med")
    assert other.flow_run_id != run.flow_run_id


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (
            ["--amount", "custom", "--param", "cpu=1", "--param", "memory=16Gi"],
            "1 vCPU takes 2Gi to 8Gi",
        ),
        (["--amount", "huge"], "amount"),
        (["--deployment", "nope"], "has no deployment 'nope'"),
        (["--param", "unknown=1"], "unknown parameter"),
    ],
    ids=["over-ecs", "bad-preset", "no-deployment", "unknown-parameter"],
)
def test_refused_runs_exit_2_naming_the_field(
    deployed: Path, tmp_path: Path, args: list[str], said: str
) -> None:
    result = invoke("fun69_trig_ptp", "--event", str(event_file(tmp_path, "trig-bad")), *args)
    assert result.exit_code == 2, result.output
    assert said in result.output


def test_a_bad_event_file_is_refused(deployed: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text('{"task": {}}')
    with pytest.raises(TriggerRefused, match="not a SamaHub webhook or DPP event"):
        trigger_run("fun69_trig_ptp", bad)


@pytest.mark.slow
def test_watch_follows_the_run_to_its_final_state(deployed: Path, tmp_path: Path) -> None:
    from libnar._local_stack import WorkerProcess

    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[1])}
    with WorkerProcess("libnar-local", env, log=tmp_path / "worker.log"):
        done = invoke("fun69_trig_ptp", "--event", str(event_file(tmp_path, "trig-w")), "--watch")
        crashed = invoke(
            "fun69_trig_ptp",
            "--event",
            str(event_file(tmp_path, "trig-w2")),
            "--watch",
            "--param",
            "mib=2500",
        )
    assert done.exit_code == 0, done.output
    assert "state:    Completed" in done.output
    assert crashed.exit_code == 1, crashed.output
    assert "out of memory" in crashed.output
