"""The `libnar` command, run as a subprocess the way flow authors run it."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from libnar.settings import settings_table

ROOT = Path(__file__).parents[1]
EXAMPLES = ROOT / "examples"
BOXES = EXAMPLES / "flows" / "fun" / "fun69" / "fun69_boxes_ptp" / "fun69_boxes_ptp.py"
LABELS = (
    EXAMPLES / "flows" / "fun" / "fun69" / "fun69_label_counts_ptp" / "fun69_label_counts_ptp.py"
)
DPP_EVENT = EXAMPLES / "events" / "dpp_event.json"
WEBHOOK_EVENT = EXAMPLES / "events" / "webhook_event.json"


def shape_indexes(answers: dict[str, Any]) -> list[int]:
    """The indexes of the shapes in the image output of the sample events."""
    groups = answers["image"]["layers"]["vector_tagging"]
    return [shape["index"] for group in groups for shape in group["shapes"]]


def libnar(
    *args: str | Path, env: dict[str, str] | None = None, cwd: Path = ROOT
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "libnar.cli", *map(str, args)],
        capture_output=True,
        text=True,
        env=env or dict(os.environ),
        timeout=180,
        cwd=cwd,
    )


def with_env(extra: dict[str, str]) -> dict[str, str]:
    """This process's environment without SamaHub settings, plus `extra`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SAMA_")}
    return {**env, **extra}


@pytest.mark.parametrize(
    ("extra", "missing"),
    [
        ({}, "needs SAMA_DPP_URL and SAMA_DPP_KEY, which are not set"),
        ({"SAMA_DPP_URL": "http://127.0.0.1:9/dpp"}, "needs SAMA_DPP_KEY, which is not set"),
        ({"SAMA_DPP_URL": "", "SAMA_DPP_KEY": "k"}, "needs SAMA_DPP_URL, which is not set"),
    ],
    ids=["both", "key", "empty-url"],
)
def test_submit_without_the_dpp_settings_is_refused_before_the_run(
    extra: dict[str, str], missing: str
) -> None:
    done = libnar("run", BOXES, "--event", DPP_EVENT, "--submit", env=with_env(extra))
    assert done.returncode == 2
    assert f"error: --submit sends the result to SamaHub and {missing}" in done.stderr
    assert "leave out --submit to only print the result" in done.stderr
    assert "Running flow" not in done.stdout  # refused before anything ran
    assert len(done.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize(
    ("args", "setting"),
    [
        (["deploy", "examples/flows"], "PREFECT_API_URL"),
        (["deploy-json", "fun69_boxes_ptp"], "PREFECT_API_URL"),
        (["gateway", "replay"], "PREFECT_API_URL"),
        (["gateway", "serve", "--port", "9"], "LIBNAR_GATEWAY_SECRETS PREFECT_API_URL"),
        (["task", "get", "10", "64b7f0c2a1e3d4f5a6b7c8d9"], "SAMA_API_KEY"),
        (["run", str(BOXES), "--event", str(DPP_EVENT), "--submit"], "SAMA_DPP_URL"),
    ],
    ids=lambda v: v if isinstance(v, str) else " ".join(v[:2]),
)
def test_a_missing_setting_exits_2_with_one_line_naming_it_in_every_command(
    args: list[str], setting: str, tmp_path: Path
) -> None:
    """One line per missing setting: `gateway serve` names both of its own at once."""
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_API", "SAMA_", "LIBNAR_"))
    }
    env["LIBNAR_OUTBOX_DIR"] = str(tmp_path / "outbox")
    done = libnar(*args, env=env)
    assert done.returncode == 2, done.stdout + done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == len(setting.split()), done.stderr
    for name, line in zip(setting.split(), lines, strict=True):
        assert name in line


def test_submit_for_a_flow_without_dpp_event_is_refused() -> None:
    done = libnar("run", LABELS, "--event", WEBHOOK_EVENT, "--submit")
    assert done.returncode == 2
    assert "runs without a DPP event, so it has no result to send" in done.stderr


FAILING_FLOW = """
from libnar import WebhookEvent, nps_flow

@nps_flow
def fun69_broken_ptp(event: WebhookEvent) -> None:
    raise RuntimeError("the client's bucket is gone")
"""


ECHO_FLOW = """
from libnar import DppEvent, DppResult, nps_flow

@nps_flow
def fun69_echo_ptp(event: DppEvent, min_box_px: int = 4) -> DppResult:
    return event.result()
"""

MARKUP_FLOW = """
from libnar import WebhookEvent, nps_flow

@nps_flow
def fun69_markup_ptp(event: WebhookEvent, what: str = "value") -> None:
    if what == "key":
        raise KeyError("[project] missing")
    raise ValueError("closing tag [/bold] here")
"""


