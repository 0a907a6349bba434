"""Video and 3D outputs: shapes tracked over frames by key locations, and their interpolation.

`answers[ws]` is a list of groups `{"shapes", "group_type", "frame_count"}`; a shape has static
`tags`, `key_locations` (where an annotator placed it: `frame_number`, `visibility`, `points`,
dynamic `tags`; 3D cuboids add `position_center`, `direction`, `dimensions`) and `locations`
(SamaHub's expansion: one entry per frame, derived from the key locations).

`locations` is most of a video answer's bytes and is derived data, so it is kept as received
(plain JSON) instead of parsed into models: read any frame with `shape.at(frame)`, a stored
entry with `shape.location(frame)`, and after editing key locations call
`shape.update_locations(frame_count)` (or `group.update_locations()`) to rewrite it.

`at(frame)` follows `reference/answers.md` (checked against SamaHub's example), and where the
reference says "unknown" libnar chooses, as noted:

- a key frame: its values, copied exactly (floats kept); a hidden key frame has no points;
- between two visible key frames with as many points: each coordinate linear in the frame
  number, rounded half up to an int (12.5 -> 13, as JavaScript's `Math.round`);
- after the last key frame: the last key frame's values hold;
- dynamic `tags`: those of the latest key location that had `tags`, carried forward;
- (libnar's choice) before the first key frame: hidden, no points; after a hidden key frame:
  hidden until the next key frame; towards a hidden key frame, or between key frames whose
  point counts differ: the earlier key frame's points hold;
- (libnar's choice) 3D cuboids: centre and dimensions linear (not rounded), each angle along
  the shorter way round, and the 8 corners rebuilt from them (rounded to 5 decimals, as
  SamaHub's examples are) in the reference's corner order.
"""

from __future__ import annotations

import math
from bisect import bisect_right
from dataclasses import dataclass
from typing import Any, ClassVar

import pydantic_core
from pydantic import Field

from libnar.answers._base import RECEIVED, AnswerModel, Number, Point, StrictInt
from libnar.answers._shapes import BBox, _Tagged, bbox_of

__all__ = [
    "Dimensions",
    "Direction",
    "Frame",
    "KeyLocation",
    "Location",
    "VideoGroup",
    "VideoShape",
    "cuboid_corners",
    "is_visible",
    "round_half_up",
]

#: Corner signs (length, width, height) in SamaHub's order: the +length face first, each
#: vertical edge bottom then top (`reference/answers.md`).
_CORNER_SIGNS = (
    (1, 1, -1),
    (1, 1, 1),
    (1, -1, -1),
    (1, -1, 1),
    (-1, 1, -1),
    (-1, 1, 1),
    (-1, -1, -1),
    (-1, -1, 1),
)
_CORNER_DECIMALS = 5


def is_visible(visibility: Any) -> bool:
    """Say whether a `visibility` value means visible (SamaHub sends 1/0; true/false accepted)."""
    return visibility not in (None, 0, False, "0", "false")


def round_half_up(value: float) -> int:
    """Round to the nearest int, halves up (12.5 -> 13, -2.5 -> -2), as JavaScript's Math.round."""
    return math.floor(value + 0.5)


class Direction(AnswerModel):
    """A cuboid's Euler angles about its centre (radians, within +-pi in SamaHub's examples)."""

    roll: Number
    pitch: Number
    yaw: Number


class Dimensions(AnswerModel):
    """A cuboid's size along its own axes: length (x), width (y), height (z)."""

    length: Number
    width: Number
    height: Number


class Location(AnswerModel):
    """One frame of a shape as SamaHub stores it in `locations` (no `frame_number`)."""

    visibility: Any = None
    points: list[Point] | None = None
    tags: dict[str, Any] | None = None
    key_points: list[Point] | None = None
    position_center: list[Number] | None = None
    direction: Direction | None = None
    dimensions: Dimensions | None = None

    @property
    def is_visible(self) -> bool:
        """Whether the shape is visible in this frame."""
        return is_visible(self.visibility)


