"""Resources of a run: presets, units, and what each infra allows, in one place.

`[sama-build]` (the deployment's resources, checked by `libnar build`) and per-run values (the
special parameters `amount`, `cpu`, `memory`, `disk` of a webhook token, a DPP request,
`libnar trigger` or the Python API) are checked by the same functions here, with the same
messages. A value out of range is refused, never clamped.

What each infra allows:

- `narwhal` runs on AWS ECS Fargate, which accepts only these task sizes (AWS, "Amazon ECS
  task definition parameters for Fargate", Task size, and "Fargate task CPU and memory"):
  0.25 vCPU with 512 MiB, 1 GB or 2 GB; 0.5 vCPU with 1-4 GB; 1 vCPU with 2-8 GB; 2 vCPU with
  4-16 GB; 4 vCPU with 8-30 GB, each in 1 GB steps; 8 vCPU with 16-60 GB in 4 GB steps; 16 vCPU
  with 32-120 GB in 8 GB steps
  (https://docs.aws.amazon.com/AmazonECS/latest/developerguide/fargate-tasks-services.html).
  Its base storage is 21-200 GiB.
- `giver` and `gke` run on Kubernetes: the largest CPU and memory a run may ask for are
  settings (`LIBNAR_GIVER_MAX_CPU`, `LIBNAR_GIVER_MAX_MEMORY`, `LIBNAR_GKE_MAX_CPU`,
  `LIBNAR_GKE_MAX_MEMORY`: what one node can give a pod), with documented defaults.

Layer 1: no Prefect, no HTTP.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any, NamedTuple

__all__ = [
    "AMOUNTS",
    "DISK_LIMITS_MIB",
    "ECS_MEMORY_MIB",
    "MAX_RESOURCE_TEXT",
    "MEMORY_MESSAGE_PATTERNS",
    "PRESETS",
    "RESOURCE_PARAMETERS",
    "InfraMaxima",
    "RunResources",
    "check_cpu_memory",
    "check_disk",
    "format_cpu",
    "format_mib",
    "infra_maxima",
    "is_larger_preset",
    "job_variables_for",
    "parse_cpu",
    "parse_mib",
    "parse_run_resources",
]

#: What an out-of-memory end says, as glob patterns on a run's state message (what Prefect's
#: automations match): libnar's local watchdog, an infrastructure kill (exit 137, or -9 when a
#: process worker's child is killed), Kubernetes' `OOMKilled`, ECS's `OutOfMemoryError`, and
#: Python's own `MemoryError`.
MEMORY_MESSAGE_PATTERNS = (
    "*out of memory*",
    "*OutOfMemory*",
    "*OOMKilled*",
    "*MemoryError*",
    "*status code 137*",
    "*status code -9*",
    "*exit code 137*",
)

#: The special parameters that set one run's resources.
RESOURCE_PARAMETERS = ("amount", "cpu", "memory", "disk")

# amount -> (vCPU, memory in MiB); "custom" reads `cpu` and `memory` instead.
PRESETS: dict[str, tuple[Decimal, int]] = {
    "very-low": (Decimal("0.5"), 512),
    "low": (Decimal(1), 2048),
    "med": (Decimal(1), 4096),
    "high": (Decimal(2), 4096),
}
#: Every value `amount` takes.
AMOUNTS = (*PRESETS, "custom")

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

# ECS Fargate: CPU units -> the memory sizes (MiB) a task may ask for with that CPU (see the
# module docstring for the source).
ECS_MEMORY_MIB: dict[int, tuple[int, ...]] = {
    256: (512, 1024, 2048),
    512: tuple(range(1024, 4096 + 1, 1024)),
    1024: tuple(range(2048, 8192 + 1, 1024)),
    2048: tuple(range(4096, 16384 + 1, 1024)),
    4096: tuple(range(8192, 30720 + 1, 1024)),
    8192: tuple(range(16384, 61440 + 1, 4096)),
    16384: tuple(range(32768, 122880 + 1, 8192)),
}

_MIB_PATTERN = re.compile(r"^([0-9]+)(Mi|Gi)$")
_CPU_PATTERN = re.compile(r"^(?:[0-9]+(?:\.[0-9]+)?|[0-9]+m)$")


def parse_mib(text: str) -> int:
    """`"4Gi"` -> 4096, `"512Mi"` -> 512; raise ValueError for any other form."""
    match = _MIB_PATTERN.match(text)
    if not match or int(match.group(1)) == 0:
        raise ValueError(f'{json.dumps(text)} is not a size in Mi or Gi (e.g. "512Mi", "4Gi")')
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
            f'{json.dumps(text)} is not a CPU amount (vCPU, e.g. "0.5", "2" or "500m")'
        )
    return value


def format_cpu(vcpu: Decimal) -> str:
    """Decimal("1.0") -> `"1"`, Decimal("0.50") -> `"0.5"`: the Kubernetes quantity."""
    return format(vcpu.normalize(), "f")


class InfraMaxima(NamedTuple):
    """The most CPU and memory one run may ask for on an infra, and the settings that say so."""

    cpu: Decimal
    memory_mib: int
    cpu_setting: str | None = None
    memory_setting: str | None = None


#: Defaults of the Kubernetes maxima (settings): a node of 8 vCPU / 32 GiB, less what the
#: system keeps. Documented in `docs/settings.md` and `docs/resources.md`.
KUBERNETES_MAXIMA_DEFAULTS = {"giver": ("8", "32Gi"), "gke": ("8", "32Gi")}


def infra_maxima(
    infra: str, kubernetes: Mapping[str, tuple[str, str]] | None = None
) -> InfraMaxima:
    """The CPU and memory maxima of `infra`.

    `kubernetes` maps `giver`/`gke` to `(max cpu, max memory)` as the settings give them;
    without it the documented defaults apply. narwhal's maxima are ECS Fargate's (16 vCPU,
    120 GiB), whatever is given.
    """
    if infra == "narwhal":
        return InfraMaxima(Decimal(16), 120 * 1024)
    cpu, memory = (kubernetes or {}).get(infra) or KUBERNETES_MAXIMA_DEFAULTS[infra]
    upper = infra.upper()
    return InfraMaxima(
        parse_cpu(cpu), parse_mib(memory), f"LIBNAR_{upper}_MAX_CPU", f"LIBNAR_{upper}_MAX_MEMORY"
    )


def _settings_maxima() -> dict[str, tuple[str, str]]:
    """The Kubernetes maxima from libnar's settings (environment, `.env`)."""
    from libnar.settings import get_settings

    settings = get_settings()
    return {
        "giver": (settings.giver_max_cpu, settings.giver_max_memory),
        "gke": (settings.gke_max_cpu, settings.gke_max_memory),
    }


