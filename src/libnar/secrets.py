"""Secrets for flows, from the environment, Prefect `Secret` blocks or the cloud's managers.

`get_secret(name)` looks in the stores of `LIBNAR_SECRET_SOURCES`, in this order by default:

1. `env`: the variable `LIBNAR_SECRET_<NAME>` (the name upper-cased, each run of other
   characters than letters and digits made `_`), from the environment or `.env`;
2. `prefect`: the Prefect `Secret` block named after the secret (lower-cased, other characters
   made `-`), when Prefect has an API URL (`PREFECT_API_URL` or a profile);
3. `aws`: AWS Secrets Manager, the name as given (with `libnar[aws]`, when a region is set);
4. `gcp`: GCP Secret Manager, the latest version (with `libnar[gcp]` and
   `LIBNAR_GCP_SECRETS_PROJECT`).

The first store that has it wins. Values are `SecretStr`: they never show in a repr, a log or
an error message. Each value is kept for the life of the process; `get_secret(name,
refresh=True)` or `clear_secret_cache()` looks again. Nothing is looked up at import.
"""

from __future__ import annotations

import ast
import json
import logging
import os
import re
import threading
import warnings
from collections.abc import Callable
from typing import Any, Literal

from pydantic import SecretStr

from libnar.settings import Settings, get_settings, mask_url

__all__ = [
    "SecretError",
    "SecretFormatError",
    "SecretNotFoundError",
    "SecretStoreError",
    "clear_secret_cache",
    "get_access_key",
    "get_secret",
    "get_secret_json",
    "secret_block_name",
    "secret_env_variable",
]

logger = logging.getLogger("libnar.secrets")

_cache: dict[str, SecretStr] = {}
_lock = threading.Lock()


class SecretError(Exception):
    """A secret could not be had; the message names the secret, never its value."""


class SecretNotFoundError(SecretError, LookupError):
    """No store has the secret; `looked` lists each store and what it said."""

    def __init__(self, name: str, looked: list[str]) -> None:
        self.name = name
        self.looked = looked
        where = "\n  ".join(looked) or "no store is enabled (LIBNAR_SECRET_SOURCES is empty)"
        super().__init__(f"secret {name!r} not found; looked in:\n  {where}")


class SecretStoreError(SecretError):
    """A store could not answer (refused access, unreachable): not the same as absent."""


class SecretFormatError(SecretError, ValueError):
    """A secret is not what the call needs (e.g. not a JSON object for `get_secret_json`)."""


def secret_env_variable(name: str) -> str:
    """The environment variable of secret `name`: `db/main` -> `LIBNAR_SECRET_DB_MAIN`."""
    return "LIBNAR_SECRET_" + re.sub(r"[^A-Z0-9]+", "_", name.upper()).strip("_")


def secret_block_name(name: str) -> str:
    """The Prefect `Secret` block of secret `name`: `db/main` -> `db-main`."""
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")


# -- the stores: each returns the value, or a line saying why it has none ---------------------

_Found = tuple[str | None, str]


def _from_env(name: str, settings: Settings) -> _Found:
    variable = secret_env_variable(name)
    value = os.environ.get(variable)
    if value is None:
        from dotenv import dotenv_values

        env_file = settings.model_config.get("env_file")
        if isinstance(env_file, str) and os.path.exists(env_file):
            value = dotenv_values(env_file).get(variable)
    return value or None, f"environment: {variable} is not set"


def _prefect_api_url() -> str | None:
    url = os.environ.get("PREFECT_API_URL")
    if url:
        return url
    from prefect.settings import get_current_settings

    return get_current_settings().api.url


def _from_prefect(name: str, settings: Settings) -> _Found:
    block = secret_block_name(name)
    try:
        import prefect  # noqa: F401 - only to know whether it is installed
    except ImportError:
        return None, f"Prefect Secret block {block!r}: skipped (prefect is not installed)"
    api_url = _prefect_api_url()
    if not api_url:
        return None, f"Prefect Secret block {block!r}: skipped (PREFECT_API_URL is not set)"
    from prefect.client.orchestration import get_client
    from prefect.exceptions import ObjectNotFound

    try:
        with get_client(sync_client=True) as client:
            document = client.read_block_document_by_name(
                block, block_type_slug="secret", include_secrets=True
            )
    except ObjectNotFound:
        return None, f"Prefect Secret block {block!r}: not found at {mask_url(api_url)}"
    except Exception as exc:
        raise SecretStoreError(
            f"secret {name!r}: Prefect at {mask_url(api_url)} did not answer for block"
            f" {block!r} ({type(exc).__name__})"
        ) from None
    value = document.data.get("value")
    if isinstance(value, SecretStr):
        value = value.get_secret_value()
    if value is not None and not isinstance(value, str):
        value = json.dumps(value)  # a Secret block may hold a JSON object
    return value, f"Prefect Secret block {block!r}: empty"


