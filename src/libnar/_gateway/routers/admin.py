"""Admin endpoints (the admin key as bearer): mint tokens, export deployments, replay."""

from __future__ import annotations

import logging
from typing import Annotated, Any, Literal
from uuid import UUID

import httpx
from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, ConfigDict, Field

from libnar._gateway._answers import ERRORS, ErrorAnswer, TokenAnswer, TokenRequest
from libnar._gateway._dependencies import AdminKey, Config, Service
from libnar._gateway._service import Rejected
from libnar._gateway._tokens import mint_token, verify_token
from libnar.events import EventProblem, short_text
from libnar.naming import (
    FlowNameError,
    check_deployment_name,
    check_flow_name,
    normalize_flow_name,
)

__all__ = ["router"]

logger = logging.getLogger("libnar.gateway")
router = APIRouter(tags=["admin"], dependencies=[AdminKey])


@router.put(
    "/create-token",
    response_model=TokenAnswer,
    responses=ERRORS,
    summary="Mint a webhook token (admin)",
)
async def create_token(request: Request, wanted: TokenRequest, config: Config) -> TokenAnswer:
    """A token for SamaHub's webhook `x-auth-token`, signed with the first secret."""
    try:
        flow = normalize_flow_name(wanted.name)
    except FlowNameError as exc:
        raise Rejected(
            422,
            "invalid token request",
            problems=[EventProblem(path="name", found=short_text(wanted.name), expected=str(exc))],
        ) from None
    parameters = wanted.parameters or {}
    token = mint_token(config.secrets[0], flow, parameters, wanted.expires_in)
    claims = verify_token(token, config.secrets[:1])
    request.state.audit.update(flow=flow)
    return TokenAnswer(token=token, name=flow, parameters=parameters, expires_at=claims.expires_at)


@router.get(
    "/deploy-json",
    responses={**ERRORS, 404: {"model": ErrorAnswer}, 503: {"model": ErrorAnswer}},
    summary="A flow's deployments in deploy.json form (admin)",
)
async def get_deploy_json(
    config: Config,
    flow_name: Annotated[str, Query(description="The flow name.")],
    deployment_name: Annotated[str | None, Query(description="Only this deployment.")] = None,
) -> dict[str, Any]:
    """`{"deploy": [{"name", "schedule", "parameters"}]}` of the flow's deployments."""
    from prefect.client.orchestration import PrefectClient

    from libnar._build import DeployError, export_deploy_json

    problems = []
    flow_problem = check_flow_name(flow_name)
    if flow_problem:
        problems.append(
            EventProblem(path="flow_name", found=short_text(flow_name), expected=flow_problem)
        )
    if deployment_name is not None:
        problem = check_deployment_name(deployment_name)
        if problem:
            problems.append(
                EventProblem(
                    path="deployment_name", found=short_text(deployment_name), expected=problem
                )
            )
    if problems:
        raise Rejected(422, "invalid request", problems=problems)
    client = PrefectClient(
        config.prefect_api_url, httpx_settings={"headers": config.prefect_headers}
    )
    try:
        async with client:
            return await export_deploy_json(flow_name, deployment_name, client=client)
    except DeployError as exc:
        # The error names Prefect's URL: show it without the credentials it may carry.
        message = str(exc).replace(config.prefect_api_url, config.shown_prefect_url)
        raise Rejected(404, message) from None
    except httpx.HTTPError:
        raise Rejected(
            503, "Prefect is unreachable", retry_after=config.settings.gateway_retry_after_seconds
        ) from None


@router.post(
    "/replay",
    responses={401: {"model": ErrorAnswer}},
    summary="Trigger what is pending in the outbox (admin)",
)
async def replay(
    service: Service,
    force: Annotated[
        bool, Query(description="Give each a new attempt key: runs again even if it ran.")
    ] = False,
) -> dict[str, Any]:
    """Re-trigger pending events; without `force` an event that has a run is not re-run."""
    report = await service.replay(force=force)
    return report.as_dict()


class EscalateRequest(BaseModel):
    """What Prefect's escalation automation sends (see `libnar deploy`)."""

    model_config = ConfigDict(extra="forbid")

    flow_run_id: UUID = Field(description="The run that crashed.")
    presets: list[Literal["very-low", "low", "med", "high", "custom"]] = Field(
        description="The deployment's preset, then its `escalate` list, smallest first.",
        max_length=10,
    )


@router.post(
    "/escalate",
    responses={**ERRORS, 404: {"model": ErrorAnswer}, 503: {"model": ErrorAnswer}},
    summary="Re-run an out-of-memory run with the next preset (admin; Prefect automations)",
)
async def post_escalate(
    service: Service, config: Config, wanted: EscalateRequest
) -> dict[str, Any]:
    """Create exactly one run with the next preset's resources for a run that ran out of memory.

    Idempotent: the new run's key is `<deployment id>:escalate:<crashed run id>`, so a trigger
    delivered twice lands on the same run (`duplicate: true`).
    """
    from libnar._gateway._escalate import escalate
    from libnar._gateway._trigger import ParametersRejected, TriggerError

    try:
        done = await escalate(service.trigger, str(wanted.flow_run_id), list(wanted.presets))
    except LookupError as exc:
        raise Rejected(404, str(exc)) from None
    except ParametersRejected as exc:
        raise Rejected(422, f"cannot escalate: {exc}", problems=exc.problems) from None
    except TriggerError as exc:
        raise Rejected(
            503,
            f"Prefect failed: {exc}",
            retry_after=config.settings.gateway_retry_after_seconds,
        ) from None
    service.metrics.count_escalation(done.outcome)
    if done.outcome == "last_preset":
        logger.warning(
            "escalate: flow run %s ran out of memory at its last preset; no further run (%s)",
            wanted.flow_run_id,
            done.reason,
        )
    return done.body()
