"""COCO, YOLO and GeoJSON conversions, checked with the formats' own tools, shape by shape."""

from __future__ import annotations

import copy
import json
import logging
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import shapely
import shapely.geometry
from hypothesis import given, settings
from hypothesis import strategies as st
from pycocotools import mask as coco_mask
from pycocotools.coco import COCO

from libnar.answers import (
    Answers,
    ConversionError,
    ImageRecord,
    Shape,
    from_coco,
    from_geojson,
    from_shapely,
    from_yolo,
    to_coco,
    to_geojson,
    to_shapely,
    to_yolo,
)
from libnar.answers._convert import shoelace_area
from libnar.testing import box, make_task

from .examples import ALL_SHAPES, as_json

# pycocotools 2.0 calls numpy 2 in a way numpy deprecates: its problem, not the dataset's.
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:pycocotools")


def shapes_group(*shapes: dict[str, Any]) -> dict[str, Any]:
    return {"layers": {"vector_tagging": [{"group_type": None, "shapes": [s]} for s in shapes]}}


def rect(index: int, x1: int, y1: int, x2: int, y2: int, label: str) -> dict[str, Any]:
    return box(index, (x1, y1), (x2, y2), label=label)["shapes"][0]


def poly(index: int, points: list[list[Any]], label: str) -> dict[str, Any]:
    return {"type": "polygon", "index": index, "points": points, "tags": {"label": label}}


def image_task(name: str, width: int, height: int, *shapes: dict[str, Any]) -> Any:
    return make_task(
        data={
            "url": f"https://assets.sama.test/{name}",
            "image Original file name": name,
            "image Width": str(width),
            "image Height": str(height),
        },
        answers={"image": shapes_group(*shapes), "weather": "clear"},
    )


TASKS = [
    image_task(
        "a.jpg",
        640,
        480,
        rect(1, 10, 20, 60, 95, "car"),
        poly(2, [[100, 100], [200, 110], [180, 220], [90, 200]], "pedestrian"),
        rect(3, 300, 40, 420, 160, "car"),
    ),
    image_task(
        "b.jpg",
        320,
        240,
        poly(1, [[5.5, 5], [60, 8.25], [30, 70]], "sign"),
        rect(4, 0, 0, 320, 240, "background"),
    ),
]


# -- COCO --------------------------------------------------------------------------------


@pytest.fixture
def coco_file(tmp_path: Path) -> tuple[dict[str, Any], COCO]:
    dataset = to_coco(TASKS)
    path = tmp_path / "instances.json"
    path.write_text(json.dumps(dataset))
    return dataset, COCO(str(path))  # pycocotools reads it as any COCO file


def test_pycocotools_reads_the_dataset_with_every_image_and_category(
    coco_file: tuple[dict[str, Any], COCO],
) -> None:
    _, coco = coco_file

    assert [(i["file_name"], i["width"], i["height"]) for i in coco.loadImgs(coco.getImgIds())] == [
        ("a.jpg", 640, 480),
        ("b.jpg", 320, 240),
    ]
    names = {c["id"]: c["name"] for c in coco.loadCats(coco.getCatIds())}
    assert names == {1: "background", 2: "car", 3: "pedestrian", 4: "sign"}
    assert len(coco.getAnnIds(imgIds=[1], catIds=[2])) == 2  # the two cars of a.jpg


