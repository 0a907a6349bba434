"""The gateway's HTTP surface: credentials, body limits, answers and the audit line.

Endpoints:
    POST /webhook-event   SamaHub webhook, `x-auth-token: <token from /create-token>`
    POST /dpp-event       SamaHub DPP request, `Authorization: Bearer <DPP key>`
    PUT  /create-token    admin: mint a webhook token
    GET  /deploy-json     admin: a flow's deployments in `deploy.json` form
    POST /replay          admin: trigger what is pending in the outbox
    GET  /health, /ready  liveness and readiness
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Annotated, Any, cast

import httpx
from fastapi import Depends, FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, Field
from pydantic.json_schema import models_json_schema
from starlette.background import BackgroundTask
from starlette.exceptions import HTTPException as StarletteHTTPException

from libnar._gateway._outbox import Outbox
from libnar._gateway._service import Accepted, Gateway, Rejected, prepare_entry
from libnar._gateway._tokens import TokenError, is_one_of, mint_token, verify_token
from libnar._gateway._trigger import PrefectTrigger, prefect_api_settings
from libnar.events import DppEvent, EventError, EventProblem, WebhookEvent, parse_as
from libnar.naming import FlowNameError, normalize_flow_name
from libnar.settings import Settings, SettingsError, get_settings

__all__ = ["GatewayConfig", "create_app"]

logger = logging.getLogger("libnar.gateway")
audit_logger = logging.getLogger("libnar.gateway.audit")

_UNAUTHORIZED = "missing or invalid credentials"


@dataclass(frozen=True)
class GatewayConfig:
    """Everything the gateway needs, checked: secrets as plain strings, Prefect's URL."""

    secrets: list[str]
    admin_key: str | None
    dpp_keys: list[str]
    prefect_api_url: str
    prefect_headers: dict[str, str]
    settings: Settings

    @classmethod
    def from_settings(
        cls, settings: Settings | None = None, prefect_api_url: str | None = None
    ) -> GatewayConfig:
        """Check the settings the gateway cannot start without.

        Raises:
            SettingsError: names the missing setting and how to set it.
        """
        settings = settings or get_settings()
        secrets = [s.get_secret_value() for s in settings.gateway_secrets if s.get_secret_value()]
        if not secrets:
            raise SettingsError(
                "LIBNAR_GATEWAY_SECRETS is not set: the gateway needs at least one secret to sign"
                " and verify webhook tokens (set it to a long random string, e.g. the output of"
                " `python -c 'import secrets; print(secrets.token_urlsafe(32))'`)"
            )
        configured_url, headers = prefect_api_settings()
        url = prefect_api_url or configured_url
        if not url:
            raise SettingsError(
                "PREFECT_API_URL is not set: the gateway triggers runs on a Prefect server"
                " (e.g. PREFECT_API_URL=http://127.0.0.1:4200/api)"
            )
        admin = (
            settings.gateway_admin_key.get_secret_value() if settings.gateway_admin_key else None
        )
        return cls(
            secrets=secrets,
            admin_key=admin or None,
            dpp_keys=[k.get_secret_value() for k in settings.dpp_keys if k.get_secret_value()],
            prefect_api_url=url,
            prefect_headers=headers,
            settings=settings,
        )

    def warn_about_gaps(self) -> None:
        """Log what works only partly with these settings."""
        if self.admin_key is None:
            logger.warning("LIBNAR_GATEWAY_ADMIN_KEY is not set: admin endpoints answer 401")
        if not self.dpp_keys:
            logger.warning("LIBNAR_DPP_KEYS is not set: /dpp-event answers 401")
        if any(len(s.encode()) < 32 for s in self.secrets):
            logger.warning(
                "a LIBNAR_GATEWAY_SECRETS secret is shorter than 32 bytes; use longer ones"
                " (keep a short one only while webhooks still carry tokens signed with it)"
            )


# -- answers ------------------------------------------------------------------------------


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


_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorAnswer, "description": "Missing or invalid credentials."},
    413: {"model": ErrorAnswer, "description": "The body is over the size limit."},
    422: {"model": ErrorAnswer, "description": "Bad body or parameters; one problem per field."},
}
_TRIGGER_ERRORS: dict[int | str, dict[str, Any]] = {
    **_ERRORS,
    404: {"model": ErrorAnswer, "description": "The flow has no such deployment."},
    502: {"model": ErrorAnswer, "description": "Prefect answered unexpectedly; event kept."},
    503: {"model": ErrorAnswer, "description": "Prefect unreachable; event kept; Retry-After."},
}


