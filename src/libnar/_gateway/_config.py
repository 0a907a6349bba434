"""The gateway's configuration, checked once at start: secrets, keys, Prefect's API, limits."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from libnar.settings import Settings, SettingsError, get_settings, mask_url

__all__ = ["GatewayConfig"]

logger = logging.getLogger("libnar.gateway")


@dataclass(frozen=True)
class GatewayConfig:
    """Everything the gateway needs, checked. Secrets never appear in its `repr`."""

    secrets: list[str] = field(repr=False)
    admin_key: str | None = field(repr=False)
    dpp_keys: list[str] = field(repr=False)
    prefect_api_url: str = field(repr=False)
    prefect_headers: dict[str, str] = field(repr=False)
    settings: Settings = field(repr=False)
    public_url: str | None = None

    @property
    def shown_prefect_url(self) -> str:
        """Prefect's API URL for logs and answers: credentials in it replaced by `***`."""
        return mask_url(self.prefect_api_url)

    def __repr__(self) -> str:
        return (
            f"GatewayConfig(prefect_api_url={self.shown_prefect_url!r},"
            f" public_url={self.public_url!r}, secrets=<{len(self.secrets)}>,"
            f" dpp_keys=<{len(self.dpp_keys)}>, admin_key={'<set>' if self.admin_key else None})"
        )

    @classmethod
    def from_settings(
        cls,
        settings: Settings | None = None,
        prefect_api_url: str | None = None,
        *,
        needs_secrets: bool = True,
    ) -> GatewayConfig:
        """Check the settings the gateway cannot start without.

        `needs_secrets=False` is for a replay: it re-sends what the outbox holds and signs
        nothing.

        Raises:
            SettingsError: names every missing setting and how to set it, one per line.
        """
        from libnar._gateway._trigger import prefect_api_settings

        settings = settings or get_settings()
        secrets = [s.get_secret_value() for s in settings.gateway_secrets if s.get_secret_value()]
        configured_url, headers = prefect_api_settings()
        url = prefect_api_url or configured_url
        missing = []
        if not secrets and needs_secrets:
            missing.append(
                "LIBNAR_GATEWAY_SECRETS is not set: the gateway needs at least one secret to sign"
                " and verify webhook tokens (set it to a long random string, e.g. the output of"
                " `python -c 'import secrets; print(secrets.token_urlsafe(32))'`)"
            )
        if not url:
            missing.append(
                "PREFECT_API_URL is not set: the gateway triggers runs on a Prefect server"
                " (e.g. PREFECT_API_URL=http://127.0.0.1:4200/api)"
            )
        if settings.outbox_url is not None:
            from libnar._gateway._outbox_pg import sqlalchemy_url

            try:
                sqlalchemy_url(settings.outbox_url.get_secret_value())
            except SettingsError as exc:
                missing.append(str(exc))
        if missing:
            raise SettingsError("\n".join(missing))
        assert url is not None
        admin = (
            settings.gateway_admin_key.get_secret_value() if settings.gateway_admin_key else None
        )
        public = (settings.gateway_public_url or "").strip().rstrip("/") or None
        return cls(
            secrets=secrets,
            admin_key=admin or None,
            dpp_keys=[k.get_secret_value() for k in settings.dpp_keys if k.get_secret_value()],
            prefect_api_url=url,
            prefect_headers=headers,
            settings=settings,
            public_url=public,
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
        settings = self.settings
        if settings.outbox_url is not None and (
            settings.outbox_lease_seconds <= settings.gateway_prefect_timeout
        ):
            logger.warning(
                "LIBNAR_OUTBOX_LEASE_SECONDS (%s) is not above LIBNAR_GATEWAY_PREFECT_TIMEOUT"
                " (%s): replicas may send the same events at once (Prefect still makes one run"
                " each)",
                settings.outbox_lease_seconds,
                settings.gateway_prefect_timeout,
            )
        if self.public_url is None:
            logger.warning(
                "LIBNAR_GATEWAY_PUBLIC_URL is not set: events over %d bytes are refused (413)"
                " because runs could not fetch them",
                self.settings.claim_check_bytes,
            )
