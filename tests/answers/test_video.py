"""Video and 3D shapes: `at(frame)` follows SamaHub's interpolation, case by case."""

from __future__ import annotations

import copy
import math
from typing import Any

import pytest

from libnar.answers import Answers, KeyLocation, VideoShape, cuboid_corners
from libnar.answers._video import Dimensions, Direction, round_half_up

from .examples import CUBOID, FUSED, VIDEO


def track(*keys: dict[str, Any], tags: dict[str, Any] | None = None) -> VideoShape:
    """A point-like shape with these key locations (frame, visibility, points, tags)."""
    return VideoShape.read(
        {"type": "polygon", "index": 1, "tags": tags or {}, "key_locations": list(keys)}
    )


def key(
    frame: int, points: list[list[Any]] | None, visibility: int = 1, **extra: Any
) -> dict[str, Any]:
    found: dict[str, Any] = {"frame_number": frame, "visibility": visibility, **extra}
    if points is not None:
        found["points"] = points
    return found


def test_at_gives_samahubs_stored_locations_for_every_frame_of_the_example() -> None:
    [ball] = Answers.from_dict(VIDEO).video_shapes()
    stored = VIDEO["clip"][0]["shapes"][0]["locations"]

    assert [ball.at(frame).to_location() for frame in range(4)] == stored


# (case, key locations, frame, expected points, expected visibility)
INTERPOLATION_CASES = [
    ("on-a-key-frame", [key(0, [[10, 10]]), key(4, [[30, 10]])], 0, [[10, 10]], 1),
    ("halfway", [key(0, [[10, 10]]), key(4, [[30, 50]])], 2, [[20, 30]], 1),
    ("quarter", [key(0, [[0, 0]]), key(4, [[10, 3]])], 1, [[3, 1]], 1),  # 2.5 -> 3, 0.75 -> 1
    ("half-rounds-up", [key(0, [[10, 10]]), key(2, [[15, 11]])], 1, [[13, 11]], 1),  # 12.5, 10.5
    ("negative-half-rounds-up", [key(0, [[-10, 0]]), key(2, [[-5, 0]])], 1, [[-7, 0]], 1),  # -7.5
    ("reference-200.5", [key(0, [[200, 666]]), key(2, [[201, 667]])], 1, [[201, 667]], 1),
    ("several-points", [key(0, [[0, 0], [10, 0]]), key(10, [[10, 0], [20, 10]])], 5, [[5, 0], [15, 5]], 1),
    ("floats-on-key-frames-kept", [key(0, [[1.25, 2.5]]), key(4, [[9.75, 2.5]])], 4, [[9.75, 2.5]], 1),
    ("floats-between-rounded", [key(0, [[1.25, 2.5]]), key(4, [[9.75, 2.5]])], 2, [[6, 3]], 1),
    ("after-the-last-key-holds", [key(0, [[1, 1]]), key(3, [[4, 4]])], 99, [[4, 4]], 1),
    ("before-the-first-key-hidden", [key(5, [[1, 1]])], 2, None, 0),
    ("a-hidden-key-frame-has-no-points", [key(0, [[1, 1]]), key(3, [[4, 4]], visibility=0)], 3, None, 0),
    ("towards-a-hidden-key-holds", [key(0, [[1, 1]]), key(4, [[9, 9]], visibility=0)], 2, [[1, 1]], 1),
    ("after-a-hidden-key-hidden", [key(0, [[1, 1]], visibility=0), key(4, [[9, 9]])], 2, None, 0),
    ("hidden-then-visible-again", [key(0, [[1, 1]], visibility=0), key(4, [[9, 9]])], 4, [[9, 9]], 1),
    ("point-counts-differ-holds", [key(0, [[0, 0], [1, 1]]), key(4, [[4, 4]])], 2, [[0, 0], [1, 1]], 1),
    ("keys-out-of-order", [key(4, [[30, 10]]), key(0, [[10, 10]])], 1, [[15, 10]], 1),
    ("boolean-visibility", [key(0, [[0, 0]], visibility=True), key(2, [[2, 2]], visibility=True)], 1, [[1, 1]], True),
]  # fmt: skip


@pytest.mark.parametrize(
    ("keys", "frame", "points", "visibility"),
    [pytest.param(*case[1:], id=case[0]) for case in INTERPOLATION_CASES],
)
def test_interpolation_between_key_frames(
    keys: list[dict[str, Any]], frame: int, points: list[list[Any]] | None, visibility: Any
) -> None:
    at = track(*keys).at(frame)

    assert (at.points, at.visibility) == (points, visibility)
    if points is not None:  # ints stay ints, floats stay floats where they were kept
        assert [[type(v) for v in p] for p in at.points or []] == [
            [type(v) for v in p] for p in points
        ]


def test_dynamic_tags_carry_forward_from_the_latest_key_that_had_them() -> None:
    shape = track(
        key(0, [[0, 0]], tags={"state": "walking"}),
        key(2, [[2, 0]]),
        key(4, [[4, 0]], tags={"state": "running"}),
        tags={"kind": "person"},
    )

    rows = [(f, shape.at(f).dynamic_tags, shape.at(f).tags) for f in (0, 1, 3, 4, 6)]
    assert rows == [
        (0, {"state": "walking"}, {"kind": "person", "state": "walking"}),
        (1, {"state": "walking"}, {"kind": "person", "state": "walking"}),
        (3, {"state": "walking"}, {"kind": "person", "state": "walking"}),
        (4, {"state": "running"}, {"kind": "person", "state": "running"}),
        (6, {"state": "running"}, {"kind": "person", "state": "running"}),
    ]


