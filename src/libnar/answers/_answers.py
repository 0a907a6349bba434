"""`Answers`: a task's answers as typed outputs, edited in place and written back losslessly.

SamaHub names no output's kind; it shows in the JSON (`reference/answers.md`):

| JSON value | kind | typed as |
|---|---|---|
| a string | `text`: dropdown, radio, multi-level menu (`"a|b"`), date, text | `str` |
| an object of every option to `"0"`/`"1"` | `checkboxes` | `dict[str, str]` |
| an object with `layers` | `image`: vector shapes and raster masks | `ImageOutput` |
| a list of objects with `shapes` | `video`: video, 3D scenes, fused cameras | `list[VideoGroup]` |
| anything else | `other`: kept as received | the JSON value |

A text with `|` could be a menu or a text with a bar in it: only the project's delivery schema
can tell, so `menu(name)` splits on request and nothing is split on reading.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from datetime import date
from typing import Annotated, Any, Literal, TypeAlias

import pydantic_core
from pydantic import BeforeValidator, Discriminator, Tag, TypeAdapter, ValidationError

from libnar.answers._base import RECEIVED
from libnar.answers._shapes import ImageOutput, Shape
from libnar.answers._values import (
    checkbox_value,
    checked_options,
    is_checkboxes,
    join_menu,
    menu_levels,
    read_date,
)
from libnar.answers._video import VideoGroup, VideoShape
from libnar.events import EventProblem, Task, short_text

__all__ = ["Answers", "AnswersError", "OutputKind", "output_kind"]

OutputKind: TypeAlias = Literal["text", "checkboxes", "image", "video", "other"]


class AnswersError(ValueError):
    """Answers that cannot be read as SamaHub's formats, or an output read as the wrong kind.

    `problems` holds one `EventProblem` (path, found, expected) per problem.
    """

    def __init__(self, message: str, problems: list[EventProblem] | None = None) -> None:
        self.problems = problems or []
        lines = [message] + [f"  {problem}" for problem in self.problems]
        super().__init__("\n".join(lines))


def output_kind(value: Any) -> OutputKind:
    """Tell an output's kind from its JSON value (see the module's table)."""
    if isinstance(value, str):
        return "text"
    if isinstance(value, dict):
        if isinstance(value.get("layers"), dict):
            return "image"
        return "checkboxes" if is_checkboxes(value) else "other"
    if (
        isinstance(value, list)
        and value
        and all(
            isinstance(group, dict) and isinstance(group.get("shapes"), list) for group in value
        )
    ):
        return "video"
    return "other"


def _model_kind(value: Any) -> str:
    if isinstance(value, ImageOutput):
        return "image"
    if isinstance(value, list) and value and all(isinstance(g, VideoGroup) for g in value):
        return "video"
    kind = output_kind(value)
    return kind if kind in ("image", "video") else "other"


_Output = Annotated[
    Annotated[ImageOutput, Tag("image")]
    | Annotated[list[VideoGroup], Tag("video")]
    # Copied, so that editing the answers never changes the task they were read from.
    | Annotated[Annotated[Any, BeforeValidator(lambda value: _copy_json(value))], Tag("other")],
    Discriminator(_model_kind),
]
_OUTPUTS: TypeAdapter[dict[str, Any]] = TypeAdapter(dict[str, _Output])
_OUTPUT: TypeAdapter[Any] = TypeAdapter(_Output)


#: Names pydantic puts in an error's location for the member of a union that was tried.
_UNION_MEMBERS = frozenset({"int", "float", "str", "list[KeyLocation]", "KeyLocation"})


def _problems(
    error: ValidationError, prefix: str = "answers", tag_at: int = 1
) -> list[EventProblem]:
    """One problem per path: pydantic's errors with union members folded together."""
    found: dict[str, tuple[str, list[str]]] = {}
    for item in error.errors(include_url=False):
        path = prefix
        for position, part in enumerate(item["loc"]):
            if position == tag_at or part in _UNION_MEMBERS:
                continue  # which kind of output, or which member of a union, was tried
            path += f"[{part}]" if isinstance(part, int) else f".{part}"
        if item["type"] == "missing":
            what, expected = "nothing", "a value (this field is required)"
        else:
            what = short_text(item.get("input"))
            expected = str(item["msg"]).removeprefix("Input should be ")
            expected = {"a valid integer": "a number", "a valid number": "a number"}.get(
                expected, expected
            )
        _, wanted = found.setdefault(path, (what, []))
        if expected not in wanted:
            wanted.append(expected)
    return [
        EventProblem(path=path, found=what, expected=" or ".join(wanted))
        for path, (what, wanted) in found.items()
    ]


