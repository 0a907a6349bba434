"""Typed answers read every SamaHub format, edit in place, and write back what they read."""

from __future__ import annotations

import copy
import re
from datetime import date
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from libnar.answers import (
    Answers,
    AnswersError,
    Group,
    ImageOutput,
    KeyLocation,
    Shape,
    VideoGroup,
    VideoShape,
    output_kind,
)
from libnar.testing import make_task

from .examples import ALL, ALL_SHAPES, CUBOID_SINGLE, IMAGE, SCALARS, SEMANTIC, VIDEO, as_json

# -- round trips -------------------------------------------------------------------------


@pytest.mark.parametrize("example", ALL.values(), ids=ALL.keys())
def test_unchanged_answers_dump_to_exactly_the_json_received(example: dict[str, Any]) -> None:
    answers = Answers.from_dict(example)

    assert as_json(answers.to_dict()) == as_json(example)  # ints stay ints, floats floats
    assert as_json(Answers.from_json(answers.to_json()).to_dict()) == as_json(example)


def test_reading_answers_never_changes_the_task() -> None:
    task = make_task(answers=copy.deepcopy({**IMAGE, **SCALARS}))
    before = as_json(task.answers)

    answers = Answers.from_task(task)
    answers.shapes()[0].tags["kind"] = "truck"
    answers.set_checked("hazards", {"animal"})
    answers.to_dict()["weather"] = "changed"

    assert as_json(task.answers) == before


def test_a_task_without_answers_gives_empty_answers() -> None:
    answers = Answers.from_task(make_task(state="new"))

    assert (len(answers), answers.to_dict(), answers.shapes()) == (0, {}, [])


@pytest.mark.parametrize(
    ("value", "kind"),
    [
        pytest.param("fog", "text", id="dropdown"),
        pytest.param("a|b", "text", id="menu"),
        pytest.param({"x": "1", "y": "0"}, "checkboxes", id="checkboxes"),
        pytest.param({"layers": {}}, "image", id="image"),
        pytest.param([{"shapes": []}], "video", id="video"),
        pytest.param({}, "other", id="empty-object"),
        pytest.param({"x": "yes"}, "other", id="object-of-text"),
        pytest.param([], "other", id="empty-list"),
        pytest.param([1, 2], "other", id="list-of-numbers"),
        pytest.param(None, "other", id="null"),
        pytest.param(3, "other", id="number"),
    ],
)
def test_an_outputs_kind_shows_in_its_json(value: Any, kind: str) -> None:
    assert output_kind(value) == kind
    assert Answers.from_dict({"out": value}).kind("out") == kind


# -- scalars -------------------------------------------------------------------------------


def test_menus_checkboxes_and_dates_read_as_values() -> None:
    answers = Answers.from_dict(SCALARS)

    assert answers.menu("road") == ["paved", "asphalt", "wet"]
    assert answers.menu("room") == ["house", "bed room"]  # spaces around the bar stripped
    assert answers.checked("hazards") == {"debris", "ice"}
    assert answers.date("shot_on") == date(2031, 4, 9)
    assert answers.text("notes") == "two lanes\nclosed"


def test_setting_menus_and_checkboxes_writes_samahubs_strings() -> None:
    answers = Answers.from_dict(SCALARS)

    answers.set_menu("road", ["paved", "dry"])
    answers.set_checked("hazards", {"animal"})
    answers.set_checked("extras", {"snow"}, options=["rain", "snow"])

    data = answers.to_dict()
    assert data["road"] == "paved|dry"
    assert data["hazards"] == {"debris": "0", "animal": "1", "ice": "0"}  # order kept
    assert data["extras"] == {"rain": "0", "snow": "1"}
    assert data["room"] == "house | bed room"  # untouched values stay as received


@pytest.mark.parametrize(
    ("call", "message"),
    [
        pytest.param(
            lambda a: a.image("weather"),
            "answers['weather'] is a text output ('fog'), not image",
            id="text-as-image",
        ),
        pytest.param(
            lambda a: a.checked("road"),
            "answers['road'] is a text output ('paved|asphalt|wet'), not checkboxes",
            id="text-as-checkboxes",
        ),
        pytest.param(
            lambda a: a.menu("hazards"),
            "answers['hazards'] is a checkboxes output (an object), not text",
            id="checkboxes-as-menu",
        ),
        pytest.param(
            lambda a: a.date("weather"), "a date answer is YYYY-MM-DD, got 'fog'", id="bad-date"
        ),
    ],
)
def test_reading_an_output_as_another_kind_says_what_it_is(call: Any, message: str) -> None:
    with pytest.raises((AnswersError, ValueError)) as raised:
        call(Answers.from_dict(SCALARS))
    assert str(raised.value) == message


