"""The errors of `libnar.storage`: one base class, one subclass per cause."""

from __future__ import annotations

__all__ = ["MissingExtraError", "StorageError", "StorageJSONError", "StorageURLError"]


class StorageError(Exception):
    """Reading or writing through `libnar.storage` failed; the message names the URL."""


class StorageURLError(StorageError, ValueError):
    """A URL libnar cannot use: an unknown scheme, or a path outside the work folder."""


class MissingExtraError(StorageError, ImportError):
    """A URL needs a backend that is not installed; the message names the `pip install`."""


class StorageJSONError(StorageError, ValueError):
    """An object is not valid JSON, or a value cannot be written as JSON."""
