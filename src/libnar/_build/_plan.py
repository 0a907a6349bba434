"""The deployment plan of a flow package, and the `prefect.yaml` that says the same.

A plan is data: the same package gives the same plan, byte for byte (sorted keys, no clock,
no absolute paths), so it can be printed, diffed, written as `prefect.yaml` or applied to a
Prefect API by `_apply`.
"""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from libnar._build._config import SamaBuild, format_mib
from libnar._build._package import FlowPackage
from libnar.settings import Settings, get_settings

__all__ = [
    "IMAGE_WORKDIR",
    "POOL_TYPES",
    "DeploymentPlan",
    "PackagePlan",
    "default_work_pool",
    "image_steps",
    "job_variables",
    "local_plan",
    "make_plan",
    "plan_to_json",
    "plan_to_prefect_yaml",
]

# infra -> the Prefect work pool type its workers run.
POOL_TYPES: dict[str, str] = {"giver": "kubernetes", "narwhal": "ecs", "gke": "kubernetes"}
# Where a flow image holds its package; runs start there (the `pull` step).
IMAGE_WORKDIR = "/opt/prefect"


class DeploymentPlan(BaseModel):
    """One Prefect deployment, as it will be created or updated."""

    model_config = ConfigDict(frozen=True)

    name: str
    flow_name: str
    version: str
    entrypoint: str
    description: str | None
    parameters: dict[str, Any]
    schedule: dict[str, Any] | None
    """In `deploy.json` form: `{"cron": ..., "timezone": ...}`, `{"interval": ...}`, `{"rrule": ...}`."""
    work_pool: str
    work_pool_type: str
    work_queue: str
    job_variables: dict[str, Any]
    tags: list[str]
    pool_template: str
    """The base job template of the pool (`libnar pools show`): the infra, or `local`."""
    infra: Literal["giver", "narwhal", "gke"] = "giver"
    """Where the deployment's runs go: the limits per-run resources are checked against."""
    amount: str = "low"
    """The deployment's preset (`custom` for own CPU and memory)."""
    escalate: list[str] = []
    """Presets to re-run with after an out-of-memory crash, smallest first."""
    notify: list[dict[str, Any]] = []
    """Alerts: `{"on": [states], "block": "<block type>/<block name>"}` each."""


class PackagePlan(BaseModel):
    """Every deployment of one flow package, and the image they run."""

    model_config = ConfigDict(frozen=True)

    package: str
    flow_name: str
    version: str
    infra: Literal["giver", "narwhal", "gke"]
    image: str
    image_base: str
    """What the image is built from: the package's `Dockerfile` or the NPS base image."""
    extras: list[str]
    workdir: str
    deployments: list[DeploymentPlan]
    parameter_schema: dict[str, Any]


def default_work_pool(infra: str, cloud: str, region: str) -> str:
    """The pool an infra/cloud/region runs on before `LIBNAR_WORK_POOLS` renames it."""
    if infra == "giver":
        return "giver"
    if infra == "gke":
        return "narpool-gke-eu"
    return f"narpool-{cloud}-{region}" if cloud == "aws" else f"narpool-{cloud}"


def base_image(pyver: str, settings: Settings) -> str:
    """The image flow images start from: `LIBNAR_BASE_IMAGE`, else the NPS base image."""
    template = settings.base_image or f"{settings.image_registry}/nps-base:py{{pyver}}"
    return template.replace("{pyver}", pyver)


def _quantity(vcpu: Decimal) -> str:
    return format(vcpu.normalize(), "f")  # Decimal("1.0") -> "1", Decimal("0.50") -> "0.5"


def job_variables(config: SamaBuild, image: str) -> dict[str, Any]:
    """The work pool's job variables for the resources of `config`, in the infra's own units.

    ECS (narwhal) counts CPU units (vCPU x 1024), memory in MiB and storage in GiB; Kubernetes
    (gke, giver) takes quantities (`"0.5"`, `"2Gi"`). giver's disk is an attached volume.
    `env` is the run's environment: empty here, a place for per-run values.
    """
    disk = config.disk_mib
    found: dict[str, Any] = {"image": image, "env": {}}
    if config.infra == "narwhal":
        found |= {"cpu": int(config.vcpu * 1024), "memory": config.memory_mib}
        if disk is not None:
            found["ephemeral_storage"] = disk // 1024
    else:
        found |= {"cpu": _quantity(config.vcpu), "memory": format_mib(config.memory_mib)}
        if disk is not None:
            key = "volume_size" if config.infra == "giver" else "ephemeral_storage"
            found[key] = format_mib(disk)
    return {key: found[key] for key in sorted(found)}


