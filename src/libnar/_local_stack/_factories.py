"""Realistic SamaHub payloads: tasks, webhook events and DPP events.

Values follow SamaHub's delivery format (`reference/samahub.md`, `reference/answers.md`):
24-hex ids, ISO-8601 UTC timestamps with milliseconds, inputs as strings, and answers with an
image output (`{"layers": {"vector_tagging": [group, ...]}}`, one rectangle per group, its 4
corners top-left, top-right, bottom-left, bottom-right, tagged with `label`), a dropdown, a
multi-level menu and checkboxes: the same format as `examples/events/`. Tests and
`libnar dev`'s sample requests use them.
"""

from __future__ import annotations

import itertools
import secrets
from datetime import UTC, datetime, timedelta
from typing import Any

from libnar.events import DppEvent, Task, WebhookEvent

__all__ = ["box", "make_dpp_event", "make_task", "make_task_id", "make_webhook_event"]

_EPOCH = datetime(2024, 5, 2, 9, 14, 3, 120000, tzinfo=UTC)
_serial = itertools.count()
_UNDELIVERED = {"new", "in progress"}


def make_task_id() -> str:
    """Return a new random task id: 24 hexadecimal characters, like SamaHub's."""
    return secrets.token_hex(12)


def box(
    index: int, top_left: tuple[int, int], bottom_right: tuple[int, int], **tags: str
) -> dict[str, Any]:
    """A vector-layer group holding one rectangle, as SamaHub delivers it.

    The 4 corners come in SamaHub's order: top-left, top-right, bottom-left, bottom-right.
    """
    (x1, y1), (x2, y2) = top_left, bottom_right
    return {
        "group_type": None,
        "shapes": [
            {
                "type": "rectangle",
                "index": index,
                "points": [[x1, y1], [x2, y1], [x1, y2], [x2, y2]],
                "tags": tags,
            }
        ],
    }


def _stamp(when: datetime) -> str:
    return when.strftime("%Y-%m-%dT%H:%M:%S.") + f"{when.microsecond // 1000:03d}Z"


def _task_fields(overrides: dict[str, Any]) -> dict[str, Any]:
    """Build a delivered task's fields; each call is a minute later than the one before."""
    n = next(_serial)
    created = _EPOCH + timedelta(minutes=n)
    fields: dict[str, Any] = {
        "id": make_task_id(),
        "project_id": 10,
        "state": "delivered",
        "data": {
            "image_url": f"https://assets.sama.test/frames/{n:06d}.jpg",
            "camera": "front",
            "frame_index": str(n),
        },
        "answers": {
            "image": {
                "layers": {
                    "vector_tagging": [
                        box(1, (104, 212), (318, 377), label="car", occluded="0"),
                        box(2, (402, 198), (409, 203), label="pedestrian", occluded="1"),
                    ]
                }
            },
            "weather": "clear",
            "vehicle_type": "car|sedan",
            "flags": {"blurry": "0", "occluded": "1"},
        },
        "created_at": _stamp(created),
        "delivered_at": _stamp(created + timedelta(hours=7, seconds=n % 60)),
        "batch_id": 77,
        "client_batch_id": "nightly-2024-05-02",
        "submitter_ids_by_step": {"1": ["6630a1f0c2b4e9d1a7f3c812"]},
    }
    if overrides.get("state") in _UNDELIVERED:
        fields["delivered_at"] = None
        fields["answers"] = None
        fields.pop("submitter_ids_by_step")
    fields.update(overrides)
    return fields


def make_task(**overrides: Any) -> Task:
    """Return a realistic delivered `Task`; keyword arguments replace or add fields.

    `make_task(state="new")` gives a task without answers or `delivered_at`.
    """
    return Task.model_validate(_task_fields(overrides))


def make_webhook_event(**task_overrides: Any) -> WebhookEvent:
    """Return the `{"task": {...}}` event SamaHub POSTs to a webhook, around `make_task`."""
    return WebhookEvent.model_validate({"task": _task_fields(task_overrides)})


def make_dpp_event(
    *,
    name: str = "fun69_boxes_ptp",
    parameters: dict[str, Any] | None = None,
    round: int = 1,
    **task_overrides: Any,
) -> DppEvent:
    """Return a DPP request as SamaHub sends it: script name, parameters, task with a round."""
    task = _task_fields({"round": round, **task_overrides})
    return DppEvent.model_validate({"name": name, "parameters": parameters, "task": task})
