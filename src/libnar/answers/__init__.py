"""Typed, lossless SamaHub answers: read, edit, check and convert a task's outputs.

Layer 1: pydantic only (no Prefect, no HTTP). `reference/answers.md` describes the formats.

    from libnar.answers import Answers

    answers = Answers.from_task(task)
    for shape in answers.shapes():          # every vector shape of the image outputs
        print(shape.type, shape.index, shape.bbox(), shape.tags)
    answers.menu("road")                    # ["paved", "asphalt", "wet"]
    answers.checked("hazards")              # {"debris", "ice"}
    answers.video_shapes()[0].at(12)        # points, visibility and tags in frame 12
    answers.to_dict()                       # exactly task.answers while nothing changed

Conversions: `to_coco`/`from_coco`, `to_yolo`/`from_yolo`, `to_geojson`/`from_geojson`,
`to_shapely`/`from_shapely` (shapely: `pip install 'libnar[geo]'`). Validation against a
project's delivery schema: `check_answers`, `answer_problems`.
"""

from libnar.answers._answers import Answers, AnswersError, OutputKind, output_kind
from libnar.answers._coco import from_coco, to_coco
from libnar.answers._convert import ConversionError, ImageRecord
from libnar.answers._geojson import from_geojson, from_shapely, to_geojson, to_shapely
from libnar.answers._schema import (
    AnswersSchemaError,
    answer_problems,
    check_answers,
    schema_problems,
)
from libnar.answers._shapes import (
    SHAPE_POINT_COUNTS,
    Group,
    ImageOutput,
    Layers,
    RasterLayer,
    Shape,
    bbox_of,
)
from libnar.answers._values import checked_options, join_menu, menu_levels
from libnar.answers._video import (
    Dimensions,
    Direction,
    Frame,
    KeyLocation,
    Location,
    VideoGroup,
    VideoShape,
    cuboid_corners,
)
from libnar.answers._yolo import from_yolo, to_yolo

__all__ = [
    "SHAPE_POINT_COUNTS",
    "Answers",
    "AnswersError",
    "AnswersSchemaError",
    "ConversionError",
    "Dimensions",
    "Direction",
    "Frame",
    "Group",
    "ImageOutput",
    "ImageRecord",
    "KeyLocation",
    "Layers",
    "Location",
    "OutputKind",
    "RasterLayer",
    "Shape",
    "VideoGroup",
    "VideoShape",
    "answer_problems",
    "bbox_of",
    "check_answers",
    "checked_options",
    "cuboid_corners",
    "from_coco",
    "from_geojson",
    "from_shapely",
    "from_yolo",
    "join_menu",
    "menu_levels",
    "output_kind",
    "schema_problems",
    "to_coco",
    "to_geojson",
    "to_shapely",
    "to_yolo",
]
