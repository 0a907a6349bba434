"""Re-run a run that crashed for lack of memory, once, with the next preset's resources.

Prefect's automation for a deployment with `[sama-build] escalate` (made by `libnar deploy`)
calls `POST /escalate` when one of its runs crashes (or fails) with an out-of-memory message.
The gateway reads the crashed run and creates exactly one new run of the same deployment:

- the same parameters, passed literally (never evaluated);
- the next preset after the run's own (`amount:` tag, else the deployment's preset), as job
  variables in the pool's units, checked against the infra like any per-run value;
- tags `amount:<preset>` and `escalated-from:<crashed run id>`, and the name
  `<crashed run's name>-<preset>`;
- the idempotency key `<deployment id>:escalate:<crashed run id>`: Prefect's RunDeployment
  action keys each run by the action's random invocation id, so a trigger delivered twice would
  start two runs; this key makes the second call land on the first run.

After the last preset, and for any other failure, nothing is created.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from typing import Any, Literal

from libnar._gateway._checks import run_job_variables
from libnar._gateway._trigger import PrefectTrigger, RunRequest
from libnar.resources import (
    MEMORY_MESSAGE_PATTERNS,
    PRESETS,
    RESOURCE_PARAMETERS,
    RunResources,
)

__all__ = ["ESCALATED_FROM", "MEMORY_MESSAGE_PATTERNS", "Escalation", "escalate", "is_memory_crash"]

#: The tag that links an escalated run to the run it replaces.
ESCALATED_FROM = "escalated-from:"

_MEMORY = re.compile(
    "|".join(re.escape(p.strip("*")) for p in MEMORY_MESSAGE_PATTERNS), re.IGNORECASE
)


def is_memory_crash(state_type: str | None, message: str | None) -> bool:
    """Whether a run's final state is an out-of-memory end (Crashed or Failed, with its message)."""
    return state_type in ("CRASHED", "FAILED") and bool(_MEMORY.search(message or ""))


#: What one call of `/escalate` came to (the `outcome` of its answer and metric).
Outcome = Literal["escalated", "repeated", "last_preset", "not_memory", "not_listed"]


@dataclass(frozen=True)
class Escalation:
    """What `/escalate` did: the new run, or why there is none.

    `outcome`: `escalated` (a new run), `repeated` (the trigger came again: the run made the
    first time), `last_preset` (out of memory at the last preset: nothing more runs, an operator
    must look), `not_memory` (another failure), `not_listed` (a preset outside the list).
    """

    outcome: Outcome
    reason: str
    flow_run_id: str | None = None
    flow_run_name: str | None = None
    amount: str | None = None

    @property
    def escalated(self) -> bool:
        """A run with the next preset exists (made now or the first time)."""
        return self.outcome in ("escalated", "repeated")

    def body(self) -> dict[str, Any]:
        """The JSON answer."""
        return {
            "escalated": self.escalated,
            "outcome": self.outcome,
            "reason": self.reason,
            "flow_run_id": self.flow_run_id,
            "flow_run_name": self.flow_run_name,
            "amount": self.amount,
            "duplicate": self.outcome == "repeated",
        }


async def escalate(trigger: PrefectTrigger, flow_run_id: str, presets: list[str]) -> Escalation:
    """Create the next run of a crashed run (see the module docstring); at most one ever.

    `presets` are the deployment's preset then its `escalate` list, smallest first.

    Raises:
        LookupError: no such run, or it has no deployment.
        ParametersRejected: the next preset does not fit the deployment's infra.
        TriggerError: Prefect failed.
    """
    read = functools.partial(trigger.read, operation="escalate_read")
    run = await read(f"flow_runs/{flow_run_id}", f"flow run {flow_run_id}")
    state = run.get("state") or {}
    if not is_memory_crash(state.get("type"), state.get("message")):
        return Escalation("not_memory", "the run did not end out of memory: not escalated")
    if not run.get("deployment_id"):
        raise LookupError(f"flow run {flow_run_id} has no deployment to run again")
    tags: list[str] = list(run.get("tags") or [])
    amounts = [t.removeprefix("amount:") for t in tags if t.startswith("amount:")]
    current = amounts[-1] if amounts else (presets[0] if presets else None)
    if current not in presets:
        return Escalation(
            "not_listed", f"the run's amount {current!r} is not in the escalation list"
        )
    position = presets.index(current)
    if position + 1 >= len(presets):
        return Escalation("last_preset", f"{current!r} is the last preset: no further run")
    wanted = presets[position + 1]
    if wanted not in PRESETS:
        return Escalation("not_listed", f"{wanted!r} is not a preset")

    body = await read(f"deployments/{run['deployment_id']}", f"deployment {run['deployment_id']}")
    flow = await read(f"flows/{body['flow_id']}", f"flow {body['flow_id']}")
    deployment = await trigger.deployment(str(flow["name"]), str(body["name"]))
    job_variables = run_job_variables(deployment, RunResources(amount=wanted), "escalate")
    kept = [t for t in tags if not t.startswith(("amount:", ESCALATED_FROM))]
    name = str(run["name"])
    if any(t.startswith(ESCALATED_FROM) for t in tags) and name.endswith(f"-{current}"):
        name = name.removesuffix(f"-{current}")
    request = RunRequest(
        idempotency_key=f"{deployment.id}:escalate:{flow_run_id}",
        name=f"{name}-{wanted}",
        tags=[*kept, f"amount:{wanted}", f"{ESCALATED_FROM}{flow_run_id}"],
        # Resources come from the preset alone, never from a size the crashed run was given.
        parameters={
            k: v for k, v in (run.get("parameters") or {}).items() if k not in RESOURCE_PARAMETERS
        },
        job_variables=job_variables,
    )
    created = await trigger.create_run(deployment, request)
    return Escalation(
        "repeated" if created.duplicate else "escalated",
        f"re-run with {wanted!r} after {current!r} ran out of memory",
        flow_run_id=created.flow_run_id,
        flow_run_name=created.flow_run_name,
        amount=wanted,
    )