def check_cpu_memory(
    infra: str,
    cpu: Decimal,
    mib: int,
    *,
    preset: str | None = None,
    kubernetes: Mapping[str, tuple[str, str]] | None = None,
) -> None:
    """Refuse a CPU/memory pair that `infra` cannot run; the message names the limit and the fix.

    Raises:
        ValueError: on narwhal, a pair ECS Fargate does not take; on giver or gke, a value
            above the maximum setting.
    """
    if infra == "narwhal":
        _check_ecs_combination(cpu, mib, preset)
        return
    maxima = infra_maxima(infra, kubernetes if kubernetes is not None else _settings_maxima())
    what = f'amount = "{preset}" ({format_cpu(cpu)} vCPU / {format_mib(mib)})' if preset else None
    if cpu > maxima.cpu:
        raise ValueError(
            f"{what or f'{format_cpu(cpu)} vCPU'} is above the maximum CPU on {infra}"
            f" ({format_cpu(maxima.cpu)} vCPU, {maxima.cpu_setting}); use at most"
            f" {format_cpu(maxima.cpu)}"
        )
    if mib > maxima.memory_mib:
        raise ValueError(
            f"{what or format_mib(mib)} is above the maximum memory on {infra}"
            f" ({format_mib(maxima.memory_mib)}, {maxima.memory_setting}); use at most"
            f" {format_mib(maxima.memory_mib)}"
        )


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


