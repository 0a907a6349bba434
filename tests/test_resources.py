"""Resources of a run: the same rules for `[sama-build]` and per-run values, never clamped."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from libnar._build._config import SamaBuild
from libnar.resources import (
    RunResources,
    infra_maxima,
    job_variables_for,
    parse_run_resources,
)
from libnar.runs import run_tags, split_special_parameters

SMALL_NODES = {"giver": ("2", "4Gi"), "gke": ("4", "8Gi")}


@pytest.mark.parametrize(
    ("values", "path", "expected"),
    [
        ({"amount": "huge"}, "p.amount", 'one of "very-low", "low", "med", "high", "custom"'),
        ({"amount": "custom", "cpu": "2"}, "p.memory", 'a value with amount = "custom"'),
        ({"amount": "high", "memory": "8Gi"}, "p.memory", 'set amount = "custom" or remove memory'),
        ({"cpu": "2"}, "p.cpu", 'cpu is read only with amount = "custom"'),
        ({"amount": "custom", "cpu": "two", "memory": "4Gi"}, "p.cpu", "is not a CPU amount"),
        ({"amount": "custom", "cpu": "2", "memory": "4GB"}, "p.memory", "not a size in Mi or Gi"),
        ({"disk": 100}, "p.disk", "a string in quotes"),
    ],
    ids=[
        "unknown-amount",
        "custom-without-memory",
        "memory-without-custom",
        "cpu-alone",
        "bad-cpu",
        "bad-unit",
        "disk-number",
    ],
)
def test_bad_per_run_resources_name_the_parameter_and_the_fix(
    values: dict[str, Any], path: str, expected: str
) -> None:
    rest, special, problems = split_special_parameters({"keep": 1, **values}, "p")
    assert rest == {"keep": 1}  # never passed on to the flow
    assert special.resources is None
    assert [p.path for p in problems] == [path]
    assert expected in problems[0].expected


def test_per_run_resources_are_taken_out_and_tagged() -> None:
    rest, special, problems = split_special_parameters({"amount": "high", "k": "v"})
    assert (rest, problems) == ({"k": "v"}, [])
    assert special.resources == RunResources(amount="high")
    from libnar.events import TaskReference

    tags = run_tags(TaskReference(project_id="1", task_id="2"), resources=special.resources)
    assert "amount:high" in tags


@pytest.mark.parametrize(
    ("infra", "resources", "message"),
    [
        ("narwhal", RunResources("custom", "3", "8Gi"), "3 vCPU is not an ECS Fargate size"),
        (
            "narwhal",
            RunResources("custom", "1", "16Gi"),
            "1 vCPU with 16Gi is not an ECS Fargate combination on narwhal (1 vCPU takes 2Gi to 8Gi",
        ),
        ("narwhal", RunResources("custom", "32", "240Gi"), "use one of 0.25, 0.5, 1, 2, 4, 8, 16"),
        ("narwhal", RunResources("very-low"), 'amount = "very-low" (0.5 vCPU / 512Mi) is not an'),
        (
            "giver",
            RunResources("custom", "4", "4Gi"),
            "above the maximum CPU on giver (2 vCPU, LIBNAR_GIVER_MAX_CPU); use at most 2",
        ),
        (
            "gke",
            RunResources("custom", "2", "16Gi"),
            "16Gi is above the maximum memory on gke (8Gi, LIBNAR_GKE_MAX_MEMORY); use at most 8Gi",
        ),
        ("narwhal", RunResources(disk="300Gi"), "above the maximum on narwhal (base storage"),
        ("giver", RunResources(disk="600Gi"), "use at most 500Gi"),
    ],
    ids=[
        "ecs-cpu",
        "ecs-pair",
        "ecs-max",
        "ecs-preset",
        "giver-cpu",
        "gke-memory",
        "ecs-disk",
        "giver-disk",
    ],
)
def test_a_run_over_its_infra_is_refused_with_the_builds_message(
    infra: str, resources: RunResources, message: str
) -> None:
    problems = resources.problems_on(infra, SMALL_NODES)
    assert len(problems) == 1
    assert message in problems[0][1]


def test_per_run_and_build_checks_give_the_same_message() -> None:
    [(_, per_run)] = RunResources("custom", "1", "16Gi").problems_on("narwhal")
    with pytest.raises(ValidationError) as raised:
        SamaBuild.model_validate(
            {"infra": "narwhal", "amount": "custom", "cpu": "1", "memory": "16Gi"}
        )
    assert per_run in str(raised.value)


def test_build_refuses_memory_above_the_kubernetes_setting() -> None:
    with pytest.raises(Exception, match="LIBNAR_GIVER_MAX_MEMORY"):
        SamaBuild.model_validate(
            {"infra": "giver", "amount": "custom", "cpu": "1", "memory": "64Gi"},
            context={"maxima": SMALL_NODES},
        )


def test_kubernetes_maxima_come_from_the_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LIBNAR_GKE_MAX_MEMORY", "12Gi")
    [(key, message)] = RunResources("custom", "1", "16Gi").problems_on("gke")
    assert key == "memory"
    assert "(12Gi, LIBNAR_GKE_MAX_MEMORY)" in message
    assert infra_maxima("narwhal").memory_mib == 120 * 1024


@pytest.mark.parametrize(
    ("infra", "pool", "resources", "expected"),
    [
        (
            "narwhal",
            "ecs",
            RunResources("high", disk="100Gi"),
            {"cpu": 2048, "memory": 4096, "ephemeral_storage": 100},
        ),
        (
            "giver",
            "kubernetes",
            RunResources("med", disk="20Gi"),
            {"cpu": "1", "memory": "4Gi", "volume_size": "20Gi"},
        ),
        (
            "gke",
            "kubernetes",
            RunResources("custom", "500m", "1Gi"),
            {"cpu": "0.5", "memory": "1Gi"},
        ),
        ("narwhal", "process", RunResources("high", disk="100Gi"), {"cpu": "2", "memory": "4Gi"}),
        ("narwhal", "ecs", RunResources(disk="30Gi"), {"ephemeral_storage": 30}),
    ],
    ids=["ecs", "giver", "gke-custom", "local", "disk-only"],
)
def test_job_variables_are_in_the_pools_units(
    infra: str, pool: str, resources: RunResources, expected: dict[str, Any]
) -> None:
    assert job_variables_for(infra, pool, resources) == expected


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ({"escalate": ["low"]}, 'is not larger than amount = "low"'),
        ({"amount": "med", "escalate": ["high", "med"]}, '"med" (4Gi / 1 vCPU) is not larger'),
        ({"escalate": ["custom"]}, "escalate.0"),
        (
            {
                "infra": "narwhal",
                "amount": "custom",
                "cpu": "0.5",
                "memory": "1Gi",
                "escalate": ["very-low"],
            },
            "not an ECS Fargate combination",
        ),
    ],
    ids=["not-larger", "shrinking", "custom", "not-on-infra"],
)
def test_escalate_lists_presets_from_small_to_large(table: dict[str, Any], message: str) -> None:
    with pytest.raises(Exception, match=message.replace("(", r"\(").replace(")", r"\)")):
        SamaBuild.model_validate(table)


def test_escalate_and_notify_are_read() -> None:
    config = SamaBuild.model_validate(
        {"escalate": ["med", "high"], "notify": [{"on": ["crashed"], "block": "slack-webhook/ops"}]}
    )
    assert config.escalate == ["med", "high"]
    assert config.notify[0].on == ["crashed"]
    with pytest.raises(Exception, match="<block type>/<block name>"):
        SamaBuild.model_validate({"notify": [{"block": "ops"}]})
    with pytest.raises(Exception, match="failed"):
        SamaBuild.model_validate({"notify": [{"on": ["exploded"], "block": "email/ops"}]})


def test_parse_run_resources_without_any_is_none() -> None:
    assert parse_run_resources({"other": 1}) == (None, [])


@pytest.mark.parametrize("key", ["amount", "cpu", "memory", "disk"])
def test_a_huge_resource_value_is_refused_short(key: str) -> None:
    """A sender's 100,000-character value is refused without being echoed whole."""
    others = {} if key == "amount" else {"amount": "custom", "cpu": "1", "memory": "2Gi"}
    given = {**others, key: "9" * 100_000}
    resources, problems = parse_run_resources(given)
    assert resources is None
    [(found_key, found, expected)] = problems
    assert found_key == key
    assert expected == 'at most 32 characters, e.g. "high", "4Gi"'
    assert found.startswith('"999')
    assert len(found) <= 80
