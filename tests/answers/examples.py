"""The answer examples of `reference/answers.md`, one per format, as SamaHub delivers them.

`CUBOID` is the reference's 3D example written out in full (the reference abbreviates its
`locations` with "(as above)"); `CUBOID_SINGLE` is the same with `key_locations` and
`locations` as single objects, the quirk of SamaHub's 3D files.
"""

from __future__ import annotations

import copy
import json
from typing import Any

SCALARS: dict[str, Any] = {
    "weather": "fog",
    "road": "paved|asphalt|wet",
    "room": "house | bed room",
    "hazards": {"debris": "1", "animal": "0", "ice": "1"},
    "shot_on": "2031-04-09",
    "notes": "two lanes\nclosed",
}

IMAGE: dict[str, Any] = {
    "photo": {
        "layers": {
            "vector_tagging": [
                {
                    "group_type": None,
                    "shapes": [
                        {
                            "type": "rectangle",
                            "index": 1,
                            "points": [[10, 20], [60, 20], [10, 95], [60, 95]],
                            "tags": {
                                "kind": "van",
                                "make": "brand|model a",
                                "sides": {"left": "1", "right": "0"},
                            },
                        }
                    ],
                },
                {
                    "group_type": None,
                    "shapes": [
                        {"type": "arrow", "index": 4, "points": [[5, 5], [40.5, 12]], "tags": {}}
                    ],
                },
            ]
        }
    }
}

#: Every documented shape type (point counts as the reference's table), plus an unknown one.
ALL_SHAPES: dict[str, Any] = {
    "street": {
        "layers": {
            "vector_tagging": [
                {
                    "group_type": None,
                    "shapes": [
                        {
                            "type": "rectangle",
                            "index": 1,
                            "points": [[1315, 1823], [1500, 1823], [1315.0, 1667.0], [1500, 1667]],
                            "tags": {"kind": "car"},
                        }
                    ],
                },
                {
                    "group_type": None,
                    "shapes": [
                        {
                            "type": "slider_rectangle",
                            "index": 2,
                            "points": [[10, 10], [50, 10], [10, 40], [50, 40], [30, 10]],
                            "tags": {"kind": "truck"},
                        }
                    ],
                },
                {
                    "group_type": None,
                    "shapes": [
                        {
                            "type": "polygon",
                            "index": 3,
                            "points": [[0, 0], [40, 0], [40, 30], [20, 45.5], [0, 30]],
                            "tags": {},
                        }
                    ],
                },
                {
                    "group_type": None,
                    "shapes": [
                        {
                            "type": "line",
                            "index": 4,
                            "points": [[0, 100], [50, 90], [100, 100]],
                            "tags": {"lane": "solid"},
                        }
                    ],
                },
                {
                    "group_type": None,
                    "shapes": [
                        {
                            "type": "point",
                            "index": 7,
                            "points": [[12, 34]],
                            "tags": {"kind": "pole"},
                        }
                    ],
                },
                {
                    "group_type": None,
                    "shapes": [
                        {"type": "arrow", "index": 9, "points": [[5, 5], [40.5, 12]], "tags": {}}
                    ],
                },
                {
                    "group_type": None,
                    "shapes": [
                        {
                            "type": "cuboid",
                            "index": 10,
                            "points": [
                                [100, 200],
                                [100, 120],
                                [160, 210],
                                [160, 130],
                                [130, 190],
                                [130, 115],
                                [180, 195],
                                [180, 118],
                            ],
                            "key_points": [
                                [90, 150],
                                [200, 150],
                                [130, 100],
                                [130, 220],
                                [150, 90],
                            ],
                            "tags": {"kind": "box"},
                        }
                    ],
                },
                {
                    "group_type": None,
                    "shapes": [
                        {
                            "type": "keypoint_shape",
                            "index": 12,
                            "points": [[1, 1], [2, 2], [3, 1]],
                            "tags": {"keypoint_class": "hand"},
                        }
                    ],
                },
                {
                    "group_type": None,
                    "shapes": [
                        {
                            "type": "rect",
                            "index": 13,
                            "points": [[0, 0], [5, 5]],
                            "tags": {},
                            "legacy": True,
                        }
                    ],
                },
            ]
        }
    }
}

SEMANTIC: dict[str, Any] = {
    "scene": {
        "layers": {
            "raster_coding": {
                "mask_url": "https://assets.sama.test/outputs/scene/4b9c1f2e.png",
            }
        }
    },
    "image quality": "clear",
}

