"""NPS naming rules: flow, deployment, script, file and folder names, with compliant suggestions.

Shared by `@nps_flow` (refuses a bad name at decoration time), the build (checks packages) and
the gateway (resolves which deployment an event runs). Pure functions; no Prefect.
"""

from __future__ import annotations

import re

__all__ = [
    "FLOW_NAME_PATTERN",
    "PATH_PART_PATTERN",
    "SCRIPT_NAME_PATTERN",
    "FlowNameError",
    "check_deployment_name",
    "check_flow_name",
    "check_path_part",
    "check_script_name",
    "default_deployment_names",
    "deployment_for_event",
    "normalize_flow_name",
    "suggest_flow_name",
    "suggest_path_part",
    "suggest_script_name",
]

#: The longest flow or deployment name libnar accepts (names travel in URLs and run names).
MAX_NAME_LENGTH = 128
FLOW_NAME_PATTERN = re.compile(r"^[a-z_][a-z0-9_-]*$")
_FLOW_NAME_RULE = (
    "flow names start with a lowercase letter or '_' and use only lowercase letters, digits,"
    f" '_' and '-' (no spaces), at most {MAX_NAME_LENGTH} characters"
)
#: What Prefect refuses in names, and control characters (they would forge log lines).
_DEPLOYMENT_NAME_BANNED = re.compile(r"[/%&<>\x00-\x1f\x7f]")


class FlowNameError(ValueError):
    """A flow name breaks the NPS naming rule; the message gives a compliant suggestion."""


def suggest_flow_name(name: str) -> str:
    """Turn any name into the closest compliant flow name (`Fun69 Boxes.py` -> `fun69_boxes`)."""
    text = name[: MAX_NAME_LENGTH * 2].strip().removesuffix(".py").lower()
    text = re.sub(r"[\s.]+", "_", text)
    text = re.sub(r"[^a-z0-9_-]", "", text)
    if not text or not re.match(r"[a-z_]", text[0]):
        text = "_" + text if text else "flow"
    return text[:MAX_NAME_LENGTH]


def check_flow_name(name: str) -> str | None:
    """Return a problem sentence for a non-compliant flow name, or None when it is fine."""
    if len(name) <= MAX_NAME_LENGTH and FLOW_NAME_PATTERN.match(name):
        return None
    return (
        f"flow name {_quoted(name)} breaks the naming rule: {_FLOW_NAME_RULE};"
        f" use {suggest_flow_name(name)!r}"
    )


def check_deployment_name(name: str) -> str | None:
    """Return a problem sentence for a deployment name Prefect or a URL would refuse, or None."""
    if not name.strip():
        return "a deployment name (not blank)"
    if len(name) > MAX_NAME_LENGTH:
        return f"a deployment name of at most {MAX_NAME_LENGTH} characters (got {len(name)})"
    if _DEPLOYMENT_NAME_BANNED.search(name):
        return "a deployment name without '/', '%', '&', '<', '>' or control characters"
    return None


def _quoted(name: str, limit: int = 60) -> str:
    """A name for a message: quoted, escaped, shortened."""
    text = repr(name)
    return text if len(text) <= limit else text[: limit - 4] + "...'"


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


# --- Script, file and folder names ---------------------------------------------------------

SCRIPT_NAME_PATTERN = re.compile(
    r"^(?:[a-z]+[0-9]+_[a-z0-9]+(?:_[a-z0-9]+)*_(?:ptp|prp)|utl_[a-z0-9]+(?:_[a-z0-9]+)*)$"
)
_SCRIPT_NAME_RULE = (
    "script names are '<salesforce code>_<name>_<ext>' with ext 'ptp' (post-processing) or"
    " 'prp' (pre-processing), or 'utl_<name>' for a utility, e.g. 'fun69_boxes_ptp'"
)
PATH_PART_PATTERN = re.compile(r"^[a-z0-9_]+$")
_PATH_PART_RULE = "file and folder names are lowercase, without spaces, words joined by '_'"

# Endings people write instead of the solution type, mapped to the compliant extension.
_SCRIPT_TYPE_ALIASES = {
    "ptp": "ptp",
    "pos_proc": "ptp",
    "post_proc": "ptp",
    "postproc": "ptp",
    "post_processing": "ptp",
    "postprocessing": "ptp",
    "post": "ptp",
    "pp": "ptp",
    "prp": "prp",
    "pre_proc": "prp",
    "preproc": "prp",
    "pre_processing": "prp",
    "preprocessing": "prp",
    "pre": "prp",
}


def suggest_path_part(name: str) -> str:
    """Turn a file or folder name into a compliant one (`My Flows-2` -> `my_flows_2`)."""
    stem, dot, suffix = name.partition(".")
    text = re.sub(r"[\s\-]+", "_", stem.strip().lower())
    text = re.sub(r"[^a-z0-9_]", "", text).strip("_") or "flow"
    return f"{text}{dot}{suffix.lower()}"


def check_path_part(name: str) -> str | None:
    """Return a problem sentence for a non-compliant file or folder name, or None."""
    if PATH_PART_PATTERN.match(name.split(".", 1)[0]) and name == name.lower():
        return None
    return f"{name!r} breaks the naming rule: {_PATH_PART_RULE}; use {suggest_path_part(name)!r}"


def suggest_script_name(name: str) -> str:
    """Turn a script name into a compliant one (`fun69_ohyea_pos_proc.py` -> `fun69_ohyea_ptp`).

    An ending that names the solution type in other words (`pos_proc`, `post`, `pre_proc`...)
    becomes `_ptp` / `_prp`; a name without one gets `_ptp`, the most common type.
    """
    text = re.sub(r"_+", "_", suggest_path_part(name.strip().removesuffix(".py")))
    if text == "utl" or text.startswith("utl_"):
        return "utl_" + (text[4:] or "script")
    ext = "ptp"
    for alias in sorted(_SCRIPT_TYPE_ALIASES, key=len, reverse=True):
        if text == alias or text.endswith("_" + alias):
            text, ext = text[: len(text) - len(alias)].rstrip("_"), _SCRIPT_TYPE_ALIASES[alias]
            break
    if re.fullmatch(r"[a-z]+[0-9]+", text):
        text += "_script"
    elif not re.match(r"[a-z]+[0-9]+_[a-z0-9]", text):
        # No salesforce code in front: show where it goes with a placeholder code.
        text = f"abc1_{text or 'script'}"
    return f"{text}_{ext}"


def check_script_name(name: str) -> str | None:
    """Return a problem sentence for a non-compliant script name (`.py` optional), or None."""
    stem = name.strip().removesuffix(".py")
    if SCRIPT_NAME_PATTERN.match(stem):
        return None
    return (
        f"script name {stem!r} breaks the naming rule: {_SCRIPT_NAME_RULE};"
        f" use {suggest_script_name(stem)!r}"
    )
