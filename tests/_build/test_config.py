"""`[sama-build]`: every key, its default, and every problem a flow author can meet."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from libnar._build import BuildError, check_package
from tests._build.conftest import problems_of, write_package

# (sama-build table, what the checked config reads)
VALID: list[Any] = [
    pytest.param(
        "",
        {"amount": "low", "vcpu": 1, "memory_mib": 2048, "infra": "giver"},
        id="empty-is-low-on-giver",
    ),
    pytest.param('amount = "very-low"', {"vcpu": Decimal("0.5"), "memory_mib": 512}, id="very-low"),
    pytest.param('amount = "low"', {"vcpu": 1, "memory_mib": 2048}, id="low"),
    pytest.param('amount = "med"', {"vcpu": 1, "memory_mib": 4096}, id="med"),
    pytest.param('amount = "high"', {"vcpu": 2, "memory_mib": 4096}, id="high"),
    pytest.param(
        'amount = "custom"\ncpu = "4"\nmemory = "4Gi"', {"vcpu": 4, "memory_mib": 4096}, id="custom"
    ),
    pytest.param(
        'amount = "custom"\ncpu = "500m"\nmemory = "512Mi"',
        {"vcpu": Decimal("0.5")},
        id="custom-millicpu",
    ),
    pytest.param(
        'amount = "custom"\ncpu = 2\nmemory = "8Gi"', {"vcpu": 2}, id="custom-cpu-as-number"
    ),
    pytest.param('amount = "med"\ndisk = "100Gi"', {"disk_mib": 102400}, id="preset-with-disk"),
    pytest.param('infra = "narwhal"', {"disk_mib": 21 * 1024}, id="narwhal-default-disk-21Gi"),
    pytest.param(
        'infra = "narwhal"\ndisk = "200Gi"', {"disk_mib": 200 * 1024}, id="narwhal-max-disk"
    ),
    pytest.param('infra = "giver"\ndisk = "1Gi"', {"disk_mib": 1024}, id="giver-min-disk"),
    pytest.param('infra = "giver"\ndisk = "500Gi"', {"disk_mib": 500 * 1024}, id="giver-max-disk"),
    pytest.param('infra = "gke"\ndisk = "10Gi"', {"disk_mib": 10 * 1024}, id="gke-max-disk"),
    pytest.param('infra = "gke"', {"disk_mib": None}, id="gke-no-disk-by-default"),
    pytest.param(
        'infra = "narwhal"\namount = "custom"\ncpu = "0.25"\nmemory = "512Mi"',
        {"vcpu": Decimal("0.25")},
        id="narwhal-ecs-smallest",
    ),
    pytest.param(
        'cloud = "gcp"\nregion = "eu"', {"cloud": "gcp", "region": "eu"}, id="cloud-region"
    ),
    pytest.param('pyver = "3.13"', {"pyver": "3.13"}, id="pyver-3.13"),
    pytest.param('pyver = "3.9"', {"pyver": "3.9"}, id="pyver-3.9"),
    pytest.param("", {"pyver": "3.11"}, id="pyver-default-3.11"),
    pytest.param('deploy-list = ["a", "b"]', {"deploy_list": ["a", "b"]}, id="deploy-list"),
    pytest.param("deploy-num = 3", {"deploy_num": 3}, id="deploy-num"),
    pytest.param("nps-ext = []", {"nps_ext": []}, id="no-extras"),
]


@pytest.mark.parametrize(("table", "expected"), VALID)
def test_valid_sama_build_reads_as_documented(
    tmp_path: Path, table: str, expected: dict[str, Any]
) -> None:
    config = check_package(write_package(tmp_path, table)).config
    for attribute, value in expected.items():
        assert getattr(config, attribute) == value, attribute


# (sama-build table, the problem line it gives; "{pkg}" is the package folder)
INVALID: list[Any] = [
    pytest.param(
        'ammount = "low"',
        'sama-build.ammount: unknown key (did you mean "amount"?)',
        id="unknown-key-did-you-mean",
    ),
    pytest.param(
        'flavour = "red"',
        "sama-build.flavour: unknown key; valid keys: amount, cloud",
        id="unknown-key",
    ),
    pytest.param(
        "custom_image = true",
        'sama-build.custom_image: unknown key (did you mean "custom-image"?)',
        id="underscore-key",
    ),
    pytest.param(
        'amount = "hgh"',
        'sama-build.amount: found "hgh" (did you mean "high"?); allowed: "very-low", "low", "med", "high" or "custom"',
        id="amount-typo",
    ),
    pytest.param(
        'cpu = "2"',
        'sama-build.cpu: cpu is read only with amount = "custom" (amount is "low"); set amount = "custom" or remove cpu',
        id="cpu-without-custom",
    ),
    pytest.param(
        'amount = "med"\nmemory = "8Gi"',
        'sama-build.memory: memory is read only with amount = "custom" (amount is "med")',
        id="memory-without-custom",
    ),
    pytest.param(
        'amount = "custom"\nmemory = "8Gi"',
        'sama-build.cpu: amount = "custom" needs cpu (vCPU, e.g. cpu = "2")',
        id="custom-needs-cpu",
    ),
    pytest.param(
        'amount = "custom"\ncpu = "2"',
        'sama-build.memory: amount = "custom" needs memory (e.g. memory = "4Gi")',
        id="custom-needs-memory",
    ),
    pytest.param(
        'amount = "custom"\ncpu = "two"\nmemory = "1Gi"',
        'sama-build.cpu: "two" is not a CPU amount (vCPU, e.g. "0.5", "2" or "500m")',
        id="cpu-not-a-number",
    ),
    pytest.param(
        'amount = "custom"\ncpu = "1"\nmemory = "4GB"',
        'sama-build.memory: "4GB" is not a size in Mi or Gi (e.g. "512Mi", "4Gi")',
        id="memory-unit",
    ),
    pytest.param(
        'disk = "100GB"', 'sama-build.disk: "100GB" is not a size in Mi or Gi', id="disk-unit"
    ),
    pytest.param(
        "disk = 100",
        "sama-build.disk: found 100; expected a string in quotes",
        id="disk-not-a-string",
    ),
    pytest.param(
        'infra = "narwhal"\ndisk = "300Gi"',
        'sama-build.disk: "300Gi" is above the maximum on narwhal (base storage, 21Gi to 200Gi); use at most 200Gi',
        id="narwhal-disk-above-max",
    ),
    pytest.param(
        'infra = "narwhal"\ndisk = "10Gi"',
        'sama-build.disk: "10Gi" is below the minimum on narwhal (base storage, 21Gi to 200Gi); use at least 21Gi',
        id="narwhal-disk-below-min",
    ),
    pytest.param(
        'infra = "narwhal"\ndisk = "22000Mi"',
        'sama-build.disk: "22000Mi": ECS storage is whole GiB; use 22Gi',
        id="narwhal-disk-whole-gib",
    ),
    pytest.param(
        'disk = "600Gi"',
        'sama-build.disk: "600Gi" is above the maximum on giver (attached disk (beside the fixed 8Gi main storage), 1Gi to 500Gi); use at most 500Gi',
        id="giver-disk-above-max",
    ),
    pytest.param(
        'disk = "512Mi"',
        'sama-build.disk: "512Mi" is below the minimum on giver',
        id="giver-disk-below-min",
    ),
    pytest.param(
        'infra = "gke"\ndisk = "20Gi"',
        'sama-build.disk: "20Gi" is above the maximum on gke (ephemeral storage, up to 10Gi); use at most 10Gi',
        id="gke-disk-above-max",
    ),
    pytest.param(
        'infra = "narwhal"\namount = "very-low"',
        'sama-build.amount: amount = "very-low" (0.5 vCPU / 512Mi) is not an ECS Fargate combination on narwhal (0.5 vCPU takes 1Gi to 4Gi in steps of 1Gi); use amount = "custom" with cpu = "0.5" and memory = "1Gi"',
        id="narwhal-very-low-not-ecs",
    ),
    pytest.param(
        'infra = "narwhal"\namount = "custom"\ncpu = "3"\nmemory = "8Gi"',
        "sama-build.memory: 3 vCPU is not an ECS Fargate size on narwhal; use one of 0.25, 0.5, 1, 2, 4, 8, 16 vCPU",
        id="narwhal-cpu-not-ecs",
    ),
    pytest.param(
        'infra = "narwhal"\namount = "custom"\ncpu = "1"\nmemory = "16Gi"',
        "sama-build.memory: 1 vCPU with 16Gi is not an ECS Fargate combination on narwhal (1 vCPU takes 2Gi to 8Gi in steps of 1Gi); use a memory from 2Gi to 8Gi in steps of 1Gi",
        id="narwhal-memory-not-ecs",
    ),
    pytest.param(
        'infra = "narwal"',
        'sama-build.infra: found "narwal" (did you mean "narwhal"?); allowed: "giver", "narwhal" or "gke"',
        id="infra-typo",
    ),
    pytest.param(
        'cloud = "ibm"',
        'sama-build.cloud: found "ibm"; allowed: "aws", "gcp" or "azure"',
        id="cloud",
    ),
    pytest.param(
        'region = "asia"', 'sama-build.region: found "asia"; allowed: "us" or "eu"', id="region"
    ),
    pytest.param(
        'pyver = "3.10"',
        'sama-build.pyver: found "3.10" (did you mean "3.13"?); allowed: "3.9", "3.11" or "3.13"',
        id="pyver-not-offered",
    ),
    pytest.param(
        "pyver = 3.11",
        'sama-build.pyver: found 3.11, a number; write it in quotes: "3.11"',
        id="pyver-not-a-string",
    ),
    pytest.param(
        "custom-image = true",
        "sama-build.custom-image: custom-image = true needs a Dockerfile at the package root",
        id="custom-image-without-dockerfile",
    ),
    pytest.param(
        'custom-image = "yes"',
        'sama-build.custom-image: found "yes"; expected true or false',
        id="custom-image-not-bool",
    ),
    pytest.param(
        'nps-ext = ["slma"]',
        'sama-build.nps-ext: unknown extra "slma" (did you mean "slam"?); allowed: "slam"',
        id="nps-ext-unknown",
    ),
    pytest.param(
        'nps-ext = ["slam"]',
        'sama-build.nps-ext: "slam" needs the \'slamus\' package in the flow\'s [project].dependencies; add "slamus" there',
        id="nps-ext-slam-without-slamus",
    ),
    pytest.param(
        'nps-ext = "slam"',
        'sama-build.nps-ext: found "slam"; expected a list, e.g. ["a", "b"]',
        id="nps-ext-not-a-list",
    ),
    pytest.param(
        "deploy-json = true",
        "deploy.json: deploy-json = true needs deploy.json at the package root",
        id="deploy-json-without-file",
    ),
    pytest.param(
        'deploy-list = ["a", "a"]',
        "sama-build.deploy-list: deployment names must be unique; repeated: a",
        id="deploy-list-repeated",
    ),
    pytest.param(
        'deploy-list = [" "]',
        "sama-build.deploy-list: deployment names must not be empty",
        id="deploy-list-empty-name",
    ),
    pytest.param(
        "deploy-num = 0",
        "sama-build.deploy-num: found 0; expected a whole number of at least 1",
        id="deploy-num-zero",
    ),
    pytest.param(
        'deploy-num = "3"',
        'sama-build.deploy-num: found "3"; expected a whole number',
        id="deploy-num-not-int",
    ),
]


@pytest.mark.parametrize(("table", "expected"), INVALID)
def test_invalid_sama_build_names_key_value_and_fix(
    tmp_path: Path, table: str, expected: str
) -> None:
    found = problems_of(write_package(tmp_path, table))
    assert any(expected in line for line in found), "\n".join(found)


def test_problem_gives_the_pyproject_line_of_the_key(tmp_path: Path) -> None:
    package = write_package(tmp_path, 'amount = "med"\ndisk = "900Gi"')
    [problem] = problems_of(package)
    assert problem.startswith(f"{package / 'pyproject.toml'}:8: sama-build.disk:")


def test_every_problem_of_a_package_is_reported_at_once(tmp_path: Path) -> None:
    table = 'ammount = "low"\nregion = "asia"\npyver = "3.10"\ndisk = "9000Gi"\ncpu = "2"\nnps-ext = ["x"]'
    found = problems_of(write_package(tmp_path, table, project='version = "1"\ndependencies = []'))
    keys = sorted(line.split(": ")[1] for line in found)
    assert keys == [
        "project.dependencies",
        "sama-build.ammount",
        "sama-build.cpu",
        "sama-build.disk",
        "sama-build.nps-ext",
        "sama-build.pyver",
        "sama-build.region",
    ], found


def test_custom_image_with_a_dockerfile_is_valid(tmp_path: Path) -> None:
    package = write_package(
        tmp_path, "custom-image = true", files={"Dockerfile": "FROM python:3.11\n"}
    )
    assert check_package(package).config.custom_image is True


def test_slam_extra_with_slamus_in_dependencies_is_valid(tmp_path: Path) -> None:
    project = 'version = "1.0.0"\ndependencies = ["libnar>=5", "slamus==2.1"]'
    package = write_package(tmp_path, 'nps-ext = ["slam"]', project=project)
    assert check_package(package).config.nps_ext == ["slam"]


@pytest.mark.parametrize(
    ("table", "expected"),
    [
        pytest.param(
            "skip-deploy = true", "skip-deploy is deprecated and ignored", id="skip-deploy"
        ),
        pytest.param('workspace = "test"', "workspace is deprecated and ignored", id="workspace"),
        pytest.param(
            'deploy-list = ["a"]\ndeploy-num = 2',
            "deploy-num: is ignored because deploy-list is set",
            id="num-under-list",
        ),
    ],
)
def test_deprecated_and_overridden_keys_warn_but_build(
    tmp_path: Path, table: str, expected: str
) -> None:
    package = check_package(write_package(tmp_path, table))
    assert [w.level for w in package.warnings] == ["warning"]
    assert expected in str(package.warnings[0])


def test_deploy_json_overrides_deploy_list_and_deploy_num(tmp_path: Path) -> None:
    table = 'deploy-json = true\ndeploy-list = ["x"]\ndeploy-num = 3'
    package = check_package(
        write_package(tmp_path, table, deploy_json={"deploy": [{"name": "only"}]})
    )
    assert [d.name for d in package.deployments] == ["only"]
    assert len(package.warnings) == 2


@pytest.mark.parametrize(
    ("table", "names"),
    [
        pytest.param("", ["fun69_boxes_ptp_deploy"], id="default-one"),
        pytest.param(
            "deploy-num = 3", [f"fun69_boxes_ptp_deploy_{i}" for i in (1, 2, 3)], id="num"
        ),
        pytest.param('deploy-list = ["b", "a"]\ndeploy-num = 3', ["b", "a"], id="list-over-num"),
    ],
)
def test_deployment_names_follow_precedence(tmp_path: Path, table: str, names: list[str]) -> None:
    assert [d.name for d in check_package(write_package(tmp_path, table)).deployments] == names


@pytest.mark.parametrize(
    ("project", "expected"),
    [
        pytest.param(
            'dependencies = ["libnar"]',
            'project.version: is required, e.g. version = "0.1.0"',
            id="no-version",
        ),
        pytest.param(
            'version = "1"\ndependencies = ["pandas"]',
            'project.dependencies: libnar is missing: the flow imports it at run time; add "libnar>=5" to the list',
            id="no-libnar",
        ),
    ],
)
def test_project_table_needs_version_and_libnar(
    tmp_path: Path, project: str, expected: str
) -> None:
    found = problems_of(write_package(tmp_path, project=project))
    assert any(expected in line for line in found), found


def test_broken_toml_is_one_problem_with_its_line(tmp_path: Path) -> None:
    package = write_package(tmp_path, 'disk = "100Gi')
    with pytest.raises(BuildError) as caught:
        check_package(package)
    [problem] = caught.value.problems
    assert problem.line == 7
    assert "not valid TOML" in problem.message