@pytest.mark.usefixtures("prefect_server")
class TestRun:
    def test_run_prints_name_state_duration_and_result(self) -> None:
        done = libnar("run", BOXES, "--event", DPP_EVENT)
        assert done.returncode == 0, done.stderr
        assert "run:      fun69_boxes_ptp-10423-64b7f0c2a1e3d4f5a6b7c8d9-r1" in done.stdout
        assert "state:    Completed" in done.stdout
        assert "duration: " in done.stdout
        assert (
            "sent:     nothing (the result is only printed; add --submit to send it to SamaHub)"
            in done.stdout
        )
        result = json.loads(done.stdout.split("result:\n", 1)[1])
        assert result["round"] == 1
        # min_box_px=8 comes from the DPP event's own parameters: the 2x3 box is dropped.
        indexes = shape_indexes(result["answers"])
        assert indexes == [1, 3, 4]

    def test_submit_sends_the_result_and_says_so(self) -> None:
        from libnar import DppEvent
        from libnar.testing import serve_fake_samahub

        event = DppEvent.model_validate_json(DPP_EVENT.read_text())
        with serve_fake_samahub() as fake:
            fake.add_event(event)
            done = libnar("run", BOXES, "--event", DPP_EVENT, "--submit", env=with_env(fake.env()))
        assert done.returncode == 0, done.stderr
        assert (
            "sent:     the result to SamaHub (project 10423, task 64b7f0c2a1e3d4f5a6b7c8d9, round 1)"
            in done.stdout
        )
        assert fake.dpp_results[("10423", "64b7f0c2a1e3d4f5a6b7c8d9")].round == 1

    def test_a_refused_submit_says_nothing_was_sent(self, tmp_path: Path) -> None:
        from libnar import DppEvent
        from libnar.testing import serve_fake_samahub

        flow_file = tmp_path / "fun69_echo_ptp.py"
        flow_file.write_text(ECHO_FLOW)  # no retries: one refused PUT fails the run
        with serve_fake_samahub() as fake:
            fake.add_event(DppEvent.model_validate_json(DPP_EVENT.read_text()))
            fake.fail(422, route="post_processed", message="answers do not match the schema")
            done = libnar(
                "run", flow_file, "--event", DPP_EVENT, "--submit", env=with_env(fake.env())
            )
        assert done.returncode == 1
        assert "sent:     nothing: SamaHub did not take the result" in done.stdout
        assert "answers do not match the schema" in done.stderr
        assert fake.dpp_results == {}

    def test_param_overrides_the_event_parameters_and_is_coerced(self) -> None:
        done = libnar(
            "run",
            f"{BOXES}:fun69_boxes_ptp",
            "--event",
            DPP_EVENT,
            "--param",
            "min_box_px=100",
        )
        assert done.returncode == 0, done.stderr
        result = json.loads(done.stdout.split("result:\n", 1)[1])
        indexes = shape_indexes(result["answers"])
        assert indexes == [4]  # only the polygon survives

    def test_an_event_over_prefects_limit_runs_by_reference(self, tmp_path: Path) -> None:
        body = json.loads(DPP_EVENT.read_text())
        body["task"]["data"]["frames"] = [f"frame-{i:06d}.png" for i in range(60_000)]
        big = tmp_path / "big_dpp.json"
        big.write_text(json.dumps(body))
        assert big.stat().st_size > 600_000  # Prefect refuses parameters over 512 KiB
        done = libnar("run", BOXES, "--event", big)
        assert done.returncode == 0, done.stderr
        assert "state:    Completed" in done.stdout
        result = json.loads(done.stdout.split("result:\n", 1)[1])
        assert len(result["data"]["frames"]) == 60_000
        assert shape_indexes(result["answers"]) == [1, 3, 4]

    def test_failed_run_exits_1_with_the_error(self, tmp_path: Path) -> None:
        flow_file = tmp_path / "fun69_broken_ptp.py"
        flow_file.write_text(FAILING_FLOW)
        done = libnar("run", flow_file, "--event", WEBHOOK_EVENT)
        assert done.returncode == 1
        assert "state:    Failed" in done.stdout
        assert "the client's bucket is gone" in done.stderr

    @pytest.mark.parametrize(
        ("what", "shown"),
        [("value", "ValueError: closing tag [/bold] here"), ("key", "'[project] missing'")],
        ids=["closing-tag", "brackets"],
    )
    def test_a_flow_error_prints_as_written_not_as_markup(
        self, tmp_path: Path, what: str, shown: str
    ) -> None:
        flow_file = tmp_path / "fun69_markup_ptp.py"
        flow_file.write_text(MARKUP_FLOW)
        done = libnar("run", flow_file, "--event", WEBHOOK_EVENT, "-p", f"what={what}")
        assert done.returncode == 1, done.stderr
        # Prefect logs the flow's own traceback; libnar's last line names the error as raised.
        last = done.stderr.strip().splitlines()[-1]
        assert last.startswith("error: "), done.stderr
        assert shown in last
        assert "MarkupError" not in done.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["run", "examples/nope.py", "--event", str(DPP_EVENT)], "examples/nope.py: no such file"),
        (
            ["run", str(BOXES), "--event", str(DPP_EVENT), "-p", "amount=custom", "-p", "cpu=2"],
            'memory: found nothing; expected a value with amount = "custom" (e.g. "4Gi")'
            " (give it with --param memory=VALUE)",
        ),
        (
            [
                "run",
                "examples/flows/fun/fun69/fun69_boxes_ptp/fun69_boxes_ptp.py:nothing",
                "--event",
                str(DPP_EVENT),
            ],
            "is not an @nps_flow (flows in the file: fun69_boxes_ptp)",
        ),
        (
            [
                "run",
                "examples/flows/fun/fun69/fun69_boxes_ptp/fun69_boxes_ptp.py",
                "--event",
                str(WEBHOOK_EVENT),
            ],
            "event.name: found nothing: the payload is a webhook event",
        ),
        (
            [
                "run",
                "examples/flows/fun/fun69/fun69_boxes_ptp/fun69_boxes_ptp.py",
                "--event",
                str(DPP_EVENT),
                "-p",
                "min_box_px=big",
            ],
            "min_box_px: found 'big'; expected a valid integer",
        ),
        (
            [
                "run",
                "examples/flows/fun/fun69/fun69_boxes_ptp/fun69_boxes_ptp.py",
                "--event",
                str(DPP_EVENT),
                "-p",
                "colour=red",
            ],
            "colour: found an unknown parameter; expected one of: event, min_box_px",
        ),
        (
            [
                "run",
                "examples/flows/fun/fun69/fun69_boxes_ptp/fun69_boxes_ptp.py",
                "-p",
                "nokeyvalue",
            ],
            "expected KEY=VALUE",
        ),
        (
            [
                "run",
                "examples/flows/fun/fun69/fun69_boxes_ptp/fun69_boxes_ptp.py",
                "--event",
                "missing.json",
            ],
            "No such file",
        ),
        (
            ["run", "examples/flows/fun/fun69/fun69_boxes_ptp/fun69_boxes_ptp.py"],
            "event: found nothing",
        ),
        (
            [
                "run",
                "examples/flows/acm/acm12/acm12_nightly_export_ptp/acm12_nightly_export_ptp.py",
                "--event",
                str(WEBHOOK_EVENT),
            ],
            "event: found an event; expected no event (the flow takes none)",
        ),
    ],
    ids=[
        "no-file",
        "custom-resources-without-memory",
        "not-a-flow",
        "webhook-event-for-dpp-flow",
        "bad-param-value",
        "unknown-param",
        "param-without-equals",
        "missing-event-file",
        "no-event",
        "event-for-a-flow-without-one",
    ],
)
def test_bad_arguments_exit_2_with_a_clear_message(args: list[str], message: str) -> None:
    done = libnar(*args)
    assert done.returncode == 2, done.stdout + done.stderr
    assert message in " ".join(done.stderr.split()), done.stderr
    assert "Traceback" not in done.stderr