def _from_aws(name: str, settings: Settings) -> _Found:
    try:
        # botocore, not boto3: it comes with s3fs's aiobotocore at the version that pins, so
        # the `aws` extra never makes pip reconcile boto3's botocore with aiobotocore's.
        import botocore.exceptions
        import botocore.session
        from botocore.config import Config
    except ImportError:
        return None, "AWS Secrets Manager: skipped (pip install 'libnar[aws]')"
    try:
        session = botocore.session.Session(profile=settings.aws_secrets_profile)
        client = session.create_client(
            "secretsmanager",
            region_name=settings.aws_secrets_region,
            endpoint_url=settings.aws_secrets_endpoint_url,
            config=Config(connect_timeout=5, read_timeout=10, retries={"max_attempts": 3}),
        )
        answer = client.get_secret_value(SecretId=name)
    except botocore.exceptions.NoRegionError:
        return None, "AWS Secrets Manager: skipped (no region: set LIBNAR_AWS_SECRETS_REGION)"
    except (
        botocore.exceptions.NoCredentialsError,
        botocore.exceptions.ProfileNotFound,
    ) as exc:
        return None, f"AWS Secrets Manager: skipped (no credentials: {type(exc).__name__})"
    except botocore.exceptions.ClientError as exc:
        code = exc.response.get("Error", {}).get("Code", "")
        if code == "ResourceNotFoundException":
            return None, f"AWS Secrets Manager: {name!r} not found"
        raise SecretStoreError(
            f"secret {name!r}: AWS Secrets Manager refused it ({code or 'error'})"
        ) from None
    except botocore.exceptions.BotoCoreError as exc:
        raise SecretStoreError(
            f"secret {name!r}: AWS Secrets Manager did not answer ({type(exc).__name__})"
        ) from None
    if "SecretString" in answer:
        return answer["SecretString"], f"AWS Secrets Manager: {name!r} is empty"
    binary = answer.get("SecretBinary")
    text = binary.decode("utf-8", "replace") if isinstance(binary, bytes) else None
    return text, f"AWS Secrets Manager: {name!r} is empty"


def _from_gcp(name: str, settings: Settings) -> _Found:
    project = settings.gcp_secrets_project
    if not project:
        return None, "GCP Secret Manager: skipped (LIBNAR_GCP_SECRETS_PROJECT is not set)"
    try:
        from google.api_core import exceptions as google_errors
        from google.cloud import secretmanager
    except ImportError:
        return None, "GCP Secret Manager: skipped (pip install 'libnar[gcp]')"
    path = f"projects/{project}/secrets/{name}/versions/latest"
    try:
        client = secretmanager.SecretManagerServiceClient()
        answer = client.access_secret_version(name=path, timeout=10)
    except google_errors.NotFound:
        return None, f"GCP Secret Manager: {path} not found"
    except Exception as exc:
        raise SecretStoreError(
            f"secret {name!r}: GCP Secret Manager did not answer for {path} ({type(exc).__name__})"
        ) from None
    return answer.payload.data.decode("utf-8", "replace"), f"GCP Secret Manager: {path} empty"


_STORES: dict[str, Callable[[str, Settings], _Found]] = {
    "env": _from_env,
    "prefect": _from_prefect,
    "aws": _from_aws,
    "gcp": _from_gcp,
}


def get_secret(name: str, *, refresh: bool = False, settings: Settings | None = None) -> SecretStr:
    """The value of secret `name`, from the first store that has it (see the module's text).

    `refresh=True` looks again instead of returning the value kept from an earlier call.

    Raises:
        SecretNotFoundError: no store has it; the message lists each store and what it said.
        SecretStoreError: a store refused or did not answer (nothing later is tried, so a
            broken store is never mistaken for an absent secret).
    """
    if not name or not name.strip():
        raise SecretNotFoundError(repr(name), ["a secret needs a non-empty name"])
    if not refresh:
        with _lock:
            if name in _cache:
                return _cache[name]
    settings = settings or get_settings()
    looked: list[str] = []
    for source in settings.secret_sources:
        value, why = _STORES[source](name, settings)
        if value is not None:
            secret = SecretStr(value)
            with _lock:
                _cache[name] = secret
            logger.debug("secret %r found in the %s store", name, source)
            return secret
        looked.append(why)
    raise SecretNotFoundError(name, looked)


def get_secret_json(
    name: str, *, refresh: bool = False, settings: Settings | None = None
) -> dict[str, Any]:
    """Secret `name` parsed as a JSON object (database settings, service accounts).

    A Python dict literal, as the earlier `narcon.get_secret` read with `literal_eval`, is
    accepted with a `DeprecationWarning`: store the secret as JSON.

    Raises:
        SecretFormatError: the value is not a JSON object (the value is not quoted).
    """
    text = get_secret(name, refresh=refresh, settings=settings).get_secret_value()
    try:
        value = json.loads(text)
    except ValueError:
        try:
            value = ast.literal_eval(text)  # literals only: nothing is evaluated
        except (ValueError, SyntaxError, MemoryError, RecursionError):
            value = None
        else:
            if isinstance(value, dict):
                warnings.warn(
                    f"secret {name!r} is a Python dict literal; store it as JSON",
                    DeprecationWarning,
                    stacklevel=2,
                )
    if not isinstance(value, dict):
        raise SecretFormatError(
            f'secret {name!r} is not a JSON object (e.g. {{"user": "..."}}); use'
            " get_secret() for a plain string"
        ) from None
    return value


def get_access_key(which: Literal["primary", "secondary"]) -> SecretStr:
    """SamaHub's primary or secondary API key, as the earlier `narcon.get_access_key` gave it.

    The settings come first (`SAMA_API_KEY`, `SAMA_SECONDARY_API_KEY`: the keys `SamaClient`
    uses), then the secret stores under `primary-access-key` / `secondary-access-key`.
    """
    if which not in ("primary", "secondary"):
        raise ValueError(f"which: {which!r} is not an access key; use 'primary' or 'secondary'")
    settings = get_settings()
    key = settings.sama_api_key if which == "primary" else settings.sama_secondary_api_key
    if key is not None:
        return key
    return get_secret(f"{which}-access-key")


def clear_secret_cache(name: str | None = None) -> None:
    """Forget the kept value of secret `name` (every secret when None)."""
    with _lock:
        if name is None:
            _cache.clear()
        else:
            _cache.pop(name, None)
