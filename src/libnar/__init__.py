"""libnar: write, test, build and trigger NPS flows for SamaHub on Prefect 3.

The payload models load at once (pydantic only). Names that need Prefect or the HTTP client are
loaded when first used (PEP 562), so `import libnar` stays fast in a notebook.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from libnar.events import (
    DppEvent,
    DppResult,
    DppTask,
    EventError,
    Task,
    TaskReference,
    TaskState,
    WebhookEvent,
    parse_event,
)
from libnar.settings import Settings, SettingsError

if TYPE_CHECKING:
    from libnar.flow import NpsFlow, ParameterError, nps_flow
    from libnar.sama import (
        AsyncSamaClient,
        SamaAuthError,
        SamaClient,
        SamaConfigError,
        SamaError,
        SamaNotFoundError,
        SamaRateLimitError,
        SamaServerError,
        SamaTransportError,
        SamaValidationError,
    )

__version__ = "5.0.0.dev0"

__all__ = [
    "AsyncSamaClient",
    "DppEvent",
    "DppResult",
    "DppTask",
    "EventError",
    "NpsFlow",
    "ParameterError",
    "SamaAuthError",
    "SamaClient",
    "SamaConfigError",
    "SamaError",
    "SamaNotFoundError",
    "SamaRateLimitError",
    "SamaServerError",
    "SamaTransportError",
    "SamaValidationError",
    "Settings",
    "SettingsError",
    "Task",
    "TaskReference",
    "TaskState",
    "WebhookEvent",
    "__version__",
    "nps_flow",
    "parse_event",
]

# name -> module that defines it; imported on first access only.
_LAZY: dict[str, str] = {
    "NpsFlow": "libnar.flow",
    "ParameterError": "libnar.flow",
    "nps_flow": "libnar.flow",
    "AsyncSamaClient": "libnar.sama",
    "SamaAuthError": "libnar.sama",
    "SamaClient": "libnar.sama",
    "SamaConfigError": "libnar.sama",
    "SamaError": "libnar.sama",
    "SamaNotFoundError": "libnar.sama",
    "SamaRateLimitError": "libnar.sama",
    "SamaServerError": "libnar.sama",
    "SamaTransportError": "libnar.sama",
    "SamaValidationError": "libnar.sama",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'libnar' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
