"""The `fake_samahub` pytest fixture (registered through `libnar.testing`)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from libnar._local_stack._fake_samahub import FakeSamaHub

__all__ = ["fake_samahub"]


@pytest.fixture
def fake_samahub(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeSamaHub]:
    """Intercept SamaHub for one test, and point libnar's settings at the fake.

    Sets `SAMA_API_URL`, `SAMA_API_KEY`, `SAMA_DPP_URL` and `SAMA_DPP_KEY`, so code that
    creates a `SamaClient()` from settings talks to the fake.
    """
    from libnar._local_stack._fake_samahub import FakeSamaHub

    fake = FakeSamaHub()
    for name, value in fake.env().items():
        monkeypatch.setenv(name, value)
    with fake:
        yield fake
