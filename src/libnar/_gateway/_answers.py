"""The gateway's request and answer bodies, as its OpenAPI document shows them."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

__all__ = [
    "ACCEPTED",
    "ERRORS",
    "TRIGGER_ERRORS",
    "ErrorAnswer",
    "Problem",
    "RunAnswer",
    "TokenAnswer",
    "TokenRequest",
]


class RunAnswer(BaseModel):
    """An accepted event: stored durably; its run is created by the gateway's dispatcher."""

    accepted: bool = Field(description="Always true: the event is stored and will have its run.")
    key: str = Field(
        description="The delivery's key; the run's Prefect idempotency key is"
        " `<deployment id>:<key>`."
    )
    deployment: str = Field(description="The deployment the run belongs to.")
    flow_run_id: str | None = Field(
        description="The Prefect flow run id when the run is known (status 200), else null."
    )
    flow_run_name: str = Field(description="The run's name.")
    duplicate: bool = Field(description="True when this delivery was accepted before.")


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
ACCEPTED: dict[int | str, dict[str, Any]] = {
    200: {"model": RunAnswer, "description": "Accepted; its run is known (`flow_run_id`)."},
    202: {"model": RunAnswer, "description": "Accepted and stored; its run comes shortly."},
}
TRIGGER_ERRORS: dict[int | str, dict[str, Any]] = {
    **ERRORS,
    404: {"model": ErrorAnswer, "description": "The flow has no such deployment."},
    503: {
        "model": ErrorAnswer,
        "description": "Backlog full or outbox unavailable; not stored; Retry-After.",
    },
}
