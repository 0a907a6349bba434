"""Liveness, readiness and metrics, for load balancers, orchestrators and Prometheus."""

from __future__ import annotations

import anyio
from fastapi import APIRouter
from fastapi.responses import JSONResponse, Response

from libnar._gateway._dependencies import Service
from libnar._gateway._metrics import CONTENT_TYPE

__all__ = ["router"]

router = APIRouter(tags=["health"])


@router.get("/health", summary="The process is up")
async def health() -> dict[str, str]:
    """Always 200 while the process serves requests."""
    return {"status": "ok"}


@router.get("/ready", summary="Prefect reachable, outbox writable with room", responses={503: {}})
async def ready(service: Service) -> JSONResponse:
    """200 when the Prefect API answers and the outbox accepts files with
    `LIBNAR_OUTBOX_MIN_FREE_BYTES` free, else 503 (and events would get 503 too)."""
    checks = {
        "prefect": await service.trigger.is_reachable(),
        "outbox": await anyio.to_thread.run_sync(service.outbox.is_writable),
    }
    return JSONResponse(checks, status_code=200 if all(checks.values()) else 503)


@router.get(
    "/metrics",
    summary="Prometheus metrics",
    response_class=Response,
    responses={200: {"content": {CONTENT_TYPE: {}}, "description": "Prometheus' text format."}},
)
async def metrics(service: Service) -> Response:
    """Events by outcome, the backlog, accept-to-run time, Prefect calls, connections (every
    worker's with `--workers N`); see the gateway docs for each metric."""
    body = await anyio.to_thread.run_sync(service.metrics.render)
    return Response(body, media_type=CONTENT_TYPE)
