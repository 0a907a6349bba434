"""DPP post-processing: drop bounding boxes smaller than a minimum size before delivery."""

from __future__ import annotations

from typing import Any

from libnar import DppEvent, DppResult, nps_flow


def drop_small_boxes(answers: dict[str, Any], min_box_px: int) -> dict[str, Any]:
    """A copy of `answers` without rectangles whose smaller side is under `min_box_px`."""
    layers = answers.get("layers", {})
    kept = []
    for layer in layers.get("vector_tagging", []):
        shapes = [
            shape
            for shape in layer.get("shapes", [])
            if shape.get("type") != "rectangle" or _smaller_side(shape["points"]) >= min_box_px
        ]
        kept.append({**layer, "shapes": shapes})
    return {**answers, "layers": {**layers, "vector_tagging": kept}}


def _smaller_side(points: list[list[float]]) -> float:
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    return min(max(xs) - min(xs), max(ys) - min(ys))


@nps_flow
def fun69_boxes_ptp(event: DppEvent, min_box_px: int = 4) -> DppResult:
    """Drop boxes smaller than `min_box_px` and send the answers back to SamaHub."""
    return event.result(answers=drop_small_boxes(event.task.answers or {}, min_box_px))