def test_a_bad_param_names_the_param_not_the_event_file() -> None:
    done = libnar("run", BOXES, "--event", DPP_EVENT, "-p", "min_box_px=many")
    assert done.returncode == 2
    assert "--param min_box_px: found 'many'; expected a valid integer" in done.stderr
    assert "dpp_event.json" not in done.stderr


def test_bad_event_file_gives_one_line_per_problem(tmp_path: Path) -> None:
    event = tmp_path / "bad.json"
    event.write_text(json.dumps({"name": "x", "task": {"id": 5, "round": "r"}}))
    done = libnar("run", BOXES, "--event", event)
    assert done.returncode == 2
    assert "event.task.id: found 5; expected a valid string" in done.stderr
    assert "event.task.project_id: found nothing" in done.stderr
    assert "event.task.round: found 'r'" in done.stderr


@pytest.mark.slow
def test_run_works_with_nothing_else_running(tmp_path: Path) -> None:
    """Right after `pip install libnar`: no PREFECT_API_URL, so an embedded server starts."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env["PREFECT_HOME"] = str(tmp_path / "home")
    done = libnar("run", LABELS, "--event", WEBHOOK_EVENT, env=env)
    assert done.returncode == 0, done.stderr
    assert "state:    Completed" in done.stdout
    assert json.loads(done.stdout.split("result:\n", 1)[1]) == {"car": 2, "truck": 1, "sign": 1}


def test_version_prints_libnar_prefect_and_python() -> None:
    from importlib.metadata import version

    from libnar import __version__

    done = libnar("--version")
    assert done.returncode == 0
    assert done.stdout.startswith(f"libnar {__version__} (Prefect {version('prefect')}, ")
    assert version("libnar") == __version__  # pyproject.toml and the code agree


@pytest.mark.parametrize("kind", ["webhook", "dpp", "result", "task"])
def test_schema_prints_the_json_schema(kind: str) -> None:
    done = libnar("schema", kind)
    assert done.returncode == 0
    assert json.loads(done.stdout)["type"] == "object"


def test_settings_prints_the_documented_table() -> None:
    done = libnar("settings")
    assert done.returncode == 0
    assert done.stdout == settings_table()


def test_settings_values_show_what_is_set_now_with_secrets_masked(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("SAMA_API_URL=https://sama.example.test/v2\n")
    env = with_env(
        {
            "SAMA_API_KEY": "secret-key-123",
            "SAMA_DPP_URL": "https://dpp-user:dpp-password@dpp.example.test",
            "LIBNAR_DPP_KEYS": "first-key,second-key",
            "PREFECT_API_URL": "http://prefect-user:prefect-password@127.0.0.1:9/api",
        }
    )
    done = libnar("settings", "--values", env=env, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "| `SAMA_API_KEY` | *** (set) | environment |" in done.stdout
    assert "| `SAMA_API_URL` | https://sama.example.test/v2 | `.env` |" in done.stdout
    assert "| `SAMA_DPP_URL` | https://dpp-user:***@dpp.example.test | environment |" in done.stdout
    assert "| `LIBNAR_DPP_KEYS` | *** (2 set) | environment |" in done.stdout
    assert "| `SAMA_TIMEOUT` | 30.0 | default |" in done.stdout
    assert "Prefect: PREFECT_API_URL = http://prefect-user:***@127.0.0.1:9/api" in done.stdout
    for secret in ("secret-key-123", "dpp-password", "first-key", "prefect-password"):
        assert secret not in done.stdout + done.stderr


def test_settings_values_with_an_invalid_setting_names_it_and_exits_2(tmp_path: Path) -> None:
    done = libnar("settings", "--values", env=with_env({"SAMA_TIMEOUT": "soon"}), cwd=tmp_path)
    assert done.returncode == 2
    assert "SAMA_TIMEOUT: Input should be a valid number" in done.stderr


def test_docs_settings_table_is_generated_from_the_code() -> None:
    page = (ROOT / "docs" / "settings.md").read_text()
    assert settings_table() in page, "run `libnar settings` and paste it into docs/settings.md"


COMMANDS = [
    [],
    ["schema"],
    ["settings"],
    ["init"],
    ["validate"],
    ["build"],
    ["deploy"],
    ["deploy-json"],
    ["run"],
    ["trigger"],
    ["dev"],
    ["task"],
    ["task", "get"],
    ["task", "export"],
    ["gateway"],
    ["gateway", "serve"],
    ["gateway", "replay"],
]


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c) or "libnar")
def test_help_names_what_to_type_not_python_types(command: list[str]) -> None:
    from typer.testing import CliRunner

    from libnar.cli import app

    result = CliRunner().invoke(app, [*command, "--help"], env={"COLUMNS": "100"})
    assert result.exit_code == 0, result.output
    assert re.findall(r"<[^>\s]*>|\{[^}]*\}", result.output) == [], result.output


def test_help_shows_arguments_as_usage_names() -> None:
    from typer.testing import CliRunner

    from libnar.cli import app

    runner = CliRunner()
    assert (
        "Usage: libnar validate [OPTIONS] [PATH]..."
        in runner.invoke(app, ["validate", "--help"]).output
    )
    assert "Usage: libnar schema [OPTIONS] KIND" in runner.invoke(app, ["schema", "--help"]).output
    run_help = runner.invoke(app, ["run", "--help"]).output
    assert "-p, --param KEY=VALUE" in run_help
    assert "-e, --event FILE" in run_help


def test_help_lists_every_command_with_its_text_intact() -> None:
    done = libnar("--help")
    assert done.returncode == 0
    text = " ".join(done.stdout.split())
    for command in [
        "run",
        "schema",
        "settings",
        "init",
        "validate",
        "build",
        "deploy",
        "dev",
        "task",
        "gateway",
    ]:
        assert f" {command} " in text
    assert "[sama-build]" in text
