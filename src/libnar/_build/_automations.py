"""The Prefect automations of a plan: escalation after an out-of-memory crash, and alerts.

`libnar deploy` keeps them in step with `[sama-build]`, idempotently: each is named
`libnar:<flow>/<deployment>:<what>` (`escalate`, `notify-<n>`); applying the same plan twice
leaves them alone, a changed plan updates them in place, and an automation of that deployment
that the plan no longer has (e.g. `escalate` removed) is deleted.

- **escalate**: on `prefect.flow-run.Crashed` or `Failed` of the deployment's runs whose state
  message says out of memory (`MEMORY_MESSAGE_PATTERNS`), a CallWebhook action calls the
  gateway's `POST /escalate` (a Prefect Webhook block `libnar-escalate`: the gateway's
  `LIBNAR_GATEWAY_PUBLIC_URL` and the admin key). The gateway creates the one next run, keyed
  by the crashed run (see `libnar._gateway._escalate`).
- **notify**: on the chosen states (`Failed`, `Crashed`, `Late`), a SendNotification action on
  the named notification block (Slack webhook, Microsoft Teams, email, custom webhook), with a
  message naming the flow, the run and its UI link, the SamaHub project and task (from the
  run's tags) and the state's message.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict

from libnar._build._plan import DeploymentPlan, PackagePlan
from libnar.resources import MEMORY_MESSAGE_PATTERNS

if TYPE_CHECKING:
    from prefect.client.orchestration import PrefectClient

    from libnar.settings import Settings

__all__ = [
    "ESCALATE_BLOCK",
    "AutomationChange",
    "automation_prefix",
    "notification_body",
    "sync_automations",
    "wanted_automations",
]

logger = logging.getLogger(__name__)

#: The Webhook block that points Prefect at the gateway's `/escalate`.
ESCALATE_BLOCK = "libnar-escalate"
_STATE_EVENTS = {
    "failed": "prefect.flow-run.Failed",
    "crashed": "prefect.flow-run.Crashed",
    "late": "prefect.flow-run.Late",
}

NOTIFICATION_SUBJECT = "{{ flow.name }}: run {{ flow_run.name }} is {{ flow_run.state.name }}"


def notification_body() -> str:
    """The alert's text (a Prefect Jinja template), one fact a line."""
    tag = "{% for t in flow_run.tags %}{% if t.startswith('PREFIX:') %}{{ t[LEN:] }}{% endif %}{% endfor %}"
    project = tag.replace("PREFIX", "project").replace("LEN", str(len("project:")))
    task = tag.replace("PREFIX", "task").replace("LEN", str(len("task:")))
    return (
        "Flow: {{ flow.name }}\n"
        "Run: {{ flow_run.name }} ({{ flow_run|ui_url }})\n"
        "Deployment: {{ deployment.name }}\n"
        f"SamaHub project: {project}\n"
        f"SamaHub task: {task}\n"
        "State: {{ flow_run.state.name }}\n"
        "Message: {{ flow_run.state.message }}"
    )


class AutomationChange(BaseModel):
    """What applying a plan did to one automation."""

    model_config = ConfigDict(frozen=True)

    deployment: str
    name: str
    action: Literal["created", "updated", "unchanged", "deleted"]


def automation_prefix(flow: str, deployment: str) -> str:
    """`libnar:<flow>/<deployment>:`: every automation libnar makes for that deployment."""
    return f"libnar:{flow}/{deployment}:"


def _related_to(deployment_id: str) -> dict[str, Any]:
    return {
        "prefect.resource.id": f"prefect.deployment.{deployment_id}",
        "prefect.resource.role": "deployment",
    }


