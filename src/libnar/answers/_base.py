"""What every answer model shares: unknown fields kept, and dumps that give back what was read.

A model parsed from SamaHub's JSON dumps to exactly that JSON: fields it did not have are not
invented (no `"index": null` added), unknown fields come back unchanged, ints stay ints and
floats floats. A model built in code (`Shape(type="point", ...)`) dumps every field it was given
plus the ones SamaHub expects (`_emit`), so edited answers are complete. Which is which is told
by the validation context: `Model.read(data)` and `Answers` parse with `RECEIVED`.
"""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Self, TypeAlias

from pydantic import (
    BaseModel,
    ConfigDict,
    SerializationInfo,
    SerializerFunctionWrapHandler,
    Strict,
    model_serializer,
)

__all__ = ["RECEIVED", "AnswerModel", "Number", "Point", "StrictInt"]

#: The validation context of data read from SamaHub (`AnswerModel.read`, `Answers`): such
#: models dump exactly what was read, adding no field.
RECEIVED: dict[str, bool] = {"libnar.answers.received": True}

#: A coordinate: an int stays an int and a float a float (`1315` is not `1315.0`). Strict, so
#: that a string or a boolean is refused instead of silently turned into a number.
Number: TypeAlias = Annotated[int, Strict()] | Annotated[float, Strict()]
#: `[x, y]` in pixels (y down), or `[x, y, z]` in 3D.
Point: TypeAlias = list[Number]
#: An int that stays what SamaHub sent: `"3"` is refused rather than read as 3.
StrictInt: TypeAlias = Annotated[int, Strict()]


class AnswerModel(BaseModel):
    """Base of the answer models: unknown fields kept, dumps equal to the JSON received.

    `model_dump()` (and `to_dict()`) leave out fields the input did not have, even when they
    were filled with a default, unless code set them since (or filled a default list or dict).
    """

    model_config = ConfigDict(extra="allow", populate_by_name=True)

    #: Fields a model built in code always dumps (when not None): what SamaHub expects.
    _emit: ClassVar[tuple[str, ...]] = ()

    @classmethod
    def read(cls, data: Any) -> Self:
        """Parse SamaHub's JSON data: the model dumps back to exactly that data."""
        return cls.model_validate(data, context=RECEIVED)

    def model_post_init(self, context: Any, /) -> None:
        """Mark the fields SamaHub expects as set on models built in code, not on parsed ones."""
        if context is RECEIVED or not self._emit:
            return
        for name in self._emit:
            if getattr(self, name) is not None:
                self.__pydantic_fields_set__.add(name)

    @model_serializer(mode="wrap")
    def _dump_as_received(
        self, handler: SerializerFunctionWrapHandler, info: SerializationInfo
    ) -> dict[str, Any]:
        data: dict[str, Any] = handler(self)
        present = self.__pydantic_fields_set__
        for name, field in type(self).model_fields.items():
            key = field.serialization_alias or field.alias or name
            if name in present or key not in data:
                continue
            # A default list or dict filled in place (`shape.tags["kind"] = "car"`) counts.
            if field.default_factory is not None and getattr(self, name):
                continue
            del data[key]
        return data

    def to_dict(self) -> dict[str, Any]:
        """Return this part of the answers as JSON-ready data (as SamaHub would send it)."""
        return self.model_dump(mode="json")
