"""Fixtures for the flow toolbox (registered through `libnar.testing`).

Each cloud store runs for real on 127.0.0.1 and once per test session: S3 and Secrets
Manager on moto's server, GCS on an emulator, Azure on Azurite (skipped, with the reason,
where it cannot be installed). The per-test fixtures make a fresh bucket or container and point
libnar's settings at the server, so code under test needs no options.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from libnar.testing._azurite import Azurite
    from libnar.testing._gcs import GcsEmulator
    from libnar.testing._moto import MotoServer
    from libnar.testing._slack import FakeSlack

__all__ = [
    "az_container",
    "azurite",
    "fake_slack",
    "gcs_emulator",
    "gs_bucket",
    "moto_server",
    "s3_bucket",
]


def _needs(module: str, extra: str) -> None:
    try:
        __import__(module)
    except ImportError:
        pytest.skip(f"{module} is not installed: pip install 'libnar[{extra}]'")


@pytest.fixture(scope="session")
def moto_server() -> Iterator[MotoServer]:
    """moto's standalone server on 127.0.0.1 for the session (S3, Secrets Manager, ...)."""
    _needs("moto.server", "test")
    from libnar.testing._moto import MotoServer

    with MotoServer() as server:
        yield server


@pytest.fixture
def s3_bucket(moto_server: MotoServer, monkeypatch: pytest.MonkeyPatch) -> str:
    """A new bucket on `moto_server` (its `s3://` URL); the settings point at the server."""
    _needs("s3fs", "aws")
    for name, value in moto_server.env().items():
        monkeypatch.setenv(name, value)
    return moto_server.create_bucket()


@pytest.fixture(scope="session")
def gcs_emulator() -> Iterator[GcsEmulator]:
    """A GCS emulator on 127.0.0.1 for the session."""
    _needs("gcp_storage_emulator", "test")
    from libnar.testing._gcs import GcsEmulator

    with GcsEmulator() as emulator:
        yield emulator


@pytest.fixture
def gs_bucket(gcs_emulator: GcsEmulator, monkeypatch: pytest.MonkeyPatch) -> str:
    """A new bucket on `gcs_emulator` (its `gs://` URL); the settings point at it."""
    _needs("gcsfs", "gcp")
    for name, value in gcs_emulator.env().items():
        monkeypatch.setenv(name, value)
    return gcs_emulator.create_bucket()


@pytest.fixture(scope="session")
def azurite() -> Iterator[Azurite]:
    """Azurite's blob service on 127.0.0.1 for the session, installed with npm if needed.

    Skipped, saying why, where Node.js, npm or the install is unavailable.
    """
    from libnar.testing._azurite import Azurite, AzuriteUnavailable

    try:
        server = Azurite()
        server.start()
    except AzuriteUnavailable as exc:
        pytest.skip(str(exc))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def az_container(azurite: Azurite, monkeypatch: pytest.MonkeyPatch) -> str:
    """A new container on `azurite` (its `az://` URL); the settings point at it."""
    _needs("adlfs", "azure")
    for name, value in azurite.env().items():
        monkeypatch.setenv(name, value)
    return azurite.create_container()


@pytest.fixture
def fake_slack(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeSlack]:
    """A fake of Slack's Web API served on 127.0.0.1 for one test; the settings point at it.

    Sets `LIBNAR_SLACK_API_URL` and `LIBNAR_SLACK_TOKEN`; see `FakeSlack`.
    """
    from libnar.testing._slack import FakeSlack

    with FakeSlack() as fake:
        for name, value in fake.env().items():
            monkeypatch.setenv(name, value)
        yield fake
