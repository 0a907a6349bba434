"""pytest plugin and helpers for flow authors (registered through the `pytest11` entry point).

Importing this module is cheap: fixtures import Prefect or the fake SamaHub only when used.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from libnar.testing._factories import make_dpp_event, make_task, make_task_id, make_webhook_event
from libnar.testing._fixtures_samahub import fake_samahub

if TYPE_CHECKING:
    from libnar.testing._fake_samahub import FakeCall, FakeSamaHub

__all__: list[str] = [
    "FakeCall",
    "FakeSamaHub",
    "fake_samahub",
    "make_dpp_event",
    "make_task",
    "make_task_id",
    "make_webhook_event",
]

# name -> module that defines it; imported on first access only (respx, httpx).
_LAZY: dict[str, str] = {
    "FakeCall": "libnar.testing._fake_samahub",
    "FakeSamaHub": "libnar.testing._fake_samahub",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'libnar.testing' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