def check_disk(infra: str, value: str) -> int:
    """The disk in MiB, when `infra` allows it; the message gives the allowed range.

    Raises:
        ValueError: a size that is not one, or outside the infra's range.
    """
    mib = parse_mib(value)
    low, high, _ = DISK_LIMITS_MIB[infra]
    allowed = f"{format_mib(low)} to {format_mib(high)}" if low > 1 else f"up to {format_mib(high)}"
    where = f"on {infra} ({_DISK_MEANING[infra]}, {allowed})"
    if mib > high:
        raise ValueError(
            f"{json.dumps(value)} is above the maximum {where}; use at most {format_mib(high)}"
        )
    if mib < low:
        raise ValueError(
            f"{json.dumps(value)} is below the minimum {where}; use at least {format_mib(low)}"
        )
    if infra == "narwhal" and mib % 1024:
        raise ValueError(
            f"{json.dumps(value)}: ECS storage is whole GiB; use {format_mib(mib - mib % 1024 + 1024)}"
        )
    return mib


def is_larger_preset(bigger: str, smaller: str) -> bool:
    """Whether preset `bigger` gives at least the CPU and memory of `smaller`, and more of one."""
    cpu_b, mib_b = PRESETS[bigger]
    cpu_s, mib_s = PRESETS[smaller]
    return cpu_b >= cpu_s and mib_b >= mib_s and (cpu_b, mib_b) != (cpu_s, mib_s)


# -- one run's resources -------------------------------------------------------------------


@dataclass(frozen=True)
class RunResources:
    """The resources one run asks for, instead of its deployment's: the special parameters.

    `amount` None keeps the deployment's CPU and memory (only `disk` changes).
    """

    amount: str | None = None
    cpu: str | None = None
    memory: str | None = None
    disk: str | None = None

    @property
    def vcpu(self) -> Decimal | None:
        """The run's vCPU, or None to keep the deployment's."""
        if self.amount == "custom" and self.cpu is not None:
            return parse_cpu(self.cpu)
        return PRESETS[self.amount][0] if self.amount in PRESETS else None

    @property
    def memory_mib(self) -> int | None:
        """The run's memory in MiB, or None to keep the deployment's."""
        if self.amount == "custom" and self.memory is not None:
            return parse_mib(self.memory)
        return PRESETS[self.amount][1] if self.amount in PRESETS else None

    @property
    def tag(self) -> str | None:
        """The run's tag, `amount:<preset>` (or `amount:custom`); None without an amount."""
        return f"amount:{self.amount}" if self.amount else None

    def as_parameters(self) -> dict[str, str]:
        """The special parameters that ask for these resources."""
        values = {"amount": self.amount, "cpu": self.cpu, "memory": self.memory, "disk": self.disk}
        return {key: value for key, value in values.items() if value is not None}

    def problems_on(
        self, infra: str, kubernetes: Mapping[str, tuple[str, str]] | None = None
    ) -> list[tuple[str, str]]:
        """`(parameter, message)` for each value `infra` does not take (the build's rules).

        `kubernetes` gives the giver/gke maxima as `check_cpu_memory` takes them; None reads
        them from libnar's settings.
        """
        found: list[tuple[str, str]] = []
        vcpu, mib = self.vcpu, self.memory_mib
        if vcpu is not None and mib is not None:
            preset = self.amount if self.amount in PRESETS else None
            try:
                check_cpu_memory(infra, vcpu, mib, preset=preset, kubernetes=kubernetes)
            except ValueError as exc:
                found.append(("amount" if preset else "memory", str(exc)))
        if self.disk is not None:
            try:
                check_disk(infra, self.disk)
            except ValueError as exc:
                found.append(("disk", str(exc)))
        return found


#: The longest text a resource parameter may hold ("very-low", "500m", "120Gi" are short): a
#: longer one is refused before it is parsed, and shown shortened.
MAX_RESOURCE_TEXT = 32


