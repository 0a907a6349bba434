"""The `[sama-build]` table of a flow package's `pyproject.toml`, as a validated model.

Every documented key, its default and its allowed values live here; `docs/build.md` describes
the same. Values are checked, never clamped: a disk above the maximum of its infra is an error
that gives the allowed range, not a smaller disk.
"""

from __future__ import annotations

import difflib
import json
import re
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
)
from pydantic_core import ErrorDetails

from libnar.resources import (
    DISK_LIMITS_MIB,
    ECS_MEMORY_MIB,
    PRESETS,
    check_cpu_memory,
    check_disk,
    format_mib,
    parse_cpu,
    parse_mib,
)

__all__ = [
    "DISK_LIMITS_MIB",
    "ECS_MEMORY_MIB",
    "NPS_EXTRAS",
    "PRESETS",
    "Amount",
    "Cloud",
    "Infra",
    "NotifyEntry",
    "Region",
    "SamaBuild",
    "format_mib",
    "parse_cpu",
    "parse_mib",
    "translate_errors",
]

Amount = Literal["very-low", "low", "med", "high", "custom"]
Preset = Literal["very-low", "low", "med", "high"]
Infra = Literal["giver", "narwhal", "gke"]
Cloud = Literal["aws", "gcp", "azure"]
Region = Literal["us", "eu"]
PyVer = Literal["3.9", "3.11", "3.13"]
NotifyState = Literal["failed", "crashed", "late"]

# nps-ext -> the package the flow must depend on for that installer to work.
NPS_EXTRAS: dict[str, str] = {"slam": "slamus"}

_RESOURCE_EXAMPLES = {"cpu": 'vCPU, e.g. cpu = "2"', "memory": 'e.g. memory = "4Gi"'}


def _context(info: ValidationInfo) -> dict[str, Any]:
    return info.context if isinstance(info.context, dict) else {}


def _maxima(info: ValidationInfo) -> dict[str, tuple[str, str]] | None:
    """The Kubernetes maxima the context gives (`"maxima"`), else None: the settings'."""
    found = _context(info).get("maxima")
    return found if isinstance(found, dict) else None


def _failed_and_crashed() -> list[NotifyState]:
    return ["failed", "crashed"]


_BLOCK_SLUG = re.compile(r"^[a-z0-9-]+/[A-Za-z0-9_.-]+$")


class NotifyEntry(BaseModel):
    """One alert of `[sama-build] notify`: which run states, through which notification block.

    `block` names a Prefect notification block as `<block type>/<block name>`, e.g.
    `slack-webhook/nps-alerts`, `ms-teams-webhook/ops`, `email/oncall` or
    `custom-webhook/pager`; the block is made once in Prefect (UI or code), `libnar deploy`
    points an automation at it.
    """

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    on: list[NotifyState] = Field(default_factory=_failed_and_crashed, min_length=1)
    block: str

    @field_validator("block")
    @classmethod
    def _check_block(cls, value: str) -> str:
        if not _BLOCK_SLUG.match(value):
            raise ValueError(
                f"{json.dumps(value)} is not a block name; write <block type>/<block name>,"
                ' e.g. "slack-webhook/nps-alerts"'
            )
        return value


