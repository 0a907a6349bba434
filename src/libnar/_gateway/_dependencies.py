"""FastAPI dependencies of the gateway: its config and service, credentials, request bodies.

Routers declare what they need with `Annotated[..., Depends(...)]`; nothing is read from a
closure, so each router stands alone and tests can override any dependency.
"""

from __future__ import annotations

import asyncio
from typing import Annotated, cast

from fastapi import Depends, Request
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

from libnar._gateway._config import GatewayConfig
from libnar._gateway._errors import BodyTimeout, BodyTooLarge, Unauthorized
from libnar._gateway._service import Gateway
from libnar._gateway._tokens import TokenClaims, TokenError, is_one_of, verify_token

__all__ = [
    "AdminKey",
    "Config",
    "DppKey",
    "RequestBody",
    "Service",
    "WebhookToken",
    "bearer_scheme",
]

token_scheme = APIKeyHeader(
    name="x-auth-token", auto_error=False, description="A token from /create-token."
)
bearer_scheme = HTTPBearer(auto_error=False, description="A DPP key or the admin key.")


def get_config(request: Request) -> GatewayConfig:
    """The gateway's checked configuration."""
    return cast(GatewayConfig, request.app.state.config)


def get_service(request: Request) -> Gateway:
    """The gateway service (outbox, claims, Prefect trigger), made at startup."""
    return cast(Gateway, request.app.state.gateway)


Config = Annotated[GatewayConfig, Depends(get_config)]
Service = Annotated[Gateway, Depends(get_service)]
Bearer = Annotated[HTTPAuthorizationCredentials | None, Depends(bearer_scheme)]


def require_admin(config: Config, credentials: Bearer) -> None:
    """Refuse anything but the admin key (401)."""
    given = credentials.credentials if credentials else None
    if not is_one_of(given, [config.admin_key] if config.admin_key else []):
        raise Unauthorized("admin key missing or wrong", bearer=True)


def require_dpp_key(config: Config, credentials: Bearer) -> None:
    """Refuse anything but a configured DPP key (401)."""
    if not is_one_of(credentials.credentials if credentials else None, config.dpp_keys):
        raise Unauthorized("DPP key missing or wrong", bearer=True)


def webhook_token(
    config: Config, token: Annotated[str | None, Depends(token_scheme)]
) -> TokenClaims:
    """The claims of the webhook's `x-auth-token` (401 when it does not verify)."""
    try:
        return verify_token((token or "").strip(), config.secrets)
    except TokenError as exc:
        raise Unauthorized(str(exc), bearer=False) from None


async def request_body(request: Request, config: Config) -> bytes:
    """The body, refusing more than `LIBNAR_MAX_BODY_BYTES` (413) and slow senders (408).

    The size is checked from Content-Length first, then while reading; the whole body must
    arrive within `LIBNAR_GATEWAY_BODY_TIMEOUT_SECONDS`.
    """
    limit = config.settings.max_body_bytes
    length = request.headers.get("content-length")
    if length is not None and length.strip().isdigit() and int(length) > limit:
        raise BodyTooLarge
    chunks = []
    total = 0
    try:
        async with asyncio.timeout(config.settings.gateway_body_timeout_seconds):
            async for chunk in request.stream():
                total += len(chunk)
                if total > limit:
                    raise BodyTooLarge
                chunks.append(chunk)
    except TimeoutError:
        raise BodyTimeout from None
    return b"".join(chunks)


AdminKey = Depends(require_admin)
DppKey = Depends(require_dpp_key)
WebhookToken = Annotated[TokenClaims, Depends(webhook_token)]
RequestBody = Annotated[bytes, Depends(request_body)]
