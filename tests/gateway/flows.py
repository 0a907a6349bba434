"""Small flows the gateway tests deploy (their deployments need an importable entrypoint)."""

from __future__ import annotations

from libnar import DppEvent, DppResult, WebhookEvent, nps_flow


@nps_flow
def gw_hook_ptp(event: WebhookEvent, tag: str = "label") -> str:
    return f"{event.task.id}:{tag}"


@nps_flow(submit_result=False)
def gw_dpp_ptp(event: DppEvent, min_box_px: int = 4) -> DppResult:
    return event.result()


@nps_flow(submit_result=False)
def gw_payload_ptp(payload: DppEvent, scale: int = 1) -> int:
    return scale
