"""Import flow files and find their `@nps_flow`s: `path/to/file.py` or `path/to/file.py:function`.

One import routine for `libnar run`, the build and `libnar dev`, so a flow file loads the same
way everywhere (and as Prefect loads it from a deployment's entrypoint).
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

from libnar.flow._flow import NpsFlow

__all__ = ["FlowLoadError", "flows_defined_in", "import_flow_file", "load_flow"]


class FlowLoadError(ValueError):
    """The file cannot be imported or holds no (or more than one) `@nps_flow`."""


def import_flow_file(path: Path, module_name: str | None = None) -> ModuleType:
    """Import a flow file as a module, with its folder first on `sys.path`.

    The folder goes on `sys.path` so the flow can import its sibling modules, as it can when
    Prefect loads it from a deployment's entrypoint.

    Raises:
        FlowLoadError: no such file, or importing it raised (the message says what).
    """
    if not path.is_file():
        raise FlowLoadError(f"{path}: no such file (give PATH.py or PATH.py:FUNCTION)")
    name = module_name or f"_libnar_flow_{path.stem}"
    spec = importlib.util.spec_from_file_location(name, path.resolve())
    if spec is None or spec.loader is None:
        raise FlowLoadError(f"{path}: not a Python file")
    module = importlib.util.module_from_spec(spec)
    folder = str(path.resolve().parent)
    if folder not in sys.path:
        sys.path.insert(0, folder)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        raise FlowLoadError(f"{path}: importing it failed: {type(exc).__name__}: {exc}") from exc
    return module


def flows_defined_in(module: ModuleType) -> dict[str, NpsFlow[Any, Any]]:
    """The module's `@nps_flow`s by attribute name, leaving out flows it only imports."""
    return {
        name: value
        for name, value in vars(module).items()
        if isinstance(value, NpsFlow) and value.user_fn.__module__ == module.__name__
    }


def load_flow(target: str) -> NpsFlow[Any, Any]:
    """Import a flow file and return its `@nps_flow` (the named one with `:function`).

    Raises:
        FlowLoadError: what is wrong and how to point at the flow instead.
    """
    path_text, _, function = target.rpartition(":")
    if not path_text or not function.isidentifier():
        path_text, function = target, ""
    module = import_flow_file(Path(path_text))
    flows = flows_defined_in(module)
    if function:
        found = getattr(module, function, None)
        if not isinstance(found, NpsFlow):
            listed = ", ".join(sorted(flows)) or "none"
            raise FlowLoadError(
                f"{path_text}:{function} is not an @nps_flow (flows in the file: {listed})"
            )
        return found
    if len(flows) == 1:
        return next(iter(flows.values()))
    if not flows:
        raise FlowLoadError(f"{path_text}: no @nps_flow function in the file")
    listed = ", ".join(sorted(flows))
    raise FlowLoadError(f"{path_text}: several flows ({listed}); choose one with {path_text}:NAME")