def test_a_frame_knows_whether_it_is_a_key_frame_and_has_a_bbox() -> None:
    shape = track(key(0, [[0, 0], [4, 2]]), key(4, [[8, 8], [12, 10]]))

    assert (shape.at(0).is_key, shape.at(2).is_key) == (True, False)
    assert shape.at(2).bbox() == (4, 4, 8, 6)
    with pytest.raises(ValueError, match="no points in frame 1 \\(hidden\\)"):
        track(key(4, [[1, 1]])).at(1).bbox()
    with pytest.raises(ValueError, match="frame numbers start at 0"):
        shape.at(-1)


def test_round_half_up_matches_javascripts_math_round() -> None:
    cases = {12.5: 13, 200.5: 201, 666.5: 667, -2.5: -2, -2.6: -3, 0.49999: 0, 7.0: 7}
    assert {value: round_half_up(value) for value in cases} == cases


# -- 3D cuboids ----------------------------------------------------------------------------


def test_cuboid_corners_match_the_reference_example() -> None:
    place = CUBOID["Scene"][0]["shapes"][0]["key_locations"][0]

    corners = cuboid_corners(
        place["position_center"],
        Dimensions.read(place["dimensions"]),
        Direction.read(place["direction"]),
    )

    assert corners == place["points"]


def test_a_rotated_cuboid_keeps_its_size_and_centre() -> None:
    corners = cuboid_corners(
        [1.0, 2.0, 3.0],
        Dimensions(length=4.0, width=2.0, height=1.0),
        Direction(roll=0.1, pitch=-0.2, yaw=2.5),
    )
    centre = [sum(c[axis] for c in corners) / 8 for axis in range(3)]
    assert centre == pytest.approx([1.0, 2.0, 3.0], abs=1e-5)
    assert math.dist(corners[0], corners[4]) == pytest.approx(4.0, abs=1e-4)  # length
    assert math.dist(corners[0], corners[2]) == pytest.approx(2.0, abs=1e-4)  # width
    assert math.dist(corners[0], corners[1]) == pytest.approx(1.0, abs=1e-4)  # height


def _cuboid_key(frame: int, x: float, yaw: float, length: float) -> dict[str, Any]:
    dims = {"length": length, "width": 2.0, "height": 1.5}
    direction = {"roll": 0.0, "pitch": 0.0, "yaw": yaw}
    points = cuboid_corners([x, 0.0, 0.75], Dimensions.read(dims), Direction.read(direction))
    return {
        "frame_number": frame,
        "visibility": 1,
        "position_center": [x, 0.0, 0.75],
        "direction": direction,
        "dimensions": dims,
        "points": points,
    }


def test_a_3d_cuboid_between_key_frames_moves_turns_and_grows_as_a_rigid_box() -> None:
    shape = VideoShape.read(
        {
            "type": "cuboid",
            "index": 0,
            "tags": {"object_class": "car"},
            "key_locations": [
                _cuboid_key(0, 0.0, 3.0, 4.0),
                _cuboid_key(10, 10.0, -3.0, 6.0),  # turning through pi, the short way
            ],
        }
    )

    middle = shape.at(5)

    assert middle.position_center == [5.0, 0.0, 0.75]
    assert middle.dimensions == {"length": 5.0, "width": 2.0, "height": 1.5}
    assert middle.direction is not None
    assert abs(middle.direction["yaw"]) == pytest.approx(math.pi)  # not 0: the short way
    expected = cuboid_corners(
        [5.0, 0.0, 0.75],
        Dimensions(length=5.0, width=2.0, height=1.5),
        Direction(roll=0.0, pitch=0.0, yaw=middle.direction["yaw"]),
    )
    assert middle.points == expected
    assert shape.at(10).points == _cuboid_key(10, 10.0, -3.0, 6.0)["points"]  # exact on keys


def test_the_3d_example_expands_to_its_stored_locations() -> None:
    [bus] = Answers.from_dict(CUBOID).video_shapes()
    stored = CUBOID["Scene"][0]["shapes"][0]["locations"]

    assert bus.at(0).to_location() == stored[0]
    # The reference's (made-up) example hides the bus in frame 1 without a key frame there:
    # `at` follows the rule (the last key frame holds), `location` reads what is stored.
    assert bus.at(1).is_visible
    assert bus.location(1) is not None
    assert not bus.location(1).is_visible


def test_each_fused_camera_is_a_video_output_with_its_own_visibility() -> None:
    answers = Answers.from_dict(FUSED)

    visible = {
        name: answers.video(name)[0].shapes[0].at(0).is_visible
        for name in ("left_camera", "right_camera", "center_camera")
    }
    assert visible == {"left_camera": True, "right_camera": False, "center_camera": True}
    assert answers.video("center_camera")[0].shapes[0].locations is None  # abbreviated sample


def test_update_locations_after_adding_a_key_frame() -> None:
    shape = track(key(0, [[0, 0]]), key(4, [[8, 8]]))

    shape.add_key(KeyLocation(frame_number=2, points=[[0, 8]]))
    shape.update_locations(5)

    assert [loc.get("points") for loc in shape.locations] == [
        [[0, 0]],
        [[0, 4]],
        [[0, 8]],
        [[4, 8]],
        [[8, 8]],
    ]
    assert [k.frame_number for k in shape.keyframes] == [0, 2, 4]


def test_the_example_video_dumps_unchanged_after_reading_every_frame() -> None:
    answers = Answers.from_dict(copy.deepcopy(VIDEO))
    for shape in answers.video_shapes():
        [shape.at(frame) for frame in range(10)]

    assert answers.to_dict() == VIDEO
