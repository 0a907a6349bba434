"""Existing deployments in `deploy.json` form, for the gateway's `/deploy-json`.

A stand-in until the build's `export_deploy_json` reaches main; same output.
"""

from __future__ import annotations

import logging
from typing import Any

__all__ = ["deploy_json"]

logger = logging.getLogger("libnar.gateway")


def deploy_json(deployments: list[dict[str, Any]]) -> dict[str, Any]:
    """`{"deploy": [{"name", "schedule"?, "parameters"?}]}` of deployments read from the API."""
    entries = []
    for deployment in sorted(deployments, key=lambda d: str(d["name"])):
        entry: dict[str, Any] = {"name": deployment["name"]}
        schedules = deployment.get("schedules") or []
        if schedules:
            if len(schedules) > 1:
                logger.warning(
                    "deployment %s has %d schedules; deploy.json keeps the first",
                    deployment["name"],
                    len(schedules),
                )
            entry["schedule"] = _schedule(schedules[0]["schedule"])
        if deployment.get("parameters"):
            entry["parameters"] = deployment["parameters"]
        entries.append(entry)
    return {"deploy": entries}


def _schedule(schedule: dict[str, Any]) -> dict[str, Any]:
    found: dict[str, Any]
    if "cron" in schedule:
        found = {"cron": schedule["cron"]}
    elif "rrule" in schedule:
        found = {"rrule": schedule["rrule"]}
    elif "interval" in schedule:
        seconds = float(schedule["interval"])
        found = {
            "interval": int(seconds) if seconds.is_integer() else seconds,
            "anchor_date": schedule.get("anchor_date"),
        }
    else:
        found = dict(schedule)
    if schedule.get("timezone"):
        found["timezone"] = schedule["timezone"]
    return {key: found[key] for key in sorted(found)}