def test_a_missing_output_names_the_outputs_there_are() -> None:
    with pytest.raises(KeyError, match=r"no output named 'wether'.*'weather', 'road'"):
        Answers.from_dict(SCALARS).text("wether")


def test_join_menu_refuses_a_level_with_a_bar() -> None:
    answers = Answers()
    with pytest.raises(
        ValueError, match=re.escape("a menu level is a string without '|', got 'a|b'")
    ):
        answers.set_menu("road", ["a|b", "c"])


# -- image shapes --------------------------------------------------------------------------


def test_shapes_have_type_index_points_tags_and_a_bbox() -> None:
    answers = Answers.from_dict(ALL_SHAPES)

    rows = [(s.type, s.index, len(s.points), s.bbox()) for s in answers.shapes()]

    assert rows == [
        ("rectangle", 1, 4, (1315, 1667.0, 1500, 1823)),
        ("slider_rectangle", 2, 5, (10, 10, 50, 40)),
        ("polygon", 3, 5, (0, 0, 40, 45.5)),
        ("line", 4, 3, (0, 90, 100, 100)),
        ("point", 7, 1, (12, 34, 12, 34)),
        ("arrow", 9, 2, (5, 5, 40.5, 12)),
        ("cuboid", 10, 8, (100, 115, 180, 210)),
        ("keypoint_shape", 12, 3, (1, 1, 3, 2)),
        ("rect", 13, 2, (0, 0, 5, 5)),  # an unknown type is kept
    ]
    cuboid = answers.shapes()[6]
    assert cuboid.key_points is not None
    assert len(cuboid.key_points) == 5
    assert answers.shapes()[8].model_extra == {"legacy": True}


def test_a_rectangles_bbox_does_not_depend_on_its_corner_order() -> None:
    # The reference's text and its examples disagree on the order of the corners.
    written = Shape(type="rectangle", points=[[1, 2], [1, 9], [7, 2], [7, 9]])
    example = Shape(type="rectangle", points=[[1, 2], [7, 2], [1, 9], [7, 9]])

    assert written.bbox() == example.bbox() == (1, 2, 7, 9)


def test_shape_tags_read_menus_and_checkboxes() -> None:
    [van, _] = Answers.from_dict(IMAGE).shapes()

    assert van.menu("make") == ["brand", "model a"]
    assert van.checked("sides") == {"left"}


def test_edited_shapes_write_back_with_every_other_field_unchanged() -> None:
    answers = Answers.from_dict(copy.deepcopy(IMAGE))
    photo = answers.image("photo")
    [van, arrow] = photo.shapes()

    van.tags["kind"] = "truck"
    van.points[0] = [11, 21]
    photo.remove(arrow)
    added = photo.add(Shape.rectangle(5, 40, 30, 4, 3, tags={"kind": "sign"}))

    expected = copy.deepcopy(IMAGE)
    groups = expected["photo"]["layers"]["vector_tagging"]
    groups[0]["shapes"][0]["tags"]["kind"] = "truck"
    groups[0]["shapes"][0]["points"][0] = [11, 21]
    groups[1] = {
        "group_type": None,
        "shapes": [
            {
                "type": "rectangle",
                "index": 5,
                "points": [[4, 3], [40, 3], [4, 30], [40, 30]],
                "tags": {"kind": "sign"},
            }
        ],
    }
    assert as_json(answers.to_dict()) == as_json(expected)
    assert added.bbox() == (4, 3, 40, 30)


def test_a_default_filled_in_place_is_written_back() -> None:
    # A shape received without tags: filling the default dict must not be lost on dumping.
    answers = Answers.from_dict({"img": {"layers": {"vector_tagging": [{"shapes": [
        {"type": "point", "points": [[1, 2]]}
    ]}]}}})  # fmt: skip
    answers.shapes()[0].tags["kind"] = "pole"

    shape = answers.to_dict()["img"]["layers"]["vector_tagging"][0]["shapes"][0]
    assert shape == {"type": "point", "points": [[1, 2]], "tags": {"kind": "pole"}}


def test_an_image_output_built_in_code_has_every_field_samahub_expects() -> None:
    answers = Answers()
    answers["photo"] = ImageOutput()
    answers.image("photo").add(Shape(type="point", index=1, points=[[3, 4]]))

    assert answers.to_dict() == {
        "photo": {
            "layers": {
                "vector_tagging": [
                    {
                        "group_type": None,
                        "shapes": [{"type": "point", "index": 1, "points": [[3, 4]], "tags": {}}],
                    }
                ]
            }
        }
    }


