"""libnar's configuration: environment variables and `.env`, one documented table.

Every setting has a default that is safe on a laptop or none at all; nothing here is fetched
from the network. `libnar settings` prints the table; `docs/settings.md` is generated from it.
Call sites take explicit arguments that override these (e.g. `SamaClient(api_key=...)`).
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AliasChoices, BeforeValidator, Field, SecretStr, ValidationError
from pydantic_core import PydanticUseDefault
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

__all__ = [
    "Settings",
    "SettingsError",
    "get_settings",
    "mask_url",
    "settings_table",
    "settings_values_table",
]


class SettingsError(ValueError):
    """A setting that a call needs is missing or invalid; the message names the variable."""


def _split_commas(value: Any) -> Any:
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


SecretList = Annotated[list[SecretStr], NoDecode, BeforeValidator(_split_commas)]


def _blank_is_unset(value: Any) -> Any:
    """Take an empty or blank value as unset: `SAMA_API_KEY=` must not send an empty key."""
    if isinstance(value, str) and not value.strip():
        raise PydanticUseDefault()
    return value


#: A SamaHub key or URL, for which an empty value makes no sense.
Unblank = BeforeValidator(_blank_is_unset)


def _env(name: str, description: str, **kwargs: Any) -> Any:
    """A field read from exactly one environment variable, documented by `description`."""
    return Field(
        validation_alias=AliasChoices(name, name.lower()), description=description, **kwargs
    )


class Settings(BaseSettings):
    """All of libnar's settings. Values come from the environment, then `.env` in the CWD."""

    model_config = SettingsConfigDict(
        env_file=".env", env_file_encoding="utf-8", extra="ignore", validate_by_name=True
    )

    # SamaHub API client
    sama_api_key: Annotated[SecretStr | None, Unblank] = _env(
        "SAMA_API_KEY", "SamaHub API key, sent as the `access_key` query parameter.", default=None
    )
    sama_secondary_api_key: Annotated[SecretStr | None, Unblank] = _env(
        "SAMA_SECONDARY_API_KEY",
        'A second SamaHub API key (the earlier system\'s internal, "secondary" key), used by'
        ' clients made with `key="secondary"` and `libnar task --key secondary`.',
        default=None,
    )
    sama_api_url: Annotated[str, Unblank] = _env(
        "SAMA_API_URL", "Base URL of SamaHub's public API.", default="https://api.sama.com/v2"
    )
    sama_dpp_url: Annotated[str | None, Unblank] = _env(
        "SAMA_DPP_URL",
        "Base URL for returning DPP results (`PUT {url}/api/v1/projects/{pid}/tasks/{tid}/"
        "post_processed`); not the public API's URL.",
        default=None,
    )
    sama_dpp_key: Annotated[SecretStr | None, Unblank] = _env(
        "SAMA_DPP_KEY", "Bearer key for returning DPP results to SamaHub.", default=None
    )
    sama_timeout: float = _env(
        "SAMA_TIMEOUT", "Seconds to wait for SamaHub to connect or answer.", default=30.0, gt=0
    )
    sama_max_retries: int = _env(
        "SAMA_MAX_RETRIES",
        "Retries of a failed SamaHub call that is safe to retry (0 turns retrying off).",
        default=5,
        ge=0,
    )
    sama_deadline: float = _env(
        "SAMA_DEADLINE",
        "Seconds one SamaHub call may take in all, retries and the waits between them"
        " included (an iterator: each page).",
        default=300.0,
        gt=0,
    )
    sama_max_answer_bytes: int = _env(
        "SAMA_MAX_ANSWER_BYTES",
        "Largest SamaHub answer a call reads, in bytes (256 MiB); a larger one is refused"
        " without reading the rest.",
        default=256 * 1024 * 1024,
        gt=0,
    )
    sama_batch_lookup_seconds: float = _env(
        "SAMA_BATCH_LOOKUP_SECONDS",
        "Seconds `create_batch` keeps looking for a batch whose creation answer was lost"
        " (SamaHub lists new batches late) before raising `SamaBatchOutcomeUnknownError`.",
        default=60.0,
        ge=0,
    )

    # Gateway
    gateway_secrets: SecretList = _env(
        "LIBNAR_GATEWAY_SECRETS",
        "Comma-separated secrets for webhook tokens (HS256): the first signs, all verify.",
        default_factory=list,
    )
    gateway_admin_key: SecretStr | None = _env(
        "LIBNAR_GATEWAY_ADMIN_KEY",
        "Bearer key for the gateway's admin endpoints (`/create-token`, `/deploy-json`,"
        " `/replay`).",
        default=None,
    )
    dpp_keys: SecretList = _env(
        "LIBNAR_DPP_KEYS",
        "Comma-separated bearer keys the gateway accepts on `/dpp-event` (several for rotation).",
        default_factory=list,
    )
    outbox_dir: Path = _env(
        "LIBNAR_OUTBOX_DIR",
        "Directory where the gateway stores each accepted event until its run exists (the"
        " embedded outbox, for one machine; see `LIBNAR_OUTBOX_URL`).",
        default=Path(".libnar/outbox"),
    )
    outbox_url: Annotated[SecretStr | None, Unblank] = _env(
        "LIBNAR_OUTBOX_URL",
        "`postgresql://user:password@host:5432/db`: keep the outbox and large events' bodies in"
        " PostgreSQL instead of `LIBNAR_OUTBOX_DIR`, so gateway replicas share them (needs"
        " `libnar[db]`).",
        default=None,
    )
    outbox_lease_seconds: float = _env(
        "LIBNAR_OUTBOX_LEASE_SECONDS",
        "Seconds a gateway's dispatcher holds the stored events it is sending to Prefect; an"
        " event held by a replica that died is taken by another after this (PostgreSQL"
        " outbox; keep it above `LIBNAR_GATEWAY_PREFECT_TIMEOUT`).",
        default=60.0,
        gt=0,
    )
    max_body_bytes: int = _env(
        "LIBNAR_MAX_BODY_BYTES",
        "Largest request body the gateway accepts, in bytes.",
        default=20_000_000,
        gt=0,
    )
    gateway_prefect_concurrency: int = _env(
        "LIBNAR_GATEWAY_PREFECT_CONCURRENCY",
        "Most requests one gateway process sends to the Prefect API at once (1 suits SQLite;"
        " raise it for Prefect on PostgreSQL).",
        default=1,
        ge=1,
    )
    gateway_bulk_window_ms: float = _env(
        "LIBNAR_GATEWAY_BULK_WINDOW_MS",
        "Milliseconds the gateway's dispatcher waits after a new event to gather more into one"
        " bulk create call per deployment (0 sends at once).",
        default=10.0,
        ge=0,
    )
    gateway_max_backlog: int = _env(
        "LIBNAR_GATEWAY_MAX_BACKLOG",
        "Most stored events waiting for their run; past it the gateway answers 503 with"
        " `Retry-After` instead of accepting more than Prefect can drain.",
        default=10_000,
        ge=1,
    )
    gateway_wait_for_run: bool = _env(
        "LIBNAR_GATEWAY_WAIT_FOR_RUN",
        "Answer an event once its run exists, with the run's id (as before libnar 5), instead"
        " of as soon as it is stored; `libnar dev` turns it on.",
        default=False,
    )
    gateway_check_timeout: float = _env(
        "LIBNAR_GATEWAY_CHECK_TIMEOUT",
        "Seconds an event waits for its deployment to be looked up on Prefect (first event of"
        " a deployment); past it the event is stored unchecked and checked when dispatched.",
        default=5.0,
        gt=0,
    )
    gateway_deployment_cache_seconds: float = _env(
        "LIBNAR_GATEWAY_DEPLOYMENT_CACHE_SECONDS",
        "Seconds the gateway remembers a deployment's id and parameters.",
        default=30.0,
        ge=0,
    )
    gateway_prefect_timeout: float = _env(
        "LIBNAR_GATEWAY_PREFECT_TIMEOUT",
        "Seconds one Prefect API call of the gateway may take, retries included; past it the"
        " events it carried stay stored and are sent again later.",
        default=20.0,
        gt=0,
    )
    gateway_retry_after_seconds: int = _env(
        "LIBNAR_GATEWAY_RETRY_AFTER_SECONDS",
        "The `Retry-After` the gateway sends with a 503 (backlog full, outbox unavailable).",
        default=30,
        ge=1,
    )
    gateway_header_timeout_seconds: float = _env(
        "LIBNAR_GATEWAY_HEADER_TIMEOUT_SECONDS",
        "Seconds a client has to send a request's headers once connected (or once its previous"
        " request was answered); slower connections are closed.",
        default=10.0,
        gt=0,
    )
    gateway_body_timeout_seconds: float = _env(
        "LIBNAR_GATEWAY_BODY_TIMEOUT_SECONDS",
        "Seconds a client has to send a request's body; slower requests get 408.",
        default=60.0,
        gt=0,
    )
    gateway_keepalive_seconds: float = _env(
        "LIBNAR_GATEWAY_KEEPALIVE_SECONDS",
        "Seconds an idle keep-alive connection stays open.",
        default=5.0,
        gt=0,
    )
    gateway_max_connections: int = _env(
        "LIBNAR_GATEWAY_MAX_CONNECTIONS",
        "Most connections one gateway process keeps open; more are closed at once (the"
        " process's open-file limit is raised to fit when it can be).",
        default=1000,
        ge=1,
    )
    gateway_public_url: str | None = _env(
        "LIBNAR_GATEWAY_PUBLIC_URL",
        "The gateway's base URL as flow runs (workers) reach it, e.g. `https://nps-gw.example`;"
        " runs fetch large events from `<url>/claims/...`. `libnar gateway serve` defaults it"
        " to its own address when it listens on one.",
        default=None,
    )
    claim_check_bytes: int = _env(
        "LIBNAR_CLAIM_CHECK_BYTES",
        "Events larger than this (compact JSON, bytes) are kept by the gateway and passed to"
        " the run by reference; Prefect refuses run parameters over 512 KiB.",
        default=256 * 1024,
        gt=0,
        le=512 * 1024,
    )
    claim_retention_days: float = _env(
        "LIBNAR_CLAIM_RETENTION_DAYS",
        "Days the gateway keeps the body of a large event for its run (and the run's retries).",
        default=14.0,
        gt=0,
    )
    outbox_min_free_bytes: int = _env(
        "LIBNAR_OUTBOX_MIN_FREE_BYTES",
        "Free space the outbox's disk must keep: below it the gateway answers 503 and `/ready`"
        " fails, instead of failing writes midway.",
        default=100_000_000,
        ge=0,
    )

    # Build and deploy
    work_pools: dict[str, str] = _env(
        "LIBNAR_WORK_POOLS",
        "JSON object renaming work pools, from the default name (`giver`, `narpool-gke-eu`,"
        " `narpool-aws-us`, `narpool-aws-eu`, `narpool-gcp`, `narpool-azure`) to the pool to use,"
        ' e.g. `{"narpool-aws-us": "staging-ecs"}`.',
        default_factory=dict,
    )
    giver_max_cpu: str = _env(
        "LIBNAR_GIVER_MAX_CPU",
        "The most vCPU one run may ask for on the `giver` Kubernetes infra (what a node can give"
        " a pod), checked by `[sama-build]` and per-run `cpu`/`amount` alike.",
        default="8",
        pattern=r"^[0-9]+(\.[0-9]+)?$",
    )
    giver_max_memory: str = _env(
        "LIBNAR_GIVER_MAX_MEMORY",
        "The most memory one run may ask for on `giver` (e.g. `32Gi`), checked like"
        " `LIBNAR_GIVER_MAX_CPU`.",
        default="32Gi",
        pattern=r"^[0-9]+(Mi|Gi)$",
    )
    gke_max_cpu: str = _env(
        "LIBNAR_GKE_MAX_CPU",
        "The most vCPU one run may ask for on the `gke` Kubernetes infra.",
        default="8",
        pattern=r"^[0-9]+(\.[0-9]+)?$",
    )
    gke_max_memory: str = _env(
        "LIBNAR_GKE_MAX_MEMORY",
        "The most memory one run may ask for on `gke` (e.g. `32Gi`).",
        default="32Gi",
        pattern=r"^[0-9]+(Mi|Gi)$",
    )
    image_registry: str = _env(
        "LIBNAR_IMAGE_REGISTRY",
        "Registry and prefix of flow images: a flow runs `<registry>/<package>:<version>-py<pyver>`.",
        default="nps",
    )
    base_image: str | None = _env(
        "LIBNAR_BASE_IMAGE",
        "The image flow images are built `FROM` (`{pyver}` stands for the package's Python),"
        " e.g. `python:{pyver}-slim`; unset: the NPS base image"
        " `<LIBNAR_IMAGE_REGISTRY>/nps-base:py<pyver>`.",
        default=None,
    )

    # ----------------------------------------------------------------------------------------
    # The flow toolbox: libnar.storage, libnar.secrets, libnar.slack, libnar.db. Explicit
    # arguments (`filesystem(url, key=...)`, `send_message(..., token=...)`) override these.
    # ----------------------------------------------------------------------------------------

    # Storage, per URL scheme (s3://, gs://, az:// and abfs://)
    s3_endpoint_url: Annotated[str | None, Unblank] = _env(
        "LIBNAR_S3_ENDPOINT_URL",
        "Endpoint of an S3-compatible store for `s3://` URLs (MinIO, a test server); unset:"
        " AWS itself.",
        default=None,
    )
    s3_region: Annotated[str | None, Unblank] = _env(
        "LIBNAR_S3_REGION", "AWS region of `s3://` buckets; unset: the AWS default.", default=None
    )
    s3_profile: Annotated[str | None, Unblank] = _env(
        "LIBNAR_S3_PROFILE",
        "AWS profile (`~/.aws/config`) for `s3://` URLs; unset: the AWS default chain.",
        default=None,
    )
    s3_access_key_id: Annotated[SecretStr | None, Unblank] = _env(
        "LIBNAR_S3_ACCESS_KEY_ID",
        "AWS access key id for `s3://` URLs, with `LIBNAR_S3_SECRET_ACCESS_KEY`; unset: the"
        " profile or the AWS default chain.",
        default=None,
    )
    s3_secret_access_key: Annotated[SecretStr | None, Unblank] = _env(
        "LIBNAR_S3_SECRET_ACCESS_KEY",
        "AWS secret access key for `s3://` URLs.",
        default=None,
    )
    gcs_project: Annotated[str | None, Unblank] = _env(
        "LIBNAR_GCS_PROJECT", "Google Cloud project of `gs://` buckets.", default=None
    )
    gcs_token: Annotated[SecretStr | None, Unblank] = _env(
        "LIBNAR_GCS_TOKEN",
        "Credentials for `gs://` URLs: the path of a service-account JSON file,"
        " `google_default` or `anon`; unset: gcsfs's default lookup.",
        default=None,
    )
    gcs_endpoint_url: Annotated[str | None, Unblank] = _env(
        "LIBNAR_GCS_ENDPOINT_URL",
        "Endpoint of a GCS-compatible store for `gs://` URLs (an emulator); unset: Google itself.",
        default=None,
    )
    azure_account_name: Annotated[str | None, Unblank] = _env(
        "LIBNAR_AZURE_ACCOUNT_NAME",
        "Azure storage account of `az://`/`abfs://` URLs.",
        default=None,
    )
    azure_account_key: Annotated[SecretStr | None, Unblank] = _env(
        "LIBNAR_AZURE_ACCOUNT_KEY",
        "Azure storage account key; unset: the connection string or Azure's default credential.",
        default=None,
    )
    azure_connection_string: Annotated[SecretStr | None, Unblank] = _env(
        "LIBNAR_AZURE_CONNECTION_STRING",
        "Azure storage connection string (takes the place of account name and key).",
        default=None,
    )
    workdir: Path | None = _env(
        "LIBNAR_WORKDIR",
        "Folder `libnar.storage.workdir()` returns; unset: the attached disk, the image's"
        " folder or a temp folder, in that order.",
        default=None,
    )
    attached_disk: Path = _env(
        "LIBNAR_ATTACHED_DISK",
        "Where a `giver` run's attached disk (`disk` in `[sama-build]`) is mounted;"
        " `workdir()` uses it when it exists.",
        default=Path("/mnt/disk"),
    )
    image_workdir: Path = _env(
        "LIBNAR_IMAGE_WORKDIR",
        "The flow image's folder (runs start in `<it>/<package>`); `workdir()` uses"
        " `<it>/work` when there is no attached disk and it is writable.",
        default=Path("/opt/prefect"),
    )

    # Secrets (libnar.secrets.get_secret)
    secret_sources: Annotated[
        list[Literal["env", "prefect", "aws", "gcp"]], NoDecode, BeforeValidator(_split_commas)
    ] = _env(
        "LIBNAR_SECRET_SOURCES",
        "Where `get_secret` looks, in order (comma-separated): `env` (`LIBNAR_SECRET_<NAME>`),"
        " `prefect` (Secret blocks), `aws` (Secrets Manager), `gcp` (Secret Manager).",
        default=["env", "prefect", "aws", "gcp"],
    )
    aws_secrets_region: Annotated[str | None, Unblank] = _env(
        "LIBNAR_AWS_SECRETS_REGION",
        "AWS region of Secrets Manager; unset: the AWS default (no region: the store is skipped).",
        default=None,
    )
    aws_secrets_profile: Annotated[str | None, Unblank] = _env(
        "LIBNAR_AWS_SECRETS_PROFILE",
        "AWS profile for Secrets Manager; unset: the AWS default chain.",
        default=None,
    )
    aws_secrets_endpoint_url: Annotated[str | None, Unblank] = _env(
        "LIBNAR_AWS_SECRETS_ENDPOINT_URL",
        "Endpoint of Secrets Manager (a test server); unset: AWS itself.",
        default=None,
    )
    gcp_secrets_project: Annotated[str | None, Unblank] = _env(
        "LIBNAR_GCP_SECRETS_PROJECT",
        "Google Cloud project of Secret Manager; unset: the store is skipped.",
        default=None,
    )

    # Slack (libnar.slack.send_message)
    slack_token: Annotated[SecretStr | None, Unblank] = _env(
        "LIBNAR_SLACK_TOKEN",
        "Slack bot token (`xoxb-...`); unset: `get_secret` of `LIBNAR_SLACK_TOKEN_SECRET`.",
        default=None,
    )
    slack_token_secret: str = _env(
        "LIBNAR_SLACK_TOKEN_SECRET",
        "Name of the secret holding the Slack token when `LIBNAR_SLACK_TOKEN` is unset.",
        default="slack-token",
    )
    slack_api_url: Annotated[str, Unblank] = _env(
        "LIBNAR_SLACK_API_URL", "Base URL of Slack's Web API.", default="https://slack.com/api"
    )
    slack_timeout: float = _env(
        "LIBNAR_SLACK_TIMEOUT",
        "Seconds to wait for Slack to connect or answer.",
        default=30.0,
        gt=0,
    )
    slack_max_retries: int = _env(
        "LIBNAR_SLACK_MAX_RETRIES",
        "Times a rate-limited Slack call is retried after the `Retry-After` Slack asks for.",
        default=3,
        ge=0,
    )
    slack_max_retry_after: float = _env(
        "LIBNAR_SLACK_MAX_RETRY_AFTER",
        "Longest `Retry-After` (seconds) libnar waits; a longer one raises `SlackRateLimitError`.",
        default=120.0,
        ge=0,
    )

    # Databases (libnar.db.create_engine)
    db_secret: Annotated[str | None, Unblank] = _env(
        "LIBNAR_DB_SECRET",
        "Name of the secret holding the database connection (a JSON object or a URL) when"
        " `create_engine()` is given none.",
        default=None,
    )
    db_pool_size: int = _env(
        "LIBNAR_DB_POOL_SIZE", "Connections a database engine keeps open.", default=5, ge=1
    )
    db_max_overflow: int = _env(
        "LIBNAR_DB_MAX_OVERFLOW",
        "Connections an engine may open beyond the pool at busy times.",
        default=10,
        ge=0,
    )
    db_pool_recycle_seconds: float = _env(
        "LIBNAR_DB_POOL_RECYCLE_SECONDS",
        "Seconds after which a pooled database connection is replaced.",
        default=1800.0,
        gt=0,
    )
    db_connect_timeout: int = _env(
        "LIBNAR_DB_CONNECT_TIMEOUT",
        "Seconds to wait for the database to accept a connection.",
        default=10,
        ge=1,
    )