def _error(
    request: Request,
    status: int,
    body: dict[str, Any],
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    request_id = getattr(request.state, "request_id", None)
    return JSONResponse({**body, "request_id": request_id}, status_code=status, headers=headers)


def _rejected(request: Request, exc: Rejected) -> JSONResponse:
    headers = {"Retry-After": str(exc.retry_after)} if exc.retry_after else None
    return _error(request, exc.status, exc.body(), headers)


class _Unauthorized(Exception):
    """Credentials missing or wrong; the answer never says which check failed."""

    def __init__(self, reason: str, bearer: bool) -> None:
        self.reason = reason
        self.bearer = bearer
        super().__init__(reason)


# -- middleware ------------------------------------------------------------------------------

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

_QUIET_PATHS = frozenset({"/health", "/ready"})


class AuditMiddleware:
    """Give each request an id (`x-request-id`) and log one JSON audit line when it ends.

    Handlers add fields (flow, deployment, event key, run id, ...) to `request.state.audit`.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        request_id = uuid.uuid4().hex
        state = scope.setdefault("state", {})
        state["request_id"] = request_id
        audit: dict[str, Any] = {}
        state["audit"] = audit
        status = 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [
                    *message.get("headers", []),
                    (b"x-request-id", request_id.encode()),
                ]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            line = {
                "request_id": request_id,
                "method": scope.get("method"),
                "path": scope.get("path"),
                **audit,
                "status": status,
                "latency_ms": round((time.perf_counter() - started) * 1000, 1),
            }
            level = logging.DEBUG if scope.get("path") in _QUIET_PATHS else logging.INFO
            audit_logger.log(level, json.dumps(line, default=str))


_token_header = APIKeyHeader(
    name="x-auth-token", auto_error=False, description="A token from /create-token."
)
_bearer = HTTPBearer(auto_error=False, description="A DPP key or the admin key.")


# -- the app -------------------------------------------------------------------------------


def create_app(settings: Settings | None = None, *, prefect_api_url: str | None = None) -> FastAPI:
    """The gateway as a FastAPI app; serve it with uvicorn.

    Raises:
        SettingsError: a setting the gateway cannot start without is missing (named).
    """
    config = GatewayConfig.from_settings(settings, prefect_api_url)
    config.warn_about_gaps()
    limits = config.settings

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        outbox = Outbox(limits.outbox_dir)
        outbox.create()
        trigger = PrefectTrigger(
            config.prefect_api_url,
            headers=config.prefect_headers,
            concurrency=limits.gateway_prefect_concurrency,
            bulk_window_ms=limits.gateway_bulk_window_ms,
            cache_seconds=limits.gateway_deployment_cache_seconds,
            timeout=limits.gateway_prefect_timeout,
        )
        app.state.gateway = Gateway(outbox, trigger, retry_after=limits.gateway_retry_after_seconds)
        logger.info(
            "gateway ready: Prefect %s, outbox %s", config.prefect_api_url, outbox.directory
        )
        try:
            yield
        finally:
            await trigger.aclose()

    app = FastAPI(
        title="libnar gateway",
        summary="SamaHub webhooks and DPP requests in, exactly one Prefect flow run each out.",
        version="1",
        lifespan=lifespan,
    )
    app.add_middleware(AuditMiddleware)
    _add_error_handlers(app)

    def gateway(request: Request) -> Gateway:
        return cast(Gateway, request.app.state.gateway)

    def require_admin(
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    ) -> None:
        given = credentials.credentials if credentials else None
        keys = [config.admin_key] if config.admin_key else []
        if not is_one_of(given, keys):
            raise _Unauthorized("admin key missing or wrong", bearer=True)

    async def run_event(
        request: Request, event: WebhookEvent | DppEvent, flow: str, parameters: Any
    ) -> JSONResponse:
        audit = request.state.audit
        audit.update(source=event.source, event_key=event.idempotency_key)
        entry = prepare_entry(event, flow, parameters)
        audit.update(flow=entry.flow, deployment=entry.deployment)
        service = gateway(request)
        accepted: Accepted = await service.accept(entry)
        audit.update(flow_run_id=accepted.run.flow_run_id, duplicate=accepted.run.duplicate)
        return JSONResponse(accepted.body(), background=BackgroundTask(service.finish, accepted))

    @app.post(
        "/webhook-event",
        response_model=RunAnswer,
        responses=_TRIGGER_ERRORS,
        openapi_extra=_body_schema("WebhookEvent"),
        summary="Trigger the flow a webhook token names",
    )
    async def webhook_event(
        request: Request, token: Annotated[str | None, Depends(_token_header)]
    ) -> JSONResponse:
        """SamaHub's webhook: `{"task": {...}}`, with the token in `x-auth-token`."""
        try:
            claims = verify_token((token or "").strip(), config.secrets)
        except TokenError as exc:
            raise _Unauthorized(str(exc), bearer=False) from None
        body = await _read_body(request, limits.max_body_bytes)
        event = _parse(WebhookEvent, body)
        assert isinstance(event, WebhookEvent)
        return await run_event(request, event, claims.name, claims.parameters)

    @app.post(
        "/dpp-event",
        response_model=RunAnswer,
        responses=_TRIGGER_ERRORS,
        openapi_extra=_body_schema("DppEvent"),
        summary="Trigger the flow a DPP request names",
    )
    async def dpp_event(
        request: Request,
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    ) -> JSONResponse:
        """SamaHub's post-processing request, with the DPP key as a bearer token."""
        if not is_one_of(credentials.credentials if credentials else None, config.dpp_keys):
            raise _Unauthorized("DPP key missing or wrong", bearer=True)
        body = await _read_body(request, limits.max_body_bytes)
        event = _parse(DppEvent, body)
        assert isinstance(event, DppEvent)
        return await run_event(request, event, event.name, event.parameters)

    @app.put(
        "/create-token",
        response_model=TokenAnswer,
        responses=_ERRORS,
        dependencies=[Depends(require_admin)],
        summary="Mint a webhook token (admin)",
    )
    async def create_token(request: Request, wanted: TokenRequest) -> TokenAnswer:
        """A token for SamaHub's webhook `x-auth-token`, signed with the first secret."""
        try:
            flow = normalize_flow_name(wanted.name)
        except FlowNameError as exc:
            raise Rejected(
                422,
                "invalid token request",
                problems=[EventProblem(path="name", found=repr(wanted.name), expected=str(exc))],
            ) from None
        parameters = wanted.parameters or {}
        token = mint_token(config.secrets[0], flow, parameters, wanted.expires_in)
        claims = verify_token(token, config.secrets[:1])
        request.state.audit.update(flow=flow)
        return TokenAnswer(
            token=token, name=flow, parameters=parameters, expires_at=claims.expires_at
        )

    @app.get(
        "/deploy-json",
        responses={**_ERRORS, 404: {"model": ErrorAnswer}, 503: {"model": ErrorAnswer}},
        dependencies=[Depends(require_admin)],
        summary="A flow's deployments in deploy.json form (admin)",
    )
    async def get_deploy_json(
        request: Request,
        flow_name: Annotated[str, Query(description="The flow name.")],
        deployment_name: Annotated[str | None, Query(description="Only this deployment.")] = None,
    ) -> dict[str, Any]:
        """`{"deploy": [{"name", "schedule", "parameters"}]}` of the flow's deployments."""
        from prefect.client.orchestration import PrefectClient

        from libnar._build import DeployError, export_deploy_json

        client = PrefectClient(
            config.prefect_api_url, httpx_settings={"headers": config.prefect_headers}
        )
        try:
            async with client:
                return await export_deploy_json(flow_name, deployment_name, client=client)
        except DeployError as exc:
            raise Rejected(404, str(exc)) from None
        except httpx.HTTPError:
            raise Rejected(
                503, "Prefect is unreachable", retry_after=limits.gateway_retry_after_seconds
            ) from None

    @app.post(
        "/replay",
        responses={401: {"model": ErrorAnswer}},
        dependencies=[Depends(require_admin)],
        summary="Trigger what is pending in the outbox (admin)",
    )
    async def replay(
        request: Request,
        force: Annotated[
            bool, Query(description="Give each a new attempt key: runs again even if it ran.")
        ] = False,
    ) -> dict[str, Any]:
        """Re-trigger pending events; without `force` an event that has a run is not re-run."""
        report = await gateway(request).replay(force=force)
        return report.as_dict()

    @app.get("/health", summary="The process is up")
    async def health() -> dict[str, str]:
        """Always 200 while the process serves requests."""
        return {"status": "ok"}

    @app.get("/ready", summary="Prefect reachable and outbox writable", responses={503: {}})
    async def ready(request: Request) -> JSONResponse:
        """200 when the Prefect API answers and the outbox accepts files, else 503."""
        service = gateway(request)
        checks = {
            "prefect": await service.trigger.is_reachable(),
            "outbox": service.outbox.is_writable(),
        }
        return JSONResponse(checks, status_code=200 if all(checks.values()) else 503)

    _add_event_schemas(app)
    return app


# -- request bodies ------------------------------------------------------------------------


class _TooLarge(Exception):
    pass


async def _read_body(request: Request, limit: int) -> bytes:
    """The body, refusing more than `limit` bytes: by Content-Length first, then while reading."""
    length = request.headers.get("content-length")
    if length is not None and length.strip().isdigit() and int(length) > limit:
        raise _TooLarge
    chunks = []
    total = 0
    async for chunk in request.stream():
        total += len(chunk)
        if total > limit:
            raise _TooLarge
        chunks.append(chunk)
    return b"".join(chunks)


def _parse(kind: type[WebhookEvent] | type[DppEvent], body: bytes) -> WebhookEvent | DppEvent:
    try:
        event = parse_as(kind, body)
    except EventError as exc:
        raise Rejected(422, str(exc).splitlines()[0].rstrip(":"), problems=exc.problems) from None
    assert isinstance(event, WebhookEvent | DppEvent)
    return event


def _body_schema(model: str) -> dict[str, Any]:
    return {
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{model}"}}},
        }
    }