VIDEO: dict[str, Any] = {
    "clip": [
        {
            "group_type": None,
            "frame_count": 4,
            "shapes": [
                {
                    "type": "point",
                    "index": 1,
                    "tags": {"kind": "ball"},
                    "key_locations": [
                        {
                            "frame_number": 0,
                            "visibility": 1,
                            "points": [[10, 10]],
                            "tags": {"state": "rolling"},
                        },
                        {"frame_number": 2, "visibility": 1, "points": [[15, 10]]},
                        {
                            "frame_number": 3,
                            "visibility": 0,
                            "points": [[15, 10]],
                            "tags": {"state": "stopped"},
                        },
                    ],
                    "locations": [
                        {"visibility": 1, "points": [[10, 10]], "tags": {"state": "rolling"}},
                        {"visibility": 1, "points": [[13, 10]], "tags": {"state": "rolling"}},
                        {"visibility": 1, "points": [[15, 10]], "tags": {"state": "rolling"}},
                        {"visibility": 0},
                    ],
                }
            ],
        }
    ]
}

_BUS_POINTS = [
    [14.0, -0.75, 0.0],
    [14.0, -0.75, 3.0],
    [14.0, -3.25, 0.0],
    [14.0, -3.25, 3.0],
    [2.0, -0.75, 0.0],
    [2.0, -0.75, 3.0],
    [2.0, -3.25, 0.0],
    [2.0, -3.25, 3.0],
]
_BUS_PLACE: dict[str, Any] = {
    "position_center": [8.0, -2.0, 1.5],
    "direction": {"roll": 0.0, "pitch": 0.0, "yaw": 0.0},
    "dimensions": {"length": 12.0, "width": 2.5, "height": 3.0},
    "points": _BUS_POINTS,
}

CUBOID: dict[str, Any] = {
    "Scene": [
        {
            "group_type": None,
            "frame_count": 2,
            "shapes": [
                {
                    "type": "cuboid",
                    "index": 0,
                    "tags": {"object_class": "bus"},
                    "key_locations": [
                        {
                            "frame_number": 0,
                            "visibility": 1,
                            "tags": {"occlusion": "none"},
                            **_BUS_PLACE,
                            "source": {"source_id": "pre_annotation"},
                        }
                    ],
                    "locations": [
                        {"visibility": 1, "tags": {"occlusion": "none"}, **_BUS_PLACE},
                        {"visibility": 0},
                    ],
                }
            ],
        }
    ]
}

CUBOID_SINGLE: dict[str, Any] = copy.deepcopy(CUBOID)
_shape = CUBOID_SINGLE["Scene"][0]["shapes"][0]
_shape["key_locations"] = _shape["key_locations"][0]
_shape["locations"] = _shape["locations"][0]

ORTHOGRAPHIC: dict[str, Any] = {
    "Scene": [
        {
            "group_type": None,
            "frame_count": 200,
            "shapes": [
                {
                    "type": "line",
                    "index": 3,
                    "is_orthographic": True,
                    "tags": {"lane": "dashed"},
                    "key_locations": [
                        {
                            "frame_number": 0,
                            "visibility": 1,
                            "points": [[1.5, 2.25, 0], [10.75, 2.5, 0], [20.0, 3.0, 0]],
                            "tags": {},
                            "source": {"source_id": "pre_annotation"},
                        }
                    ],
                    "locations": {"visibility": 1, "points": [[1.5, 2.25, 0]], "tags": {}},
                }
            ],
        }
    ]
}

FUSED: dict[str, Any] = {
    camera: [
        {
            "group_type": None,
            "frame_count": 2,
            "shapes": [
                {
                    "type": "rectangle",
                    "index": 5,
                    "tags": {"object_class": "car"},
                    "key_locations": [
                        {
                            "frame_number": 0,
                            "visibility": visible,
                            "points": [[100, 50], [180, 50], [100, 120], [180, 120]],
                            "tags": {},
                        }
                    ],
                    **(
                        {"locations": [{"visibility": visible}]}
                        if camera != "center_camera"
                        else {}
                    ),
                }
            ],
        }
    ]
    for camera, visible in (("left_camera", 1), ("right_camera", 0), ("center_camera", 1))
}

#: Every example by name, for tables of cases.
ALL: dict[str, dict[str, Any]] = {
    "scalars": SCALARS,
    "image": IMAGE,
    "every-shape-type": ALL_SHAPES,
    "semantic-segmentation": SEMANTIC,
    "video": VIDEO,
    "3d-cuboid": CUBOID,
    "3d-cuboid-single-objects": CUBOID_SINGLE,
    "3d-orthographic": ORTHOGRAPHIC,
    "fused-cameras": FUSED,
}


def as_json(value: Any) -> str:
    """JSON text with sorted keys: equal texts mean equal data with ints and floats alike."""
    return json.dumps(value, sort_keys=True)
