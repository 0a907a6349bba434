"""What the conversions share: the images they describe, and shapes a format cannot hold.

A format that cannot hold a shape (a line in COCO instances, a polygon in YOLO boxes) makes the
conversion fail with `ConversionError`, one line per shape, unless `unsupported="skip"` is
passed: then those shapes are left out and a warning on the `libnar.answers` logger counts them
by type. Nothing is dropped silently.
"""

from __future__ import annotations

import logging
import math
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, TypeAlias

from libnar.answers._answers import Answers, AnswersError
from libnar.answers._base import Number, Point
from libnar.events import EventProblem, Task

__all__ = [
    "ConversionError",
    "ImageRecord",
    "Unsupported",
    "UnsupportedShapes",
    "clean_number",
]

logger = logging.getLogger("libnar.answers")

Unsupported: TypeAlias = Literal["error", "skip"]


class ConversionError(AnswersError):
    """A conversion met what the target format cannot hold, or input it cannot read."""


@dataclass
class ImageRecord:
    """One image of a dataset: its answers, file name and size, as a conversion needs them.

    `ImageRecord.from_task(task)` reads the name and size from SamaHub's image metadata inputs
    (`image Original file name`, `image Width`, `image Height`) when the project has them.
    """

    answers: Answers
    file_name: str
    width: int | None = None
    height: int | None = None
    id: int | None = None
    task_id: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_task(
        cls,
        task: Task,
        *,
        file_name: str | None = None,
        width: int | None = None,
        height: int | None = None,
    ) -> ImageRecord:
        """Build the record of a task; arguments override what the task's inputs say."""
        data = task.data
        name = file_name or _first_text(
            data, "image Original file name", "name", "image Original url", "url"
        )
        return cls(
            answers=Answers.from_task(task),
            file_name=name or task.id,
            width=width if width is not None else _size(data, "image Width", task.id),
            height=height if height is not None else _size(data, "image Height", task.id),
            task_id=task.id,
        )

    def size(self, fmt: str) -> tuple[int, int]:
        """Return `(width, height)`, or raise naming what to pass."""
        if self.width is None or self.height is None:
            raise ConversionError(
                f"{fmt} needs the image size of {self.file_name!r}: pass width= and height= "
                "(or enable SamaHub's image metadata inputs, 'image Width' and 'image Height')"
            )
        return self.width, self.height


def _first_text(data: Mapping[str, Any], *names: str) -> str | None:
    for name in names:
        value = data.get(name)
        if isinstance(value, str) and value.strip():
            return value.rsplit("/", 1)[-1] if name.endswith(("url", "Original url")) else value
    return None


def _size(data: Mapping[str, Any], name: str, task_id: str) -> int | None:
    value = data.get(name)
    if value is None:
        return None
    try:
        return int(str(value).strip())
    except ValueError:
        raise ConversionError(
            f"task {task_id}: data[{name!r}] is {value!r}, not a whole number of pixels"
        ) from None


class UnsupportedShapes:
    """Collect the shapes a format cannot hold; raise or log them at the end."""

    def __init__(self, fmt: str, mode: Unsupported) -> None:
        if mode not in ("error", "skip"):
            raise ValueError(f"unsupported must be 'error' or 'skip', got {mode!r}")
        self._fmt = fmt
        self._mode = mode
        self._problems: list[EventProblem] = []
        self._types: Counter[str] = Counter()

    def add(self, where: str, shape_type: str, why: str) -> None:
        """Note a shape the format cannot hold."""
        self._types[shape_type] += 1
        self._problems.append(EventProblem(path=where, found=f"a {shape_type}", expected=why))

    def finish(self) -> None:
        """Raise `ConversionError` (mode "error") or log a warning (mode "skip")."""
        if not self._problems:
            return
        total = self._types.total()
        counts = ", ".join(f"{n} {t}" for t, n in sorted(self._types.items()))
        what = f"{total} shape{'s' * (total != 1)} ({counts})"
        if self._mode == "skip":
            logger.warning("%s: left out %s it cannot convert", self._fmt, what)
            return
        raise ConversionError(
            f"{self._fmt}: {what} cannot be converted; pass unsupported='skip' to leave them out:",
            self._problems,
        )


def clean_number(value: float, decimals: int = 4) -> Number:
    """Round a computed coordinate; a whole number becomes an int (`12.0000001` -> 12)."""
    rounded = round(value, decimals)
    if math.isclose(rounded, round(rounded), abs_tol=10**-decimals / 2):
        return round(rounded)
    return rounded


def ring_of(shape_type: str, points: list[Point]) -> list[Point]:
    """The outline of an area shape as a ring (not closed): a rectangle's corners go round.

    SamaHub lists a rectangle's corners as two rows (TL, TR, BL, BR); swapping the last two
    goes round the outline whatever the rows' order, and swapping again gives them back.
    """
    if shape_type in ("rectangle", "slider_rectangle"):
        corners = points[:4]
        return [corners[0], corners[1], corners[3], corners[2]] if len(corners) == 4 else corners
    return list(points)


def points_of_ring(shape_type: str, ring: list[Point]) -> list[Point]:
    """Undo `ring_of`."""
    return ring_of(shape_type, ring)


def shoelace_area(ring: list[Point]) -> float:
    """The area enclosed by a ring of points (absolute, any orientation)."""
    total = 0.0
    for (x1, y1, *_), (x2, y2, *_) in zip(ring, ring[1:] + ring[:1], strict=True):
        total += x1 * y2 - x2 * y1
    return abs(total) / 2
