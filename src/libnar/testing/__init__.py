"""pytest plugin and helpers for flow authors (registered through the `pytest11` entry point).

Importing this module is cheap: fixtures import Prefect or the fake SamaHub only when used.
"""

from __future__ import annotations

from libnar.testing._build import assert_build_valid

__all__ = ["assert_build_valid"]
