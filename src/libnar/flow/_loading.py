"""Find the `@nps_flow` in a flow file: `path/to/file.py` or `path/to/file.py:function`."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from typing import Any

from libnar.flow._flow import NpsFlow

__all__ = ["FlowLoadError", "load_flow"]


class FlowLoadError(ValueError):
    """The file cannot be imported or holds no (or more than one) `@nps_flow`."""


def load_flow(target: str) -> NpsFlow[Any, Any]:
    """Import a flow file and return its `@nps_flow` (the named one with `:function`).

    The file's folder goes on `sys.path` first, so the flow can import its sibling modules,
    as it can when Prefect loads it from a deployment's entrypoint.

    Raises:
        FlowLoadError: what is wrong and how to point at the flow instead.
    """
    path_text, _, function = target.rpartition(":")
    if not path_text or not function.isidentifier():
        path_text, function = target, ""
    path = Path(path_text)
    if not path.is_file():
        raise FlowLoadError(f"{path_text}: no such file (give PATH.py or PATH.py:FUNCTION)")
    module_name = f"_libnar_flow_{path.stem}"
    spec = importlib.util.spec_from_file_location(module_name, path.resolve())
    if spec is None or spec.loader is None:
        raise FlowLoadError(f"{path_text}: not a Python file")
    module = importlib.util.module_from_spec(spec)
    sys.path.insert(0, str(path.resolve().parent))
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        raise FlowLoadError(
            f"{path_text}: importing it failed: {type(exc).__name__}: {exc}"
        ) from exc
    flows = {name: obj for name, obj in vars(module).items() if isinstance(obj, NpsFlow)}
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