class KeyLocation(AnswerModel):
    """Where an annotator placed a shape in one frame (`key_locations`)."""

    _emit: ClassVar[tuple[str, ...]] = (
        "frame_number",
        "visibility",
        "points",
        "position_center",
        "direction",
        "dimensions",
    )

    frame_number: StrictInt = Field(description="0-based index into the frame list.")
    visibility: Any = 1
    points: list[Point] | None = None
    tags: dict[str, Any] | None = Field(
        default=None, description="Dynamic tags, present only where they changed."
    )
    key_points: list[Point] | None = None
    position_center: list[Number] | None = None
    direction: Direction | None = None
    dimensions: Dimensions | None = None
    source: dict[str, Any] | None = Field(
        default=None, description='{"source_id": "pre_annotation"} for pre-annotations.'
    )

    @property
    def is_visible(self) -> bool:
        """Whether the shape is visible in this key frame."""
        return is_visible(self.visibility)

    @property
    def is_3d(self) -> bool:
        """Whether this key location places a 3D cuboid (centre, direction and dimensions)."""
        return (
            self.position_center is not None
            and self.direction is not None
            and self.dimensions is not None
        )


@dataclass(frozen=True)
class Frame:
    """A shape in one frame: what `VideoShape.at(frame)` returns.

    `tags` are the shape's static tags with the frame's dynamic tags over them;
    `dynamic_tags` alone are what SamaHub stores in `locations`.
    """

    frame: int
    visibility: Any
    points: list[Point] | None
    tags: dict[str, Any]
    dynamic_tags: dict[str, Any]
    is_key: bool
    position_center: list[Number] | None = None
    direction: dict[str, Number] | None = None
    dimensions: dict[str, Number] | None = None

    @property
    def is_visible(self) -> bool:
        """Whether the shape is visible in this frame."""
        return is_visible(self.visibility)

    def bbox(self) -> BBox:
        """Return `(min x, min y, max x, max y)` over the frame's points."""
        if self.points is None:
            raise ValueError(f"the shape has no points in frame {self.frame} (hidden)")
        return bbox_of(self.points)

    def to_location(self) -> dict[str, Any]:
        """The frame as a SamaHub `locations` entry: `{"visibility": 0}` when hidden."""
        if not self.is_visible or self.points is None:
            return {"visibility": self.visibility}
        location: dict[str, Any] = {
            "visibility": self.visibility,
            "points": [list(point) for point in self.points],
            "tags": dict(self.dynamic_tags),
        }
        for name in ("position_center", "direction", "dimensions"):
            value = getattr(self, name)
            if value is not None:
                location[name] = value
        return location


def cuboid_corners(
    center: list[Number], dimensions: Dimensions, direction: Direction
) -> list[Point]:
    """The 8 corners of a 3D cuboid, in SamaHub's order, rounded to 5 decimals.

    corner = centre + Rz(yaw) Ry(pitch) Rx(roll) (sx L/2, sy W/2, sz H/2).
    """
    cr, sr = math.cos(direction.roll), math.sin(direction.roll)
    cp, sp = math.cos(direction.pitch), math.sin(direction.pitch)
    cy, sy = math.cos(direction.yaw), math.sin(direction.yaw)
    rotation = (
        (cy * cp, cy * sp * sr - sy * cr, cy * sp * cr + sy * sr),
        (sy * cp, sy * sp * sr + cy * cr, sy * sp * cr - cy * sr),
        (-sp, cp * sr, cp * cr),
    )
    half = (dimensions.length / 2, dimensions.width / 2, dimensions.height / 2)
    corners: list[Point] = []
    for signs in _CORNER_SIGNS:
        local = [sign * size for sign, size in zip(signs, half, strict=True)]
        corners.append(
            [
                round(center[axis] + sum(r * v for r, v in zip(row, local, strict=True)), 5)
                for axis, row in enumerate(rotation)
            ]
        )
    return corners


