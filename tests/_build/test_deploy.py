"""Applying plans to a real Prefect server, and reading them back as deploy.json."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from libnar._build import (
    DeployError,
    apply_plan,
    check_package,
    export_deploy_json,
    make_plan,
)
from libnar._build._deploy_json import check_deploy_json
from libnar.cli import app
from libnar.testing import PrefectServer

pytestmark = pytest.mark.slow

EXAMPLES = Path(__file__).parents[2] / "examples" / "flows"
SCHEDULED = EXAMPLES / "acm" / "acm12" / "acm12_nightly_export_ptp"
WEBHOOK = EXAMPLES / "fun" / "fun69" / "fun69_label_counts_ptp"
DPP = EXAMPLES / "fun" / "fun69" / "fun69_boxes_ptp"


async def test_deploy_creates_then_updates_never_duplicates_and_exports_what_went_in(
    prefect_server: PrefectServer,
) -> None:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowFilter

    plan = make_plan(check_package(SCHEDULED))
    first = await apply_plan(plan, create_pools=True)
    assert [c.action for c in first] == ["created"] * 4

    async with get_client() as client:
        for wanted in plan.deployments:
            found = await client.read_deployment_by_name(f"{plan.flow_name}/{wanted.name}")
            assert found.version == wanted.version
            assert found.parameters == wanted.parameters
            assert found.job_variables == wanted.job_variables
            assert found.work_pool_name == "narpool-gke-eu"
            assert found.work_queue_name == f"narq_{plan.flow_name}"
            assert found.entrypoint == wanted.entrypoint
            assert len(found.schedules) == (1 if wanted.schedule else 0)
        nightly = await client.read_deployment_by_name(f"{plan.flow_name}/nightly")
        assert nightly.schedules[0].schedule.cron == "30 2 * * *"  # type: ignore[union-attr]

    again = await apply_plan(plan, create_pools=True)
    assert [c.action for c in again] == ["unchanged"] * 4
    assert [c.deployment_id for c in again] == [c.deployment_id for c in first]

    bumped = plan.model_copy(
        update={"deployments": [plan.deployments[0].model_copy(update={"version": "9-prefect-x"})]}
    )
    [change] = await apply_plan(bumped)
    assert (change.action, change.deployment_id) == ("updated", first[0].deployment_id)

    async with get_client() as client:
        deployments = await client.read_deployments(
            flow_filter=FlowFilter(name={"any_": [plan.flow_name]})
        )
    assert sorted(d.name for d in deployments) == sorted(d.name for d in plan.deployments)

    exported = await export_deploy_json(plan.flow_name)
    went_in, _ = check_deploy_json(json.loads((SCHEDULED / "deploy.json").read_text()))
    came_out, problems = check_deploy_json(exported)
    assert problems == []
    assert sorted(came_out, key=lambda d: d.name) == sorted(went_in, key=lambda d: d.name)

    [only] = (await export_deploy_json(plan.flow_name, "nightly"))["deploy"]
    assert only["name"] == "nightly"


async def test_missing_work_pool_is_an_error_that_says_how_to_fix_it(
    prefect_server: PrefectServer,
) -> None:
    plan = make_plan(check_package(WEBHOOK))
    renamed = plan.model_copy(
        update={
            "deployments": [d.model_copy(update={"work_pool": "nope"}) for d in plan.deployments]
        }
    )
    with pytest.raises(DeployError, match=r"work pool 'nope' does not exist on .*--create-pools"):
        await apply_plan(renamed)


def test_cli_deploy_prints_changes_and_deploy_json_prints_them_back(
    prefect_server: PrefectServer,
) -> None:
    runner = CliRunner(env={"COLUMNS": "300"})
    created = runner.invoke(app, ["deploy", str(WEBHOOK), "--create-pools"])
    assert created.exit_code == 0, created.output
    assert created.output.count("created") == 2
    unchanged = runner.invoke(app, ["deploy", str(WEBHOOK)])
    assert unchanged.output.count("unchanged") == 2, unchanged.output

    exported = runner.invoke(
        app,
        [
            "deploy-json",
            "fun69_label_counts_ptp",
            "--deployment",
            "fun69_label_counts_ptp_backfill",
        ],
    )
    assert json.loads(exported.stdout) == {"deploy": [{"name": "fun69_label_counts_ptp_backfill"}]}
    missing = runner.invoke(app, ["deploy-json", "no_such_flow"])
    assert missing.exit_code == 1
    assert "no deployments of flow 'no_such_flow'" in missing.output


def test_prefect_deploy_all_accepts_the_written_prefect_yaml(
    prefect_server: PrefectServer, tmp_path: Path
) -> None:
    """The deployments part, as `prefect deploy --all` reads it (the image steps need Docker:
    `test_image.py` checks them against prefect-docker, and builds where a daemon runs)."""
    import shutil
    import subprocess
    import sys

    import yaml
    from prefect.client.orchestration import get_client
    from prefect.utilities.asyncutils import run_coro_as_sync

    from libnar._build import apply_plan_sync, plan_to_prefect_yaml

    package = tmp_path / DPP.name
    shutil.copytree(DPP, package)
    plan = make_plan(check_package(package))
    document = yaml.safe_load(plan_to_prefect_yaml(plan))
    assert document["build"]
    assert document["push"]
    document["build"] = document["push"] = None
    (package / "prefect.yaml").write_text(yaml.safe_dump(document, sort_keys=False))
    apply_plan_sync(plan, create_pools=True)  # the pool must exist for `prefect deploy`

    result = subprocess.run(
        [sys.executable, "-m", "prefect", "--no-prompt", "deploy", "--all"],
        cwd=package,
        env={**prefect_server.environment(), "COLUMNS": "200"},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr

    async def read() -> object:
        async with get_client() as client:
            return await client.read_deployment_by_name("fun69_boxes_ptp/fun69_boxes_ptp_deploy")

    found = run_coro_as_sync(read())
    assert found.job_variables == plan.deployments[0].job_variables  # type: ignore[attr-defined]
    assert found.version == plan.version  # type: ignore[attr-defined]