def parse_run_resources(
    values: Mapping[str, Any],
) -> tuple[RunResources | None, list[tuple[str, str, str]]]:
    """The run's resources from its special parameters, checked for form (not yet for an infra).

    Returns the resources (None when no resource parameter is given) and one
    `(parameter, found, expected)` per bad value, worded as `[sama-build]` words them.
    """
    given = {k: values[k] for k in RESOURCE_PARAMETERS if values.get(k) is not None}
    if not given:
        return None, []
    problems: list[tuple[str, str, str]] = []
    text: dict[str, str | None] = {}
    for key, value in given.items():
        if key == "cpu" and isinstance(value, int | float) and not isinstance(value, bool):
            value = str(value)
        if not isinstance(value, str):
            problems.append((key, _shown(value), "a string in quotes"))
            continue
        if len(value) > MAX_RESOURCE_TEXT:  # a sender's value: never echoed whole
            problems.append(
                (key, _shown(value), f'at most {MAX_RESOURCE_TEXT} characters, e.g. "high", "4Gi"')
            )
            continue
        text[key] = value
    amount = text.get("amount")
    if amount is not None and amount not in AMOUNTS:
        expected = ", ".join(json.dumps(a) for a in AMOUNTS)
        problems.append(("amount", json.dumps(amount), f"one of {expected}"))
        amount = None
    for key, example in (("cpu", 'vCPU, e.g. "2"'), ("memory", 'e.g. "4Gi"')):
        value = text.get(key)
        if value is None:
            if amount == "custom" and key not in given:
                problems.append((key, "nothing", f'a value with amount = "custom" ({example})'))
            continue
        if amount != "custom":
            problems.append(
                (
                    key,
                    json.dumps(value),
                    f'{key} is read only with amount = "custom"'
                    f" (amount is {json.dumps(amount) if amount else 'not given'});"
                    f' set amount = "custom" or remove {key}',
                )
            )
            continue
        try:
            parse_cpu(value) if key == "cpu" else parse_mib(value)
        except ValueError as exc:
            problems.append((key, json.dumps(value), str(exc)))
    if text.get("disk") is not None:
        try:
            parse_mib(text["disk"] or "")
        except ValueError as exc:
            problems.append(("disk", json.dumps(text["disk"]), str(exc)))
    if problems:
        return None, problems
    return RunResources(amount, text.get("cpu"), text.get("memory"), text.get("disk")), []


def _shown(value: Any) -> str:
    """A sender's value as JSON, at most 80 characters."""
    try:
        text = json.dumps(value)
        return text if len(text) <= 80 else text[:77] + "..."
    except (TypeError, ValueError):
        return type(value).__name__


def job_variables_for(infra: str, pool_type: str, resources: RunResources) -> dict[str, Any]:
    """The job variables that give one run `resources`, in the units of its work pool.

    `pool_type` is the Prefect work pool type: `ecs` counts CPU units (vCPU x 1024), memory in
    MiB and storage in GiB; `kubernetes` takes quantities (`"0.5"`, `"2Gi"`), giver's disk being
    an attached volume; `process` (libnar's local pool) takes quantities and no disk. Only the
    values the run changes are given: Prefect keeps the deployment's for the others.
    """
    found: dict[str, Any] = {}
    vcpu, mib = resources.vcpu, resources.memory_mib
    disk = parse_mib(resources.disk) if resources.disk else None
    if pool_type == "ecs":
        if vcpu is not None and mib is not None:
            found |= {"cpu": int(vcpu * 1024), "memory": mib}
        if disk is not None:
            found["ephemeral_storage"] = disk // 1024
    else:
        if vcpu is not None and mib is not None:
            found |= {"cpu": format_cpu(vcpu), "memory": format_mib(mib)}
        if disk is not None and pool_type != "process":
            key = "volume_size" if infra == "giver" else "ephemeral_storage"
            found[key] = format_mib(disk)
    return {key: found[key] for key in sorted(found)}