class SamaBuild(BaseModel):
    """The `[sama-build]` table: resources, image, deployments and where the flow runs.

    Validate with `SamaBuild.model_validate(table, context={"root": package_dir,
    "dependencies": [...]})`: the context lets the model check that a `custom-image` has its
    `Dockerfile` and that an `nps-ext` has its package. Field order matters: a validator reads
    the fields declared above it (`info.data`), so every problem is found in one pass.
    """

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    infra: Infra = "giver"
    cloud: Cloud = "aws"
    region: Region = "us"
    pyver: PyVer = "3.11"
    amount: Amount = "low"
    cpu: str | None = Field(default=None, validate_default=True)
    memory: str | None = Field(default=None, validate_default=True)
    disk: str | None = None
    escalate: list[Preset] = Field(default_factory=list)
    """Presets to re-run with, in turn, after a run crashes for lack of memory."""
    notify: list[NotifyEntry] = Field(default_factory=list)
    """Alerts on run states, through Prefect notification blocks."""
    custom_image: bool = Field(default=False, alias="custom-image")
    nps_ext: list[str] = Field(default_factory=list, alias="nps-ext")
    deploy_json: bool = Field(default=False, alias="deploy-json")
    deploy_list: list[str] = Field(default_factory=list, alias="deploy-list")
    deploy_num: int = Field(default=1, ge=1, alias="deploy-num")
    skip_deploy: bool | None = Field(default=None, alias="skip-deploy")
    workspace: str | None = None

    @field_validator("cpu", mode="before")
    @classmethod
    def _cpu_number_as_text(cls, value: Any) -> Any:
        # `cpu = 2` and `cpu = 0.5` are as clear as `cpu = "2"`.
        if isinstance(value, int | float) and not isinstance(value, bool):
            return str(value)
        return value

    @field_validator("cpu", "memory")
    @classmethod
    def _check_custom_resource(cls, value: str | None, info: ValidationInfo) -> str | None:
        key, amount = str(info.field_name), info.data.get("amount")
        if value is None:
            if amount == "custom":
                raise ValueError(f'amount = "custom" needs {key} ({_RESOURCE_EXAMPLES[key]})')
            return None
        if amount is not None and amount != "custom":
            raise ValueError(
                f'{key} is read only with amount = "custom" (amount is {json.dumps(amount)});'
                f' set amount = "custom" or remove {key}'
            )
        if key == "cpu":
            parse_cpu(value)
            return value
        mib = parse_mib(value)
        cpu, infra = info.data.get("cpu"), info.data.get("infra")
        if infra is not None and cpu is not None:
            check_cpu_memory(infra, parse_cpu(cpu), mib, kubernetes=_maxima(info))
        return value

    @field_validator("amount")
    @classmethod
    def _check_preset_on_infra(cls, value: str, info: ValidationInfo) -> str:
        infra = info.data.get("infra")
        if value in PRESETS and infra is not None:
            cpu, mib = PRESETS[value]
            check_cpu_memory(infra, cpu, mib, preset=value, kubernetes=_maxima(info))
        return value

    @field_validator("disk")
    @classmethod
    def _check_disk(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is None:
            return None
        infra = info.data.get("infra")
        if infra is None:
            parse_mib(value)
            return value  # infra itself is wrong: its own problem says so
        check_disk(infra, value)
        return value

    @field_validator("escalate")
    @classmethod
    def _check_escalate(cls, value: list[str], info: ValidationInfo) -> list[str]:
        infra, amount = info.data.get("infra"), info.data.get("amount")
        problems = []
        previous: tuple[str, Decimal, int] | None = None
        if amount in PRESETS:
            previous = (f'amount = "{amount}"', *PRESETS[amount])
        elif amount == "custom" and info.data.get("cpu") and info.data.get("memory"):
            cpu, memory = info.data["cpu"], info.data["memory"]
            previous = (
                f'amount = "custom" ({cpu} vCPU / {memory})',
                parse_cpu(cpu),
                parse_mib(memory),
            )
        for preset in value:
            cpu, mib = PRESETS[preset]
            if previous is not None:
                name, last_cpu, last_mib = previous
                if not (cpu >= last_cpu and mib >= last_mib and (cpu, mib) != (last_cpu, last_mib)):
                    problems.append(
                        f'"{preset}" ({format_mib(mib)} / {cpu} vCPU) is not larger than {name}'
                        f" ({format_mib(last_mib)} / {last_cpu} vCPU); list presets from small to"
                        ' large, each with more memory or CPU than the last (e.g. ["med", "high"])'
                    )
            if infra is not None:
                try:
                    check_cpu_memory(infra, cpu, mib, preset=preset, kubernetes=_maxima(info))
                except ValueError as exc:
                    problems.append(str(exc))
            previous = (f'"{preset}"', cpu, mib)
        if len(set(value)) != len(value):
            problems.append("each preset may appear once")
        if problems:
            raise ValueError("; ".join(problems))
        return value

    @field_validator("custom_image")
    @classmethod
    def _check_dockerfile(cls, value: bool, info: ValidationInfo) -> bool:
        root = _context(info).get("root")
        if value and isinstance(root, Path) and not (root / "Dockerfile").is_file():
            raise ValueError(
                "custom-image = true needs a Dockerfile at the package root"
                f" ({root / 'Dockerfile'} is missing); add it or set custom-image = false"
            )
        return value

    @field_validator("nps_ext")
    @classmethod
    def _check_extras(cls, value: list[str], info: ValidationInfo) -> list[str]:
        problems = []
        dependencies = _context(info).get("dependencies")
        for extra in value:
            if extra not in NPS_EXTRAS:
                problems.append(
                    f"unknown extra {json.dumps(extra)}{did_you_mean(extra, NPS_EXTRAS)};"
                    f" allowed: {', '.join(json.dumps(name) for name in NPS_EXTRAS)}"
                )
            elif dependencies is not None and NPS_EXTRAS[extra] not in dependencies:
                package = NPS_EXTRAS[extra]
                problems.append(
                    f"{json.dumps(extra)} needs the {package!r} package in the flow's"
                    f" [project].dependencies; add {json.dumps(package)} there"
                )
        if problems:
            raise ValueError("; ".join(problems))
        return value

    @field_validator("deploy_list")
    @classmethod
    def _check_deploy_list(cls, value: list[str]) -> list[str]:
        if any(not name.strip() for name in value):
            raise ValueError("deployment names must not be empty")
        duplicates = sorted({name for name in value if value.count(name) > 1})
        if duplicates:
            raise ValueError(f"deployment names must be unique; repeated: {', '.join(duplicates)}")
        return value

    # --- what the plan reads ---------------------------------------------------------------

    @property
    def vcpu(self) -> Decimal:
        """The vCPU of one run: the preset's, or `cpu` with amount = "custom"."""
        return parse_cpu(self.cpu) if self.cpu else PRESETS[self.amount][0]

    @property
    def memory_mib(self) -> int:
        """The memory of one run in MiB: the preset's, or `memory` with amount = "custom"."""
        return parse_mib(self.memory) if self.memory else PRESETS[self.amount][1]

    @property
    def disk_mib(self) -> int | None:
        """The disk in MiB: `disk`, else the infra's default (None: the infra adds none)."""
        return parse_mib(self.disk) if self.disk else DISK_LIMITS_MIB[self.infra][2]


def did_you_mean(word: str, choices: Any) -> str:
    """`'; did you mean "amount"?'`-style hint for a misspelt word, or an empty string."""
    close = difflib.get_close_matches(word, [str(c) for c in choices], n=1, cutoff=0.6)
    return f' (did you mean "{close[0]}"?)' if close else ""


_EXPECTED = {
    "bool_type": "true or false",
    "int_type": "a whole number",
    "string_type": "a string in quotes",
    "list_type": 'a list, e.g. ["a", "b"]',
}


def translate_errors(error: ValidationError, keys: Any) -> list[tuple[str, str]]:
    """Turn a pydantic error into `(key path, message)` pairs a flow author can act on.

    `keys` are the valid keys at the top level, used for did-you-mean hints.
    """
    found: list[tuple[str, str]] = []
    for detail in error.errors():
        path = ".".join(str(part) for part in detail["loc"])
        found.append((path, _message(detail, keys)))
    return found


def _message(detail: ErrorDetails, keys: Any) -> str:
    kind, given = detail["type"], detail.get("input")
    ctx = detail.get("ctx") or {}
    shown = json.dumps(given, default=str)
    if kind == "extra_forbidden":
        name = str(detail["loc"][-1])
        return f"unknown key{did_you_mean(name, keys)}; valid keys: {', '.join(sorted(keys))}"
    if kind == "literal_error":
        expected = str(ctx.get("expected", "")).replace("'", '"')
        options = re.findall(r'"([^"]*)"', expected)
        if not isinstance(given, str) and str(given) in options:
            return f'found {shown}, a number; write it in quotes: "{given}"'
        return f"found {shown}{did_you_mean(str(given), options)}; allowed: {expected}"
    if kind == "value_error":
        return str(ctx.get("error", detail["msg"]))
    if kind == "missing":
        return "is required"
    if kind in _EXPECTED:
        return f"found {shown}; expected {_EXPECTED[kind]}"
    if kind == "greater_than_equal":
        return f"found {shown}; expected a whole number of at least {ctx.get('ge')}"
    return f"found {shown}; {detail['msg']}"
