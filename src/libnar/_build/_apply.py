"""Apply a plan to a Prefect API, and read deployments back in `deploy.json` form.

Talks to `PREFECT_API_URL` through Prefect's client (no `prefect deploy` subprocess). A
deployment is looked up by `<flow>/<name>` first: applying the same plan twice updates in place
or leaves it alone, never duplicates. Async at the core; `*_sync` facades for scripts and
notebooks.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict

from libnar._build._automations import AutomationChange
from libnar._build._deploy_json import schedule_from_prefect, schedule_to_prefect
from libnar._build._plan import DeploymentPlan, PackagePlan

if TYPE_CHECKING:
    from prefect.client.orchestration import PrefectClient
    from prefect.client.schemas.responses import DeploymentResponse

    from libnar.settings import Settings

__all__ = [
    "DeployError",
    "DeploymentChange",
    "apply_plan",
    "apply_plan_sync",
    "export_deploy_json",
    "export_deploy_json_sync",
]

logger = logging.getLogger(__name__)


class DeployError(RuntimeError):
    """Applying a plan to the Prefect API failed; the message says what and how to fix it."""


class DeploymentChange(BaseModel):
    """What applying a plan did to one deployment."""

    model_config = ConfigDict(frozen=True)

    flow_name: str
    name: str
    action: Literal["created", "updated", "unchanged"]
    deployment_id: str
    automations: list[AutomationChange] = []
    """What happened to its automations (escalation, alerts), when they were applied."""


async def apply_plan(
    plan: PackagePlan,
    *,
    create_pools: bool = False,
    client: PrefectClient | None = None,
    schedules_active: bool = True,
    pool_templates: dict[str, dict[str, Any]] | None = None,
    automations: bool = True,
    settings: Settings | None = None,
) -> list[DeploymentChange]:
    """Create or update every deployment of `plan`; return what changed, in plan order.

    With `automations`, each deployment's Prefect automations (`escalate`, `notify`) are made
    to match the plan too (`libnar._build._automations`); `settings` give the gateway's URL
    and admin key that escalation calls.

    A missing pool is created with libnar's base job template for its kind (`libnar pools
    show`). `pool_templates` (template kind -> template) are applied to their pools even when
    the pools exist: `libnar dev` keeps its local pool's template current that way.
    `schedules_active=False` applies the schedules paused.

    Raises:
        DeployError: a work pool is missing (and `create_pools` is false).
    """
    if client is None:
        async with _api_client() as own_client:
            return await apply_plan(
                plan,
                create_pools=create_pools,
                client=own_client,
                schedules_active=schedules_active,
                pool_templates=pool_templates,
                automations=automations,
                settings=settings,
            )

    await _ensure_pools_and_queues(client, plan.deployments, create_pools, pool_templates or {})
    flow_id = await client.create_flow_from_name(plan.flow_name)
    changes = []
    for deployment in plan.deployments:
        existing = await _read_deployment(client, plan.flow_name, deployment.name)
        wanted = _deployment_fields(plan, deployment)
        if existing is not None and _is_unchanged(existing, wanted, deployment, schedules_active):
            action: Literal["created", "updated", "unchanged"] = "unchanged"
            deployment_id = existing.id
        else:
            from prefect.client.schemas.actions import DeploymentScheduleCreate

            schedules = (
                [
                    DeploymentScheduleCreate(
                        schedule=schedule_to_prefect(deployment.schedule), active=schedules_active
                    )
                ]
                if deployment.schedule
                else []
            )
            # POST /deployments/ upserts on (flow, name) and replaces the schedules.
            deployment_id = await client.create_deployment(
                flow_id=flow_id, name=deployment.name, schedules=schedules, **wanted
            )
            action = "created" if existing is None else "updated"
        changes.append(
            DeploymentChange(
                flow_name=plan.flow_name,
                name=deployment.name,
                action=action,
                deployment_id=str(deployment_id),
            )
        )
    if automations:
        from libnar._build._automations import sync_automations
        from libnar.settings import get_settings

        done = await sync_automations(
            client,
            plan,
            {change.name: change.deployment_id for change in changes},
            settings or get_settings(),
        )
        changes = [
            change.model_copy(
                update={"automations": [a for a in done if a.deployment == change.name]}
            )
            for change in changes
        ]
    return changes


def apply_plan_sync(
    plan: PackagePlan,
    *,
    create_pools: bool = False,
    schedules_active: bool = True,
    pool_templates: dict[str, dict[str, Any]] | None = None,
    automations: bool = True,
    settings: Settings | None = None,
) -> list[DeploymentChange]:
    """`apply_plan` for code that is not async."""
    from prefect.utilities.asyncutils import run_coro_as_sync

    changes: list[DeploymentChange] | None = run_coro_as_sync(
        apply_plan(
            plan,
            create_pools=create_pools,
            schedules_active=schedules_active,
            pool_templates=pool_templates,
            automations=automations,
            settings=settings,
        )
    )
    assert changes is not None
    return changes


def _api_client() -> PrefectClient:
    """A client of `PREFECT_API_URL`; refuse Prefect's throwaway local server."""
    from prefect.client.orchestration import get_client
    from prefect.settings import PREFECT_API_URL

    if not PREFECT_API_URL.value():
        raise DeployError(
            "PREFECT_API_URL is not set: deployments would go to a temporary local server and be"
            " lost; set it to your Prefect API (e.g. http://127.0.0.1:4200/api)"
        )
    return get_client()


async def _ensure_pools_and_queues(
    client: PrefectClient,
    deployments: list[DeploymentPlan],
    create_pools: bool,
    pool_templates: dict[str, dict[str, Any]],
) -> None:
    from prefect.client.schemas.actions import WorkPoolCreate, WorkPoolUpdate
    from prefect.exceptions import ObjectNotFound

    from libnar._build._pools import base_job_template

    pools = {d.work_pool: (d.work_pool_type, d.pool_template) for d in deployments}
    for pool, (pool_type, kind) in sorted(pools.items()):
        template = pool_templates.get(kind)
        try:
            await client.read_work_pool(pool)
        except ObjectNotFound:
            if not create_pools:
                raise DeployError(
                    f"work pool {pool!r} does not exist on {client.api_url}; create it"
                    f" (libnar pools show {kind} > {kind}.json; prefect work-pool create"
                    f" {pool} --type {pool_type} --base-job-template {kind}.json), rename it"
                    " with LIBNAR_WORK_POOLS, or run libnar deploy --create-pools"
                ) from None
            await client.create_work_pool(
                WorkPoolCreate(
                    name=pool,
                    type=pool_type,
                    base_job_template=template or base_job_template(kind),
                )
            )
            logger.info("created work pool %s (type %s, template %s)", pool, pool_type, kind)
        else:
            if template is not None:
                await client.update_work_pool(pool, WorkPoolUpdate(base_job_template=template))
    if not create_pools:
        return  # the server creates a missing queue in an existing pool by itself
    for queue, pool in sorted({(d.work_queue, d.work_pool) for d in deployments}):
        try:
            await client.read_work_queue_by_name(queue, work_pool_name=pool)
        except ObjectNotFound:
            await client.create_work_queue(name=queue, work_pool_name=pool)
            logger.info("created work queue %s in %s", queue, pool)


async def _read_deployment(
    client: PrefectClient, flow_name: str, name: str
) -> DeploymentResponse | None:
    from prefect.exceptions import ObjectNotFound

    try:
        return await client.read_deployment_by_name(f"{flow_name}/{name}")
    except ObjectNotFound:
        return None


def _deployment_fields(plan: PackagePlan, deployment: DeploymentPlan) -> dict[str, Any]:
    """The fields `create_deployment` takes, apart from flow, name and schedules."""
    return {
        "version": deployment.version,
        "description": deployment.description,
        "entrypoint": deployment.entrypoint,
        "parameters": deployment.parameters,
        "parameter_openapi_schema": plan.parameter_schema,
        "work_pool_name": deployment.work_pool,
        "work_queue_name": deployment.work_queue,
        "job_variables": deployment.job_variables,
        "tags": deployment.tags,
        "pull_steps": [
            {"prefect.deployments.steps.set_working_directory": {"directory": plan.workdir}}
        ],
    }


def _is_unchanged(
    existing: DeploymentResponse,
    wanted: dict[str, Any],
    deployment: DeploymentPlan,
    schedules_active: bool = True,
) -> bool:
    found = {key: getattr(existing, key) for key in wanted}
    found["tags"] = sorted(found["tags"])
    if found != wanted:
        return False
    if any(s.active != schedules_active for s in existing.schedules):
        return False
    schedules = [schedule_from_prefect(s.schedule) for s in existing.schedules]
    if deployment.schedule is None:
        return not schedules
    expected = schedule_from_prefect(schedule_to_prefect(deployment.schedule))
    if "anchor_date" not in deployment.schedule:
        # Prefect anchors an interval at "now" when none is given: any anchor matches.
        expected.pop("anchor_date", None)
        schedules = [{k: v for k, v in s.items() if k != "anchor_date"} for s in schedules]
    return schedules == [expected]


async def export_deploy_json(
    flow_name: str, deployment_name: str | None = None, *, client: PrefectClient | None = None
) -> dict[str, Any]:
    """The flow's deployments on the Prefect API as a `deploy.json` document, sorted by name.

    A deployment keeps its first schedule only: `deploy.json` has one per deployment (a
    warning is logged for the others).

    Raises:
        DeployError: the flow, or the named deployment, has no deployment on the API.
    """
    if client is None:
        async with _api_client() as own_client:
            return await export_deploy_json(flow_name, deployment_name, client=own_client)

    from prefect.client.schemas.filters import DeploymentFilter, FlowFilter

    deployment_filter = (
        DeploymentFilter(name={"any_": [deployment_name]}) if deployment_name else None
    )
    found = await client.read_deployments(
        flow_filter=FlowFilter(name={"any_": [flow_name]}), deployment_filter=deployment_filter
    )
    if not found:
        what = (
            f"deployment {deployment_name!r} of flow" if deployment_name else "deployments of flow"
        )
        raise DeployError(f"no {what} {flow_name!r} on {client.api_url}")
    entries = []
    for deployment in sorted(found, key=lambda d: d.name):
        entry: dict[str, Any] = {"name": deployment.name}
        if deployment.schedules:
            if len(deployment.schedules) > 1:
                logger.warning(
                    "%s/%s has %d schedules; deploy.json keeps the first",
                    flow_name,
                    deployment.name,
                    len(deployment.schedules),
                )
            entry["schedule"] = schedule_from_prefect(deployment.schedules[0].schedule)
        if deployment.parameters:
            entry["parameters"] = deployment.parameters
        entries.append(entry)
    return {"deploy": entries}


def export_deploy_json_sync(flow_name: str, deployment_name: str | None = None) -> dict[str, Any]:
    """`export_deploy_json` for code that is not async."""
    from prefect.utilities.asyncutils import run_coro_as_sync

    document: dict[str, Any] | None = run_coro_as_sync(
        export_deploy_json(flow_name, deployment_name)
    )
    assert document is not None
    return document