def test_each_coco_annotation_matches_its_shape_when_rasterised(
    coco_file: tuple[dict[str, Any], COCO],
) -> None:
    _, coco = coco_file
    shapes = [(t, s) for t in TASKS for s in Answers.from_task(t).shapes()]
    anns = coco.loadAnns(coco.getAnnIds())
    assert len(anns) == len(shapes)

    for ann, (task, shape) in zip(anns, shapes, strict=True):
        x1, y1, x2, y2 = shape.bbox()
        image = coco.loadImgs([ann["image_id"]])[0]
        assert image["sama_task_id"] == task.id
        assert coco.loadCats([ann["category_id"]])[0]["name"] == shape.tags["label"]
        assert ann["bbox"] == pytest.approx([x1, y1, x2 - x1, y2 - y1])
        # pycocotools' own geometry: the polygon's box and area as RLE, and its pixel mask.
        rle = coco_mask.merge(
            coco_mask.frPyObjects(ann["segmentation"], image["height"], image["width"])
        )
        assert list(coco_mask.toBbox(rle)) == pytest.approx(ann["bbox"], abs=1.0)
        assert coco_mask.area(rle) == pytest.approx(ann["area"], rel=0.05, abs=60)
        pixels = coco.annToMask(ann)
        ys, xs = np.nonzero(pixels)
        assert (xs.min(), ys.min()) == pytest.approx((x1, y1), abs=1)
        assert (xs.max() + 1, ys.max() + 1) == pytest.approx((x2, y2), abs=1)


def test_coco_areas_are_exact_for_boxes_and_polygons() -> None:
    dataset = to_coco(TASKS)

    areas = [ann["area"] for ann in dataset["annotations"]]
    pedestrian = [[100, 100], [200, 110], [180, 220], [90, 200]]
    assert areas == [
        50 * 75,
        shoelace_area(pedestrian),
        120 * 120,
        shoelace_area([[5.5, 5], [60, 8.25], [30, 70]]),
        320 * 240,
    ]


def test_coco_converts_back_to_the_same_shapes() -> None:
    records = from_coco(to_coco(TASKS))

    for record, task in zip(records, TASKS, strict=True):
        expected = {"image": task.answers["image"]}  # the text output is not COCO's to hold
        assert as_json(record.answers.to_dict()) == as_json(expected)
        assert (record.task_id, record.width, record.file_name) == (
            task.id,
            record.width,
            record.file_name,
        )


def test_categories_can_be_fixed_in_order() -> None:
    dataset = to_coco(TASKS, categories=["car", "pedestrian", "sign", "background"])

    assert [c["name"] for c in dataset["categories"]] == ["car", "pedestrian", "sign", "background"]
    assert dataset["annotations"][0]["category_id"] == 1


def test_shapes_coco_cannot_hold_are_refused_one_line_each() -> None:
    record = ImageRecord(Answers.from_dict(ALL_SHAPES), "street.jpg", 2000, 2000)

    with pytest.raises(ConversionError) as raised:
        to_coco([record])

    message = str(raised.value)
    assert message.splitlines()[0] == (
        "COCO instances: 9 shapes (1 arrow, 1 cuboid, 1 keypoint_shape, 1 line, 1 point,"
        " 1 polygon, 1 rect, 1 rectangle, 1 slider_rectangle) cannot be converted;"
        " pass unsupported='skip' to leave them out:"
    )
    lines = [str(p) for p in raised.value.problems]
    assert lines[:4] == [
        "street.jpg: answers.street shape 0: found a rectangle; expected a category (tags['label'])",
        "street.jpg: answers.street shape 1: found a slider_rectangle; expected a category (tags['label'])",
        "street.jpg: answers.street shape 2: found a polygon; expected a category (tags['label'])",
        "street.jpg: answers.street shape 3: found a line; expected a rectangle or a polygon",
    ]


def test_skipping_unsupported_shapes_logs_what_was_left_out(
    caplog: pytest.LogCaptureFixture,
) -> None:
    record = ImageRecord(Answers.from_dict(ALL_SHAPES), "street.jpg", 2000, 2000)

    with caplog.at_level(logging.WARNING, logger="libnar.answers"):
        dataset = to_coco(
            [record], category=lambda shape: shape.tags.get("kind") or "thing", unsupported="skip"
        )

    assert [a["sama"]["type"] for a in dataset["annotations"]] == [
        "rectangle",
        "slider_rectangle",
        "polygon",
    ]
    assert (
        "COCO instances: left out 6 shapes (1 arrow, 1 cuboid, 1 keypoint_shape, 1 line, 1 point, 1 rect) it cannot convert"
        in caplog.text
    )


