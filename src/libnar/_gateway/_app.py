"""The gateway as a FastAPI app: configuration, lifespan, routers, errors, OpenAPI.

Endpoints (one router per area, in `routers/`):
    POST /webhook-event   SamaHub webhook, `x-auth-token: <token from /create-token>`
    POST /dpp-event       SamaHub DPP request, `Authorization: Bearer <DPP key>`
    GET  /claims/{id}     a large event's body, for its run (the reference's token)
    PUT  /create-token    admin: mint a webhook token
    GET  /deploy-json     admin: a flow's deployments in `deploy.json` form
    POST /replay          admin: trigger what is pending in the outbox
    GET  /health, /ready  liveness and readiness
    GET  /metrics         Prometheus metrics

The lifespan opens the outbox, starts the dispatcher (stored events to Prefect runs) and the
hourly pruning of kept bodies, and stops them on shutdown.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
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
from libnar._gateway._metrics import GatewayMetrics, forget_dead_processes
from libnar._gateway._outbox import FileOutbox, Outbox
from libnar._gateway._service import Gateway
from libnar._gateway._trigger import PrefectTrigger
from libnar._gateway.routers import admin, claims, events, health
from libnar.events import DppEvent, WebhookEvent
from libnar.settings import Settings

__all__ = ["create_app", "make_gateway", "open_outbox"]

logger = logging.getLogger("libnar.gateway")

_PRUNE_EVERY_SECONDS = 3600.0


def open_outbox(settings: Settings) -> Outbox:
    """The outbox the settings name: PostgreSQL with `LIBNAR_OUTBOX_URL`, else files.

    Raises:
        SettingsError: the URL is not PostgreSQL's, or `libnar[db]` is not installed.
    """
    if settings.outbox_url is not None:
        from libnar._gateway._outbox_pg import PostgresOutbox

        return PostgresOutbox(
            settings.outbox_url.get_secret_value(),
            lease_seconds=settings.outbox_lease_seconds,
        )
    return FileOutbox(settings.outbox_dir, min_free_bytes=settings.outbox_min_free_bytes)


def make_gateway(config: GatewayConfig, metrics: GatewayMetrics | None = None) -> Gateway:
    """The gateway service these settings describe: outbox, claims, Prefect, dispatcher."""
    settings = config.settings
    metrics = metrics or GatewayMetrics()
    outbox = open_outbox(settings)
    return Gateway(
        outbox,
        PrefectTrigger.from_settings(
            settings, config.prefect_api_url, config.prefect_headers, metrics
        ),
        ClaimStore(outbox, config.secrets, config.public_url),
        metrics=metrics,
        retry_after=settings.gateway_retry_after_seconds,
        claim_check_bytes=settings.claim_check_bytes,
        check_timeout=settings.gateway_check_timeout,
        max_backlog=settings.gateway_max_backlog,
        window_seconds=settings.gateway_bulk_window_ms / 1000,
        wait_for_run=settings.gateway_wait_for_run,
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
        forget_dead_processes()
        gateway = make_gateway(config)
        await anyio.to_thread.run_sync(gateway.outbox.create)
        app.state.gateway = gateway
        pruning = asyncio.ensure_future(_prune_claims(gateway, config.settings))
        gateway.dispatcher.start()
        logger.info(
            "gateway ready: Prefect %s, outbox %s",
            config.shown_prefect_url,
            gateway.outbox.location,
        )
        try:
            yield
        finally:
            pruning.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await pruning
            await gateway.dispatcher.stop()
            await gateway.trigger.aclose()
            await anyio.to_thread.run_sync(gateway.outbox.close)

    app = FastAPI(
        title="libnar gateway",
        summary="SamaHub webhooks and DPP requests in, exactly one Prefect flow run each out.",
        version="1",
        lifespan=lifespan,
    )
    app.state.config = config
    app.add_middleware(AuditMiddleware, on_event=_count_event(app))
    add_error_handlers(app)
    for router in (events.router, claims.router, admin.router, health.router):
        app.include_router(router)
    _add_event_schemas(app)
    return app


async def _prune_claims(gateway: Gateway, settings: Settings) -> None:
    """Delete kept bodies past their retention: at start, then every hour."""
    retention = settings.claim_retention_days * 86400
    while True:
        try:
            removed = await anyio.to_thread.run_sync(gateway.claims.prune, retention)
        except OSError as exc:
            logger.warning("claims: cannot prune: %s", exc)
        else:
            if removed:
                logger.info("claims: pruned %d bodies past their retention", removed)
        await asyncio.sleep(_PRUNE_EVERY_SECONDS)


_EVENT_SOURCES = {"/webhook-event": "webhook", "/dpp-event": "dpp"}
_REASONS = {401: "unauthorized", 404: "no_deployment", 408: "timeout", 413: "too_large"}


def _count_event(app: FastAPI) -> Callable[[str, dict[str, Any], int], None]:
    """Count each answer to SamaHub by source, flow, outcome and reason (`/metrics`)."""

    def count(path: str, audit: dict[str, Any], status: int) -> None:
        source = _EVENT_SOURCES.get(path)
        gateway = getattr(app.state, "gateway", None)
        if source is None or gateway is None:
            return
        outcome = audit.get("outcome")
        reason = ""
        if outcome is None:
            outcome = "rejected" if status >= 400 else "accepted"
        if outcome == "rejected":
            reason = (
                audit.get("reason")
                or _REASONS.get(status)
                or ("invalid" if status == 422 else "error")
            )
        # A flow whose deployment does not exist is not a label: senders choose such names.
        flow = "" if reason in ("no_deployment", "unauthorized") else audit.get("flow", "")
        gateway.metrics.events.labels(source, flow, outcome, reason).inc()

    return count


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
