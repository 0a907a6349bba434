"""Filesystems and paths for any URL: fsspec underneath, credentials explicit.

A URL's scheme picks the backend (`s3://` s3fs, `gs://` gcsfs, `az://`/`abfs://` adlfs,
`file://` or a plain path, `memory://`). Options come from the call's keyword arguments on top
of the scheme's settings (`LIBNAR_S3_*`, `LIBNAR_GCS_*`, `LIBNAR_AZURE_*`); nothing is looked
up until a filesystem is made, and the cloud backends are imported only then.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from pydantic import SecretStr

from libnar.settings import Settings, get_settings, mask_url
from libnar.storage._errors import MissingExtraError, StorageURLError

if TYPE_CHECKING:
    from fsspec import AbstractFileSystem
    from upath import UPath

__all__ = ["CLOUD_SCHEMES", "filesystem", "path", "scheme_of", "storage_options", "url_and_fs"]

#: scheme -> (the module its backend needs, the libnar extra that installs it)
CLOUD_SCHEMES: dict[str, tuple[str, str]] = {
    "s3": ("s3fs", "aws"),
    "s3a": ("s3fs", "aws"),
    "gs": ("gcsfs", "gcp"),
    "gcs": ("gcsfs", "gcp"),
    "az": ("adlfs", "azure"),
    "abfs": ("adlfs", "azure"),
    "abfss": ("adlfs", "azure"),
}


def scheme_of(url: str) -> str:
    """The scheme of `url` in lower case; `file` for a plain path."""
    head, sep, _ = str(url).partition("://")
    if not sep or not head.replace("+", "").replace("-", "").replace(".", "").isalnum():
        return "file"
    return head.lower()


def _unwrap(value: Any) -> Any:
    return value.get_secret_value() if isinstance(value, SecretStr) else value


def storage_options(scheme: str, settings: Settings | None = None) -> dict[str, Any]:
    """The fsspec options the settings give `scheme` (empty when none are set).

    Secret values are returned in clear: pass them to a filesystem, never to a log.
    """
    settings = settings or get_settings()
    found: dict[str, Any] = {}
    if scheme in ("s3", "s3a"):
        found = {
            "endpoint_url": settings.s3_endpoint_url,
            "profile": settings.s3_profile,
            "key": settings.s3_access_key_id,
            "secret": settings.s3_secret_access_key,
        }
        if settings.s3_region:
            found["client_kwargs"] = {"region_name": settings.s3_region}
    elif scheme in ("gs", "gcs"):
        found = {
            "project": settings.gcs_project,
            "token": settings.gcs_token,
            "endpoint_url": settings.gcs_endpoint_url,
        }
    elif scheme in ("az", "abfs", "abfss"):
        found = {
            "account_name": settings.azure_account_name,
            "account_key": settings.azure_account_key,
            "connection_string": settings.azure_connection_string,
        }
    return {key: _unwrap(value) for key, value in found.items() if value is not None}


def _require_backend(scheme: str) -> None:
    """Import the backend of a cloud scheme, or say which extra installs it."""
    if scheme not in CLOUD_SCHEMES:
        return
    module, extra = CLOUD_SCHEMES[scheme]
    try:
        importlib.import_module(module)
    except ImportError as exc:
        raise MissingExtraError(
            f"{scheme}:// URLs need {module}, which is not installed ({exc}):"
            f" pip install 'libnar[{extra}]'"
        ) from None


def filesystem(url: str, **options: Any) -> AbstractFileSystem:
    """The fsspec filesystem for `url`'s scheme, with `options` over the scheme's settings.

    `options` are the backend's own (s3fs, gcsfs, adlfs): e.g. `endpoint_url=`, `key=`,
    `secret=` for `s3://`. `SecretStr` values are accepted. fsspec reuses one instance per
    scheme and options.

    Raises:
        MissingExtraError: the scheme's backend is not installed (names the extra).
        StorageURLError: fsspec knows no such scheme.
    """
    import fsspec

    scheme = scheme_of(url)
    _require_backend(scheme)
    merged = storage_options(scheme) | {key: _unwrap(value) for key, value in options.items()}
    if scheme in ("gs", "gcs") and merged.get("endpoint_url"):
        # An emulator speaks GCS's JSON API only; gcsfs's default class first asks a gRPC
        # service for the bucket's layout and waits a minute for each such call to fail.
        from gcsfs.core import GCSFileSystem

        return GCSFileSystem(**merged)
    try:
        return fsspec.filesystem(scheme, **merged)
    except ValueError as exc:
        if "Protocol not known" not in str(exc):
            raise
        raise StorageURLError(
            f"{mask_url(str(url))}: unknown scheme {scheme!r}; use s3://, gs://, az://,"
            " abfs://, file://, memory:// or a local path"
        ) from None


def url_and_fs(url: str, **options: Any) -> tuple[AbstractFileSystem, str]:
    """The filesystem of `url` and the path inside it that its methods take."""
    fs = filesystem(url, **options)
    return fs, fs._strip_protocol(str(url))


def path(url: str, **options: Any) -> UPath:
    """A `UPath` (a `pathlib.Path` for any URL) on the filesystem `filesystem(url)` gives.

    Paths derived from it (`p / "name"`, `p.parent`) share the filesystem.
    """
    from upath import UPath

    fs = filesystem(url, **options)
    found: UPath = UPath(str(url), **{key: _unwrap(value) for key, value in options.items()})
    if scheme_of(url) != "file":
        found._fs_cached = fs  # the same backend and credentials as filesystem(url)
    return found
