"""Webhook example: count the labels of a delivered task, e.g. to feed a client report.

libnar run examples/flows/fun/fun69/fun69_label_counts_ptp/fun69_label_counts_ptp.py --event examples/events/webhook_event.json
"""

from __future__ import annotations

from collections import Counter

from libnar import TaskState, WebhookEvent, nps_flow


@nps_flow(log_prints=True)
def fun69_label_counts_ptp(event: WebhookEvent, tag: str = "label") -> dict[str, int]:
    """Count each value of `tag` over the shapes of the task's image outputs.

    Args:
        event: The webhook SamaHub sent when the task changed state.
        tag: The shape tag to count.
    """
    if event.task.state is not TaskState.DELIVERED:
        print(f"task {event.task.id} is {event.task.state}; nothing to count yet")
        return {}
    counts: Counter[str] = Counter()
    for value in (event.task.answers or {}).values():
        # An image output: {"layers": {"vector_tagging": [{"shapes": [...]}, ...]}}.
        if not isinstance(value, dict):
            continue
        for group in (value.get("layers") or {}).get("vector_tagging", []):
            for shape in group.get("shapes", []):
                label = shape.get("tags", {}).get(tag)
                if label is not None:
                    counts[str(label)] += 1
    print(f"task {event.task.id}: {dict(counts)}")
    return dict(counts)
