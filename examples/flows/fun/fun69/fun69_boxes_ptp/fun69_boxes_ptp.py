"""DPP example: drop bounding boxes smaller than a minimum size before SamaHub delivers a task.

Run it locally (embedded Prefect, nothing sent to SamaHub):

    libnar run examples/flows/fun/fun69/fun69_boxes_ptp/fun69_boxes_ptp.py --event examples/events/dpp_event.json --param min_box_px=8
"""

from __future__ import annotations

from typing import Any

from libnar import DppEvent, DppResult, nps_flow


def box_size(points: list[list[float]]) -> float:
    """The smaller side of the axis-aligned box around `points`, in pixels."""
    xs = [p[0] for p in points]
    ys = [p[1] for p in points]
    return min(max(xs) - min(xs), max(ys) - min(ys))


def is_vector_output(value: Any) -> bool:
    """Whether an answer is an image output: `{"layers": {"vector_tagging": [group, ...]}}`."""
    return isinstance(value, dict) and "vector_tagging" in (value.get("layers") or {})


def drop_small_boxes(answers: dict[str, Any], min_box_px: int) -> dict[str, Any]:
    """A copy of `answers` without rectangles whose smaller side is under `min_box_px`.

    Each image output holds groups of shapes; a group left without shapes is dropped. Other
    answers (dropdowns, checkboxes, ...) are kept as they are.
    """
    kept: dict[str, Any] = {}
    for name, value in answers.items():
        if is_vector_output(value):
            groups = []
            for group in value["layers"]["vector_tagging"]:
                shapes = [
                    shape
                    for shape in group.get("shapes", [])
                    if shape.get("type") != "rectangle" or box_size(shape["points"]) >= min_box_px
                ]
                if shapes:
                    groups.append({**group, "shapes": shapes})
            value = {**value, "layers": {**value["layers"], "vector_tagging": groups}}
        kept[name] = value
    return kept


@nps_flow(retries=2, retry_delay_seconds=10)
def fun69_boxes_ptp(event: DppEvent, min_box_px: int = 4) -> DppResult:
    """Drop boxes smaller than `min_box_px` and send the answers back to SamaHub.

    Args:
        event: The DPP request SamaHub sent for one delivered task.
        min_box_px: The smallest box side to keep, in pixels.
    """
    answers = drop_small_boxes(event.task.answers or {}, min_box_px)
    return event.result(answers=answers)
