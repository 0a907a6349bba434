"""`deploy.json`: the deployments of a flow package, with their schedules and parameters.

Checked by hand rather than by a pydantic union so that each problem gets its own path
(`deploy[0].schedule.cron`) and a message that says what a valid value looks like.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError

from libnar._build._config import did_you_mean

__all__ = [
    "DeploymentSpec",
    "check_deploy_json",
    "check_schedule",
    "schedule_from_prefect",
    "schedule_to_prefect",
]

_DEPLOYMENT_KEYS = ("name", "schedule", "parameters")
_SCHEDULE_KEYS = {
    "cron": ("cron", "timezone"),
    "interval": ("interval", "anchor_date", "timezone"),
    "rrule": ("rrule", "timezone"),
}
_ALL_SCHEDULE_KEYS = ("anchor_date", "cron", "interval", "rrule", "timezone")
_PREFECT_RRULE_ANCHOR = "DTSTART:20200101T000000\n"


class DeploymentSpec(BaseModel):
    """One deployment as `deploy.json` writes it; `schedule` is in the same form."""

    model_config = ConfigDict(frozen=True)

    name: str
    schedule: dict[str, Any] | None = None
    parameters: dict[str, Any] = {}

    def to_json(self) -> dict[str, Any]:
        """The deployment as one entry of `deploy.json` (no null schedule, sorted keys)."""
        data = self.model_dump(exclude_none=True)
        return {key: data[key] for key in sorted(data)}


def check_deploy_json(data: Any) -> tuple[list[DeploymentSpec], list[tuple[str, str]]]:
    """Check a parsed `deploy.json`; return its deployments and every `(key, message)` problem."""
    problems: list[tuple[str, str]] = []
    if not isinstance(data, dict):
        return [], [("", 'expected an object {"deploy": [...]}')]
    for key in sorted(set(data) - {"deploy"}):
        problems.append(
            (key, f'unknown key{did_you_mean(key, ["deploy"])}; the only key is "deploy"')
        )
    entries = data.get("deploy")
    if not isinstance(entries, list) or not entries:
        problems.append(
            ("deploy", 'expected a non-empty list of deployments, e.g. [{"name": "nightly"}]')
        )
        return [], problems

    specs: list[DeploymentSpec] = []
    seen: set[str] = set()
    for index, entry in enumerate(entries):
        where = f"deploy[{index}]"
        if not isinstance(entry, dict):
            problems.append((where, f'expected an object with "name", found {json.dumps(entry)}'))
            continue
        before = len(problems)
        for key in sorted(set(entry) - set(_DEPLOYMENT_KEYS)):
            problems.append(
                (
                    f"{where}.{key}",
                    f"unknown field{did_you_mean(key, _DEPLOYMENT_KEYS)}; only name, schedule"
                    " and parameters are valid",
                )
            )
        name = entry.get("name")
        if not isinstance(name, str) or not name.strip():
            problems.append((f"{where}.name", "is required: a non-empty string"))
        elif name in seen:
            problems.append(
                (f"{where}.name", f"{json.dumps(name)} is used twice; names must be unique")
            )
        else:
            seen.add(name)
        schedule = entry.get("schedule")
        if schedule is not None:
            problems += [(f"{where}.schedule{k}", m) for k, m in check_schedule(schedule)]
        parameters = entry.get("parameters", {})
        if not isinstance(parameters, dict):
            problems.append(
                (f"{where}.parameters", f"expected an object, found {json.dumps(parameters)}")
            )
        if len(problems) == before:
            specs.append(DeploymentSpec(name=name, schedule=schedule, parameters=parameters))
    return specs, problems


def check_schedule(schedule: Any) -> list[tuple[str, str]]:
    """Every problem of one schedule as `(key suffix, message)`; an empty list when it is valid."""
    if not isinstance(schedule, dict):
        return [
            ("", f"expected an object with cron, interval or rrule, found {json.dumps(schedule)}")
        ]
    kinds = [kind for kind in _SCHEDULE_KEYS if kind in schedule]
    if len(kinds) != 1:
        found = ", ".join(kinds) if kinds else "none"
        problems = [("", f"give exactly one of cron, interval or rrule (found {found})")]
        return problems + _unknown_schedule_keys(schedule, _ALL_SCHEDULE_KEYS)
    kind = kinds[0]
    problems = _unknown_schedule_keys(schedule, _SCHEDULE_KEYS[kind])
    value = schedule[kind]
    if kind == "cron" and not _is_cron(value):
        problems.append(
            (".cron", f'{json.dumps(value)} is not a cron expression (5 fields, e.g. "30 2 * * *")')
        )
    if kind == "interval" and (
        isinstance(value, bool) or not isinstance(value, int | float) or value <= 0
    ):
        problems.append(
            (".interval", f"{json.dumps(value)} is not a number of seconds above 0 (e.g. 3600)")
        )
    if kind == "rrule":
        reason = _rrule_problem(value)
        if reason:
            problems.append(
                (
                    ".rrule",
                    f'{json.dumps(value)} is not an RRULE ({reason}; e.g. "FREQ=DAILY;BYHOUR=2")',
                )
            )
    anchor = schedule.get("anchor_date")
    if anchor is not None and not _is_datetime(anchor):
        problems.append(
            (
                ".anchor_date",
                f'{json.dumps(anchor)} is not an ISO 8601 date and time (e.g. "2023-11-23T02:30:00+00:00")',
            )
        )
    timezone = schedule.get("timezone")
    if timezone is not None and not _is_timezone(timezone):
        problems.append(
            (
                ".timezone",
                f'{json.dumps(timezone)} is not a timezone (an IANA name, e.g. "UTC" or "Europe/Paris")',
            )
        )
    return problems


def _unknown_schedule_keys(
    schedule: dict[str, Any], allowed: tuple[str, ...]
) -> list[tuple[str, str]]:
    return [
        (
            f".{key}",
            f"unknown field{did_you_mean(key, allowed)}; allowed here: {', '.join(allowed)}",
        )
        for key in sorted(set(schedule) - set(allowed))
    ]


def _is_cron(value: Any) -> bool:
    from prefect.client.schemas.schedules import CronSchedule

    if not isinstance(value, str) or len(value.split()) != 5:
        return False
    try:
        CronSchedule(cron=value)
    except ValidationError:
        return False
    return True


def _rrule_problem(value: Any) -> str | None:
    from prefect.client.schemas.schedules import RRuleSchedule

    if not isinstance(value, str) or not value.strip():
        return "expected a string"
    try:
        RRuleSchedule(rrule=value)
    except ValidationError as error:
        reason = str(error.errors()[0].get("ctx", {}).get("error", "invalid"))
        return reason.split(": ", 1)[-1].strip().rstrip(".") or "invalid"
    return None


def _is_datetime(value: Any) -> bool:
    if not isinstance(value, str):
        return False
    try:
        datetime.fromisoformat(value)
    except ValueError:
        return False
    return True


def _is_timezone(value: Any) -> bool:
    from prefect.client.schemas.schedules import is_valid_timezone

    return isinstance(value, str) and is_valid_timezone(value)


def schedule_to_prefect(schedule: dict[str, Any]) -> Any:
    """A checked `deploy.json` schedule as Prefect's Cron-, Interval- or RRuleSchedule."""
    from prefect.client.schemas.schedules import CronSchedule, IntervalSchedule, RRuleSchedule

    if "cron" in schedule:
        return CronSchedule(cron=schedule["cron"], timezone=schedule.get("timezone"))
    if "rrule" in schedule:
        return RRuleSchedule(rrule=schedule["rrule"], timezone=schedule.get("timezone"))
    extra = {"anchor_date": schedule["anchor_date"]} if "anchor_date" in schedule else {}
    return IntervalSchedule(
        interval=timedelta(seconds=schedule["interval"]), timezone=schedule.get("timezone"), **extra
    )


def schedule_from_prefect(schedule: Any) -> dict[str, Any]:
    """Prefect's schedule object in `deploy.json` form (the inverse of `schedule_to_prefect`)."""
    from prefect.client.schemas.schedules import CronSchedule, IntervalSchedule, RRuleSchedule

    found: dict[str, Any]
    if isinstance(schedule, CronSchedule):
        found = {"cron": schedule.cron}
    elif isinstance(schedule, RRuleSchedule):
        # Prefect stores an rrule without DTSTART with its legacy default anchor in front;
        # drop it so the rule reads as it was written.
        found = {"rrule": schedule.rrule.removeprefix(_PREFECT_RRULE_ANCHOR)}
    elif isinstance(schedule, IntervalSchedule):
        seconds = schedule.interval.total_seconds()
        found = {
            "interval": int(seconds) if seconds.is_integer() else seconds,
            "anchor_date": schedule.anchor_date.isoformat(),
        }
    else:
        raise TypeError(f"unknown schedule type {type(schedule).__name__}")
    if schedule.timezone:
        found["timezone"] = schedule.timezone
    return {key: found[key] for key in sorted(found)}
