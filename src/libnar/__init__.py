"""libnar: write, test, build and trigger NPS flows for SamaHub on Prefect 3.

The payload models load at once (pydantic only). Names that need Prefect or the HTTP client are
loaded when first used (PEP 562), so `import libnar` stays fast in a notebook.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from libnar._lazy import lazy_exports
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
        SamaAnswerTooLargeError,
        SamaAuthError,
        SamaBatchIdInUseError,
        SamaBatchOutcomeUnknownError,
        SamaClient,
        SamaConfigError,
        SamaDeadlineError,
        SamaError,
        SamaNotFoundError,
        SamaRateLimitError,
        SamaServerError,
        SamaTaskDataError,
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
    "SamaAnswerTooLargeError",
    "SamaAuthError",
    "SamaBatchIdInUseError",
    "SamaBatchOutcomeUnknownError",
    "SamaClient",
    "SamaConfigError",
    "SamaDeadlineError",
    "SamaError",
    "SamaNotFoundError",
    "SamaRateLimitError",
    "SamaServerError",
    "SamaTaskDataError",
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

__getattr__ = lazy_exports(
    __name__,
    {
        "libnar.flow": ["NpsFlow", "ParameterError", "nps_flow"],
        "libnar.sama": [
            "AsyncSamaClient",
            "SamaAnswerTooLargeError",
            "SamaAuthError",
            "SamaBatchIdInUseError",
            "SamaBatchOutcomeUnknownError",
            "SamaClient",
            "SamaConfigError",
            "SamaDeadlineError",
            "SamaError",
            "SamaNotFoundError",
            "SamaRateLimitError",
            "SamaServerError",
            "SamaTaskDataError",
            "SamaTransportError",
            "SamaValidationError",
        ],
    },
)


def __dir__() -> list[str]:
    return sorted(__all__)
