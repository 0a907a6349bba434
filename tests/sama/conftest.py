"""Clients of both kinds against the fake SamaHub, with retries that record their waits."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest

from libnar.testing import FakeSamaHub, serve_fake_samahub
from tests.sama.sama_helpers import Client, Waits, close, make_client


@pytest.fixture
def waits() -> Waits:
    return Waits()


@pytest.fixture(params=["sync", "async"])
async def client(
    request: pytest.FixtureRequest, fake_samahub: FakeSamaHub, waits: Waits
) -> AsyncIterator[Client]:
    """A `SamaClient` or an `AsyncSamaClient` reading its settings from the fake's env."""
    made = make_client(request.param, waits)
    yield made
    await close(made)


@pytest.fixture
def served_samahub(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeSamaHub]:
    """The fake SamaHub on a real socket (127.0.0.1), with the settings pointing at it."""
    with serve_fake_samahub() as fake:
        for name, value in fake.env().items():
            monkeypatch.setenv(name, value)
        yield fake


@pytest.fixture(params=["sync", "async"])
async def served_client(
    request: pytest.FixtureRequest, served_samahub: FakeSamaHub, waits: Waits
) -> AsyncIterator[Client]:
    """A `SamaClient` or an `AsyncSamaClient` talking to the served fake over HTTP."""
    made = make_client(request.param, waits)
    yield made
    await close(made)
