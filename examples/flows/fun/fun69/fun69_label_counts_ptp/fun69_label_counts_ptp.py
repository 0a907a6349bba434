"""Webhook: count the labels of a delivered task, e.g. to feed a client report."""

from __future__ import annotations

from collections import Counter

from libnar import TaskState, WebhookEvent, nps_flow


@nps_flow
def fun69_label_counts_ptp(event: WebhookEvent, tag: str = "label") -> dict[str, int]:
    """Count each value of `tag` over the shapes of a delivered task."""
    if event.task.state is not TaskState.DELIVERED:
        return {}
    counts: Counter[str] = Counter()
    for layer in (event.task.answers or {}).get("layers", {}).get("vector_tagging", []):
        for shape in layer.get("shapes", []):
            value = shape.get("tags", {}).get(tag)
            if value is not None:
                counts[str(value)] += 1
    return dict(counts)
