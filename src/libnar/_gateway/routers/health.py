"""Liveness and readiness, for load balancers and orchestrators."""

from __future__ import annotations

import anyio
from fastapi import APIRouter
from fastapi.responses import JSONResponse

from libnar._gateway._dependencies import Service

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
