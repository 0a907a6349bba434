"""create_engine on a real PostgreSQL (the `postgres_server` fixture): connections from a
secret (a URL or a JSON object), psycopg 3, pooled with pre-ping, passwords never shown."""

from __future__ import annotations

import json
import uuid

import pytest
from sqlalchemy import text

from libnar.db import DatabaseConfigError, connection_url, create_engine
from libnar.secrets import clear_secret_cache
from libnar.settings import SettingsError
from libnar.testing import PostgresServer


@pytest.fixture(autouse=True)
def _env_secrets_only(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LIBNAR_SECRET_SOURCES", "env")
    clear_secret_cache()


@pytest.fixture(scope="module")
def database(postgres_server: PostgresServer) -> str:
    """A new database's `postgresql://` URL."""
    return postgres_server.create_database(f"toolbox_{uuid.uuid4().hex[:8]}")


def test_an_engine_from_a_url_secret(database: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LIBNAR_SECRET_REPORTING_DB", database)
    engine = create_engine(secret="reporting-db")
    with engine.connect() as connection:
        assert connection.execute(text("select 41 + 1")).scalar_one() == 42
    assert engine.dialect.driver == "psycopg"
    assert engine.pool._pre_ping  # type: ignore[attr-defined]


def test_an_engine_from_a_json_secret_as_rds_stores_it(
    postgres_server: PostgresServer, database: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    fields = {
        "engine": "postgres",
        "host": "127.0.0.1",
        "port": postgres_server.port,
        "username": "libnar",
        "password": "unused-with-trust-auth",
        "dbname": database.rsplit("/", 1)[1],
    }
    monkeypatch.setenv("LIBNAR_SECRET_NPS_PROD_DB", json.dumps(fields))
    monkeypatch.setenv("LIBNAR_DB_SECRET", "nps/prod/db")
    engine = create_engine()
    with engine.begin() as connection:
        connection.execute(text("create table if not exists seen (id int)"))
        connection.execute(text("insert into seen values (1)"))
    with engine.connect() as connection:
        assert (
            connection.execute(text("select current_database()")).scalar_one() == fields["dbname"]
        )
    assert "unused-with-trust-auth" not in repr(engine) + str(engine.url)


def test_a_dropped_connection_is_replaced_before_use(database: str) -> None:
    """pool_pre_ping: a pooled connection the server closed is not handed out."""
    engine = create_engine(url=database, pool_size=1, max_overflow=0)
    with engine.connect() as connection:
        first_pid = connection.execute(text("select pg_backend_pid()")).scalar_one()
    other = create_engine(url=database)
    with other.connect() as connection:
        connection.execute(text("select pg_terminate_backend(:pid)"), {"pid": first_pid})
    with engine.connect() as connection:
        assert connection.execute(text("select pg_backend_pid()")).scalar_one() != first_pid


def test_engine_options_win_over_the_settings(database: str) -> None:
    engine = create_engine(url=database, pool_size=2, pool_recycle=60)
    assert engine.pool.size() == 2  # type: ignore[attr-defined]
    assert engine.pool._recycle == 60  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ('{"port": 5432}', "secret 'db': field 'host' is missing"),
        ('{"host": "h", "port": "x"}', "secret 'db': field 'port' is not a number"),
        ('{"host": "h", "engine": "mysql"}', "secret 'db': engine 'mysql' is not PostgreSQL"),
        ('{"host": ', "secret 'db': not valid JSON"),
        ("mysql://u:pw@h/db", "secret 'db': driver 'mysql' is not PostgreSQL"),
        ("not a url", "secret 'db': not a database URL"),
    ],
)
def test_a_bad_secret_names_the_problem_never_the_password(value: str, message: str) -> None:
    with pytest.raises(DatabaseConfigError, match=message) as caught:
        connection_url(value, "secret 'db'")
    assert "pw" not in str(caught.value)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("postgresql://u:p%40ss@h:5433/db", "postgresql+psycopg://u:***@h:5433/db"),
        ("postgres://u@h/db?sslmode=require", "postgresql+psycopg://u@h/db?sslmode=require"),
        (
            '{"host": "h", "user": "u", "password": "p@ss", "database": "db"}',
            "postgresql+psycopg://u:***@h/db",
        ),
    ],
)
def test_connection_urls_use_psycopg_3(value: str, expected: str) -> None:
    url = connection_url(value)
    assert str(url) == expected
    assert url.password in (None, "p@ss")


def test_no_connection_names_the_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LIBNAR_DB_SECRET", raising=False)
    with pytest.raises(
        SettingsError, match=r"pass secret='<name>' or url=\.\.\., or set LIBNAR_DB_SECRET"
    ):
        create_engine()
