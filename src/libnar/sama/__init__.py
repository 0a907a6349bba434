"""The SamaHub API client: `SamaClient` (sync) and `AsyncSamaClient` (async).

Public API and the DPP return path, with retries that never duplicate work, pagination,
typed answers and errors that name what failed and what to do. Imports httpx, tenacity and
libnar's payload models only: never Prefect.
"""

from libnar.sama._client import AsyncSamaClient, SamaClient
from libnar.sama._errors import (
    SamaAnswerTooLargeError,
    SamaAuthError,
    SamaBatchIdInUseError,
    SamaBatchOutcomeUnknownError,
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
from libnar.sama._models import Batch, Project

__all__ = [
    "AsyncSamaClient",
    "Batch",
    "Project",
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
]
