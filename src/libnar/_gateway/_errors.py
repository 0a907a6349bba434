"""How the gateway answers what goes wrong: one JSON shape, a request id, never a secret.

Bad input is a 4xx that names the field; a bug is a 500 that says only that it was logged.
"""

from __future__ import annotations

import logging
from typing import Any, cast

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from libnar._gateway._service import Rejected
from libnar.events import EventProblem, short_text

__all__ = ["BodyTimeout", "BodyTooLarge", "Unauthorized", "add_error_handlers", "error_answer"]

logger = logging.getLogger("libnar.gateway")

_UNAUTHORIZED = "missing or invalid credentials"


class Unauthorized(Exception):
    """Credentials missing or wrong; the answer never says which check failed."""

    def __init__(self, reason: str, *, bearer: bool) -> None:
        self.reason = reason
        self.bearer = bearer
        super().__init__(reason)


class BodyTooLarge(Exception):
    """The request body is over `LIBNAR_MAX_BODY_BYTES`."""


class BodyTimeout(Exception):
    """The request body did not arrive within `LIBNAR_GATEWAY_BODY_TIMEOUT_SECONDS`."""


def error_answer(
    request: Request, status: int, body: dict[str, Any], headers: dict[str, str] | None = None
) -> JSONResponse:
    """A JSON error answer carrying the request's id."""
    request_id = getattr(request.state, "request_id", None)
    return JSONResponse({**body, "request_id": request_id}, status_code=status, headers=headers)


def add_error_handlers(app: FastAPI) -> None:
    """Answer each kind of failure with its status and a body that says what to fix."""

    async def rejected(request: Request, exc: Exception) -> JSONResponse:
        problem = cast(Rejected, exc)
        audit = getattr(request.state, "audit", None)
        if audit is not None:
            audit.update(outcome="rejected", reason=problem.reason or "")
        headers = {"Retry-After": str(problem.retry_after)} if problem.retry_after else None
        return error_answer(request, problem.status, problem.body(), headers)

    async def unauthorized(request: Request, exc: Exception) -> JSONResponse:
        problem = cast(Unauthorized, exc)
        request.state.audit["auth"] = problem.reason  # says why in the log, never in the answer
        header = "Bearer" if problem.bearer else 'Token header="x-auth-token"'
        return error_answer(request, 401, {"detail": _UNAUTHORIZED}, {"WWW-Authenticate": header})

    async def too_large(request: Request, exc: Exception) -> JSONResponse:
        return error_answer(
            request,
            413,
            {"detail": "the body is over the gateway's size limit (LIBNAR_MAX_BODY_BYTES)"},
            {"Connection": "close"},
        )

    async def too_slow(request: Request, exc: Exception) -> JSONResponse:
        return error_answer(
            request,
            408,
            {"detail": "the body did not arrive in time (LIBNAR_GATEWAY_BODY_TIMEOUT_SECONDS)"},
            {"Connection": "close"},
        )

    async def invalid(request: Request, exc: Exception) -> JSONResponse:
        errors = cast(RequestValidationError, exc).errors()
        problems = [_request_problem(e) for e in errors]
        return error_answer(
            request,
            422,
            {"detail": "invalid request", "problems": [p.model_dump() for p in problems]},
        )

    async def http_error(request: Request, exc: Exception) -> JSONResponse:
        error = cast(StarletteHTTPException, exc)
        return error_answer(
            request, error.status_code, {"detail": str(error.detail)}, dict(error.headers or {})
        )

    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        request_id = getattr(request.state, "request_id", None)
        logger.exception("request %s failed unexpectedly", request_id, exc_info=exc)
        return JSONResponse(
            {"detail": "internal error; the gateway logged it", "request_id": request_id},
            status_code=500,
            headers={"x-request-id": str(request_id)},
        )

    app.add_exception_handler(Rejected, rejected)
    app.add_exception_handler(Unauthorized, unauthorized)
    app.add_exception_handler(BodyTooLarge, too_large)
    app.add_exception_handler(BodyTimeout, too_slow)
    app.add_exception_handler(RequestValidationError, invalid)
    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(Exception, unexpected)


def _request_problem(error: Any) -> EventProblem:
    location = [str(part) for part in error.get("loc", ()) if part not in ("body", "query")]
    path = short_text(".".join(location), 80).strip("'") or "body"
    if error.get("type") == "missing":
        return EventProblem(path=path, found="nothing", expected="a value (this field is required)")
    return EventProblem(
        path=path, found=short_text(error.get("input")), expected=str(error.get("msg", ""))
    )
