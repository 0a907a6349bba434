"""The gateway's request and answer bodies, as its OpenAPI document shows them."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

__all__ = [
    "ERRORS",
    "TRIGGER_ERRORS",
    "ErrorAnswer",
    "Problem",
    "RunAnswer",
    "TokenAnswer",
    "TokenRequest",
]


class RunAnswer(BaseModel):
    """The run an event landed on."""

    flow_run_id: str = Field(description="The Prefect flow run id.")
    flow_run_name: str
    deployment: str = Field(description="The deployment the run belongs to.")
    duplicate: bool = Field(description="True when the run already existed for this event.")


class Problem(BaseModel):
    """One bad field: where, what was found, what was expected."""

    path: str
    found: str
    expected: str


class ErrorAnswer(BaseModel):
    """An error: what went wrong, and for bad input one problem per field."""

    detail: str
    problems: list[Problem] | None = None
    request_id: str | None = None


class TokenRequest(BaseModel):
    """Mint a webhook token for a flow."""

    name: str = Field(description="The flow name (a `.py` suffix is dropped).")
    parameters: dict[str, Any] | None = Field(
        default=None,
        description="Extra run parameters; `dep_name` picks a deployment, `no_round` drops"
        " the round tag.",
    )
    expires_in: int | None = Field(
        default=None, gt=0, description="Seconds until the token expires; none: never."
    )


class TokenAnswer(BaseModel):
    """A minted token: put it in SamaHub's webhook `x-auth-token`."""

    token: str
    name: str
    parameters: dict[str, Any]
    expires_at: int | None = Field(description="Unix time of expiry, or null.")


ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorAnswer, "description": "Missing or invalid credentials."},
    408: {"model": ErrorAnswer, "description": "The body was not sent in time."},
    413: {"model": ErrorAnswer, "description": "The body is over the size limit."},
    422: {"model": ErrorAnswer, "description": "Bad body or parameters; one problem per field."},
}
TRIGGER_ERRORS: dict[int | str, dict[str, Any]] = {
    **ERRORS,
    404: {"model": ErrorAnswer, "description": "The flow has no such deployment."},
    502: {"model": ErrorAnswer, "description": "Prefect answered unexpectedly; event kept."},
    503: {"model": ErrorAnswer, "description": "Prefect unreachable; event kept; Retry-After."},
}
