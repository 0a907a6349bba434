"""What a deployment accepts: the run request for a stored event, or why it is refused.

Checked twice on the same rules: when the event arrives (so a bad one is answered 422 at once)
and when the dispatcher creates its run (the deployment may have changed meanwhile).
"""

from __future__ import annotations

import json
from typing import Any

from libnar._gateway._outbox import OutboxEntry
from libnar._gateway._trigger import Deployment, ParametersRejected, RunRequest
from libnar.events import EventProblem, short_text
from libnar.resources import RunResources, job_variables_for
from libnar.runs import SPECIAL_PARAMETERS

__all__ = ["run_request"]


def run_request(deployment: Deployment, entry: OutboxEntry) -> RunRequest:
    """The run to create for `entry`; refuses what the deployment would refuse or misread.

    Prefect accepts unknown top-level parameters (the run then crashes), so those are refused
    here, with the names the deployment accepts. The schema check is skipped for an entry
    checked against this very version of the deployment when it arrived.

    Raises:
        ParametersRejected: the flow takes no such event, or the parameters do not fit.
    """
    flow_and_deployment = f"flow {entry.flow!r} (deployment {entry.deployment!r})"
    if deployment.event_parameter is None:
        raise ParametersRejected(f"{flow_and_deployment} takes no event")
    if not deployment.takes(entry.source):
        takes = " or ".join(deployment.event_kinds)
        raise ParametersRejected(
            f"{flow_and_deployment} takes {takes} events, not {entry.source} events; a"
            f" {'DPP request' if entry.source == 'dpp' else 'webhook'} needs a flow whose"
            f" event parameter is a {'DppEvent' if entry.source == 'dpp' else 'WebhookEvent'}"
        )
    if deployment.event_parameter in entry.parameters:
        where = "parameters" if entry.source == "dpp" else "token.parameters"
        raise ParametersRejected(
            "a parameter names the flow's event parameter",
            problems=[
                EventProblem(
                    path=f"{where}.{deployment.event_parameter}",
                    found="a value for the flow's event parameter",
                    expected="no such parameter: the gateway passes the event itself",
                )
            ],
        )
    parameters = entry.run_parameters(deployment.event_parameter)
    unknown = deployment.unknown_parameters(parameters)
    if unknown:
        accepted = [p for p in deployment.accepted or () if p not in SPECIAL_PARAMETERS]
        raise ParametersRejected(
            f"unknown parameter(s) {', '.join(short_text(u) for u in unknown)};"
            f" it accepts: {', '.join(accepted)}",
            accepted=accepted,
        )
    checked = deployment.is_checked_here()
    if checked and not (deployment.version and entry.checked_against == deployment.version):
        refusal = deployment.refusal(parameters)
        if refusal is not None:
            raise ParametersRejected(refusal)
    job_variables = None
    if entry.resources:
        where = "parameters" if entry.source == "dpp" else "token.parameters"
        job_variables = run_job_variables(deployment, RunResources(**entry.resources), where)
    return RunRequest(
        idempotency_key=entry.prefect_key(deployment.id),
        name=entry.run_name,
        tags=entry.tags,
        parameters=parameters,
        checked=checked,
        job_variables=job_variables,
    )


def run_job_variables(
    deployment: Deployment, resources: RunResources, where: str = "parameters"
) -> dict[str, Any]:
    """The job variables of a run with its own resources, checked against the deployment's infra.

    The same rules and messages as `[sama-build]`: a value the infra does not take is refused
    (never made smaller), naming the limit.

    Raises:
        ParametersRejected: the infra does not take the resources, or the deployment was not
            made by `libnar deploy` (its infra is unknown).
    """
    if deployment.infra is None or deployment.pool_type is None:
        raise ParametersRejected(
            f"deployment {deployment.name!r} has no infra: tag (it was not made by libnar deploy),"
            " so per-run resources cannot be checked; deploy it with libnar deploy, or remove"
            " amount, cpu, memory and disk from the parameters"
        )
    problems = resources.problems_on(deployment.infra)  # the Kubernetes maxima: settings
    if problems:
        raise ParametersRejected(
            f"the run's resources do not fit {deployment.infra}'s limits",
            problems=[
                EventProblem(
                    path=f"{where}.{key}",
                    found=json.dumps(resources.as_parameters().get(key)),
                    expected=message,
                )
                for key, message in problems
            ],
        )
    return job_variables_for(deployment.infra, deployment.pool_type, resources)