def test_an_image_without_its_size_names_what_to_pass() -> None:
    task = make_task(answers={"image": shapes_group(rect(1, 0, 0, 5, 5, "car"))})

    with pytest.raises(
        ConversionError, match=r"COCO needs the image size of .*pass width= and height="
    ):
        to_coco([task])
    assert to_coco([ImageRecord.from_task(task, width=10, height=10)])["images"][0]["width"] == 10


def test_a_coco_file_from_another_tool_reads_as_polygons_and_boxes() -> None:
    dataset = {
        "images": [{"id": 7, "file_name": "x.png", "width": 100, "height": 80}],
        "categories": [{"id": 3, "name": "cat"}],
        "annotations": [
            {"id": 11, "image_id": 7, "category_id": 3, "bbox": [1, 2, 10, 20], "segmentation": [], "area": 200, "iscrowd": 0},
            {"id": 12, "image_id": 7, "category_id": 3, "bbox": [0, 0, 9, 9], "area": 40, "iscrowd": 0,
             "segmentation": [[0, 0, 9, 0, 9, 9], [20, 20, 30, 20, 30, 30, 20, 30]]},
        ],
    }  # fmt: skip

    [record] = from_coco(dataset, category="species")

    assert [(s.type, s.index, s.points, s.tags) for s in record.answers.shapes()] == [
        ("rectangle", 11, [[1, 2], [11, 2], [1, 22], [11, 22]], {"species": "cat"}),
        ("polygon", 12, [[0, 0], [9, 0], [9, 9]], {"species": "cat"}),
        ("polygon", 12, [[20, 20], [30, 20], [30, 30], [20, 30]], {"species": "cat"}),
    ]


def test_rle_masks_are_refused_unless_skipped() -> None:
    dataset = {
        "images": [{"id": 1, "file_name": "x.png", "width": 4, "height": 4}],
        "categories": [{"id": 1, "name": "crowd"}],
        "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "iscrowd": 1, "bbox": [0, 0, 4, 4], "segmentation": {"counts": [0, 16], "size": [4, 4]}}],
    }  # fmt: skip

    with pytest.raises(
        ConversionError, match=r"reading COCO: 1 shape \(1 RLE mask\) cannot be converted"
    ):
        from_coco(dataset)
    assert from_coco(dataset, unsupported="skip")[0].answers.to_dict() == {}


# -- YOLO ------------------------------------------------------------------------------------

CLASSES = ["car", "pedestrian", "sign", "background"]


def test_yolo_lines_read_as_a_yolo_loader_reads_them() -> None:
    answers = Answers.from_task(TASKS[0])
    groups = TASKS[0].answers["image"]["layers"]["vector_tagging"]
    only_boxes = Answers.from_dict(
        {"image": shapes_group(groups[0]["shapes"][0], groups[2]["shapes"][0])}
    )

    text = to_yolo(only_boxes, width=640, height=480, classes=CLASSES)

    # As YOLO loaders do: split each line, read floats; 5 columns, normalised values.
    labels = np.array([line.split() for line in text.strip().splitlines()], dtype=np.float64)
    assert labels.shape == (2, 5)
    assert labels[:, 0].tolist() == [0, 0]
    assert ((labels[:, 1:] >= 0) & (labels[:, 1:] <= 1)).all()
    boxes = [s.bbox() for s in answers.shapes() if s.type == "rectangle"]
    for (_, xc, yc, w, h), (x1, y1, x2, y2) in zip(labels, boxes, strict=True):
        assert ((xc - w / 2) * 640, (yc - h / 2) * 480) == pytest.approx((x1, y1))
        assert ((xc + w / 2) * 640, (yc + h / 2) * 480) == pytest.approx((x2, y2))


def test_yolo_converts_back_to_the_same_rectangles() -> None:
    boxes = [
        rect(1, 10, 20, 60, 95, "car"),
        rect(2, 0, 0, 1919, 1079, "sign"),
        rect(3, 7, 3, 8, 4, "car"),
    ]
    answers = Answers.from_dict({"image": shapes_group(*boxes)})

    back = from_yolo(
        to_yolo(answers, width=1920, height=1080, classes=CLASSES),
        width=1920,
        height=1080,
        classes=CLASSES,
    )

    assert as_json(back.to_dict()) == as_json(answers.to_dict())  # ints come back as ints


