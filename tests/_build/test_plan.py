"""The deployment plan: pools, job variables, images, determinism and `prefect.yaml`."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

from libnar._build import (
    check_package,
    discover_packages,
    make_plan,
    plan_to_json,
    plan_to_prefect_yaml,
)
from libnar.settings import get_settings
from tests._build.conftest import write_package

EXAMPLES = Path(__file__).parents[2] / "examples" / "flows"
GOLDEN = Path(__file__).parent / "golden"


def plan_of(tmp_path: Path, table: str = "", **settings: Any) -> Any:
    return make_plan(check_package(write_package(tmp_path, table)), get_settings(**settings))


@pytest.mark.parametrize(
    ("table", "pool"),
    [
        pytest.param("", "giver", id="giver"),
        pytest.param('infra = "gke"', "narpool-gke-eu", id="gke"),
        pytest.param(
            'infra = "gke"\nregion = "us"\ncloud = "gcp"',
            "narpool-gke-eu",
            id="gke-ignores-cloud-region",
        ),
        pytest.param('infra = "narwhal"', "narpool-aws-us", id="narwhal-aws-us"),
        pytest.param('infra = "narwhal"\nregion = "eu"', "narpool-aws-eu", id="narwhal-aws-eu"),
        pytest.param(
            'infra = "narwhal"\ncloud = "gcp"\nregion = "eu"', "narpool-gcp", id="narwhal-gcp"
        ),
        pytest.param('infra = "narwhal"\ncloud = "azure"', "narpool-azure", id="narwhal-azure"),
    ],
)
def test_work_pool_follows_infra_cloud_and_region(tmp_path: Path, table: str, pool: str) -> None:
    [deployment] = plan_of(tmp_path, table).deployments
    assert deployment.work_pool == pool
    assert deployment.work_queue == "narq_fun69_boxes_ptp"


def test_work_pools_setting_renames_a_pool(tmp_path: Path) -> None:
    plan = plan_of(tmp_path, 'infra = "narwhal"', work_pools={"narpool-aws-us": "staging-ecs"})
    assert plan.deployments[0].work_pool == "staging-ecs"


def test_work_pools_setting_reads_json_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("LIBNAR_WORK_POOLS", '{"giver": "giver-test"}')
    assert get_settings().work_pools == {"giver": "giver-test"}


@pytest.mark.parametrize(
    ("table", "variables"),
    [
        pytest.param("", {"cpu": "1", "memory": "2Gi"}, id="giver-low"),
        pytest.param(
            'disk = "50Gi"', {"cpu": "1", "memory": "2Gi", "volume_size": "50Gi"}, id="giver-volume"
        ),
        pytest.param('amount = "very-low"', {"cpu": "0.5", "memory": "512Mi"}, id="giver-very-low"),
        pytest.param(
            'infra = "gke"\namount = "high"\ndisk = "10Gi"',
            {"cpu": "2", "memory": "4Gi", "ephemeral_storage": "10Gi"},
            id="gke",
        ),
        pytest.param(
            'infra = "narwhal"',
            {"cpu": 1024, "memory": 2048, "ephemeral_storage": 21},
            id="ecs-low-default-disk",
        ),
        pytest.param(
            'infra = "narwhal"\namount = "custom"\ncpu = "0.5"\nmemory = "1Gi"\ndisk = "40Gi"',
            {"cpu": 512, "memory": 1024, "ephemeral_storage": 40},
            id="ecs-custom",
        ),
        pytest.param(
            'infra = "narwhal"\namount = "custom"\ncpu = "500m"\nmemory = "3072Mi"',
            {"cpu": 512, "memory": 3072, "ephemeral_storage": 21},
            id="ecs-millicpu",
        ),
    ],
)
def test_job_variables_use_the_units_of_the_infra(
    tmp_path: Path, table: str, variables: dict[str, Any]
) -> None:
    [deployment] = plan_of(tmp_path, table).deployments
    assert deployment.job_variables == {
        **variables,
        "env": {},
        "image": "nps/fun69_boxes_ptp:1.0.0-py3.11",
    }


def test_image_comes_from_registry_setting_version_and_pyver(tmp_path: Path) -> None:
    plan = plan_of(tmp_path, 'pyver = "3.13"', image_registry="registry.example/nps")
    assert plan.image == "registry.example/nps/fun69_boxes_ptp:1.0.0-py3.13"
    assert plan.image_base == "registry.example/nps/nps-base:py3.13"


def test_custom_image_builds_from_the_package_dockerfile(tmp_path: Path) -> None:
    package = write_package(tmp_path, "custom-image = true", files={"Dockerfile": "FROM x\n"})
    assert make_plan(check_package(package)).image_base == "Dockerfile"


def test_version_is_project_version_then_prefect_version(tmp_path: Path) -> None:
    import prefect

    plan = plan_of(tmp_path)
    assert plan.deployments[0].version == f"1.0.0-prefect-{prefect.__version__}"


def test_same_package_in_two_places_gives_the_same_plan_byte_for_byte(tmp_path: Path) -> None:
    source = EXAMPLES / "acm" / "acm12" / "acm12_nightly_export_ptp"
    copy = tmp_path / "elsewhere" / source.name
    shutil.copytree(source, copy)
    first, second = (make_plan(check_package(p)) for p in (source, copy))
    assert plan_to_json(first) == plan_to_json(second)
    assert plan_to_prefect_yaml(first) == plan_to_prefect_yaml(second)


@pytest.mark.parametrize("package", discover_packages(EXAMPLES), ids=lambda p: p.name)
def test_example_prefect_yaml_matches_its_golden_file(package: Path) -> None:
    text = plan_to_prefect_yaml(make_plan(check_package(package, EXAMPLES), get_settings()))
    golden = GOLDEN / f"{package.name}.prefect.yaml"
    if os.environ.get("LIBNAR_UPDATE_GOLDEN"):
        golden.parent.mkdir(exist_ok=True)
        golden.write_text(text)
    assert text == golden.read_text(), "run with LIBNAR_UPDATE_GOLDEN=1 to accept the new output"


@pytest.mark.parametrize("package", discover_packages(EXAMPLES), ids=lambda p: p.name)
def test_prefect_yaml_is_what_prefect_deploy_reads(package: Path) -> None:
    from prefect.cli.deploy._models import PrefectYamlModel

    plan = make_plan(check_package(package))
    model = PrefectYamlModel.model_validate(yaml.safe_load(plan_to_prefect_yaml(plan)))
    assert [d.name for d in model.deployments] == [d.name for d in plan.deployments]
    for config, deployment in zip(model.deployments, plan.deployments, strict=True):
        assert config.entrypoint == deployment.entrypoint
        assert config.work_pool is not None
        assert config.work_pool.job_variables == deployment.job_variables
        assert len(config.schedules or []) == (1 if deployment.schedule else 0)


def test_deploy_refuses_to_run_without_prefect_api_url(tmp_path: Path) -> None:
    from prefect.settings import PREFECT_API_URL, temporary_settings

    from libnar._build import DeployError, apply_plan_sync, export_deploy_json_sync

    plan = plan_of(tmp_path)
    with temporary_settings(restore_defaults={PREFECT_API_URL}):
        with pytest.raises(DeployError, match="PREFECT_API_URL is not set"):
            apply_plan_sync(plan)
        with pytest.raises(DeployError, match="PREFECT_API_URL is not set"):
            export_deploy_json_sync("fun69_boxes_ptp")
