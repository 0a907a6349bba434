"""Flow packages: names, the flow script, deploy.json and the flow's own parameters."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from libnar._build import check_package, discover_packages
from libnar.naming import check_path_part, check_script_name, suggest_script_name
from tests._build.conftest import problems_of, write_package

CRON = {"cron": "30 2 * * *", "timezone": "Europe/Paris"}
INTERVAL = {"interval": 28800, "anchor_date": "2023-11-23T02:30:00+00:00", "timezone": "UTC"}
RRULE = {"rrule": "FREQ=DAILY;BYHOUR=2", "timezone": "UTC"}


# --- names ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    ["fun69_ohyea_ptp", "fun69_boxes_prp", "abc123_two_words_ptp", "utl_tools", "utl_a_b"],
)
def test_compliant_script_names_pass(name: str) -> None:
    assert check_script_name(name) is None
    assert check_script_name(f"{name}.py") is None


@pytest.mark.parametrize(
    ("name", "suggestion"),
    [
        pytest.param("fun69_ohyea_pos_proc", "fun69_ohyea_ptp", id="documented-bad-example"),
        pytest.param("fun69_ohyea_post_processing", "fun69_ohyea_ptp", id="post-processing"),
        pytest.param("fun69-boxes-pre", "fun69_boxes_prp", id="pre-with-hyphens"),
        pytest.param("Fun69 Boxes", "fun69_boxes_ptp", id="spaces-and-capitals"),
        pytest.param("boxes_ptp", "abc1_boxes_ptp", id="no-salesforce-code"),
        pytest.param("fun69", "fun69_script_ptp", id="code-only"),
        pytest.param("utl", "utl_script", id="utl-alone"),
    ],
)
def test_bad_script_name_names_the_rule_and_a_compliant_name(name: str, suggestion: str) -> None:
    problem = check_script_name(name)
    assert problem is not None
    assert "'<salesforce code>_<name>_<ext>'" in problem
    assert problem.endswith(f"use {suggestion!r}")
    assert suggest_script_name(name) == suggestion
    assert check_script_name(suggestion) is None


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("ok_name", None),
        ("ok.py", None),
        ("My Flows", "use 'my_flows'"),
        ("Helper-2.py", "use 'helper_2.py'"),
    ],
)
def test_file_and_folder_names_are_lowercase_with_underscores(
    name: str, expected: str | None
) -> None:
    problem = check_path_part(name)
    assert (problem is None) if expected is None else (expected in str(problem))


def test_package_problems_name_folders_files_and_script(tmp_path: Path) -> None:
    flows = tmp_path / "flows"
    package = write_package(
        flows / "Fun Client" / "fun69",
        name="fun69_ohyea_pos_proc",
        files={"Helper Module.py": "X = 1\n"},
    )
    found = problems_of(package, flows)
    assert any(
        "folder 'Fun Client' breaks the naming rule" in p and "use 'fun_client'" in p for p in found
    )
    assert any(
        "package folder script name 'fun69_ohyea_pos_proc'" in p and "use 'fun69_ohyea_ptp'" in p
        for p in found
    )
    assert any(
        "Helper Module.py: file 'Helper Module.py' breaks the naming rule" in p for p in found
    )


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        pytest.param(
            "X = 1\n", "fun69_boxes_ptp.py: no @nps_flow function in the file", id="no-flow"
        ),
        pytest.param(
            "from prefect import flow\n\n@flow\ndef fun69_boxes_ptp():\n    pass\n",
            "no @nps_flow function in the file",
            id="plain-prefect-flow",
        ),
        pytest.param(
            "import os\n\nraise RuntimeError('boom')\n",
            "fun69_boxes_ptp.py:3: importing it failed: RuntimeError: boom",
            id="import-error-with-line",
        ),
        pytest.param(
            "from libnar import nps_flow\n\n@nps_flow\ndef a():\n    pass\n\n@nps_flow\ndef b():\n    pass\n",
            "several flows (a, b); keep one @nps_flow per package",
            id="two-flows",
        ),
    ],
)
def test_flow_script_problems(tmp_path: Path, source: str, expected: str) -> None:
    found = problems_of(write_package(tmp_path, source=source))
    assert any(expected in line for line in found), found


def test_missing_flow_script_says_where_it_belongs(tmp_path: Path) -> None:
    package = write_package(tmp_path)
    (package / "fun69_boxes_ptp.py").unlink()
    [problem] = problems_of(package)
    assert "the flow script is missing: a package's flow lives in <package>/<package>.py" in problem


def test_flow_script_may_import_its_sibling_modules(tmp_path: Path) -> None:
    source = "from libnar import nps_flow\nfrom boxes_helpers import LIMIT\n\n@nps_flow\ndef fun69_boxes_ptp(n: int = LIMIT) -> int:\n    return n\n"
    package = write_package(tmp_path, source=source, files={"boxes_helpers.py": "LIMIT = 3\n"})
    assert check_package(package).entrypoint == "fun69_boxes_ptp.py:fun69_boxes_ptp"


def test_discovery_finds_packages_and_skips_hidden_and_venv_folders(tmp_path: Path) -> None:
    write_package(tmp_path / "fun" / "fun69", name="fun69_a_ptp")
    write_package(tmp_path / "acm", name="utl_tools")
    write_package(tmp_path / ".venv", name="fun1_x_ptp")
    write_package(tmp_path / "venv", name="fun2_x_ptp")
    found = [p.relative_to(tmp_path).as_posix() for p in discover_packages(tmp_path)]
    assert found == ["acm/utl_tools", "fun/fun69/fun69_a_ptp"]
    assert discover_packages(tmp_path / "acm" / "utl_tools") == [tmp_path / "acm" / "utl_tools"]


# --- deploy.json ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "deploy",
    [
        pytest.param([{"name": "nightly", "schedule": CRON}], id="cron"),
        pytest.param([{"name": "n", "schedule": {"cron": "*/5 * * * 1-5"}}], id="cron-no-timezone"),
        pytest.param([{"name": "n", "schedule": INTERVAL}], id="interval"),
        pytest.param(
            [{"name": "n", "schedule": {"interval": 90.5}}], id="interval-float-no-anchor"
        ),
        pytest.param([{"name": "n", "schedule": RRULE}], id="rrule"),
        pytest.param(
            [{"name": "n", "parameters": {"min_box_px": 8, "param": {"task_id": 1}}}],
            id="parameters",
        ),
        pytest.param([{"name": "a"}, {"name": "b", "schedule": CRON}], id="several"),
    ],
)
def test_valid_deploy_json(tmp_path: Path, deploy: list[dict[str, Any]]) -> None:
    package = check_package(
        write_package(tmp_path, "deploy-json = true", deploy_json={"deploy": deploy})
    )
    assert [d.model_dump(exclude_none=True) for d in package.deployments] == [
        {"parameters": {}, **d} for d in deploy
    ]


def _entry(**fields: Any) -> dict[str, Any]:
    return {"deploy": [{"name": "nightly", **fields}]}


INVALID_DEPLOY_JSON: list[Any] = [
    pytest.param(
        _entry(schedule={"cron": "not a cron"}),
        'deploy.json: deploy[0].schedule.cron: "not a cron" is not a cron expression (5 fields, e.g. "30 2 * * *")',
        id="cron-not-cron",
    ),
    pytest.param(
        _entry(schedule={"cron": "0 30 2 * * *"}),
        'deploy[0].schedule.cron: "0 30 2 * * *" is not a cron expression (5 fields',
        id="cron-six-fields",
    ),
    pytest.param(
        _entry(schedule={"cron": "61 2 * * *"}),
        'deploy[0].schedule.cron: "61 2 * * *" is not a cron expression',
        id="cron-minute-61",
    ),
    pytest.param(
        _entry(schedule={"cron": "30 2 * * *", "timezone": "Mars/Olympus"}),
        'deploy[0].schedule.timezone: "Mars/Olympus" is not a timezone (an IANA name, e.g. "UTC" or "Europe/Paris")',
        id="unknown-timezone",
    ),
    pytest.param(
        _entry(schedule={"rrule": "FREQ=SOMETIMES"}),
        'deploy[0].schedule.rrule: "FREQ=SOMETIMES" is not an RRULE (',
        id="bad-rrule",
    ),
    pytest.param(
        _entry(schedule={"interval": -5}),
        "deploy[0].schedule.interval: -5 is not a number of seconds above 0 (e.g. 3600)",
        id="interval-negative",
    ),
    pytest.param(
        _entry(schedule={"interval": "8h"}),
        'deploy[0].schedule.interval: "8h" is not a number of seconds above 0',
        id="interval-text",
    ),
    pytest.param(
        _entry(schedule={"interval": 60, "anchor_date": "tomorrow"}),
        'deploy[0].schedule.anchor_date: "tomorrow" is not an ISO 8601 date and time',
        id="anchor-not-a-date",
    ),
    pytest.param(
        _entry(schedule={"cron": "30 2 * * *", "anchor_date": "2023-11-23T02:30:00"}),
        "deploy[0].schedule.anchor_date: unknown field; allowed here: cron, timezone",
        id="anchor-with-cron",
    ),
    pytest.param(
        _entry(schedule={"cron": "30 2 * * *", "interval": 60}),
        "deploy[0].schedule: give exactly one of cron, interval or rrule (found cron, interval)",
        id="two-kinds",
    ),
    pytest.param(
        _entry(schedule={"timezone": "UTC"}),
        "deploy[0].schedule: give exactly one of cron, interval or rrule (found none)",
        id="no-kind",
    ),
    pytest.param(
        _entry(schedule="30 2 * * *"),
        'deploy[0].schedule: expected an object with cron, interval or rrule, found "30 2 * * *"',
        id="schedule-string",
    ),
    pytest.param(
        _entry(schedul=CRON),
        'deploy[0].schedul: unknown field (did you mean "schedule"?); only name, schedule and parameters are valid',
        id="unknown-field",
    ),
    pytest.param(
        {"deploy": [{"schedule": CRON}]},
        "deploy[0].name: is required: a non-empty string",
        id="name-missing",
    ),
    pytest.param(
        {"deploy": [{"name": "a"}, {"name": "a"}]},
        'deploy[1].name: "a" is used twice; names must be unique',
        id="name-twice",
    ),
    pytest.param(
        {"deploy": []},
        'deploy.json: deploy: expected a non-empty list of deployments, e.g. [{"name": "nightly"}]',
        id="empty",
    ),
    pytest.param(
        {"deploys": [{"name": "a"}]},
        'deploys: unknown key (did you mean "deploy"?); the only key is "deploy"',
        id="top-level-typo",
    ),
    pytest.param(
        [{"name": "a"}], 'deploy.json: expected an object {"deploy": [...]}', id="not-an-object"
    ),
    pytest.param(
        _entry(parameters=[1]),
        "deploy[0].parameters: expected an object, found [1]",
        id="parameters-not-object",
    ),
    pytest.param(
        _entry(parameters={"min_box_px": "x"}),
        "deploy[0].parameters: min_box_px: found 'x'; expected a valid integer",
        id="parameter-wrong-type",
    ),
    pytest.param(
        _entry(parameters={"min_box": 3}),
        "deploy[0].parameters: min_box: found an unknown parameter; expected one of: event, min_box_px,",
        id="parameter-unknown",
    ),
    pytest.param(
        '{"deploy": [\n  {"name": "a",}\n]}',
        "deploy.json:2: not valid JSON: ",
        id="not-json-with-line",
    ),
]


@pytest.mark.parametrize(("data", "expected"), INVALID_DEPLOY_JSON)
def test_invalid_deploy_json_names_path_value_and_fix(
    tmp_path: Path, data: Any, expected: str
) -> None:
    found = problems_of(write_package(tmp_path, "deploy-json = true", deploy_json=data))
    assert any(expected in line for line in found), "\n".join(found)


def test_all_deploy_json_problems_come_at_once(tmp_path: Path) -> None:
    data = {
        "deploy": [
            {"name": "a", "schedule": {"cron": "bad"}},
            {
                "name": "b",
                "schedule": {"interval": 0, "timezone": "Nowhere"},
                "parameters": {"min_box_px": "x"},
            },
        ]
    }
    found = problems_of(write_package(tmp_path, "deploy-json = true", deploy_json=data))
    assert len(found) == 4, found
