"""The gateway as a FastAPI app: configuration, lifespan, routers, errors, OpenAPI.

Endpoints (one router per area, in `routers/`):
    POST /webhook-event   SamaHub webhook, `x-auth-token: <token from /create-token>`
    POST /dpp-event       SamaHub DPP request, `Authorization: Bearer <DPP key>`
    GET  /claims/{id}     a large event's body, for its run (the reference's token)
    PUT  /create-token    admin: mint a webhook token
    GET  /deploy-json     admin: a flow's deployments in `deploy.json` form
    POST /replay          admin: trigger what is pending in the outbox
    GET  /health, /ready  liveness and readiness
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic.json_schema import models_json_schema

from libnar._gateway._audit import AuditMiddleware
from libnar._gateway._claims import ClaimStore
from libnar._gateway._config import GatewayConfig
from libnar._gateway._errors import add_error_handlers
from libnar._gateway._outbox import Outbox
from libnar._gateway._service import Gateway
from libnar._gateway._trigger import PrefectTrigger
from libnar._gateway.routers import admin, claims, events, health
from libnar.events import DppEvent, WebhookEvent
from libnar.settings import Settings

__all__ = ["create_app", "make_gateway"]

logger = logging.getLogger("libnar.gateway")

_PRUNE_EVERY_SECONDS = 3600.0


def make_gateway(config: GatewayConfig) -> Gateway:
    """The gateway service these settings describe: outbox, claim store, Prefect trigger."""
    settings = config.settings
    outbox = Outbox(settings.outbox_dir, min_free_bytes=settings.outbox_min_free_bytes)
    return Gateway(
        outbox,
        PrefectTrigger.from_settings(settings, config.prefect_api_url, config.prefect_headers),
        ClaimStore(outbox.claims, config.secrets, config.public_url),
        retry_after=settings.gateway_retry_after_seconds,
        claim_check_bytes=settings.claim_check_bytes,
    )


def create_app(settings: Settings | None = None, *, prefect_api_url: str | None = None) -> FastAPI:
    """The gateway as a FastAPI app; serve it with uvicorn (`libnar gateway serve`).

    Raises:
        SettingsError: settings the gateway cannot start without are missing (each named).
    """
    config = GatewayConfig.from_settings(settings, prefect_api_url)
    config.warn_about_gaps()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        gateway = make_gateway(config)
        gateway.outbox.create()
        app.state.gateway = gateway
        pruning = asyncio.ensure_future(_prune_claims(gateway, config.settings))
        logger.info(
            "gateway ready: Prefect %s, outbox %s",
            config.shown_prefect_url,
            gateway.outbox.directory,
        )
        try:
            yield
        finally:
            pruning.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await pruning
            await gateway.trigger.aclose()

    app = FastAPI(
        title="libnar gateway",
        summary="SamaHub webhooks and DPP requests in, exactly one Prefect flow run each out.",
        version="1",
        lifespan=lifespan,
    )
    app.state.config = config
    app.add_middleware(AuditMiddleware)
    add_error_handlers(app)
    for router in (events.router, claims.router, admin.router, health.router):
        app.include_router(router)
    _add_event_schemas(app)
    return app


async def _prune_claims(gateway: Gateway, settings: Settings) -> None:
    """Delete kept bodies past their retention: at start, then every hour."""
    retention = settings.claim_retention_days * 86400
    while True:
        removed = await anyio.to_thread.run_sync(gateway.claims.prune, retention)
        if removed:
            logger.info("claims: pruned %d bodies past their retention", removed)
        await asyncio.sleep(_PRUNE_EVERY_SECONDS)


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
