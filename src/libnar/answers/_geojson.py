"""GeoJSON features (and shapely geometries) from and to SamaHub image shapes.

Coordinates stay SamaHub's pixels (x right, y down): GeoJSON's longitude/latitude meaning does
not apply, which GIS tools accept for planar data. Each feature's `properties` carry the
output name, `sama_type`, `index`, `tags` and any unknown shape fields, so a round trip gives
the shapes back exactly.

| SamaHub | GeoJSON geometry | back from GeoJSON (no `sama_type`) |
|---|---|---|
| `rectangle` | `Polygon`, its ring TL, TR, BR, BL, closed | - (a `polygon`) |
| `polygon` | `Polygon`, the ring closed by repeating the first point | `polygon` (outer ring; holes refused) |
| `slider_rectangle` | `Polygon` of the 4 corners; the depth point in `properties.depth_point` | - |
| `line`, `arrow` | `LineString` | `line` |
| `point` | `Point` | `point` |
| `keypoint_shape`, 2D `cuboid` (`key_points` in properties), other types | `MultiPoint` | - (refused) |
| `MultiPolygon`, `MultiLineString`, `GeometryCollection`, polygons with holes | - | refused: an error, or left out |

`to_shapely(shape)` and `from_shapely(geometry)` need shapely: `pip install 'libnar[geo]'`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from libnar.answers._answers import Answers
from libnar.answers._base import Point
from libnar.answers._convert import (
    ConversionError,
    Unsupported,
    UnsupportedShapes,
    points_of_ring,
    ring_of,
)
from libnar.answers._shapes import Group, ImageOutput, Shape

if TYPE_CHECKING:
    from shapely.geometry.base import BaseGeometry

__all__ = ["from_geojson", "from_shapely", "shape_geometry", "to_geojson", "to_shapely"]

_POLYGON_TYPES = ("rectangle", "polygon", "slider_rectangle")
_KNOWN = {"type", "index", "points", "tags"}


def shape_geometry(shape: Shape) -> dict[str, Any]:
    """The GeoJSON geometry of one shape (see the module's table)."""
    points = [list(point) for point in shape.points]
    if shape.type in _POLYGON_TYPES and len(points) >= 3:
        ring = ring_of(shape.type, points)
        return {"type": "Polygon", "coordinates": [[*ring, list(ring[0])]]}
    if shape.type in ("line", "arrow") and len(points) >= 2:
        return {"type": "LineString", "coordinates": points}
    if shape.type == "point" and len(points) == 1:
        return {"type": "Point", "coordinates": points[0]}
    return {"type": "MultiPoint", "coordinates": points}


def _feature(output: str, shape: Shape) -> dict[str, Any]:
    properties: dict[str, Any] = {"output": output, "sama_type": shape.type}
    if "index" in shape.model_fields_set:
        properties["index"] = shape.index
    properties["tags"] = shape.tags
    if shape.type == "slider_rectangle" and len(shape.points) > 4:
        properties["depth_point"] = shape.points[4:]
    extra = {k: v for k, v in shape.to_dict().items() if k not in _KNOWN}
    if extra:
        properties["sama_extra"] = extra
    return {"type": "Feature", "geometry": shape_geometry(shape), "properties": properties}


def to_geojson(answers: Answers, *, output: str | None = None) -> dict[str, Any]:
    """A `FeatureCollection` of every image shape (or of one output's), one feature each."""
    names = [output] if output is not None else answers.names()
    features = [
        _feature(name, shape)
        for name in names
        if answers.kind(name) == "image"
        for shape in answers.image(name).shapes()
    ]
    return {"type": "FeatureCollection", "features": features}


def from_geojson(
    collection: Mapping[str, Any] | Iterable[Mapping[str, Any]],
    *,
    output: str = "image",
    unsupported: Unsupported = "error",
) -> Answers:
    """Read a `FeatureCollection` (or features) back into answers, one group per shape.

    Features written by `to_geojson` come back exactly; others become `polygon`, `line` and
    `point` shapes with their `properties` as tags.
    """
    if isinstance(collection, Mapping):
        if collection.get("type") != "FeatureCollection":
            raise ConversionError(
                f"expected a GeoJSON FeatureCollection, got type {collection.get('type')!r}"
            )
        features = collection.get("features") or []
    else:
        features = list(collection)
    skipped = UnsupportedShapes("reading GeoJSON", unsupported)
    outputs: dict[str, list[Group]] = {}
    for position, feature in enumerate(features):
        where = f"features[{position}]"
        geometry = feature.get("geometry") or {}
        properties = dict(feature.get("properties") or {})
        shape = _shape_of(geometry, properties, where, skipped)
        if shape is not None:
            name = str(properties.get("output", output))
            outputs.setdefault(name, []).append(Group(shapes=[shape]))
    skipped.finish()
    answers = Answers()
    for name, groups in outputs.items():
        answers[name] = ImageOutput(layers={"vector_tagging": groups})
    return answers


def _shape_of(
    geometry: Mapping[str, Any],
    properties: dict[str, Any],
    where: str,
    skipped: UnsupportedShapes,
) -> Shape | None:
    kind = geometry.get("type")
    coordinates = geometry.get("coordinates")
    sama_type = properties.get("sama_type")
    points: list[Point]
    if kind == "Polygon":
        if not coordinates or len(coordinates) > 1:
            skipped.add(where, "Polygon with holes", "a polygon without holes")
            return None
        ring = [list(point) for point in coordinates[0]]
        if len(ring) > 1 and ring[0] == ring[-1]:
            ring = ring[:-1]
        shape_type = str(sama_type or "polygon")
        points = points_of_ring(shape_type, ring) if shape_type in _POLYGON_TYPES else ring
        if shape_type == "slider_rectangle":
            points += [list(p) for p in properties.get("depth_point") or []]
    elif kind == "LineString":
        points, shape_type = [list(p) for p in coordinates or []], str(sama_type or "line")
    elif kind == "Point":
        points, shape_type = [list(coordinates or [])], str(sama_type or "point")
    elif kind == "MultiPoint" and sama_type:
        points, shape_type = [list(p) for p in coordinates or []], str(sama_type)
    else:
        skipped.add(where, str(kind), "a Polygon, LineString or Point (or a libnar MultiPoint)")
        return None
    if sama_type is None:
        tags = {k: v for k, v in properties.items() if k != "output"}
        return Shape(type=shape_type, points=points, tags=tags)
    fields: dict[str, Any] = dict(properties.get("sama_extra") or {})
    fields.update(type=shape_type, points=points, tags=dict(properties.get("tags") or {}))
    if "index" in properties:
        fields["index"] = properties["index"]
    return Shape(**fields)


def _shapely() -> Any:
    try:
        import shapely.geometry
    except ImportError:
        raise ImportError(
            "shapely geometries need shapely: pip install 'libnar[geo]' (GeoJSON dicts do not)"
        ) from None
    return shapely.geometry


def to_shapely(shape: Shape) -> BaseGeometry:
    """The shapely geometry of a shape (Polygon, LineString, Point or MultiPoint)."""
    geometry: BaseGeometry = _shapely().shape(shape_geometry(shape))
    return geometry


def from_shapely(
    geometry: BaseGeometry,
    *,
    type: str | None = None,
    index: int | None = None,
    tags: Mapping[str, Any] | None = None,
) -> Shape:
    """A shape from a shapely geometry (`type` defaults from the geometry, as `from_geojson`).

    Coordinates come back as shapely holds them: floats.
    """
    mapping = _shapely().mapping(geometry)
    properties: dict[str, Any] = {"tags": dict(tags or {})}
    if type is not None:
        properties["sama_type"] = type
    if index is not None:
        properties["index"] = index
    feature = {"geometry": _lists(mapping), "properties": properties}
    answers = from_geojson([feature])
    [shape] = answers.shapes()
    if type is None:  # properties became tags: keep only the given ones
        shape.tags = dict(tags or {})
        if index is not None:
            shape.index = index
    return shape


def _lists(value: Any) -> Any:
    """shapely's mapping uses tuples; GeoJSON data here uses lists."""
    if isinstance(value, tuple | list):
        return [_lists(item) for item in value]
    if isinstance(value, dict):
        return {key: _lists(item) for key, item in value.items()}
    return value