def _angle_between(start: float, end: float, share: float) -> float:
    """Interpolate an angle along the shorter way round, kept within -pi..pi."""
    delta = (end - start + math.pi) % (2 * math.pi) - math.pi
    angle = start + delta * share
    return (angle + math.pi) % (2 * math.pi) - math.pi


def _put_locations(data: dict[str, Any], shape: VideoShape) -> None:
    """Add a shape's `locations` to its dumped data, copied through JSON text.

    pydantic copies a plain JSON field value by value, three times slower than writing it
    as JSON and reading it back (what a 2 MB video answer's `to_dict()` spends its time on).
    """
    if "locations" in shape.model_fields_set:
        data["locations"] = pydantic_core.from_json(pydantic_core.to_json(shape.locations))


def _linear(start: Number, end: Number, share: float) -> float:
    return start + (end - start) * share


class VideoShape(_Tagged):
    """A shape tracked over a video's (or a 3D scene's) frames."""

    _emit: ClassVar[tuple[str, ...]] = ("type", "index", "tags", "key_locations")

    tags: dict[str, Any] = Field(
        default_factory=dict, description="Static tag values by name (the same in every frame)."
    )
    key_locations: list[KeyLocation] | KeyLocation = Field(default_factory=list)
    locations: Any = Field(
        default=None,
        description="SamaHub's per-frame expansion, kept as received (list position = frame).",
    )

    @property
    def keyframes(self) -> list[KeyLocation]:
        """The key locations as a list (SamaHub's 3D files may send a single object)."""
        keys = self.key_locations
        return [keys] if isinstance(keys, KeyLocation) else keys

    def _sorted_keys(self) -> list[KeyLocation]:
        return sorted(self.keyframes, key=lambda key: key.frame_number)

    def at(self, frame: int) -> Frame:
        """The shape in `frame`: interpolated between key frames (see the module's rules)."""
        if frame < 0:
            raise ValueError(f"frame numbers start at 0, got {frame}")
        keys = self._sorted_keys()
        numbers = [key.frame_number for key in keys]
        position = bisect_right(numbers, frame)  # keys[position - 1] is at or before `frame`
        dynamic: dict[str, Any] = {}
        for key in keys[:position]:
            if key.tags is not None:
                dynamic = key.tags
        tags = {**self.tags, **dynamic}
        if position == 0:  # before the first key frame
            return Frame(frame, 0, None, tags, dict(dynamic), is_key=False)
        before = keys[position - 1]
        after = keys[position] if position < len(keys) else None
        is_key = before.frame_number == frame
        if not before.is_visible or before.points is None:
            return Frame(frame, before.visibility, None, tags, dict(dynamic), is_key=is_key)
        if is_key or after is None or not self._can_interpolate(before, after):
            return self._held(frame, before, tags, dynamic, is_key)
        share = (frame - before.frame_number) / (after.frame_number - before.frame_number)
        if before.is_3d and after.is_3d:
            return self._between_3d(frame, before, after, share, tags, dynamic)
        assert before.points is not None
        assert after.points is not None
        points: list[Point] = [
            [round_half_up(_linear(a, b, share)) for a, b in zip(p, q, strict=True)]
            for p, q in zip(before.points, after.points, strict=True)
        ]
        return Frame(frame, before.visibility, points, tags, dict(dynamic), is_key=False)

    @staticmethod
    def _can_interpolate(before: KeyLocation, after: KeyLocation) -> bool:
        if not after.is_visible or after.points is None or before.points is None:
            return False
        if len(before.points) != len(after.points):
            return False
        return all(len(p) == len(q) for p, q in zip(before.points, after.points, strict=True))

    @staticmethod
    def _held(
        frame: int,
        key: KeyLocation,
        tags: dict[str, Any],
        dynamic: dict[str, Any],
        is_key: bool,
    ) -> Frame:
        assert key.points is not None
        return Frame(
            frame,
            key.visibility,
            [list(point) for point in key.points],
            tags,
            dict(dynamic),
            is_key=is_key,
            position_center=None if key.position_center is None else list(key.position_center),
            direction=None if key.direction is None else key.direction.to_dict(),
            dimensions=None if key.dimensions is None else key.dimensions.to_dict(),
        )

    @staticmethod
    def _between_3d(
        frame: int,
        before: KeyLocation,
        after: KeyLocation,
        share: float,
        tags: dict[str, Any],
        dynamic: dict[str, Any],
    ) -> Frame:
        assert before.position_center is not None
        assert after.position_center is not None
        assert before.direction is not None
        assert after.direction is not None
        assert before.dimensions is not None
        assert after.dimensions is not None
        center = [
            _linear(a, b, share)
            for a, b in zip(before.position_center, after.position_center, strict=True)
        ]
        direction = Direction(
            roll=_angle_between(before.direction.roll, after.direction.roll, share),
            pitch=_angle_between(before.direction.pitch, after.direction.pitch, share),
            yaw=_angle_between(before.direction.yaw, after.direction.yaw, share),
        )
        dimensions = Dimensions(
            length=_linear(before.dimensions.length, after.dimensions.length, share),
            width=_linear(before.dimensions.width, after.dimensions.width, share),
            height=_linear(before.dimensions.height, after.dimensions.height, share),
        )
        return Frame(
            frame,
            before.visibility,
            cuboid_corners(center, dimensions, direction),
            tags,
            dict(dynamic),
            is_key=False,
            position_center=center,
            direction=direction.to_dict(),
            dimensions=dimensions.to_dict(),
        )

    def location(self, frame: int) -> Location | None:
        """SamaHub's stored `locations` entry for `frame`, typed; None when there is none."""
        stored = self.locations
        if isinstance(stored, dict):
            stored = [stored]
        if not isinstance(stored, list) or not 0 <= frame < len(stored):
            return None
        return Location.read(stored[frame])

    def to_dict(self) -> dict[str, Any]:
        """Return the shape as JSON-ready data (as SamaHub would send it)."""
        data = self.model_dump(mode="json", exclude={"locations"})
        _put_locations(data, self)
        return data

    def update_locations(self, frame_count: int) -> None:
        """Rewrite `locations` from the key locations, one entry per frame (after edits)."""
        if frame_count < 0:
            raise ValueError(f"frame_count must be 0 or more, got {frame_count}")
        self.locations = [self.at(frame).to_location() for frame in range(frame_count)]

    def add_key(self, key: KeyLocation) -> KeyLocation:
        """Add (or replace) the key location of `key.frame_number`; return it."""
        kept = [item for item in self.keyframes if item.frame_number != key.frame_number]
        self.key_locations = sorted([*kept, key], key=lambda item: item.frame_number)
        return key


class VideoGroup(AnswerModel):
    """A group of tracked shapes, with the number of frames they are tracked over."""

    _emit: ClassVar[tuple[str, ...]] = ("group_type", "frame_count", "shapes")

    group_type: Any = None
    frame_count: StrictInt | None = None
    shapes: list[VideoShape] = Field(default_factory=list)

    def model_post_init(self, context: Any, /) -> None:
        super().model_post_init(context)
        if context is not RECEIVED:
            self.__pydantic_fields_set__.add("group_type")

    def to_dict(self) -> dict[str, Any]:
        """Return the group as JSON-ready data (as SamaHub would send it)."""
        data = self.model_dump(mode="json", exclude={"shapes": {"__all__": {"locations"}}})
        for shape_data, shape in zip(data.get("shapes", ()), self.shapes, strict=True):
            _put_locations(shape_data, shape)
        return data

    def update_locations(self) -> None:
        """Rewrite every shape's `locations` for `frame_count` frames (after edits)."""
        if self.frame_count is None:
            raise ValueError("the group has no frame_count: call shape.update_locations(n)")
        for shape in self.shapes:
            shape.update_locations(self.frame_count)