def make_plan(package: FlowPackage, settings: Settings | None = None) -> PackagePlan:
    """The deployments of a checked flow package, with pools, resources, image and schedules."""
    import prefect

    settings = settings or get_settings()
    config = package.config
    version = f"{package.version}-prefect-{prefect.__version__}"
    image = f"{settings.image_registry}/{package.name}:{package.version}-py{config.pyver}"
    pool = default_work_pool(config.infra, config.cloud, config.region)
    pool = settings.work_pools.get(pool, pool)
    variables = job_variables(config, image)
    # No `amount:` tag here: Prefect adds a deployment's tags to each of its runs, so a run
    # given other resources would carry two. A run with its own resources is tagged with them.
    tags = sorted(["libnar", f"infra:{config.infra}"])
    deployments = [
        DeploymentPlan(
            name=spec.name,
            flow_name=package.flow_name,
            version=version,
            entrypoint=package.entrypoint,
            description=package.flow_description,
            parameters=spec.parameters,
            schedule=spec.schedule,
            work_pool=pool,
            work_pool_type=POOL_TYPES[config.infra],
            work_queue=f"narq_{package.flow_name}",
            job_variables=variables,
            tags=tags,
            pool_template=config.infra,
            infra=config.infra,
            amount=config.amount,
            escalate=list(config.escalate),
            notify=[entry.model_dump() for entry in config.notify],
        )
        for spec in package.deployments
    ]
    return PackagePlan(
        package=package.name,
        flow_name=package.flow_name,
        version=version,
        infra=config.infra,
        image=image,
        image_base="Dockerfile" if config.custom_image else base_image(config.pyver, settings),
        extras=sorted(config.nps_ext),
        workdir=f"{IMAGE_WORKDIR}/{package.name}",
        deployments=deployments,
        parameter_schema=package.parameter_schema,
    )


def local_plan(package: FlowPackage, plan: PackagePlan, pool: str) -> PackagePlan:
    """`plan` as `libnar dev` applies it: the same deployments, on a local `process` pool.

    Names, parameters, schedules and entrypoints stay; runs start in the package folder
    instead of the image's working directory, and the job variables are those of the local
    pool: the preset's `cpu` and `memory` (enforced there) and `env`. No image, no disk.
    """
    config = package.config
    variables = {"cpu": _quantity(config.vcpu), "env": {}, "memory": format_mib(config.memory_mib)}
    deployments = [
        d.model_copy(
            update={
                "work_pool": pool,
                "work_pool_type": "process",
                "job_variables": variables,
                "pool_template": "local",
            }
        )
        for d in plan.deployments
    ]
    return plan.model_copy(
        update={"deployments": deployments, "workdir": str(package.root.resolve())}
    )


def plan_to_json(plan: PackagePlan) -> str:
    """The plan as JSON text with sorted keys (stable to diff and to compare)."""
    return json.dumps(plan.model_dump(mode="json"), indent=2, sort_keys=True) + "\n"


def plan_to_prefect_yaml(plan: PackagePlan) -> str:
    """The plan as a `prefect.yaml` that `prefect deploy --all` reads, run from the package root.

    The `build` and `push` steps (prefect-docker) build the image from the package's
    `Dockerfile` and push it, once for all deployments: they are top-level, and prefect-docker
    runs a step once for the same arguments. Deployments name the same image.
    """
    import yaml

    document: dict[str, Any] = {
        "name": plan.package,
        "prefect-version": plan.version.rsplit("-prefect-", 1)[-1],
        "build": image_steps(plan)["build"],
        "push": image_steps(plan)["push"],
        "pull": [{"prefect.deployments.steps.set_working_directory": {"directory": plan.workdir}}],
        "deployments": [_yaml_deployment(d) for d in plan.deployments],
    }
    header = (
        f"# Generated by `libnar build` from {plan.package}/pyproject.toml [sama-build];"
        " edit that, not this file.\n"
    )
    body: str = yaml.safe_dump(document, sort_keys=False, default_flow_style=False, width=100)
    return header + body


#: The prefect-docker that `prefect deploy` installs when the steps cannot be imported.
PREFECT_DOCKER_REQUIREMENT = "prefect-docker>=0.7,<0.8"


def image_steps(plan: PackagePlan) -> dict[str, list[dict[str, Any]]]:
    """The `build` and `push` steps of `prefect.yaml`: prefect-docker's, with the plan's image."""
    name, tag = plan.image.rsplit(":", 1)
    build = {
        "id": "build-image",
        "requires": PREFECT_DOCKER_REQUIREMENT,
        "image_name": name,
        "tag": tag,
        "dockerfile": "Dockerfile",
        "platform": "linux/amd64",
        "buildargs": {
            "PIP_INDEX_URL": "{{ $PIP_INDEX_URL }}",
            "PIP_EXTRA_INDEX_URL": "{{ $PIP_EXTRA_INDEX_URL }}",
        },
    }
    push = {
        "requires": PREFECT_DOCKER_REQUIREMENT,
        "image_name": "{{ build-image.image_name }}",
        "tag": "{{ build-image.tag }}",
    }
    return {
        "build": [{"prefect_docker.deployments.steps.build_docker_image": build}],
        "push": [{"prefect_docker.deployments.steps.push_docker_image": push}],
    }


def _yaml_deployment(deployment: DeploymentPlan) -> dict[str, Any]:
    return {
        "name": deployment.name,
        "version": deployment.version,
        "tags": deployment.tags,
        "description": deployment.description,
        "entrypoint": deployment.entrypoint,
        "parameters": _sorted(deployment.parameters),
        "schedules": [_sorted(deployment.schedule)] if deployment.schedule else [],
        "work_pool": {
            "name": deployment.work_pool,
            "work_queue_name": deployment.work_queue,
            "job_variables": _sorted(deployment.job_variables),
        },
    }


def _sorted(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _sorted(value[key]) for key in sorted(value)}
    if isinstance(value, list):
        return [_sorted(item) for item in value]
    return value
