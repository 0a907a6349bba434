"""The `postgres_server` fixture: a real PostgreSQL on 127.0.0.1, run unprivileged."""

from __future__ import annotations

import subprocess

import pytest

from libnar.testing import PostgresServer

pytestmark = pytest.mark.slow


def test_the_server_accepts_connections_and_creates_databases(
    postgres_server: PostgresServer,
) -> None:
    url = postgres_server.create_database("probe_one")
    assert url.endswith(f"127.0.0.1:{postgres_server.port}/probe_one")
    done = subprocess.run(
        [str(postgres_server.bin / "psql"), url, "-tAc", "select current_database(), 6*7"],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode == 127 or "No such file" in done.stderr:
        pytest.skip("psql is not installed beside the server binaries")
    assert done.stdout.strip() == "probe_one|42", done.stderr


def test_urls_name_the_driver_when_asked(postgres_server: PostgresServer) -> None:
    assert postgres_server.url("x", driver="psycopg").startswith("postgresql+psycopg://")
