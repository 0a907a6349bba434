"""What a deployment accepts: the run request for a stored event, or why it is refused.

Checked twice on the same rules: when the event arrives (so a bad one is answered 422 at once)
and when the dispatcher creates its run (the deployment may have changed meanwhile).
"""

from __future__ import annotations

from libnar._gateway._outbox import OutboxEntry
from libnar._gateway._trigger import Deployment, ParametersRejected, RunRequest
from libnar.events import EventProblem, short_text
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
    return RunRequest(
        idempotency_key=entry.prefect_key(deployment.id),
        name=entry.run_name,
        tags=entry.tags,
        parameters=parameters,
        checked=checked,
    )
