"""pytest plugin and helpers for flow authors (registered through the `pytest11` entry point).

Fixtures:
    fake_samahub: a stateful fake SamaHub (respx) for one test, with the settings pointing at
        it; see `FakeSamaHub`.
    prefect_server: one real `prefect server` on 127.0.0.1 for the whole test session, with
        the flow heartbeat off; flows called in tests (and `libnar` subprocesses) use it.
    postgres_server: one real PostgreSQL server on 127.0.0.1 for the session (skipped, with
        the reason, where the server binaries are not installed); see `PostgresServer`.
    moto_server, s3_bucket: moto's standalone server (S3, Secrets Manager) for the session,
        and a new bucket per test with the settings pointing at it; see `MotoServer`.
    gcs_emulator, gs_bucket: a GCS emulator and a new bucket per test; see `GcsEmulator`.
    azurite, az_container: Azurite (npm) and a new container per test, skipped with the
        reason where Node.js or the install is unavailable; see `Azurite`.
    fake_slack: a fake of Slack's Web API on 127.0.0.1 for one test; see `FakeSlack`.

Helpers (re-exported from the local stack, `libnar._local_stack`, which `libnar dev` runs
without the test extra): `PrefectServer`, `GatewayProcess`, `free_port`, `FakeSamaHub`,
`FakeCall`, `serve_fake_samahub`, and the sample payload factories `make_task`,
`make_webhook_event`, `make_dpp_event`, `make_task_id`.

Importing this module is cheap: fixtures import Prefect or the fake SamaHub only when used.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

from libnar._lazy import lazy_exports
from libnar._local_stack import (
    GatewayProcess,
    PrefectServer,
    box,
    free_port,
    make_creation_schema,
    make_delivery_schema,
    make_dpp_event,
    make_task,
    make_task_id,
    make_video_answers,
    make_webhook_event,
)
from libnar.testing._build import assert_build_valid
from libnar.testing._fixtures_samahub import fake_samahub
from libnar.testing._fixtures_toolbox import (
    az_container,
    azurite,
    fake_slack,
    gcs_emulator,
    gs_bucket,
    moto_server,
    s3_bucket,
)
from libnar.testing._postgres import PostgresServer, PostgresUnavailable

if TYPE_CHECKING:
    from libnar._local_stack import FakeCall, FakeSamaHub, serve_fake_samahub
    from libnar.testing._azurite import Azurite, AzuriteUnavailable
    from libnar.testing._gcs import GcsEmulator
    from libnar.testing._moto import MotoServer
    from libnar.testing._slack import FakeSlack, SlackCall, SlackMessage

__all__ = [
    "Azurite",
    "AzuriteUnavailable",
    "FakeCall",
    "FakeSamaHub",
    "FakeSlack",
    "GatewayProcess",
    "GcsEmulator",
    "MotoServer",
    "PostgresServer",
    "PrefectServer",
    "SlackCall",
    "SlackMessage",
    "assert_build_valid",
    "az_container",
    "azurite",
    "box",
    "fake_samahub",
    "fake_slack",
    "free_port",
    "gcs_emulator",
    "gs_bucket",
    "make_creation_schema",
    "make_delivery_schema",
    "make_dpp_event",
    "make_task",
    "make_task_id",
    "make_video_answers",
    "make_webhook_event",
    "moto_server",
    "postgres_server",
    "prefect_server",
    "s3_bucket",
    "serve_fake_samahub",
]

# Imported on first access only: the fake costs more to import than the rest together.
__getattr__ = lazy_exports(
    __name__,
    {
        "libnar._local_stack": ["FakeCall", "FakeSamaHub", "serve_fake_samahub"],
        "libnar.testing._azurite": ["Azurite", "AzuriteUnavailable"],
        "libnar.testing._gcs": ["GcsEmulator"],
        "libnar.testing._moto": ["MotoServer"],
        "libnar.testing._slack": ["FakeSlack", "SlackCall", "SlackMessage"],
    },
)


@pytest.fixture(scope="session")
def prefect_server() -> Iterator[PrefectServer]:
    """A real Prefect server for the test session; flows in tests run against it.

    Set `LIBNAR_TEST_PREFECT_API_URL` to use a server you started yourself instead.
    """
    from prefect.settings import (
        PREFECT_API_URL,
        PREFECT_FLOWS_HEARTBEAT_FREQUENCY,
        temporary_settings,
    )

    given = os.environ.get("LIBNAR_TEST_PREFECT_API_URL")
    server = PrefectServer()
    if given:
        server.port = int(given.rsplit(":", 1)[1].split("/")[0])
    else:
        server.start()
    previous = os.environ.get("PREFECT_API_URL")
    os.environ["PREFECT_API_URL"] = server.api_url
    try:
        with temporary_settings(
            updates={PREFECT_API_URL: server.api_url, PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None}
        ):
            yield server
        from prefect.logging.handlers import APILogHandler

        APILogHandler().flush()  # send queued run logs while the server is still up
    finally:
        if previous is None:
            os.environ.pop("PREFECT_API_URL", None)
        else:
            os.environ["PREFECT_API_URL"] = previous
        if not given:
            server.stop()


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """A real PostgreSQL server for the test session (trust auth on 127.0.0.1).

    Skipped, saying why, where the server binaries are not installed.
    """
    try:
        server = PostgresServer()
    except PostgresUnavailable as exc:
        pytest.skip(str(exc))
    with server:
        yield server