def _trigger(events: list[str], deployment_id: str, messages: list[str] | None) -> dict[str, Any]:
    match: dict[str, Any] = {"prefect.resource.id": "prefect.flow-run.*"}
    if messages:
        match["prefect.state-message"] = messages
    return {
        "type": "event",
        "posture": "Reactive",
        "expect": sorted(events),
        "after": [],
        "match": match,
        "match_related": _related_to(deployment_id),
        "for_each": ["prefect.resource.id"],
        "threshold": 1,
        "within": 0.0,
    }


def wanted_automations(
    plan: PackagePlan,
    deployment: DeploymentPlan,
    deployment_id: str,
    *,
    escalate_block_id: str | None,
    notify_block_ids: dict[str, str],
) -> list[dict[str, Any]]:
    """The automations one deployment should have, as Prefect's API takes them."""
    prefix = automation_prefix(plan.flow_name, deployment.name)
    found: list[dict[str, Any]] = []
    if deployment.escalate:
        assert escalate_block_id is not None
        presets = [deployment.amount, *deployment.escalate]
        payload = (
            '{"flow_run_id": "{{ flow_run.id }}", "presets": '
            + ", ".join(f'"{p}"' for p in presets).join("[]")
            + "}"
        )
        found.append(
            {
                "name": f"{prefix}escalate",
                "description": "Re-run a run that ran out of memory with the next preset"
                f" ({' -> '.join(presets)}); made by libnar deploy from [sama-build] escalate.",
                "enabled": True,
                "trigger": _trigger(
                    [_STATE_EVENTS["crashed"], _STATE_EVENTS["failed"]],
                    deployment_id,
                    list(MEMORY_MESSAGE_PATTERNS),
                ),
                "actions": [
                    {
                        "type": "call-webhook",
                        "block_document_id": escalate_block_id,
                        "payload": payload,
                    }
                ],
            }
        )
    for index, entry in enumerate(deployment.notify):
        found.append(
            {
                "name": f"{prefix}notify-{index + 1}",
                "description": f"Alert through {entry['block']} when a run is"
                f" {' or '.join(entry['on'])}; made by libnar deploy from [sama-build] notify.",
                "enabled": True,
                "trigger": _trigger([_STATE_EVENTS[s] for s in entry["on"]], deployment_id, None),
                "actions": [
                    {
                        "type": "send-notification",
                        "block_document_id": notify_block_ids[entry["block"]],
                        "subject": NOTIFICATION_SUBJECT,
                        "body": notification_body(),
                    }
                ],
            }
        )
    return found


async def sync_automations(
    client: PrefectClient,
    plan: PackagePlan,
    deployment_ids: dict[str, str],
    settings: Settings,
) -> list[AutomationChange]:
    """Make the deployments' automations on the API match the plan; return what changed.

    Raises:
        DeployError: `escalate` without the gateway's URL or admin key, or a `notify` block
            that does not exist.
    """
    from libnar._build._apply import DeployError

    needs_escalation = any(d.escalate for d in plan.deployments)
    escalate_block_id = (
        await _escalate_block(client, settings, DeployError) if needs_escalation else None
    )
    notify_block_ids: dict[str, str] = {}
    for slug in sorted({e["block"] for d in plan.deployments for e in d.notify}):
        notify_block_ids[slug] = await _block_id(client, slug, DeployError)

    existing = await _read_all(client)
    changes: list[AutomationChange] = []
    for deployment in plan.deployments:
        prefix = automation_prefix(plan.flow_name, deployment.name)
        wanted = wanted_automations(
            plan,
            deployment,
            deployment_ids[deployment.name],
            escalate_block_id=escalate_block_id,
            notify_block_ids=notify_block_ids,
        )
        mine = [a for a in existing if str(a.get("name", "")).startswith(prefix)]
        by_name: dict[str, list[dict[str, Any]]] = {}
        for automation in mine:
            by_name.setdefault(automation["name"], []).append(automation)
        for spec in wanted:
            found = by_name.pop(spec["name"], [])
            if not found:
                response = await client._client.post("/automations/", json=spec)
                response.raise_for_status()
                changes.append(
                    AutomationChange(
                        deployment=deployment.name, name=spec["name"], action="created"
                    )
                )
                continue
            first, extra = found[0], found[1:]
            for duplicate in extra:  # made by two deploys at once: keep one
                await client._client.delete(f"/automations/{duplicate['id']}")
            if _same(first, spec):
                changes.append(
                    AutomationChange(
                        deployment=deployment.name, name=spec["name"], action="unchanged"
                    )
                )
            else:
                response = await client._client.put(f"/automations/{first['id']}", json=spec)
                response.raise_for_status()
                changes.append(
                    AutomationChange(
                        deployment=deployment.name, name=spec["name"], action="updated"
                    )
                )
        for name, automations in sorted(by_name.items()):
            for automation in automations:
                await client._client.delete(f"/automations/{automation['id']}")
            changes.append(
                AutomationChange(deployment=deployment.name, name=name, action="deleted")
            )
    return changes