def test_a_semantic_mask_url_reads_from_the_raster_layer() -> None:
    answers = Answers.from_dict(SEMANTIC)

    assert answers.image("scene").mask_url == "https://assets.sama.test/outputs/scene/4b9c1f2e.png"
    assert answers.shapes() == []


@pytest.mark.parametrize(
    ("answers", "lines"),
    [
        pytest.param(
            {"img": {"layers": {"vector_tagging": [{"shapes": [{"type": "point", "points": "x"}]}]}}},
            ["answers.img.layers.vector_tagging[0].shapes[0].points: found 'x'; expected a valid list"],
            id="points-not-a-list",
        ),
        pytest.param(
            {"img": {"layers": {"vector_tagging": [{"shapes": [{"type": "point", "points": [["1", 2]]}]}]}}},
            ["answers.img.layers.vector_tagging[0].shapes[0].points[0][0]: found '1'; expected a number"],
            id="coordinate-as-text",
        ),
        pytest.param(
            {"img": {"layers": {"vector_tagging": [{"shapes": [{"points": []}]}]}}},
            ["answers.img.layers.vector_tagging[0].shapes[0].type: found nothing; expected a value (this field is required)"],
            id="shape-without-type",
        ),
    ],
)  # fmt: skip
def test_answers_that_break_samahubs_formats_are_refused_one_line_per_problem(
    answers: dict[str, Any], lines: list[str]
) -> None:
    with pytest.raises(AnswersError) as raised:
        Answers.from_dict(answers)

    assert [str(p) for p in raised.value.problems] == lines
    assert str(raised.value).startswith("the answers do not follow SamaHub's formats")


# -- video -------------------------------------------------------------------------------


def test_video_shapes_are_typed_with_their_key_locations() -> None:
    answers = Answers.from_dict(VIDEO)
    [group] = answers.video("clip")
    [ball] = answers.video_shapes()

    assert isinstance(group, VideoGroup)
    assert group.frame_count == 4
    assert isinstance(ball, VideoShape)
    assert [(k.frame_number, k.is_visible, k.tags) for k in ball.keyframes] == [
        (0, True, {"state": "rolling"}),
        (2, True, None),
        (3, False, {"state": "stopped"}),
    ]
    stored = ball.location(1)
    assert stored is not None
    assert stored.points == [[13, 10]]
    assert ball.location(9) is None


def test_single_object_key_locations_are_read_and_written_back_as_such() -> None:
    answers = Answers.from_dict(CUBOID_SINGLE)
    [bus] = answers.video_shapes()

    assert [k.frame_number for k in bus.keyframes] == [0]
    assert isinstance(answers.to_dict()["Scene"][0]["shapes"][0]["key_locations"], dict)


def test_edited_key_locations_rewrite_the_locations_on_request() -> None:
    answers = Answers.from_dict(copy.deepcopy(VIDEO))
    [group] = answers.video("clip")
    [ball] = group.shapes

    ball.add_key(KeyLocation(frame_number=2, points=[[20, 30]]))
    group.update_locations()

    locations = answers.to_dict()["clip"][0]["shapes"][0]["locations"]
    assert locations == [
        {"visibility": 1, "points": [[10, 10]], "tags": {"state": "rolling"}},
        {"visibility": 1, "points": [[15, 20]], "tags": {"state": "rolling"}},
        {"visibility": 1, "points": [[20, 30]], "tags": {"state": "rolling"}},
        {"visibility": 0},
    ]
    keys = answers.to_dict()["clip"][0]["shapes"][0]["key_locations"]
    assert keys[1] == {"frame_number": 2, "visibility": 1, "points": [[20, 30]]}


# -- setting outputs ---------------------------------------------------------------------


def test_outputs_set_from_json_are_typed_like_read_ones() -> None:
    answers = Answers()
    answers["photo"] = IMAGE["photo"]
    answers["clip"] = VIDEO["clip"]
    answers["weather"] = "rain"

    assert (answers.kind("photo"), answers.kind("clip"), answers.kind("weather")) == (
        "image",
        "video",
        "text",
    )
    assert len(answers.shapes()) == 2
    del answers["weather"]
    assert "weather" not in answers
    assert list(answers) == ["photo", "clip"]


def test_a_bad_output_set_names_the_output_and_the_problem() -> None:
    answers = Answers()
    with pytest.raises(AnswersError) as raised:
        answers["photo"] = {"layers": {"vector_tagging": [{"shapes": [{"type": 3}]}]}}
    assert str(raised.value).startswith("answers['photo'] cannot be set to this value:")
    assert str(raised.value.problems[0]).startswith(
        "answers.photo.layers.vector_tagging[0].shapes[0].type: found 3"
    )


