"""Check answers (or task inputs) against a project's JSON Schema, one line per problem.

SamaHub publishes two schemas per project: `deliver_task.json` for `answers` and
`create_task.json` for a new task's `data` (`SamaClient.get_delivery_schema(pid)`,
`get_creation_schema(pid)`). A DPP result whose answers break the delivery schema is refused
by SamaHub, so check before sending: `@nps_flow(validate_result=True)` does it for you.

Validation uses `jsonschema` (the draft the schema names, else draft 7), imported on first use.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any, cast

from libnar.answers._answers import Answers, AnswersError
from libnar.events import EventProblem, short_text

if TYPE_CHECKING:
    from jsonschema.exceptions import ValidationError as SchemaValidationError
    from jsonschema.protocols import Validator

__all__ = [
    "AnswersSchemaError",
    "answer_problems",
    "check_answers",
    "schema_problems",
]

#: At most this many problems are listed; a wholly wrong answer would otherwise list thousands.
MAX_PROBLEMS = 50


class AnswersSchemaError(AnswersError):
    """Answers (or task inputs) break the project's JSON Schema; one problem per line."""


def _path(root: str, parts: Iterable[Any]) -> str:
    path = root
    for part in parts:
        path += f"[{part}]" if isinstance(part, int) else f".{part}"
    return path


def _expected(error: SchemaValidationError) -> str:
    """What the schema wanted, in words."""
    kind, value = error.validator, cast(Any, error.validator_value)
    if kind == "type":
        names = value if isinstance(value, list) else [value]
        return " or ".join(f"{'an' if str(n)[0] in 'aeiou' else 'a'} {n}" for n in names)
    if kind == "enum":
        return "one of " + ", ".join(map(repr, value))
    if kind == "const":
        return f"exactly {value!r}"
    if kind == "additionalProperties":
        return "no other fields (the schema lists the fields allowed)"
    if kind in ("minItems", "maxItems", "minLength", "maxLength", "minimum", "maximum"):
        words = {
            "minItems": "at least {} items",
            "maxItems": "at most {} items",
            "minLength": "at least {} characters",
            "maxLength": "at most {} characters",
            "minimum": "at least {}",
            "maximum": "at most {}",
        }
        return str(words[str(kind)]).format(value)
    if kind == "pattern":
        return f"text matching {value!r}"
    if kind == "format":
        return f"a {value}"
    return str(error.message)


def _problem(root: str, error: SchemaValidationError) -> EventProblem:
    instance = cast(Any, error.instance)
    if error.validator == "required":
        wanted = cast(list[str], error.validator_value)
        missing = [
            name for name in wanted if not isinstance(instance, dict) or name not in instance
        ]
        path = _path(root, [*error.absolute_path, missing[0] if missing else "?"])
        return EventProblem(path=path, found="nothing", expected="a value (the schema requires it)")
    if error.validator == "additionalProperties" and isinstance(instance, dict):
        schema = error.schema if isinstance(error.schema, Mapping) else {}
        allowed = set(schema.get("properties", {}))
        extra = sorted(name for name in instance if name not in allowed)
        path = _path(root, [*error.absolute_path, extra[0] if extra else "?"])
        return EventProblem(path=path, found="an unknown field", expected=_expected(error))
    return EventProblem(
        path=_path(root, error.absolute_path),
        found=short_text(instance),
        expected=_expected(error),
    )


@functools.lru_cache(maxsize=32)
def _validator(schema_json: str) -> Validator:
    import json

    from jsonschema import Draft7Validator
    from jsonschema.exceptions import SchemaError
    from jsonschema.validators import validator_for

    schema = json.loads(schema_json)
    cls = validator_for(schema, default=Draft7Validator)
    try:
        cls.check_schema(schema)
    except SchemaError as exc:
        raise AnswersSchemaError(
            f"the schema itself is not valid JSON Schema ({exc.message}); check where it came from"
        ) from None
    validator: Validator = cls(schema)
    return validator


def schema_problems(
    instance: Any, schema: Mapping[str, Any], *, root: str = "answers"
) -> list[EventProblem]:
    """Every way `instance` breaks `schema` (up to 50), one `EventProblem` each, by path.

    `root` starts each path (`answers.photo.layers...`, `data.url`).
    """
    import json

    validator = _validator(json.dumps(schema, sort_keys=True))
    errors = sorted(
        validator.iter_errors(instance), key=lambda e: [str(p) for p in e.absolute_path]
    )
    return [_problem(root, error) for error in errors[:MAX_PROBLEMS]]


def answer_problems(
    answers: Answers | Mapping[str, Any], schema: Mapping[str, Any]
) -> list[EventProblem]:
    """Every way answers break a project's delivery schema (empty when they conform)."""
    data = answers.to_dict() if isinstance(answers, Answers) else answers
    return schema_problems(data, schema, root="answers")


def check_answers(answers: Answers | Mapping[str, Any], schema: Mapping[str, Any]) -> None:
    """Raise `AnswersSchemaError` listing every problem if answers break the delivery schema."""
    problems = answer_problems(answers, schema)
    if problems:
        count = f"{len(problems)} problem{'s' * (len(problems) != 1)}"
        raise AnswersSchemaError(
            f"the answers do not follow the project's delivery schema ({count}):", problems
        )
