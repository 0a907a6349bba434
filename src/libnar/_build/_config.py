"""The `[sama-build]` table of a flow package's `pyproject.toml`, as a validated model.

Every documented key, its default and its allowed values live here; `docs/build.md` describes
the same. Values are checked, never clamped: a disk above the maximum of its infra is an error
that gives the allowed range, not a smaller disk.
"""

from __future__ import annotations

import difflib
import json
import re
from decimal import Decimal, InvalidOperation
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

__all__ = [
    "DISK_LIMITS_MIB",
    "ECS_MEMORY_MIB",
    "NPS_EXTRAS",
    "PRESETS",
    "Amount",
    "Cloud",
    "Infra",
    "Region",
    "SamaBuild",
    "format_mib",
    "parse_cpu",
    "parse_mib",
    "translate_errors",
]

Amount = Literal["very-low", "low", "med", "high", "custom"]
Infra = Literal["giver", "narwhal", "gke"]
Cloud = Literal["aws", "gcp", "azure"]
Region = Literal["us", "eu"]
PyVer = Literal["3.9", "3.11", "3.13"]

# amount -> (vCPU, memory in MiB); "custom" reads `cpu` and `memory` instead.
PRESETS: dict[str, tuple[Decimal, int]] = {
    "very-low": (Decimal("0.5"), 512),
    "low": (Decimal(1), 2048),
    "med": (Decimal(1), 4096),
    "high": (Decimal(2), 4096),
}

# infra -> (smallest, largest, default) disk in MiB; None: no disk unless one is asked for.
DISK_LIMITS_MIB: dict[str, tuple[int, int, int | None]] = {
    "narwhal": (21 * 1024, 200 * 1024, 21 * 1024),  # base storage of the ECS task
    "giver": (1024, 500 * 1024, None),  # a disk attached beside the fixed 8Gi
    "gke": (1, 10 * 1024, None),  # ephemeral storage of the pod
}
_DISK_MEANING = {
    "narwhal": "base storage",
    "giver": "attached disk (beside the fixed 8Gi main storage)",
    "gke": "ephemeral storage",
}

# ECS Fargate: CPU units -> the memory sizes (MiB) a task may ask for with that CPU.
ECS_MEMORY_MIB: dict[int, tuple[int, ...]] = {
    256: (512, 1024, 2048),
    512: tuple(range(1024, 4096 + 1, 1024)),
    1024: tuple(range(2048, 8192 + 1, 1024)),
    2048: tuple(range(4096, 16384 + 1, 1024)),
    4096: tuple(range(8192, 30720 + 1, 1024)),
    8192: tuple(range(16384, 61440 + 1, 4096)),
    16384: tuple(range(32768, 122880 + 1, 8192)),
}

# nps-ext -> the package the flow must depend on for that installer to work.
NPS_EXTRAS: dict[str, str] = {"slam": "slamus"}

_MIB_PATTERN = re.compile(r"^([0-9]+)(Mi|Gi)$")
_CPU_PATTERN = re.compile(r"^(?:[0-9]+(?:\.[0-9]+)?|[0-9]+m)$")


def parse_mib(text: str) -> int:
    """`"4Gi"` -> 4096, `"512Mi"` -> 512; raise ValueError for any other form."""
    match = _MIB_PATTERN.match(text)
    if not match or int(match.group(1)) == 0:
        raise ValueError(f"{json.dumps(text)} is not a size in Mi or Gi (e.g. \"512Mi\", \"4Gi\")")
    number, unit = int(match.group(1)), match.group(2)
    return number * 1024 if unit == "Gi" else number


def format_mib(mib: int) -> str:
    """1024 -> `"1Gi"`, 512 -> `"512Mi"`: the Kubernetes quantity of a size."""
    return f"{mib // 1024}Gi" if mib % 1024 == 0 else f"{mib}Mi"


def parse_cpu(text: str) -> Decimal:
    """`"2"` -> 2, `"0.5"` or `"500m"` -> 0.5; raise ValueError for any other form."""
    value: Decimal | None = None
    if _CPU_PATTERN.match(text):
        try:
            value = Decimal(text[:-1]) / 1000 if text.endswith("m") else Decimal(text)
        except InvalidOperation:  # pragma: no cover - the pattern admits only numbers
            value = None
    if value is None or value <= 0:
        raise ValueError(
            f"{json.dumps(text)} is not a CPU amount (vCPU, e.g. \"0.5\", \"2\" or \"500m\")"
        )
    return value


_RESOURCE_EXAMPLES = {"cpu": 'vCPU, e.g. cpu = "2"', "memory": 'e.g. memory = "4Gi"'}


def _context(info: ValidationInfo) -> dict[str, Any]:
    return info.context if isinstance(info.context, dict) else {}


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
        cpu = info.data.get("cpu")
        if info.data.get("infra") == "narwhal" and cpu is not None:
            _check_ecs_combination(parse_cpu(cpu), mib)
        return value

    @field_validator("amount")
    @classmethod
    def _check_preset_on_ecs(cls, value: str, info: ValidationInfo) -> str:
        if value in PRESETS and info.data.get("infra") == "narwhal":
            cpu, mib = PRESETS[value]
            _check_ecs_combination(cpu, mib, preset=value)
        return value

    @field_validator("disk")
    @classmethod
    def _check_disk(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is None:
            return None
        mib = parse_mib(value)
        infra = info.data.get("infra")
        if infra is None:
            return value  # infra itself is wrong: its own problem says so
        low, high, _ = DISK_LIMITS_MIB[infra]
        allowed = f"{format_mib(low)} to {format_mib(high)}" if low > 1 else f"up to {format_mib(high)}"
        where = f"on {infra} ({_DISK_MEANING[infra]}, {allowed})"
        if mib > high:
            raise ValueError(f"{json.dumps(value)} is above the maximum {where}; use at most {format_mib(high)}")
        if mib < low:
            raise ValueError(f"{json.dumps(value)} is below the minimum {where}; use at least {format_mib(low)}")
        if infra == "narwhal" and mib % 1024:
            raise ValueError(
                f"{json.dumps(value)}: ECS storage is whole GiB; use {format_mib(mib - mib % 1024 + 1024)}"
            )
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


def _check_ecs_combination(cpu: Decimal, mib: int, preset: str | None = None) -> None:
    """Refuse a CPU/memory pair that an ECS Fargate task definition does not accept."""
    units = int(cpu * 1024)
    what = f'amount = "{preset}" ({cpu} vCPU / {format_mib(mib)})' if preset else None
    if units not in ECS_MEMORY_MIB:
        allowed = ", ".join(str(Decimal(u) / 1024).rstrip("0").rstrip(".") for u in ECS_MEMORY_MIB)
        raise ValueError(
            f"{cpu} vCPU is not an ECS Fargate size on narwhal; use one of {allowed} vCPU"
        )
    sizes = ECS_MEMORY_MIB[units]
    if mib not in sizes:
        first, last = format_mib(sizes[0]), format_mib(sizes[-1])
        step = format_mib(sizes[1] - sizes[0])
        fix = (
            f' use amount = "custom" with cpu = "{cpu}" and memory = "{first}"'
            if preset
            else f" use a memory from {first} to {last} in steps of {step}"
        )
        raise ValueError(
            f"{what or f'{cpu} vCPU with {format_mib(mib)}'} is not an ECS Fargate"
            f" combination on narwhal ({cpu} vCPU takes {first} to {last} in steps of {step});{fix}"
        )


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
