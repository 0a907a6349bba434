"""Clients of both kinds against the fake SamaHub, with retries that record their waits."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from libnar.testing import FakeSamaHub
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
