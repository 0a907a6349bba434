"""Work pool templates: their variables are the plan's job variables, and every one is used."""

from __future__ import annotations

import json
import sys
from itertools import product
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from libnar._build import (
    POOL_KINDS,
    apply_plan,
    base_job_template,
    check_package,
    local_plan,
    make_plan,
)
from libnar._build._config import PRESETS
from libnar._build._pools import template_placeholders, template_variables
from libnar.cli import app
from libnar.testing import PrefectServer
from tests._build.conftest import write_package

runner = CliRunner(env={"COLUMNS": "300"})
#: Per infra, the [sama-build] disk values that exercise each job variable (None: no disk).
DISKS = {"narwhal": [None, "40Gi"], "giver": [None, "50Gi"], "gke": [None, "10Gi"]}
#: ECS Fargate takes no 0.5 vCPU / 512Mi task: very-low is refused on narwhal by the build.
PRESETS_BY_INFRA = {
    infra: [p for p in PRESETS if not (infra == "narwhal" and p == "very-low")] for infra in DISKS
}


def unconsumed(template: dict[str, Any]) -> set[str]:
    """Declared job variables that the job configuration never uses."""
    return template_variables(template) - template_placeholders(template)


def plan_for(tmp_path: Path, infra: str, amount: str, disk: str | None) -> Any:
    table = f'infra = "{infra}"\namount = "{amount}"' + (f'\ndisk = "{disk}"' if disk else "")
    package = write_package(tmp_path / f"{infra}-{amount}-{disk}", table)
    return check_package(package), make_plan(check_package(package))


def render(template: dict[str, Any], job_variables: dict[str, Any]) -> dict[str, Any]:
    """The job a worker would get: Prefect's own templating, defaults then the run's values."""
    from prefect.utilities.schema_tools import validate
    from prefect.utilities.templating import apply_values

    schema = template["variables"]
    validate(job_variables, schema, raise_on_error=True, ignore_required=True)
    defaults = {k: v["default"] for k, v in schema["properties"].items() if "default" in v}
    rendered: dict[str, Any] = apply_values(
        template["job_configuration"], {**defaults, **job_variables}
    )
    return rendered


@pytest.mark.parametrize("kind", sorted(POOL_KINDS))
def test_every_job_variable_of_a_template_is_consumed_and_every_placeholder_declared(
    kind: str,
) -> None:
    template = base_job_template(kind)
    assert unconsumed(template) == set()
    assert template_placeholders(template) - template_variables(template) == set()


def test_a_variable_the_job_does_not_use_is_caught() -> None:
    template = base_job_template("gke")
    template["variables"]["properties"]["gpu"] = {"type": "integer"}
    assert unconsumed(template) == {"gpu"}


@pytest.mark.parametrize("infra", sorted(DISKS))
def test_template_variables_are_exactly_the_job_variables_the_plan_emits(
    tmp_path: Path, infra: str
) -> None:
    emitted: set[str] = set()
    for amount, disk in product(PRESETS_BY_INFRA[infra], DISKS[infra]):
        _, plan = plan_for(tmp_path, infra, amount, disk)
        emitted |= set(plan.deployments[0].job_variables)
        assert plan.deployments[0].pool_template == infra
    assert emitted == template_variables(base_job_template(infra))


def test_local_template_variables_are_exactly_the_local_plan_job_variables(
    tmp_path: Path,
) -> None:
    package, plan = plan_for(tmp_path, "giver", "med", "50Gi")
    local = local_plan(package, plan, "libnar-local")
    assert set(local.deployments[0].job_variables) == template_variables(base_job_template("local"))


@pytest.mark.parametrize(
    ("amount", "disk"),
    [(a, d) for a in PRESETS_BY_INFRA["narwhal"] for d in DISKS["narwhal"]],
)
def test_ecs_task_gets_the_presets_cpu_units_memory_storage_and_image(
    tmp_path: Path, amount: str, disk: str | None
) -> None:
    _, plan = plan_for(tmp_path, "narwhal", amount, disk)
    variables = plan.deployments[0].job_variables
    job = render(base_job_template("narwhal"), variables)
    vcpu, mib = PRESETS[amount]
    task = job["task_definition"]
    assert (task["cpu"], task["memory"]) == (int(vcpu * 1024), mib)
    assert (
        job["task_run_request"]["overrides"]["cpu"],
        job["task_run_request"]["overrides"]["memory"],
    ) == (int(vcpu * 1024), mib)
    assert task["ephemeralStorage"] == {"sizeInGiB": 40 if disk else 21}
    assert task["containerDefinitions"][0]["image"] == plan.image
    assert job["env"] == {}


