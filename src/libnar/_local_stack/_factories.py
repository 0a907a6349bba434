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
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from libnar.events import DppEvent, Task, WebhookEvent

__all__ = [
    "box",
    "make_creation_schema",
    "make_delivery_schema",
    "make_dpp_event",
    "make_task",
    "make_task_id",
    "make_video_answers",
    "make_webhook_event",
]

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


# -- JSON Schemas ------------------------------------------------------------------------------

_NUMBER_LIST: dict[str, Any] = {"type": "array", "items": {"type": "number"}, "minItems": 2}
_POINTS: dict[str, Any] = {"type": "array", "items": _NUMBER_LIST}
_SHAPE: dict[str, Any] = {
    "type": "object",
    "required": ["type", "points"],
    "properties": {
        "type": {"type": "string"},
        "index": {"type": ["integer", "string"]},
        "points": _POINTS,
        "tags": {"type": "object"},
        "key_points": _POINTS,
    },
}
_KEY_LOCATION: dict[str, Any] = {
    "type": "object",
    "required": ["frame_number"],
    "properties": {
        "frame_number": {"type": "integer", "minimum": 0},
        "points": _POINTS,
        "tags": {"type": "object"},
        "position_center": _NUMBER_LIST,
    },
}
_VIDEO_SHAPE: dict[str, Any] = {
    "type": "object",
    "required": ["type", "key_locations"],
    "properties": {
        "type": {"type": "string"},
        "index": {"type": ["integer", "string"]},
        "tags": {"type": "object"},
        "key_locations": {"anyOf": [{"type": "array", "items": _KEY_LOCATION}, _KEY_LOCATION]},
    },
}


def _output_schema(value: Any) -> dict[str, Any]:
    """A plausible JSON Schema for one output, from a sample value of it."""
    from libnar.answers import output_kind

    kind = output_kind(value)
    if kind == "text":
        return {"type": "string"}
    if kind == "checkboxes":
        return {
            "type": "object",
            "properties": {option: {"enum": ["0", "1"]} for option in value},
            "required": list(value),
            "additionalProperties": False,
        }
    if kind == "image":
        group = {
            "type": "object",
            "required": ["shapes"],
            "properties": {"shapes": {"type": "array", "items": _SHAPE}},
        }
        layers = {
            "type": "object",
            "properties": {
                "vector_tagging": {"type": "array", "items": group},
                "raster_coding": {
                    "type": "object",
                    "properties": {"mask_url": {"type": "string"}},
                },
            },
        }
        return {"type": "object", "required": ["layers"], "properties": {"layers": layers}}
    if kind == "video":
        group = {
            "type": "object",
            "required": ["shapes"],
            "properties": {
                "frame_count": {"type": "integer", "minimum": 0},
                "shapes": {"type": "array", "items": _VIDEO_SHAPE},
            },
        }
        return {"type": "array", "items": group}
    return {}


def make_delivery_schema(answers: Mapping[str, Any]) -> dict[str, Any]:
    """A delivery schema (`deliver_task.json`) for a project whose answers look like these.

    Every output of the sample is required and typed by its kind (text, checkboxes with their
    options, image layers of shapes, video groups of tracked shapes); other outputs are
    refused. SamaHub does not publish its schemas' exact form: this is a plausible one, for
    tests (`fake_samahub.schemas[pid] = {"deliver_task": make_delivery_schema(...)}`).
    """
    return {
        "$schema": "http://json-schema.org/draft-07/schema#",
        "type": "object",
        "properties": {name: _output_schema(value) for name, value in answers.items()},
        "required": list(answers),
        "additionalProperties": False,
    }


def make_creation_schema(
    data: Mapping[str, Any], *, optional: Iterable[str] = ()
) -> dict[str, Any]:
    """A creation schema (`create_task.json`) for tasks whose `data` look like this sample.

    Each input is required (except `optional`) and typed as in the sample (SamaHub's inputs
    are mostly strings); unknown inputs are refused, as a project's schema would.
    """
    types = {str: "string", bool: "boolean", int: "integer", float: "number", dict: "object"}
    leave_out = set(optional)
    return {
        "$schema": "http://json-schema.org/draft-07/schema#",
        "type": "object",
        "properties": {
            name: {"type": types.get(type(value), "string")} if value is not None else {}
            for name, value in data.items()
        },
        "required": [name for name in data if name not in leave_out],
        "additionalProperties": False,
    }


# -- video and 3D answers ----------------------------------------------------------------------


def make_video_answers(
    *,
    output: str = "video",
    shapes: int = 2,
    frames: int = 30,
    key_every: int = 10,
    cuboids: bool = False,
    seed: int = 0,
) -> dict[str, Any]:
    """Answers with one video (or 3D) output: `shapes` tracked shapes over `frames` frames.

    Each shape (a 4-corner `rectangle` in pixels, or with `cuboids` a 3D `cuboid` with centre,
    direction and dimensions) has a key location every `key_every` frames and on the last
    frame, dynamic tags on the first, and `locations` for every frame as SamaHub expands them
    (`VideoShape.at`). The same `seed` gives the same answers.
    """
    from random import Random

    from libnar.answers import Dimensions, Direction, VideoShape, cuboid_corners

    if frames < 1 or key_every < 1:
        raise ValueError("frames and key_every must be at least 1")
    rng = Random(seed)  # noqa: S311 (sample data, not secrets)
    key_frames = sorted({*range(0, frames, key_every), frames - 1})
    groups = []
    for index in range(1, shapes + 1):
        keys = []
        for number, frame in enumerate(key_frames):
            key: dict[str, Any] = {"frame_number": frame, "visibility": 1}
            if cuboids:
                centre = [round(rng.uniform(-40, 40), 3), round(rng.uniform(-20, 20), 3), 0.8]
                direction = {"roll": 0.0, "pitch": 0.0, "yaw": round(rng.uniform(-3, 3), 4)}
                dims = {"length": 4.5, "width": 1.9, "height": 1.6}
                key |= {
                    "position_center": centre,
                    "direction": direction,
                    "dimensions": dims,
                    "points": cuboid_corners(
                        centre, Dimensions.read(dims), Direction.read(direction)
                    ),
                }
            else:
                x, y = rng.randint(0, 1800), rng.randint(0, 1000)
                w, h = rng.randint(10, 120), rng.randint(10, 120)
                key["points"] = [[x, y], [x + w, y], [x, y + h], [x + w, y + h]]
            if number == 0:
                key["tags"] = {"occluded": "0"}
            keys.append(key)
        shape = {
            "type": "cuboid" if cuboids else "rectangle",
            "index": index,
            "tags": {"kind": rng.choice(["car", "bus", "person"])},
            "key_locations": keys,
        }
        expanded = VideoShape.read(shape)
        shape["locations"] = [expanded.at(frame).to_location() for frame in range(frames)]
        groups.append({"group_type": None, "frame_count": frames, "shapes": [shape]})
    return {output: groups}
