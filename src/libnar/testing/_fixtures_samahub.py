"""The `fake_samahub` pytest fixture (registered through `libnar.testing`)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from libnar.testing._fake_samahub import FakeSamaHub

__all__ = ["fake_samahub"]


@pytest.fixture
def fake_samahub(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeSamaHub]:
    """Intercept SamaHub for one test, and point libnar's settings at the fake.

    Sets `SAMA_API_URL`, `SAMA_API_KEY`, `SAMA_DPP_URL` and `SAMA_DPP_KEY`, so code that
    creates a `SamaClient()` from settings talks to the fake.
    """
    from libnar.testing._fake_samahub import FakeSamaHub

    fake = FakeSamaHub()
    monkeypatch.setenv("SAMA_API_URL", fake.api_url)
    monkeypatch.setenv("SAMA_API_KEY", fake.api_key)
    monkeypatch.setenv("SAMA_DPP_URL", fake.dpp_url)
    monkeypatch.setenv("SAMA_DPP_KEY", fake.dpp_key)
    with fake:
        yield fake