@pytest.mark.parametrize(
    ("text", "message"),
    [
        pytest.param("0 0.5 0.5 0.1\n", "YOLO line 1: '0 0.5 0.5 0.1' has 4 fields; expected 5", id="short-line"),
        pytest.param("9 0.5 0.5 0.1 0.1\n", "YOLO line 1: class 9 is not in classes (0 to 3)", id="unknown-class"),
        pytest.param("\n0 a b c d\n", "YOLO line 2: '0 a b c d' is not numbers", id="not-numbers"),
    ],
)  # fmt: skip
def test_bad_yolo_lines_name_the_line_and_the_fix(text: str, message: str) -> None:
    with pytest.raises(ConversionError) as raised:
        from_yolo(text, width=10, height=10, classes=CLASSES)
    assert str(raised.value).startswith(message)


def test_yolo_refuses_polygons_and_unknown_classes() -> None:
    with pytest.raises(ConversionError) as raised:
        to_yolo(Answers.from_task(TASKS[0]), width=640, height=480, classes=["car"])

    lines = [str(p) for p in raised.value.problems]
    assert lines == [
        "answers shape 1: found a polygon; expected a rectangle",
    ]
    assert (
        to_yolo(
            Answers.from_task(TASKS[0]), width=640, height=480, classes=["car"], unsupported="skip"
        ).count("\n")
        == 2
    )


# -- GeoJSON and shapely -----------------------------------------------------------------


def test_geojson_features_load_in_shapely_with_the_shapes_geometry() -> None:
    answers = Answers.from_dict(ALL_SHAPES)

    collection = json.loads(json.dumps(to_geojson(answers)))  # plain JSON

    kinds = []
    for feature, shape in zip(collection["features"], answers.shapes(), strict=True):
        geometry = shapely.geometry.shape(feature["geometry"])
        kinds.append(geometry.geom_type)
        assert geometry.is_valid
        assert geometry.bounds == pytest.approx(shape.bbox())
        assert feature["properties"]["sama_type"] == shape.type
        if shape.type == "polygon":
            assert geometry.area == pytest.approx(shoelace_area(shape.points))
        if shape.type == "rectangle":
            x1, y1, x2, y2 = shape.bbox()
            assert geometry.area == pytest.approx((x2 - x1) * (y2 - y1))
    assert kinds == [
        "Polygon",
        "Polygon",
        "Polygon",
        "LineString",
        "Point",
        "LineString",
        "MultiPoint",
        "MultiPoint",
        "MultiPoint",
    ]


def test_geojson_converts_back_to_exactly_the_same_shapes() -> None:
    answers = Answers.from_dict(copy.deepcopy(ALL_SHAPES))

    back = from_geojson(to_geojson(answers))

    assert as_json(back.to_dict()) == as_json(ALL_SHAPES)


def test_foreign_geojson_reads_as_polygons_lines_and_points() -> None:
    collection = {
        "type": "FeatureCollection",
        "features": [
            {"type": "Feature", "geometry": {"type": "Polygon", "coordinates": [[[0, 0], [4, 0], [4, 3], [0, 0]]]}, "properties": {"name": "field"}},
            {"type": "Feature", "geometry": {"type": "LineString", "coordinates": [[0, 0], [1, 1]]}, "properties": {}},
            {"type": "Feature", "geometry": {"type": "Point", "coordinates": [2, 3]}, "properties": None},
        ],
    }  # fmt: skip

    shapes = from_geojson(collection, output="map").shapes()

    assert [(s.type, s.points, s.tags) for s in shapes] == [
        ("polygon", [[0, 0], [4, 0], [4, 3]], {"name": "field"}),
        ("line", [[0, 0], [1, 1]], {}),
        ("point", [[2, 3]], {}),
    ]


