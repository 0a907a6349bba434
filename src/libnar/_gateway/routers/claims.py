"""Large event bodies, served back to the runs that carry a reference to them."""

from __future__ import annotations

from typing import Annotated

import anyio
from fastapi import APIRouter, Depends, Path
from fastapi.responses import Response
from fastapi.security import HTTPAuthorizationCredentials

from libnar._gateway._answers import ErrorAnswer
from libnar._gateway._dependencies import Service, bearer_scheme
from libnar._gateway._errors import Unauthorized
from libnar._gateway._service import Rejected

__all__ = ["router"]

router = APIRouter(tags=["claims"])


@router.get(
    "/claims/{claim_id}",
    responses={
        200: {"content": {"application/json": {}}, "description": "The event's JSON."},
        401: {"model": ErrorAnswer, "description": "Missing or wrong claim token."},
        404: {"model": ErrorAnswer, "description": "No longer kept (past its retention)."},
    },
    summary="The body of a large event, for its run (the reference's token as bearer)",
)
async def get_claim(
    service: Service,
    claim_id: Annotated[str, Path(max_length=64, description="The body's SHA-256 (hex).")],
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer_scheme)],
) -> Response:
    """The event as kept; 401 unless the bearer is this claim's token, checked first so an
    unauthenticated caller learns nothing about what is kept."""
    if not service.claims.is_authorized(claim_id, credentials.credentials if credentials else None):
        raise Unauthorized("claim token missing or wrong", bearer=True)
    body = await anyio.to_thread.run_sync(service.claims.body_of, claim_id)
    if body is None:
        raise Rejected(404, "the claim is no longer kept (LIBNAR_CLAIM_RETENTION_DAYS)")
    return Response(body, media_type="application/json")
