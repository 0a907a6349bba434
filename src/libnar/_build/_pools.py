"""Base job templates of the work pools the plan targets: ECS, Kubernetes and a local pool.

Each template's variables are exactly the job variables the plan emits for its infra, in that
infra's units, and its job configuration consumes every one of them (a test renders each with
Prefect's own templating). `libnar deploy --create-pools` creates pools with them, `libnar
pools show` prints them, and `libnar dev` runs its local `process` pool on `local`.

The templates are JSON files beside this module (`pool_templates/`), so they can be read,
diffed and handed to `prefect work-pool create --base-job-template` as they are.
"""

from __future__ import annotations

import json
import shlex
from functools import cache
from importlib.resources import files
from typing import Any, Literal

__all__ = [
    "LOCAL_POOL",
    "POOL_KINDS",
    "PoolKind",
    "base_job_template",
    "template_placeholders",
    "template_variables",
]

PoolKind = Literal["narwhal", "giver", "gke", "local"]
#: Template -> the Prefect work pool type whose worker runs it.
POOL_KINDS: dict[str, str] = {
    "narwhal": "ecs",
    "giver": "kubernetes",
    "gke": "kubernetes",
    "local": "process",
}
#: The pool `libnar dev` runs flows on.
LOCAL_POOL = "libnar-local"


@cache
def _read(kind: str) -> str:
    return (files("libnar._build") / "pool_templates" / f"{kind}.json").read_text("utf-8")


def base_job_template(kind: str, *, python: str | None = None) -> dict[str, Any]:
    """The base job template of a pool kind (`narwhal`, `giver`, `gke` or `local`), a new copy.

    `python` (local only) replaces `python` at the start of the run command with that
    interpreter, so runs use the environment `libnar dev` runs in whatever `PATH` says.

    Raises:
        ValueError: an unknown kind; the message lists the known ones.
    """
    if kind not in POOL_KINDS:
        raise ValueError(f"no pool template {kind!r}; use one of {', '.join(POOL_KINDS)}")
    template: dict[str, Any] = json.loads(_read(kind))
    if kind == "local" and python is not None:
        command: str = template["job_configuration"]["command"]
        template["job_configuration"]["command"] = shlex.quote(python) + command.removeprefix(
            "python"
        )
    return template


def template_variables(template: dict[str, Any]) -> set[str]:
    """The job variables a template declares."""
    return set(template["variables"]["properties"])


def template_placeholders(template: dict[str, Any]) -> set[str]:
    """The variables a template's job configuration uses (`{{ name }}` placeholders)."""
    from prefect.utilities.templating import PlaceholderType, find_placeholders

    return {
        placeholder.name
        for placeholder in find_placeholders(template["job_configuration"])
        if placeholder.type is PlaceholderType.STANDARD
    }