@pytest.mark.parametrize(
    ("infra", "amount", "disk"),
    [(i, a, d) for i in ("giver", "gke") for a in PRESETS for d in DISKS[i]],
)
def test_kubernetes_job_gets_the_presets_limits_disk_and_image(
    tmp_path: Path, infra: str, amount: str, disk: str | None
) -> None:
    _, plan = plan_for(tmp_path, infra, amount, disk)
    job = render(base_job_template(infra), plan.deployments[0].job_variables)
    pod = job["job_manifest"]["spec"]["template"]["spec"]
    [container] = pod["containers"]
    vcpu, mib = PRESETS[amount]
    expected = {
        "cpu": format(vcpu.normalize(), "f"),
        "memory": f"{mib}Mi" if mib < 1024 else f"{mib // 1024}Gi",
    }
    if infra == "gke" and disk:
        expected["ephemeral-storage"] = disk
    assert container["resources"]["limits"] == expected
    assert container["resources"]["requests"] == expected
    assert container["image"] == plan.image
    if infra == "giver":
        [volume] = pod["volumes"]
        assert volume["emptyDir"] == ({"sizeLimit": disk} if disk else {})
        assert container["volumeMounts"] == [{"name": volume["name"], "mountPath": "/mnt/disk"}]


@pytest.mark.slow
@pytest.mark.parametrize("amount", sorted(PRESETS))
def test_local_job_runs_the_flow_within_the_presets_memory_and_cpu(
    tmp_path: Path, amount: str, prefect_server: PrefectServer
) -> None:
    """Through the process worker's own job configuration, as the worker prepares a run."""
    from uuid import uuid4

    from prefect.client.schemas.objects import FlowRun
    from prefect.utilities.asyncutils import run_coro_as_sync
    from prefect.workers.process import ProcessJobConfiguration

    package, plan = plan_for(tmp_path, "giver", amount, None)
    variables = local_plan(package, plan, "libnar-local").deployments[0].job_variables
    template = base_job_template("local", python=sys.executable)
    configuration = run_coro_as_sync(
        ProcessJobConfiguration.from_template_and_values(template, variables)
    )
    assert configuration is not None
    configuration.prepare_for_flow_run(FlowRun(id=uuid4(), flow_id=uuid4(), name="r"))
    vcpu, mib = PRESETS[amount]
    memory = f"{mib}Mi" if mib < 1024 else f"{mib // 1024}Gi"
    assert configuration.command == (
        f"{sys.executable} -m libnar._local_stack._limits"
        f" --cpu {format(vcpu.normalize(), 'f')} --memory {memory}"
    )
    # A run's own job variables replace the deployment's: the limit follows the run.
    override = run_coro_as_sync(
        ProcessJobConfiguration.from_template_and_values(template, {**variables, "memory": "8Gi"})
    )
    assert override is not None
    assert override.command is not None
    assert override.command.endswith("--memory 8Gi")


def test_pools_show_prints_each_template_as_json_and_lists_the_kinds() -> None:
    for kind in POOL_KINDS:
        shown = runner.invoke(app, ["pools", "show", kind])
        assert shown.exit_code == 0, shown.output
        assert json.loads(shown.stdout) == base_job_template(kind)
    listed = runner.invoke(app, ["pools", "show"])
    assert listed.exit_code == 0
    assert "narwhal │ ecs" in listed.output
    assert "cpu, env, ephemeral_storage, image, memory" in listed.output
    assert "local   │ process    │ libnar-local" in listed.output
    unknown = runner.invoke(app, ["pools", "show", "lambda"])
    assert unknown.exit_code == 2


@pytest.mark.slow
async def test_create_pools_makes_each_pool_with_its_template(
    prefect_server: PrefectServer, tmp_path: Path
) -> None:
    from prefect.client.orchestration import get_client

    from libnar.settings import get_settings

    settings = get_settings(
        work_pools={"giver": "giver-templates", "narpool-aws-us": "ecs-templates"}
    )
    async with get_client() as client:
        for infra, pool in (("giver", "giver-templates"), ("narwhal", "ecs-templates")):
            package = check_package(write_package(tmp_path / infra, f'infra = "{infra}"'))
            await apply_plan(make_plan(package, settings), create_pools=True, client=client)
            created = await client.read_work_pool(pool)
            assert created.type == POOL_KINDS[infra]
            assert created.base_job_template == base_job_template(infra)