def get_settings(**overrides: Any) -> Settings:
    """Read settings from the environment now, with keyword overrides applied on top."""
    return Settings(**overrides)


def _variable(name: str) -> str:
    """The environment variable of a settings field."""
    alias = Settings.model_fields[name].validation_alias
    return str(alias.choices[0]) if isinstance(alias, AliasChoices) else name.upper()


def settings_table() -> str:
    """The Markdown table of every setting: variable, default and meaning."""
    lines = ["| Variable | Default | Meaning |", "|---|---|---|"]
    for name, field in Settings.model_fields.items():
        env = _variable(name)
        if field.default_factory is not None:
            default = "(empty)"
        elif field.default is None:
            default = "(none)"
        else:
            default = f"`{field.default}`"
        lines.append(f"| `{env}` | {default} | {field.description} |")
    return "\n".join(lines) + "\n"


_USERINFO = re.compile(r"^(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]*://)(?P<user>[^/@:]*)(?::[^/@]*)?@")


def mask_url(text: str) -> str:
    """`text` with the password of a URL's `user:password@` replaced by `***`."""
    return _USERINFO.sub(lambda m: f"{m['scheme']}{m['user']}:***@", text)


def _shown(value: Any) -> str:
    """A setting's value as `libnar settings --values` shows it: secrets masked."""
    if isinstance(value, SecretStr):
        return "*** (set)" if value.get_secret_value() else "(empty)"
    if isinstance(value, list):
        if value and all(isinstance(v, SecretStr) for v in value):
            return f"*** ({len(value)} set)"
        return ", ".join(map(str, value)) or "(empty)"
    if value is None:
        return "(not set)"
    if isinstance(value, dict):
        return ", ".join(f"{k} -> {v}" for k, v in value.items()) or "(empty)"
    return mask_url(str(value))


def settings_values_table(environ: dict[str, str] | None = None) -> str:
    """The Markdown table of every setting's current value, secrets masked, and its source.

    Raises:
        SettingsError: a setting is invalid; one line per problem, naming the variable.
    """
    environ = dict(os.environ) if environ is None else environ
    try:
        settings = Settings()
    except ValidationError as exc:
        problems = [
            f"{'.'.join(map(str, error['loc'])).upper() or 'settings'}: {error['msg']}"
            for error in exc.errors(include_url=False, include_input=False)
        ]
        raise SettingsError(
            f"invalid settings ({len(problems)} problem{'s' * (len(problems) != 1)}):\n  "
            + "\n  ".join(problems)
        ) from None
    names = {key.upper() for key in environ}
    lines = ["| Variable | Value | From |", "|---|---|---|"]
    for name in Settings.model_fields:
        env = _variable(name)
        if name not in settings.model_fields_set:
            source = "default"
        elif env in names:
            source = "environment"
        else:
            source = "`.env`"
        lines.append(f"| `{env}` | {_shown(getattr(settings, name))} | {source} |")
    return "\n".join(lines) + "\n"
