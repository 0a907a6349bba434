"""Lazy re-exports (PEP 562): a package names what it offers without importing it yet.

`import libnar` must not import Prefect or httpx; `libnar.nps_flow` imports Prefect when first
used. One implementation for every package that re-exports this way.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Iterable, Mapping
from typing import Any

__all__ = ["lazy_exports"]


def lazy_exports(package: str, sources: Mapping[str, Iterable[str]]) -> Callable[[str], Any]:
    """A module `__getattr__` for `package` that imports each name from its source on first use.

    `sources` maps a module to the names it provides. A loaded name is stored on the package,
    so later lookups are plain attribute reads.
    """
    where = {name: source for source, names in sources.items() for name in names}

    def __getattr__(name: str) -> Any:
        source = where.get(name)
        if source is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(source), name)
        setattr(sys.modules[package], name, value)
        return value

    return __getattr__