def _add_event_schemas(app: FastAPI) -> None:
    """Document the event bodies the handlers read themselves (to enforce the size limit)."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        schema = get_openapi(
            title=app.title,
            version=app.version,
            summary=app.summary,
            routes=app.routes,
        )
        _, definitions = models_json_schema(
            [(WebhookEvent, "validation"), (DppEvent, "validation")],
            ref_template="#/components/schemas/{model}",
        )
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        components.update(definitions.get("$defs", {}))
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


# -- errors --------------------------------------------------------------------------------


def _add_error_handlers(app: FastAPI) -> None:
    async def rejected(request: Request, exc: Exception) -> JSONResponse:
        return _rejected(request, cast(Rejected, exc))

    async def unauthorized(request: Request, exc: Exception) -> JSONResponse:
        problem = cast(_Unauthorized, exc)
        request.state.audit["auth"] = problem.reason  # says why in the log, never in the answer
        header = "Bearer" if problem.bearer else 'Token header="x-auth-token"'
        return _error(request, 401, {"detail": _UNAUTHORIZED}, {"WWW-Authenticate": header})

    async def too_large(request: Request, exc: Exception) -> JSONResponse:
        return _error(
            request,
            413,
            {"detail": "the body is over the gateway's size limit (LIBNAR_MAX_BODY_BYTES)"},
            {"Connection": "close"},
        )

    async def invalid(request: Request, exc: Exception) -> JSONResponse:
        errors = cast(RequestValidationError, exc).errors()
        problems = [_request_problem(e) for e in errors]
        return _error(
            request,
            422,
            {"detail": "invalid request", "problems": [p.model_dump() for p in problems]},
        )

    async def http_error(request: Request, exc: Exception) -> JSONResponse:
        error = cast(StarletteHTTPException, exc)
        return _error(
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
    app.add_exception_handler(_Unauthorized, unauthorized)
    app.add_exception_handler(_TooLarge, too_large)
    app.add_exception_handler(RequestValidationError, invalid)
    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(Exception, unexpected)


def _request_problem(error: Any) -> EventProblem:
    location = [str(part) for part in error.get("loc", ()) if part not in ("body", "query")]
    path = ".".join(location) or "body"
    if error.get("type") == "missing":
        return EventProblem(path=path, found="nothing", expected="a value (this field is required)")
    found = error.get("input")
    text = repr(found) if not isinstance(found, dict | list) else type(found).__name__
    return EventProblem(path=path, found=text[:60], expected=str(error.get("msg", "")))
