"""Database engines for flows: SQLAlchemy 2 with psycopg 3, the connection from a secret.

```python
from sqlalchemy import text
from libnar.db import create_engine

engine = create_engine(secret="nps-reporting-db")     # pooled, pre-pinged
with engine.connect() as connection:
    rows = connection.execute(text("select 1")).all()
```

The secret (see `libnar.secrets.get_secret`) holds either a URL
(`postgresql://user:password@host:5432/db`) or a JSON object as AWS RDS secrets have it
(`{"host", "port", "username", "password", "dbname"}`; `user` and `database` are accepted
too). Needs `pip install 'libnar[db]'`. The password never shows: SQLAlchemy masks it in
reprs, and errors name the secret, not its value.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from libnar.settings import Settings, SettingsError, get_settings

if TYPE_CHECKING:
    from sqlalchemy import URL, Engine

__all__ = ["DatabaseConfigError", "connection_url", "create_engine"]

_DRIVERS = {"postgresql", "postgres", "postgresql+psycopg", "postgresql+psycopg2"}
_FIELDS = {"host", "port", "username", "user", "password", "dbname", "database", "engine"}


class DatabaseConfigError(ValueError):
    """The database settings are missing or malformed; the message names the secret and field."""


def _require_sqlalchemy() -> None:
    try:
        import psycopg  # noqa: F401
        import sqlalchemy  # noqa: F401
    except ImportError as exc:
        raise ImportError(
            f"libnar.db needs SQLAlchemy and psycopg ({exc}): pip install 'libnar[db]'"
        ) from None


def connection_url(value: str, where: str = "the connection") -> URL:
    """A psycopg 3 `URL` from a URL or a JSON object (the text of a secret).

    Raises:
        DatabaseConfigError: not a PostgreSQL URL nor a JSON object with `host`, naming what
            is wrong (never the password).
    """
    _require_sqlalchemy()
    from sqlalchemy import URL, make_url
    from sqlalchemy.exc import ArgumentError

    text = value.strip()
    if text.startswith("{"):
        try:
            fields = json.loads(text)
        except ValueError:
            raise DatabaseConfigError(f"{where}: not valid JSON") from None
        return _url_from_fields(fields, where)
    try:
        url = make_url(text)
    except ArgumentError:
        raise DatabaseConfigError(
            f"{where}: not a database URL (e.g. postgresql://user:password@host:5432/db)"
            " nor a JSON object"
        ) from None
    if url.drivername not in _DRIVERS:
        raise DatabaseConfigError(
            f"{where}: driver {url.drivername!r} is not PostgreSQL; use postgresql://..."
        )
    return URL.create(
        "postgresql+psycopg",
        username=url.username,
        password=url.password,
        host=url.host,
        port=url.port,
        database=url.database,
        query=url.query,
    )


def _url_from_fields(fields: Any, where: str) -> URL:
    from sqlalchemy import URL

    if not isinstance(fields, dict):
        raise DatabaseConfigError(f"{where}: a JSON object is needed, not {type(fields).__name__}")
    engine = fields.get("engine", "postgres")
    if engine not in ("postgres", "postgresql"):
        raise DatabaseConfigError(f"{where}: engine {engine!r} is not PostgreSQL")
    if not fields.get("host"):
        raise DatabaseConfigError(f"{where}: field 'host' is missing (also: port, username, ...)")
    port = fields.get("port")
    try:
        port = int(port) if port not in (None, "") else None
    except (TypeError, ValueError):
        raise DatabaseConfigError(f"{where}: field 'port' is not a number") from None
    return URL.create(
        "postgresql+psycopg",
        username=fields.get("username") or fields.get("user"),
        password=fields.get("password"),
        host=str(fields["host"]),
        port=port,
        database=fields.get("dbname") or fields.get("database"),
        query={
            key: str(value)
            for key, value in fields.items()
            if key not in _FIELDS and key in ("sslmode", "application_name")
        },
    )


def create_engine(
    secret: str | None = None,
    *,
    url: str | None = None,
    settings: Settings | None = None,
    **engine_options: Any,
) -> Engine:
    """A pooled SQLAlchemy engine on psycopg 3, from the secret `secret` (or a given `url`).

    With neither, the secret named by `LIBNAR_DB_SECRET` is used. Connections are checked
    before use (`pool_pre_ping`) and replaced after `LIBNAR_DB_POOL_RECYCLE_SECONDS`;
    `engine_options` go to `sqlalchemy.create_engine` and win over these.

    Raises:
        SettingsError: no secret, no URL and no `LIBNAR_DB_SECRET`.
        DatabaseConfigError: the secret is not a usable connection.
        libnar.secrets.SecretNotFoundError: no store has the secret.
    """
    _require_sqlalchemy()
    import sqlalchemy

    settings = settings or get_settings()
    if url is not None:
        found = connection_url(url, "url")
    else:
        name = secret or settings.db_secret
        if not name:
            raise SettingsError(
                "create_engine needs a connection: pass secret='<name>' or url=..., or set"
                " LIBNAR_DB_SECRET"
            )
        from libnar.secrets import get_secret

        found = connection_url(
            get_secret(name, settings=settings).get_secret_value(), f"secret {name!r}"
        )
    options: dict[str, Any] = {
        "pool_pre_ping": True,
        "pool_size": settings.db_pool_size,
        "max_overflow": settings.db_max_overflow,
        "pool_recycle": settings.db_pool_recycle_seconds,
        "connect_args": {"connect_timeout": settings.db_connect_timeout},
    }
    return sqlalchemy.create_engine(found, **(options | engine_options))
