"""SamaHub's calls: a webhook event (with a token) and a DPP request (with a DPP key)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from libnar._gateway._answers import ACCEPTED, TRIGGER_ERRORS, RunAnswer
from libnar._gateway._dependencies import DppKey, RequestBody, Service, WebhookToken
from libnar._gateway._service import Rejected
from libnar.events import (
    DPP_SENT_AS_WEBHOOK,
    WEBHOOK_SENT_AS_DPP,
    DppEvent,
    EventError,
    WebhookEvent,
    parse_as,
)

__all__ = ["router"]

router = APIRouter(tags=["events"])


def _body_schema(model: str) -> dict[str, Any]:
    return {
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{model}"}}},
        }
    }


def _parse(kind: type[WebhookEvent] | type[DppEvent], body: bytes) -> WebhookEvent | DppEvent:
    try:
        event = parse_as(kind, body)
    except EventError as exc:
        if DPP_SENT_AS_WEBHOOK in exc.problems:
            detail = "this is a DPP request: SamaHub sends DPP requests to /dpp-event"
        elif WEBHOOK_SENT_AS_DPP in exc.problems:
            detail = "this is a webhook event: send it to /webhook-event with its x-auth-token"
        else:
            detail = str(exc).splitlines()[0].rstrip(":")
        raise Rejected(422, detail, problems=exc.problems) from None
    assert isinstance(event, WebhookEvent | DppEvent)
    return event


async def _run(
    request: Request,
    service: Service,
    event: WebhookEvent | DppEvent,
    flow: str,
    parameters: Any,
) -> JSONResponse:
    audit = request.state.audit
    audit.update(source=event.source)
    prepared = service.prepare(event, flow, parameters)
    entry = prepared.entry
    audit.update(flow=entry.flow, deployment=entry.deployment, event_key=entry.event_key)
    if prepared.body is not None:
        audit.update(claim_bytes=len(prepared.body))
    accepted = await service.accept(prepared)
    audit.update(
        outcome="duplicate" if accepted.duplicate else "accepted",
        duplicate=accepted.duplicate,
        flow_run_id=accepted.run.flow_run_id if accepted.run else None,
    )
    return JSONResponse(accepted.body(), status_code=accepted.status)


@router.post(
    "/webhook-event",
    response_model=RunAnswer,
    responses={**ACCEPTED, **TRIGGER_ERRORS},
    openapi_extra=_body_schema("WebhookEvent"),
    summary="Trigger the flow a webhook token names",
)
async def webhook_event(
    request: Request, claims: WebhookToken, body: RequestBody, service: Service
) -> JSONResponse:
    """SamaHub's webhook: `{"task": {...}}`, with the token in `x-auth-token`."""
    event = _parse(WebhookEvent, body)
    return await _run(request, service, event, claims.name, claims.parameters)


@router.post(
    "/dpp-event",
    response_model=RunAnswer,
    responses={**ACCEPTED, **TRIGGER_ERRORS},
    openapi_extra=_body_schema("DppEvent"),
    dependencies=[DppKey],
    summary="Trigger the flow a DPP request names",
)
async def dpp_event(request: Request, body: RequestBody, service: Service) -> JSONResponse:
    """SamaHub's post-processing request, with the DPP key as a bearer token."""
    event = _parse(DppEvent, body)
    assert isinstance(event, DppEvent)
    return await _run(request, service, event, event.name, event.parameters)
