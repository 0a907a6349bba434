"""COCO instances (object detection and segmentation) from and to SamaHub image answers.

| SamaHub | COCO instances | back from COCO |
|---|---|---|
| `rectangle` | `bbox` `[x, y, w, h]`, `segmentation` its 4 corners, `area` w x h | `rectangle` |
| `polygon` | `segmentation` `[[x1, y1, x2, y2, ...]]`, `bbox` around it, `area` by the shoelace formula | `polygon` |
| `slider_rectangle` | as a rectangle; the depth point only in the `sama` field | `slider_rectangle` with its `sama` field, else `rectangle` |
| `line`, `arrow`, `point`, 2D `cuboid`, `keypoint_shape`, other types | not held: an error, or left out with `unsupported="skip"` | - |
| the category (`tags[category]`) | `category_id`, categories numbered 1, 2, ... | `tags[category]` |
| other tags, `index`, the output name | the annotation's `sama` field (COCO tools ignore it) | restored from it |
| the image (`ImageRecord`) | `images[]`: `id`, `file_name`, `width`, `height` | `ImageRecord` |
| RLE masks (`iscrowd` 1) | - | not read: an error, or left out |

Without a `sama` field (a dataset from another tool), each polygon of a `segmentation` becomes
a `polygon` shape and an annotation without one a `rectangle` from its `bbox`, tagged with its
category only.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from libnar.answers._answers import Answers
from libnar.answers._base import Point
from libnar.answers._convert import (
    ConversionError,
    ImageRecord,
    Unsupported,
    UnsupportedShapes,
    clean_number,
    points_of_ring,
    ring_of,
    shoelace_area,
)
from libnar.answers._shapes import Group, ImageOutput, Shape
from libnar.events import Task

__all__ = ["from_coco", "to_coco"]

_AREA_TYPES = ("rectangle", "polygon", "slider_rectangle")
Category = str | Callable[[Shape], str | None]


def _category_of(category: Category, shape: Shape) -> str | None:
    if callable(category):
        return category(shape)
    value = shape.tags.get(category)
    return value if isinstance(value, str) and value else None


def _records(images: Iterable[ImageRecord | Task]) -> list[ImageRecord]:
    return [
        item if isinstance(item, ImageRecord) else ImageRecord.from_task(item) for item in images
    ]


def to_coco(
    images: Iterable[ImageRecord | Task],
    *,
    category: Category = "label",
    categories: Sequence[str] | None = None,
    output: str | None = None,
    unsupported: Unsupported = "error",
) -> dict[str, Any]:
    """Build a COCO instances dataset (`images`, `annotations`, `categories`) from answers.

    `category` is the tag naming each shape's category (or a function of the shape);
    `categories` fixes their order and ids (1, 2, ...; default: sorted names seen). `output`
    picks one image output (default: all). Each image needs its size (`ImageRecord`).
    """
    records = _records(images)
    skipped = UnsupportedShapes("COCO instances", unsupported)
    found: list[tuple[int, str, Shape, str]] = []  # (image id, output, shape, category name)
    coco_images = []
    for number, record in enumerate(records, start=1):
        image_id = record.id if record.id is not None else number
        width, height = record.size("COCO")
        image: dict[str, Any] = {
            "id": image_id,
            "file_name": record.file_name,
            "width": width,
            "height": height,
        }
        if record.task_id is not None:
            image["sama_task_id"] = record.task_id
        coco_images.append({**image, **record.extra})
        names = [output] if output is not None else record.answers.names()
        for name in names:
            if record.answers.kind(name) != "image":
                continue
            for position, shape in enumerate(record.answers.image(name).shapes()):
                where = f"{record.file_name}: answers.{name} shape {position}"
                if shape.type not in _AREA_TYPES:
                    skipped.add(where, shape.type, "a rectangle or a polygon")
                    continue
                label = _category_of(category, shape)
                if label is None:
                    skipped.add(where, shape.type, f"a category (tags[{category!r}])")
                    continue
                if categories is not None and label not in categories:
                    skipped.add(where, shape.type, f"a category in categories, not {label!r}")
                    continue
                found.append((image_id, name, shape, label))
    skipped.finish()
    names_in_order = list(categories) if categories is not None else sorted({f[3] for f in found})
    ids = {name: number for number, name in enumerate(names_in_order, start=1)}
    annotations = [
        _annotation(number, image_id, ids[label], name, shape)
        for number, (image_id, name, shape, label) in enumerate(found, start=1)
    ]
    return {
        "images": coco_images,
        "annotations": annotations,
        "categories": [{"id": ids[name], "name": name} for name in names_in_order],
    }


def _annotation(
    number: int, image_id: int, category_id: int, output: str, shape: Shape
) -> dict[str, Any]:
    ring = ring_of(shape.type, shape.points)
    x1, y1, x2, y2 = shape.bbox() if shape.type == "polygon" else _box(ring)
    area = shoelace_area(ring) if shape.type == "polygon" else (x2 - x1) * (y2 - y1)
    sama: dict[str, Any] = {"output": output, "type": shape.type, "index": shape.index}
    sama["tags"] = shape.tags
    if shape.type == "slider_rectangle":
        sama["points"] = shape.points
    extra = shape.model_extra or {}
    if extra:
        sama["extra"] = extra
    return {
        "id": number,
        "image_id": image_id,
        "category_id": category_id,
        "bbox": [x1, y1, x2 - x1, y2 - y1],
        "area": area,
        "iscrowd": 0,
        "segmentation": [[coordinate for point in ring for coordinate in point[:2]]],
        "sama": sama,
    }


def _box(ring: list[Point]) -> tuple[Any, Any, Any, Any]:
    xs = [p[0] for p in ring]
    ys = [p[1] for p in ring]
    return min(xs), min(ys), max(xs), max(ys)


def from_coco(
    dataset: Mapping[str, Any],
    *,
    category: str = "label",
    output: str = "image",
    unsupported: Unsupported = "error",
) -> list[ImageRecord]:
    """Read a COCO instances dataset back into one `ImageRecord` (with answers) per image.

    Shapes go to the output named in each annotation's `sama` field, else to `output`; the
    category becomes `tags[category]`.
    """
    try:
        categories = {item["id"]: item["name"] for item in dataset.get("categories", [])}
        images = {item["id"]: item for item in dataset["images"]}
    except (KeyError, TypeError) as exc:
        raise ConversionError(
            f"not a COCO dataset: images and categories need id and name ({exc})"
        ) from None
    skipped = UnsupportedShapes("reading COCO", unsupported)
    outputs: dict[Any, dict[str, list[Group]]] = {image_id: {} for image_id in images}
    for position, ann in enumerate(dataset.get("annotations", [])):
        where = f"annotations[{position}]"
        image_id = ann.get("image_id")
        if image_id not in images:
            raise ConversionError(f"{where}: image_id {image_id!r} is not among the images")
        label = categories.get(ann.get("category_id"))
        for name, shape in _shapes_of(ann, label, category, output, where, skipped):
            outputs[image_id].setdefault(name, []).append(Group(shapes=[shape]))
    skipped.finish()
    records = []
    for image_id, image in images.items():
        answers = Answers()
        for name, groups in outputs[image_id].items():
            answers[name] = ImageOutput(layers={"vector_tagging": groups})
        known = {"id", "file_name", "width", "height", "sama_task_id"}
        records.append(
            ImageRecord(
                answers=answers,
                file_name=str(image.get("file_name", image_id)),
                width=image.get("width"),
                height=image.get("height"),
                id=image_id,
                task_id=image.get("sama_task_id"),
                extra={k: v for k, v in image.items() if k not in known},
            )
        )
    return records


def _shapes_of(
    ann: Mapping[str, Any],
    label: str | None,
    category: str,
    output: str,
    where: str,
    skipped: UnsupportedShapes,
) -> list[tuple[str, Shape]]:
    sama = ann.get("sama") if isinstance(ann.get("sama"), dict) else None
    segmentation = ann.get("segmentation")
    if isinstance(segmentation, dict) or ann.get("iscrowd") == 1:
        skipped.add(where, "RLE mask", "polygons or a bbox (RLE masks are not read)")
        return []
    polygons = [_pairs(ring) for ring in segmentation or [] if len(ring) >= 6]
    if sama is not None:
        shape_type = str(sama.get("type", "polygon"))
        points: list[Point]
        if shape_type == "slider_rectangle" and isinstance(sama.get("points"), list):
            points = sama["points"]
        elif polygons:
            points = points_of_ring(shape_type, polygons[0])
        else:
            points = _corners(ann["bbox"])
        shape = Shape(
            type=shape_type,
            index=sama.get("index"),
            points=points,
            tags=dict(sama.get("tags") or {}),
            **dict(sama.get("extra") or {}),
        )
        return [(str(sama.get("output", output)), shape)]
    tags = {} if label is None else {category: label}
    index = ann.get("id")
    if polygons:
        return [
            (output, Shape(type="polygon", index=index, points=ring, tags=dict(tags)))
            for ring in polygons
        ]
    if isinstance(ann.get("bbox"), list) and len(ann["bbox"]) == 4:
        return [
            (output, Shape(type="rectangle", index=index, points=_corners(ann["bbox"]), tags=tags))
        ]
    skipped.add(where, "annotation", "a bbox or a polygon segmentation")
    return []


def _pairs(flat: Sequence[Any]) -> list[Point]:
    return [[flat[i], flat[i + 1]] for i in range(0, len(flat) - 1, 2)]


def _corners(bbox: Sequence[Any]) -> list[Point]:
    x, y, w, h = bbox
    x2, y2 = clean_number(x + w), clean_number(y + h)
    return [[x, y], [x2, y], [x, y2], [x2, y2]]