def test_answers_compare_by_their_json() -> None:
    assert Answers.from_dict(IMAGE) == Answers.from_dict(copy.deepcopy(IMAGE))
    assert Answers.from_dict(IMAGE) != Answers.from_dict(SCALARS)
    assert repr(Answers.from_dict(SEMANTIC)) == "Answers({'scene': image, 'image quality': text})"


def test_groups_and_shapes_can_be_built_and_dumped_alone() -> None:
    group = Group(shapes=[Shape.rectangle(1, 0, 0, 2, 2)])

    assert group.to_dict() == {
        "group_type": None,
        "shapes": [
            {
                "type": "rectangle",
                "index": 1,
                "points": [[0, 0], [2, 0], [0, 2], [2, 2]],
                "tags": {},
            }
        ],
    }


# -- property: parse then dump is the identity ---------------------------------------------

_numbers = st.one_of(
    st.integers(-10_000, 10_000),
    st.floats(-1e4, 1e4, allow_nan=False, allow_infinity=False),
)
_names = st.text(st.characters(codec="utf-8", exclude_characters="\x00"), min_size=1, max_size=8)
_unknown_keys = _names.map(lambda name: "x_" + name)
_scalars = st.one_of(st.none(), st.booleans(), _numbers, st.text(max_size=8))
_json = st.recursive(
    _scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_names, inner, max_size=3),
    max_leaves=6,
)
_checkboxes = st.dictionaries(_names, st.sampled_from(["0", "1"]), min_size=1, max_size=4)
_tags = st.dictionaries(_names, st.one_of(st.text(max_size=8), _checkboxes), max_size=3)
_points = st.lists(st.lists(_numbers, min_size=2, max_size=3), max_size=6)
_extra = st.dictionaries(_unknown_keys, _json, max_size=2)
_shape_types = st.sampled_from(
    ["rectangle", "polygon", "line", "point", "arrow", "cuboid", "mystery"]
)


def _with(extra: dict[str, Any], fields: dict[str, Any]) -> dict[str, Any]:
    return {**fields, **extra}


_shapes = st.builds(
    lambda t, i, p, tags, extra, drop: {
        k: v
        for k, v in _with(extra, {"type": t, "index": i, "points": p, "tags": tags}).items()
        if k not in drop
    },
    _shape_types,
    st.integers(0, 50),
    _points,
    _tags,
    _extra,
    st.sets(st.sampled_from(["index", "tags"])),
)
_groups = st.builds(
    lambda shapes, extra: _with(extra, {"group_type": None, "shapes": shapes}),
    st.lists(_shapes, max_size=3),
    _extra,
)
_image = st.builds(
    lambda groups, extra, outer: _with(outer, {"layers": _with(extra, {"vector_tagging": groups})}),
    st.lists(_groups, max_size=3),
    _extra,
    _extra,
)
_key_locations = st.builds(
    lambda f, v, p, tags, extra: _with(
        extra,
        {
            "frame_number": f,
            "visibility": v,
            "points": p,
            **({} if tags is None else {"tags": tags}),
        },
    ),
    st.integers(0, 30),
    st.sampled_from([0, 1, True, False]),
    _points,
    st.none() | _tags,
    _extra,
)
_video_shapes = st.builds(
    lambda t, i, tags, keys, locations, extra: _with(
        extra,
        {"type": t, "index": i, "tags": tags, "key_locations": keys, "locations": locations},
    ),
    _shape_types,
    st.integers(0, 50),
    _tags,
    st.lists(_key_locations, max_size=3) | _key_locations,
    st.lists(st.dictionaries(st.sampled_from(["visibility", "points", "tags"]), _json), max_size=3),
    _extra,
)
_video = st.lists(
    st.builds(
        lambda shapes, count, extra: _with(
            extra, {"group_type": None, "frame_count": count, "shapes": shapes}
        ),
        st.lists(_video_shapes, max_size=2),
        st.integers(0, 30),
        _extra,
    ),
    min_size=1,
    max_size=2,
)
_outputs = st.one_of(st.text(max_size=10), _checkboxes, _image, _video, _scalars)
_answers = st.dictionaries(_names, _outputs, max_size=4)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_answers)
def test_any_answers_with_unknown_fields_dump_to_exactly_what_was_read(
    answers: dict[str, Any],
) -> None:
    parsed = Answers.from_dict(answers)

    assert as_json(parsed.to_dict()) == as_json(answers)
    assert as_json(Answers.from_json(as_json(answers)).to_dict()) == as_json(answers)
