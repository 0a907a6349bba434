"""Answers are checked against a project's delivery schema, one line per problem."""

from __future__ import annotations

from typing import Any

import pytest

from libnar.answers import Answers, AnswersSchemaError, answer_problems, check_answers
from libnar.testing import make_delivery_schema

from .examples import ALL, IMAGE, SCALARS

SCHEMA: dict[str, Any] = {
    "$schema": "http://json-schema.org/draft-07/schema#",
    "type": "object",
    "required": ["weather"],
    "additionalProperties": False,
    "properties": {
        "weather": {"type": "string", "enum": ["fog", "rain", "clear"]},
        "hazards": {
            "type": "object",
            "properties": {"debris": {"enum": ["0", "1"]}, "ice": {"enum": ["0", "1"]}},
        },
        "photo": {"type": "object", "required": ["layers"]},
    },
}


def test_conforming_answers_have_no_problem() -> None:
    answers = Answers.from_dict({"weather": "fog", "hazards": {"debris": "1", "ice": "0"}})

    assert answer_problems(answers, SCHEMA) == []
    check_answers(answers, SCHEMA)  # does not raise


@pytest.mark.parametrize(
    ("answers", "lines"),
    [
        pytest.param(
            {"weather": "snow"},
            ["answers.weather: found 'snow'; expected one of 'fog', 'rain', 'clear'"],
            id="not-in-enum",
        ),
        pytest.param(
            {"hazards": {"debris": "1"}},
            ["answers.weather: found nothing; expected a value (the schema requires it)"],
            id="missing-output",
        ),
        pytest.param(
            {"weather": "fog", "hazards": {"debris": "yes"}, "extra": "x"},
            [
                "answers.extra: found an unknown field; expected no other fields (the schema lists the fields allowed)",
                "answers.hazards.debris: found 'yes'; expected one of '0', '1'",
            ],
            id="every-problem-at-once",
        ),
        pytest.param(
            {"weather": "fog", "photo": "a string"},
            ["answers.photo: found 'a string'; expected an object"],
            id="wrong-type",
        ),
    ],
)  # fmt: skip
def test_each_problem_is_one_line_with_path_found_and_expected(
    answers: dict[str, Any], lines: list[str]
) -> None:
    with pytest.raises(AnswersSchemaError) as raised:
        check_answers(Answers.from_dict(answers), SCHEMA)

    assert [str(problem) for problem in raised.value.problems] == lines
    count = len(lines)
    assert str(raised.value).startswith(
        f"the answers do not follow the project's delivery schema ({count} problem"
    )


def test_plain_dicts_are_checked_too() -> None:
    assert len(answer_problems({"weather": 3}, SCHEMA)) == 2  # not a string, not in the enum


def test_an_invalid_schema_is_reported_as_such() -> None:
    with pytest.raises(AnswersSchemaError, match="the schema itself is not valid JSON Schema"):
        check_answers({"weather": "fog"}, {"type": "nonsense"})


@pytest.mark.parametrize("example", ALL.values(), ids=ALL.keys())
def test_every_reference_format_follows_the_schema_made_from_it(example: dict[str, Any]) -> None:
    check_answers(Answers.from_dict(example), make_delivery_schema(example))


def test_the_made_schema_refuses_what_samahub_would() -> None:
    schema = make_delivery_schema({**IMAGE, **SCALARS})
    answers = Answers.from_dict({**IMAGE, **SCALARS})
    answers["hazards"] = {"debris": "maybe", "animal": "0", "ice": "1"}
    del answers["weather"]
    data = answers.to_dict()
    data["photo"]["layers"]["vector_tagging"][0]["shapes"][0]["points"].append(["x", 1])

    lines = [str(problem) for problem in answer_problems(data, schema)]

    assert lines == [
        "answers.weather: found nothing; expected a value (the schema requires it)",
        "answers.hazards.debris: found 'maybe'; expected one of '0', '1'",
        "answers.photo.layers.vector_tagging[0].shapes[0].points[4][0]: found 'x'; expected a number",
    ]