#: Trigger fields the server keeps as sets.
_SET_FIELDS = frozenset({"expect", "after", "for_each"})


def _same(existing: dict[str, Any], wanted: dict[str, Any]) -> bool:
    """Whether an automation on the API already is what the plan wants."""
    if existing.get("description") != wanted["description"] or not existing.get("enabled"):
        return False
    trigger = existing.get("trigger") or {}
    for key, value in wanted["trigger"].items():
        have = trigger.get(key)
        if key in _SET_FIELDS:  # sets on the server: it answers them in any order
            have, value = sorted(have or []), sorted(value)
        if key != "within" and have != value:
            return False
    if float(trigger.get("within") or 0) != float(wanted["trigger"]["within"]):
        return False
    actions = existing.get("actions") or []
    if len(actions) != len(wanted["actions"]):
        return False
    return all(
        all(str(have.get(k)) == str(v) for k, v in want.items())
        for have, want in zip(actions, wanted["actions"], strict=True)
    )


async def _read_all(client: PrefectClient) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    offset = 0
    while True:
        response = await client._client.post(
            "/automations/filter", json={"limit": 200, "offset": offset}
        )
        response.raise_for_status()
        page = response.json()
        found += page
        if len(page) < 200:
            return found
        offset += 200


async def _block_id(client: PrefectClient, slug: str, error: type[Exception]) -> str:
    from prefect.exceptions import ObjectNotFound

    block_type, name = slug.split("/", 1)
    try:
        document = await client.read_block_document_by_name(name, block_type)
    except ObjectNotFound:
        raise error(
            f"notify: notification block {slug!r} does not exist on {client.api_url}; create it"
            f" (Prefect UI: Blocks, or e.g. SlackWebhook(url=...).save({name!r})) or fix the"
            " name in [sama-build] notify"
        ) from None
    return str(document.id)


async def _escalate_block(client: PrefectClient, settings: Settings, error: type[Exception]) -> str:
    """Create or update the Webhook block that calls the gateway's `/escalate`."""
    from prefect.blocks.webhook import Webhook

    url, key = settings.gateway_public_url, settings.gateway_admin_key
    if not url or key is None:
        missing = " and ".join(
            name
            for name, value in (
                ("LIBNAR_GATEWAY_PUBLIC_URL", url),
                ("LIBNAR_GATEWAY_ADMIN_KEY", key),
            )
            if not value
        )
        raise error(
            f"[sama-build] escalate needs the gateway (Prefect calls its /escalate): set {missing}"
            " for libnar deploy, as the gateway has them"
        )
    block = Webhook(
        method="POST",
        url=f"{url.rstrip('/')}/escalate",
        # The block sends the payload as text: say it is JSON, or the gateway cannot read it.
        headers={
            "Authorization": f"Bearer {key.get_secret_value()}",
            "Content-Type": "application/json",
        },
    )
    block_id = await block.asave(ESCALATE_BLOCK, overwrite=True, client=client)
    return str(block_id)