def test_geojson_that_has_no_samahub_shape_is_refused() -> None:
    collection = {"type": "FeatureCollection", "features": [
        {"type": "Feature", "geometry": {"type": "MultiPolygon", "coordinates": []}, "properties": {}},
        {"type": "Feature", "geometry": {"type": "Polygon", "coordinates": [[[0, 0], [1, 0], [1, 1], [0, 0]], [[0.1, 0.1], [0.2, 0.1], [0.2, 0.2], [0.1, 0.1]]]}, "properties": {}},
    ]}  # fmt: skip

    with pytest.raises(ConversionError) as raised:
        from_geojson(collection)

    assert [str(p) for p in raised.value.problems] == [
        "features[0]: found a MultiPolygon; expected a Polygon, LineString or Point (or a libnar MultiPoint)",
        "features[1]: found a Polygon with holes; expected a polygon without holes",
    ]
    with pytest.raises(ConversionError, match="expected a GeoJSON FeatureCollection"):
        from_geojson({"type": "Feature"})


def test_shapes_go_to_shapely_and_back() -> None:
    [van, _] = Answers.from_dict(
        {
            "img": shapes_group(
                rect(1, 10, 20, 60, 95, "van"), poly(2, [[0, 0], [3, 0], [0, 4]], "x")
            )
        }
    ).shapes()

    geometry = to_shapely(van)
    assert (geometry.geom_type, geometry.area, geometry.bounds) == (
        "Polygon",
        50 * 75,
        (10, 20, 60, 95),
    )
    back = from_shapely(geometry, type="rectangle", index=1, tags={"label": "van"})
    assert back.bbox() == van.bbox()
    assert (back.type, back.index, back.tags) == ("rectangle", 1, {"label": "van"})
    line = from_shapely(shapely.LineString([(0, 0), (5, 5)]), tags={"lane": "a"})
    assert (line.type, line.points, line.tags) == ("line", [[0.0, 0.0], [5.0, 5.0]], {"lane": "a"})


# -- properties: conversions give back what they were given ---------------------------------

_coordinate = st.integers(0, 4000)
_area_shapes = st.one_of(
    st.tuples(_coordinate, _coordinate, st.integers(1, 500), st.integers(1, 500)).map(
        lambda b: Shape.rectangle(0, b[0], b[1], b[0] + b[2], b[1] + b[3])
    ),
    st.lists(st.tuples(_coordinate, _coordinate), min_size=3, max_size=8, unique=True).map(
        lambda ps: Shape(type="polygon", points=[list(p) for p in ps])
    ),
)
_labels = st.sampled_from(["car", "bus", "person"])


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(_area_shapes, _labels), min_size=1, max_size=6))
def test_any_boxes_and_polygons_survive_coco_and_geojson(shapes: list[tuple[Shape, str]]) -> None:
    answers = Answers.from_dict({"image": {"layers": {"vector_tagging": []}}})
    for index, (shape, label) in enumerate(shapes, start=1):
        shape.index = index
        shape.tags = {"label": label}
        answers.image("image").add(shape)
    expected = as_json(answers.to_dict())

    [record] = from_coco(to_coco([ImageRecord(answers, "x.png", 5000, 5000)]))
    assert as_json(record.answers.to_dict()) == expected
    assert as_json(from_geojson(to_geojson(answers)).to_dict()) == expected


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(0, 1900), st.integers(0, 1000), st.integers(1, 200), st.integers(1, 200), _labels),
        min_size=1,
        max_size=8,
    )
)  # fmt: skip
def test_any_integer_boxes_survive_yolo(boxes: list[tuple[int, int, int, int, str]]) -> None:
    answers = Answers.from_dict({"image": shapes_group(*[
        rect(i, x, y, x + w, y + h, label) for i, (x, y, w, h, label) in enumerate(boxes, start=1)
    ])})  # fmt: skip
    classes = ["car", "bus", "person"]

    text = to_yolo(answers, width=2100, height=1200, classes=classes)
    back = from_yolo(text, width=2100, height=1200, classes=classes)

    assert as_json(back.to_dict()) == as_json(answers.to_dict())
