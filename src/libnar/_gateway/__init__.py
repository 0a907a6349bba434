"""The gateway: SamaHub webhooks and DPP requests in, exactly one Prefect flow run each out.

Internal (no stability promise); `libnar gateway serve|replay` and `libnar dev` use it.
"""

from __future__ import annotations

import logging
import sys

from libnar._gateway._app import create_app, make_gateway, open_outbox
from libnar._gateway._config import GatewayConfig
from libnar._gateway._outbox import FileOutbox, Outbox, OutboxEntry
from libnar._gateway._service import ReplayReport
from libnar._gateway._tokens import mint_token, verify_token
from libnar.settings import Settings, get_settings

__all__ = [
    "FileOutbox",
    "GatewayConfig",
    "Outbox",
    "OutboxEntry",
    "ReplayReport",
    "app_from_environment",
    "configure_logging",
    "create_app",
    "mint_token",
    "open_outbox",
    "replay_outbox",
    "verify_token",
]


def configure_logging(level: int = logging.INFO) -> None:
    """Send libnar's gateway and audit logs to stderr, one line each (once per process)."""
    logger = logging.getLogger("libnar")
    if any(getattr(h, "_libnar_gateway", False) for h in logger.handlers):
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    handler._libnar_gateway = True  # type: ignore[attr-defined]
    logger.addHandler(handler)
    logger.setLevel(level)


def app_from_environment() -> object:
    """The app from the environment's settings: uvicorn's factory for `--workers N`."""
    configure_logging()
    return create_app()


async def replay_outbox(
    settings: Settings | None = None, *, force: bool = False, prefect_api_url: str | None = None
) -> ReplayReport:
    """Send every pending event of the outbox to Prefect now (see `Gateway.replay`).

    Raises:
        SettingsError: PREFECT_API_URL is not set.
    """
    config = GatewayConfig.from_settings(
        settings or get_settings(), prefect_api_url, needs_secrets=False
    )
    gateway = make_gateway(config)
    try:
        async with gateway.trigger:
            return await gateway.replay(force=force)
    finally:
        gateway.outbox.close()
