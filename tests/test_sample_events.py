"""One answer format everywhere: the examples, the factories, `libnar init` and `libnar dev`.

All three follow SamaHub's delivery format (`reference/answers.md`), so a flow that passes
with `libnar run examples/...` also passes on the events `libnar dev` and the tests send.
"""

from __future__ import annotations

import json
import shlex
from pathlib import Path
from typing import Any

import pytest

from libnar import DppEvent, Task, WebhookEvent, nps_flow
from libnar._build._scaffold import _sample
from libnar._dev import _sample_request
from libnar.flow._loading import load_flow
from libnar.testing import FakeSamaHub, make_dpp_event, make_task, make_webhook_event

EXAMPLES = Path(__file__).parents[1] / "examples"
FUN69 = EXAMPLES / "flows" / "fun" / "fun69"
BOXES = load_flow(str(FUN69 / "fun69_boxes_ptp" / "fun69_boxes_ptp.py"))
LABELS = load_flow(str(FUN69 / "fun69_label_counts_ptp" / "fun69_label_counts_ptp.py"))


@nps_flow
def fun69_any_webhook_ptp(event: WebhookEvent) -> None:
    """Stands for any webhook flow `libnar dev` serves."""


@nps_flow
def fun69_any_dpp_ptp(event: DppEvent) -> None:
    """Stands for any DPP flow `libnar dev` serves."""


def dev_sample(flow: Any) -> dict[str, Any]:
    """The JSON body of the curl line `libnar dev` prints for `flow`."""
    keys = {"secret": "s" * 32, "dpp_key": "k" * 24}
    line = _sample_request(flow, "http://127.0.0.1:8000", keys, FakeSamaHub())
    assert line is not None
    words = shlex.split(line)
    return json.loads(words[words.index("-d") + 1])  # type: ignore[no-any-return]


def sample_tasks() -> dict[str, dict[str, Any]]:
    """Every task the three sources give, by where it came from."""
    tasks = {
        f"examples/events/{p.name}": json.loads(p.read_text())["task"]
        for p in sorted((EXAMPLES / "events").glob("*.json"))
    }
    tasks["make_task()"] = make_task().model_dump(mode="json")
    tasks["make_webhook_event()"] = make_webhook_event().task.model_dump(mode="json")
    tasks["make_dpp_event()"] = make_dpp_event().task.model_dump(mode="json")
    for kind in ("webhook", "dpp"):
        tasks[f"libnar init --event {kind}"] = _sample(kind, "fun69_new_ptp")["task"]  # type: ignore[assignment]
    tasks["libnar dev webhook sample"] = dev_sample(fun69_any_webhook_ptp)["task"]
    tasks["libnar dev DPP sample"] = dev_sample(fun69_any_dpp_ptp)["task"]
    return tasks


SAMPLES = sample_tasks()


def format_problems(answers: dict[str, Any]) -> list[str]:
    """Where `answers` leaves SamaHub's delivery format (reference/answers.md)."""
    problems = []
    if "layers" in answers:
        problems.append("a top-level 'layers': image layers belong to an output, answers[ws]")
    for name, value in answers.items():
        if isinstance(value, str):
            continue
        if not isinstance(value, dict):
            problems.append(f"{name}: {type(value).__name__}, not a string or an object")
        elif "layers" not in value:
            if not all(v in ("0", "1") for v in value.values()):
                problems.append(f"{name}: checkboxes hold '0' or '1'")
        else:
            for g, group in enumerate(value["layers"]["vector_tagging"]):
                where = f"{name}.layers.vector_tagging[{g}]"
                if "group_type" not in group:
                    problems.append(f"{where}: no group_type")
                for shape in group["shapes"]:
                    problems += shape_problems(f"{where}.shapes[{shape.get('index')}]", shape)
    return problems


def shape_problems(where: str, shape: dict[str, Any]) -> list[str]:
    problems = []
    if not isinstance(shape.get("index"), int):
        problems.append(f"{where}: index is not an integer")
    if not all(isinstance(v, str) for v in shape.get("tags", {}).values()):
        problems.append(f"{where}: tag values are strings")
    if "label" not in shape.get("tags", {}):
        problems.append(f"{where}: no 'label' tag (the samples name a shape's class 'label')")
    points = shape["points"]
    if shape["type"] == "rectangle":
        xs, ys = sorted({p[0] for p in points}), sorted({p[1] for p in points})
        corners = [[xs[0], ys[0]], [xs[-1], ys[0]], [xs[0], ys[-1]], [xs[-1], ys[-1]]]
        if points != corners:
            problems.append(f"{where}: a rectangle is 4 points TL, TR, BL, BR; found {points}")
    elif shape["type"] == "polygon" and len(points) < 3:
        problems.append(f"{where}: a polygon has 3 points or more")
    return problems


@pytest.mark.parametrize("source", list(SAMPLES))
def test_every_sample_follows_samahubs_delivery_format(source: str) -> None:
    answers = SAMPLES[source]["answers"]
    assert format_problems(answers) == []
    Task.model_validate(SAMPLES[source])


def test_the_samples_use_the_same_answer_outputs_and_shape_tags() -> None:
    def outline(answers: dict[str, Any]) -> tuple[str, frozenset[str]]:
        image = [
            name for name, value in answers.items() if isinstance(value, dict) and "layers" in value
        ]
        tags = {
            key
            for name in image
            for group in answers[name]["layers"]["vector_tagging"]
            for shape in group["shapes"]
            for key in shape["tags"]
        }
        return ",".join(image), frozenset(tags)

    outlines = {source: outline(task["answers"]) for source, task in SAMPLES.items()}
    assert len(set(outlines.values())) == 1, outlines


@pytest.mark.parametrize("source", list(SAMPLES))
def test_the_example_flows_find_shapes_in_every_sample(source: str) -> None:
    task = {**SAMPLES[source], "state": "delivered"}
    counts = LABELS.user_fn(WebhookEvent.model_validate({"task": task}))
    assert counts, "fun69_label_counts_ptp counted nothing: the sample has no 'label' tags"
    dpp = DppEvent.model_validate({"name": "fun69_boxes_ptp", "task": {**task, "round": 1}})
    kept = BOXES.user_fn(dpp, min_box_px=10_000).answers
    assert format_problems(kept) == []
    assert all(
        shape["type"] != "rectangle"
        for value in kept.values()
        if isinstance(value, dict) and "layers" in value
        for group in value["layers"]["vector_tagging"]
        for shape in group["shapes"]
    )
