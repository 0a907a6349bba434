"""NPS naming rules: flow names and deployment names, with compliant suggestions.

Shared by `@nps_flow` (refuses a bad name at decoration time), the build (checks packages) and
the gateway (resolves which deployment an event runs). Pure functions; no Prefect.
"""

from __future__ import annotations

import re

__all__ = [
    "FLOW_NAME_PATTERN",
    "FlowNameError",
    "check_flow_name",
    "default_deployment_names",
    "deployment_for_event",
    "normalize_flow_name",
    "suggest_flow_name",
]

FLOW_NAME_PATTERN = re.compile(r"^[a-z_][a-z0-9_-]*$")
_FLOW_NAME_RULE = (
    "flow names start with a lowercase letter or '_' and use only lowercase letters, digits,"
    " '_' and '-' (no spaces)"
)


class FlowNameError(ValueError):
    """A flow name breaks the NPS naming rule; the message gives a compliant suggestion."""


def suggest_flow_name(name: str) -> str:
    """Turn any name into the closest compliant flow name (`Fun69 Boxes.py` -> `fun69_boxes`)."""
    text = name.strip().removesuffix(".py").lower()
    text = re.sub(r"[\s.]+", "_", text)
    text = re.sub(r"[^a-z0-9_-]", "", text)
    if not text or not re.match(r"[a-z_]", text[0]):
        text = "_" + text if text else "flow"
    return text


def check_flow_name(name: str) -> str | None:
    """Return a problem sentence for a non-compliant flow name, or None when it is fine."""
    if FLOW_NAME_PATTERN.match(name):
        return None
    return f"flow name {name!r} breaks the naming rule: {_FLOW_NAME_RULE}; use {suggest_flow_name(name)!r}"


def normalize_flow_name(name: str) -> str:
    """Drop a trailing `.py` (SamaHub's script name field may carry it) and check the rest.

    Raises:
        FlowNameError: the name is not compliant even without `.py`.
    """
    stripped = name.strip().removesuffix(".py")
    problem = check_flow_name(stripped)
    if problem:
        raise FlowNameError(problem)
    return stripped


def default_deployment_names(flow_name: str, count: int = 1) -> list[str]:
    """`<flow>_deploy` for one deployment, `<flow>_deploy_1 .. _N` for several."""
    if count < 1:
        raise ValueError(f"deployment count must be at least 1, got {count}")
    if count == 1:
        return [f"{flow_name}_deploy"]
    return [f"{flow_name}_deploy_{i}" for i in range(1, count + 1)]


def deployment_for_event(flow_name: str, dep_name: str | None = None) -> str:
    """The deployment an event runs: `dep_name` when given, else the flow's default one."""
    return dep_name if dep_name else f"{flow_name}_deploy"
