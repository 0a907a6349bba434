"""Image outputs: vector layers of shapes (boxes, polygons, lines, points...) and raster masks.

`answers[ws] = {"layers": {"vector_tagging": [group, ...], "raster_coding": {...}}}`; a group
holds shapes, a shape is `{"type", "index", "points", "tags"}` (+ `key_points` for 2D cuboids).
Pixel coordinates, y down. Unknown shape types and unknown fields are kept as they are.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import Field

from libnar.answers._base import RECEIVED, AnswerModel, Number, Point, StrictInt
from libnar.answers._values import checked_options, menu_levels

__all__ = [
    "SHAPE_POINT_COUNTS",
    "BBox",
    "Group",
    "ImageOutput",
    "Layers",
    "RasterLayer",
    "Shape",
    "bbox_of",
]

#: The points each documented shape type has (None: any number; `line` needs at least 2).
SHAPE_POINT_COUNTS: dict[str, int | None] = {
    "rectangle": 4,
    "slider_rectangle": 5,
    "polygon": None,
    "line": None,
    "point": 1,
    "arrow": 2,
    "cuboid": 8,
    "keypoint_shape": None,
}

BBox = tuple[Number, Number, Number, Number]


def bbox_of(points: list[Point]) -> BBox:
    """Return `(min x, min y, max x, max y)` of points (their order does not matter)."""
    if not points:
        raise ValueError("a shape without points has no bounding box")
    xs = [point[0] for point in points]
    ys = [point[1] for point in points]
    return min(xs), min(ys), max(xs), max(ys)


class _Tagged(AnswerModel):
    """What image and video shapes share: a type, an index and tags."""

    type: str = Field(description="rectangle, polygon, line, point, arrow, cuboid, ...")
    index: StrictInt | str | None = Field(
        default=None, description="SamaHub's shape number: gaps and repeats occur."
    )
    if TYPE_CHECKING:  # declared by each subclass, so that fields dump in SamaHub's order
        tags: dict[str, Any]

    def menu(self, tag: str) -> list[str]:
        """The levels of a multi-level menu tag (`"brand|model a"` -> `["brand", "model a"]`)."""
        return menu_levels(self.tags[tag])

    def checked(self, tag: str) -> set[str]:
        """The checked options of a checkbox tag."""
        return checked_options(self.tags[tag])


class Shape(_Tagged):
    """One shape of an image's vector layer.

    `points` keep SamaHub's order; a rectangle's 4 corners come top-left, top-right,
    bottom-left, bottom-right in every example, but take boxes from `bbox()`, not the order.
    """

    _emit: ClassVar[tuple[str, ...]] = ("type", "index", "points", "tags")

    points: list[Point] = Field(default_factory=list)
    tags: dict[str, Any] = Field(
        default_factory=dict, description="Tag values by name (strings, or checkboxes)."
    )
    key_points: list[Point] | None = Field(
        default=None, description="2D cuboids only: the 5 horizon, depth and height points."
    )

    def bbox(self) -> BBox:
        """Return `(min x, min y, max x, max y)` over the shape's points."""
        return bbox_of(self.points)

    @classmethod
    def rectangle(
        cls,
        index: int,
        x1: Number,
        y1: Number,
        x2: Number,
        y2: Number,
        tags: dict[str, Any] | None = None,
    ) -> Shape:
        """Build a rectangle from two corners, its points in SamaHub's order (TL, TR, BL, BR)."""
        left, right = min(x1, x2), max(x1, x2)
        top, bottom = min(y1, y2), max(y1, y2)
        points: list[Point] = [[left, top], [right, top], [left, bottom], [right, bottom]]
        return cls(type="rectangle", index=index, points=points, tags=dict(tags or {}))


class Group(AnswerModel):
    """A group of shapes (one shape per group in every SamaHub example)."""

    _emit: ClassVar[tuple[str, ...]] = ("group_type", "shapes")

    group_type: Any = Field(default=None, description="null in every SamaHub example.")
    shapes: list[Shape] = Field(default_factory=list)

    def model_post_init(self, context: Any, /) -> None:
        super().model_post_init(context)
        if context is not RECEIVED:
            self.__pydantic_fields_set__.add("group_type")  # SamaHub writes it, null or not


class RasterLayer(AnswerModel):
    """A semantic-segmentation mask: the URL of a PNG (no colour map is documented)."""

    mask_url: str | None = None


class Layers(AnswerModel):
    """The layers of an image output; either may be missing."""

    vector_tagging: list[Group] | None = None
    raster_coding: RasterLayer | None = None


class ImageOutput(AnswerModel):
    """An image workspace's answer: `{"layers": {...}}`."""

    layers: Layers = Field(default_factory=Layers)

    def model_post_init(self, context: Any, /) -> None:
        super().model_post_init(context)
        if context is not RECEIVED:
            self.__pydantic_fields_set__.add("layers")

    @property
    def groups(self) -> list[Group]:
        """The vector layer's groups (an empty list, and the layer created, if it had none)."""
        if self.layers.vector_tagging is None:
            self.layers.vector_tagging = []
            self.__pydantic_fields_set__.add("layers")
        return self.layers.vector_tagging

    def shapes(self) -> list[Shape]:
        """Every shape of the vector layer, in order."""
        return [shape for group in self.layers.vector_tagging or () for shape in group.shapes]

    def iter_shapes(self) -> Iterator[tuple[Group, Shape]]:
        """Yield each shape with its group (to remove or move it)."""
        for group in self.layers.vector_tagging or ():
            for shape in group.shapes:
                yield group, shape

    def add(self, shape: Shape) -> Shape:
        """Add a shape in a group of its own (as SamaHub does); return it."""
        self.groups.append(Group(shapes=[shape]))
        return shape

    def remove(self, shape: Shape) -> None:
        """Remove a shape; a group left empty is removed too."""
        for group in list(self.groups):
            if any(item is shape for item in group.shapes):
                group.shapes = [item for item in group.shapes if item is not shape]
                if not group.shapes:
                    self.layers.vector_tagging = [g for g in self.groups if g is not group]
                return
        raise ValueError("the shape is not in this output")

    @property
    def mask_url(self) -> str | None:
        """The raster layer's mask URL, if there is one."""
        raster = self.layers.raster_coding
        return None if raster is None else raster.mask_url
