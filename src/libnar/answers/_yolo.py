"""YOLO box labels (one text file per image) from and to SamaHub image answers.

A line is `class x_center y_center width height`, the class a 0-based index into `classes`
and the rest normalised by the image's width and height (0 to 1).

| SamaHub | YOLO | back from YOLO |
|---|---|---|
| `rectangle` (and `slider_rectangle`, its depth point lost) | one line: its box | `rectangle`, corners TL, TR, BL, BR |
| the category (`tags[category]`) | the class index in `classes` | `tags[category]` |
| other tags, `index`, groups, the output name | lost | indexes 1, 2, ... in line order |
| `polygon`, `line`, `arrow`, `point`, 2D `cuboid`, `keypoint_shape`, other types | not held: an error, or left out with `unsupported="skip"` | - |

Values are written with 8 decimals; read back, coordinates are rounded to 4 decimals and whole
numbers become ints, so integer boxes on images up to about 10,000 pixels come back exact.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from libnar.answers._answers import Answers
from libnar.answers._convert import ConversionError, Unsupported, UnsupportedShapes, clean_number
from libnar.answers._shapes import Group, ImageOutput, Shape

__all__ = ["from_yolo", "to_yolo"]

_BOX_TYPES = ("rectangle", "slider_rectangle")


def _format(value: float) -> str:
    text = f"{value:.8f}".rstrip("0").rstrip(".")
    return text if text not in ("-0", "") else "0"


def to_yolo(
    answers: Answers,
    *,
    width: int,
    height: int,
    classes: Sequence[str],
    category: str | Callable[[Shape], str | None] = "label",
    output: str | None = None,
    unsupported: Unsupported = "error",
) -> str:
    """Write one image's boxes as YOLO label lines (`class xc yc w h`, normalised)."""
    if width <= 0 or height <= 0:
        raise ConversionError(f"YOLO needs the image size in pixels, got {width}x{height}")
    index = {name: number for number, name in enumerate(classes)}
    skipped = UnsupportedShapes("YOLO", unsupported)
    lines = []
    shapes = answers.shapes(output)
    for position, shape in enumerate(shapes):
        where = f"answers shape {position}"
        if shape.type not in _BOX_TYPES:
            skipped.add(where, shape.type, "a rectangle")
            continue
        label = category(shape) if callable(category) else shape.tags.get(category)
        if not isinstance(label, str) or label not in index:
            skipped.add(where, shape.type, f"a category in classes, not {label!r}")
            continue
        x1, y1, x2, y2 = Shape(type="rectangle", points=shape.points[:4]).bbox()
        values = (
            (x1 + x2) / 2 / width,
            (y1 + y2) / 2 / height,
            (x2 - x1) / width,
            (y2 - y1) / height,
        )
        lines.append(" ".join([str(index[label]), *map(_format, values)]))
    skipped.finish()
    return "".join(line + "\n" for line in lines)


def from_yolo(
    text: str,
    *,
    width: int,
    height: int,
    classes: Sequence[str],
    category: str = "label",
    output: str = "image",
) -> Answers:
    """Read YOLO label lines into answers with one rectangle per line."""
    groups: list[Group] = []
    for number, line in enumerate(text.splitlines(), start=1):
        fields = line.split()
        if not fields:
            continue
        if len(fields) != 5:
            raise ConversionError(
                f"YOLO line {number}: {line!r} has {len(fields)} fields; expected 5"
                " (class x_center y_center width height; segments are not read)"
            )
        try:
            klass = int(fields[0])
            xc, yc, w, h = (float(value) for value in fields[1:])
        except ValueError:
            raise ConversionError(f"YOLO line {number}: {line!r} is not numbers") from None
        if not 0 <= klass < len(classes):
            raise ConversionError(
                f"YOLO line {number}: class {klass} is not in classes (0 to {len(classes) - 1})"
            )
        x1, x2 = clean_number((xc - w / 2) * width), clean_number((xc + w / 2) * width)
        y1, y2 = clean_number((yc - h / 2) * height), clean_number((yc + h / 2) * height)
        shape = Shape.rectangle(len(groups) + 1, x1, y1, x2, y2, {category: classes[klass]})
        groups.append(Group(shapes=[shape]))
    answers = Answers()
    answers[output] = ImageOutput(layers={"vector_tagging": groups})
    return answers