class Answers:
    """A task's answers by output name, each typed by its kind; see the module's table.

    Read with `Answers.from_task(task)` (or `from_dict`, `from_json`); edit the typed outputs
    in place, or set outputs (`answers["weather"] = "fog"`); write back with `to_dict()`,
    which equals the input exactly while nothing was changed (unknown fields kept, ints
    staying ints and floats floats):

        answers = Answers.from_task(event.task)
        for shape in answers.shapes():
            shape.tags["kind"] = shape.tags.get("kind", "").lower()
        return event.result(answers=answers.to_dict())
    """

    __slots__ = ("_outputs",)

    def __init__(self, outputs: Mapping[str, Any] | None = None) -> None:
        """Parse answers from a mapping of output names to JSON values (or typed outputs)."""
        try:
            self._outputs: dict[str, Any] = _OUTPUTS.validate_python(
                dict(outputs or {}), context=RECEIVED
            )
        except ValidationError as exc:
            raise AnswersError(
                "the answers do not follow SamaHub's formats (reference/answers.md):",
                _problems(exc),
            ) from None

    @classmethod
    def from_task(cls, task: Task) -> Answers:
        """Read a task's answers (no answers yet gives empty answers)."""
        return cls(task.answers)

    @classmethod
    def from_dict(cls, answers: Mapping[str, Any]) -> Answers:
        """Read answers from their JSON data (`task.answers`, a DPP result's `answers`)."""
        return cls(answers)

    @classmethod
    def from_json(cls, text: bytes | bytearray | str) -> Answers:
        """Read answers from JSON text (an object of output names to values)."""
        try:
            value = pydantic_core.from_json(text)
        except ValueError as exc:
            raise AnswersError(f"the answers are not JSON ({exc})") from None
        if not isinstance(value, dict):
            raise AnswersError(f"the answers are a JSON object, got {short_text(value)}")
        return cls(value)

    def to_dict(self) -> dict[str, Any]:
        """Return the answers as JSON-ready data, for a DPP result or a file."""
        return {name: _dump(value) for name, value in self._outputs.items()}

    def to_json(self) -> bytes:
        """Return the answers as compact JSON bytes."""
        return pydantic_core.to_json(self.to_dict())

    # -- the outputs ---------------------------------------------------------------------

    def __getitem__(self, name: str) -> Any:
        try:
            return self._outputs[name]
        except KeyError:
            raise KeyError(self._missing(name)) from None

    def __setitem__(self, name: str, value: Any) -> None:
        """Set an output: a string, checkboxes, an `ImageOutput`, video groups, or JSON."""
        try:
            self._outputs[name] = _OUTPUT.validate_python(value, context=RECEIVED)
        except ValidationError as exc:
            raise AnswersError(
                f"answers[{name!r}] cannot be set to this value:",
                _problems(exc, f"answers.{name}", tag_at=0),
            ) from None

    def __delitem__(self, name: str) -> None:
        del self._outputs[name]

    def __contains__(self, name: object) -> bool:
        return name in self._outputs

    def __iter__(self) -> Iterator[str]:
        return iter(self._outputs)

    def __len__(self) -> int:
        return len(self._outputs)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Answers):
            return NotImplemented
        return self.to_dict() == other.to_dict()

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        kinds = ", ".join(f"{name!r}: {self.kind(name)}" for name in self._outputs)
        return f"Answers({{{kinds}}})"

    def names(self) -> list[str]:
        """The output names, in order."""
        return list(self._outputs)

    def kind(self, name: str) -> OutputKind:
        """The kind of an output: text, checkboxes, image, video or other."""
        value = self[name]
        if isinstance(value, ImageOutput):
            return "image"
        if isinstance(value, list) and value and isinstance(value[0], VideoGroup):
            return "video"
        kind = output_kind(value)
        return "other" if kind in ("image", "video") else kind

    def _missing(self, name: str) -> str:
        known = ", ".join(map(repr, self._outputs)) or "none"
        return f"no output named {name!r} in these answers (outputs: {known})"

    def _expect(self, name: str, kind: OutputKind) -> Any:
        value = self[name]
        found = self.kind(name)
        if found != kind:
            raise AnswersError(
                f"answers[{name!r}] is a {found} output ({short_text(value)}), not {kind}"
            )
        return value

    # -- scalars -------------------------------------------------------------------------

    def text(self, name: str) -> str:
        """A dropdown, radio, menu, date or text output's string."""
        value: str = self._expect(name, "text")
        return value

    def menu(self, name: str) -> list[str]:
        """A multi-level menu's levels: `"road|paved|wet"` -> `["road", "paved", "wet"]`."""
        return menu_levels(self.text(name))

    def set_menu(self, name: str, levels: Iterable[str]) -> None:
        """Set a multi-level menu from its levels."""
        self._outputs[name] = join_menu(levels)

    def date(self, name: str) -> date:
        """A date output (`"2031-04-09"`) as a `datetime.date`."""
        return read_date(self.text(name))

    def checked(self, name: str) -> set[str]:
        """The options of a checkbox output whose value is `"1"`."""
        return checked_options(self._expect(name, "checkboxes"))

    def set_checked(
        self, name: str, checked: Iterable[str], *, options: Iterable[str] = ()
    ) -> None:
        """Check exactly `checked` (every other option `"0"`), keeping the options' order.

        New options (in `options` or `checked`) are added; SamaHub lists every option.
        """
        current = self._outputs.get(name)
        self._outputs[name] = checkbox_value(
            options, checked, current=current if is_checkboxes(current) else None
        )

    # -- image and video outputs ---------------------------------------------------------

    def image(self, name: str) -> ImageOutput:
        """An image output: its vector layer (`shapes()`, groups) and raster mask."""
        value: ImageOutput = self._expect(name, "image")
        return value

    def video(self, name: str) -> list[VideoGroup]:
        """A video or 3D output's groups of tracked shapes."""
        value: list[VideoGroup] = self._expect(name, "video")
        return value

    def shapes(self, output: str | None = None) -> list[Shape]:
        """Every shape of the image outputs (or of one), in order.

        Video and 3D shapes are `video_shapes()`: they have points per frame (`at(frame)`).
        """
        names = [output] if output is not None else self._of_kind(ImageOutput)
        return [shape for name in names for shape in self.image(name).shapes()]

    def video_shapes(self, output: str | None = None) -> list[VideoShape]:
        """Every tracked shape of the video and 3D outputs (or of one), in order."""
        names = [output] if output is not None else self._of_kind(list)
        return [shape for name in names for group in self.video(name) for shape in group.shapes]

    def _of_kind(self, kind: type) -> list[str]:
        if kind is ImageOutput:
            return [n for n, v in self._outputs.items() if isinstance(v, ImageOutput)]
        return [
            n
            for n, v in self._outputs.items()
            if isinstance(v, list) and v and isinstance(v[0], VideoGroup)
        ]


def _dump(value: Any) -> Any:
    if isinstance(value, ImageOutput):
        return value.to_dict()
    if isinstance(value, list) and value and isinstance(value[0], VideoGroup):
        return [group.to_dict() for group in value]
    return _copy_json(value)


def _copy_json(value: Any) -> Any:
    """A copy of JSON data, so that editing what `to_dict()` returned leaves the answers alone."""
    if isinstance(value, dict):
        return {key: _copy_json(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_copy_json(item) for item in value]
    return value
