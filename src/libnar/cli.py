"""The `libnar` command: parse arguments, call the layer that does the work, print the outcome.

Exit codes: 0 success, 1 the work itself failed (a failed run, invalid packages), 2 bad
arguments or bad input files.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Literal

import typer
from rich.console import Console

app = typer.Typer(
    name="libnar",
    help="Write, test, build and trigger NPS flows for SamaHub on Prefect 3.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
out = Console()
err = Console(stderr=True)


def fail(message: str, code: int = 2) -> typer.Exit:
    """Print an error on stderr and return the `Exit` to raise."""
    err.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    return typer.Exit(code)


@app.command()
def schema(
    kind: Annotated[
        Literal["webhook", "dpp", "result", "task"],
        typer.Argument(help="Which payload: webhook, dpp, result or task."),
    ],
) -> None:
    """Print the JSON Schema of a SamaHub payload."""
    from libnar.events import event_json_schema

    print(json.dumps(event_json_schema(kind), indent=2))


@app.command()
def settings() -> None:
    """Print every setting libnar reads, with its environment variable and default."""
    from libnar.settings import settings_table

    print(settings_table(), end="")


# -- libnar run ----------------------------------------------------------------------------


def _parse_param(text: str) -> tuple[str, object]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise fail(f"--param {text!r}: expected KEY=VALUE, e.g. --param min_box_px=8")
    try:
        return key, json.loads(value)
    except json.JSONDecodeError:
        return key, value


@app.command()
def run(
    target: Annotated[str, typer.Argument(help="The flow file, as PATH.py or PATH.py:FUNCTION.")],
    event: Annotated[
        Path | None,
        typer.Option("--event", "-e", help="A JSON file with the event (webhook or DPP payload)."),
    ] = None,
    param: Annotated[
        list[str] | None,
        typer.Option("--param", "-p", help="A flow parameter as KEY=VALUE (VALUE may be JSON)."),
    ] = None,
    submit: Annotated[
        bool,
        typer.Option(help="Send a DPP flow's result to SamaHub (off: only print it)."),
    ] = False,
) -> None:
    """Run a flow once on a local Prefect and print its name, state, duration and result.

    Uses PREFECT_API_URL when set, else an embedded Prefect server. A DPP event's own
    `parameters` apply as they do in production; --param values override them.
    """
    # The embedded server would otherwise send usage telemetry from the author's laptop.
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    from libnar.events import DppEvent, EventError
    from libnar.flow import ParameterError
    from libnar.flow._loading import FlowLoadError, load_flow
    from libnar.flow._parameters import prepare_call

    try:
        flow = load_flow(target)
    except FlowLoadError as exc:
        raise fail(str(exc)) from None
    parameters: dict[str, object] = {}
    if event is not None:
        if flow.signature.event_name is None:
            raise fail(f"flow {flow.name!r} takes no event; drop --event")
        try:
            body = event.read_bytes()
        except OSError as exc:
            raise fail(f"--event {event}: {exc.strerror}") from None
        parameters[flow.signature.event_name] = body
    parameters.update(_parse_param(p) for p in param or [])
    try:
        prepared = prepare_call(flow.signature, parameters)
    except (ParameterError, EventError) as exc:
        raise fail(f"{event or target}: {exc}") from None
    if isinstance(prepared.event, DppEvent) and prepared.event.parameters:
        parameters = {**prepared.event.parameters, **parameters}
        try:
            prepared = prepare_call(flow.signature, parameters)
        except (ParameterError, EventError) as exc:
            raise fail(f"{event}: the event's parameters do not fit the flow: {exc}") from None
    flow.submit_result = submit
    _print_run(flow.name, prepared.as_parameters(flow.signature), flow)


def _print_run(name: str, parameters: dict[str, object], flow: object) -> None:
    import pydantic_core

    from libnar.flow._local import run_locally

    out.print(f"Running flow [bold]{name}[/] on Prefect ...", highlight=False)
    done = run_locally(flow, parameters)  # type: ignore[arg-type]
    colour = "green" if done.is_completed else "red"
    out.print(f"run:      [bold]{done.name}[/]", highlight=False)
    out.print(f"state:    [{colour}]{done.state.name}[/]", highlight=False)
    out.print(f"duration: {done.seconds:.2f} s", highlight=False)
    if not done.is_completed:
        err.print(f"[bold red]error:[/] {done.state.message}", highlight=False, soft_wrap=True)
        raise typer.Exit(1)
    value = done.result()
    rendered = pydantic_core.to_json(value, indent=2, fallback=repr).decode()
    out.print("result:", highlight=False)
    print(rendered)


# -- libnar task ---------------------------------------------------------------------------

task_app = typer.Typer(
    help="Read SamaHub tasks (the API key and URL come from settings: SAMA_API_KEY, ...).",
    no_args_is_help=True,
)
app.add_typer(task_app, name="task")


@task_app.callback()
def _task_logging() -> None:
    # Retries log a warning each: show them as lines of their own, not Python's bare default.
    logging.basicConfig(level=logging.WARNING, format="warning: %(message)s")


@contextmanager
def _sama_errors() -> Iterator[None]:
    """Turn SamaHub errors into one line on stderr: exit 2 for settings, 1 for SamaHub."""
    from rich.markup import escape

    from libnar.sama import SamaError
    from libnar.settings import SettingsError

    try:
        yield
    except SettingsError as exc:  # also SamaConfigError: a missing or invalid setting
        raise fail(escape(str(exc)), 2) from None
    except SamaError as exc:
        raise fail(escape(str(exc)), 1) from None


def _parse_since(text: str) -> datetime:
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise fail(
            f"--delivered-since {text!r}: expected an ISO date or time, e.g. 2024-05-01 or "
            "2024-05-01T08:00:00Z"
        ) from None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


@task_app.command("get")
def task_get(
    project_id: Annotated[str, typer.Argument(help="The SamaHub project id.")],
    task_id: Annotated[str, typer.Argument(help="The task id (24 hex characters).")],
) -> None:
    """Print one task as JSON, in delivery format."""
    from libnar.sama import SamaClient

    with _sama_errors(), SamaClient() as sama:
        task = sama.get_task(project_id, task_id)
    print(task.model_dump_json(indent=2))


@task_app.command("export")
def task_export(
    project_id: Annotated[str, typer.Argument(help="The SamaHub project id.")],
    delivered_since: Annotated[
        str,
        typer.Option(
            "--delivered-since",
            help="Export tasks delivered at or after this ISO date or time (UTC if no offset).",
        ),
    ],
    out_file: Annotated[
        Path, typer.Option("--out", "-o", help="The JSON Lines file to write, one task a line.")
    ],
) -> None:
    """Write the tasks delivered since a time to a JSON Lines file, page by page.

    The file appears only when every page has been read: a failed export leaves no partial file.
    """
    from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    from libnar.sama import SamaClient

    since = _parse_since(delivered_since)
    partial = out_file.with_name(out_file.name + ".partial")
    columns = (
        SpinnerColumn(),
        TextColumn("{task.completed} tasks"),
        BarColumn(),
        TimeElapsedColumn(),
    )
    try:
        with (
            _sama_errors(),
            SamaClient() as sama,
            partial.open("w", encoding="utf-8") as lines,
            Progress(*columns, console=err) as progress,
        ):
            bar = progress.add_task("export", total=None)
            for task in sama.iter_delivered_tasks(project_id, since=since):
                lines.write(task.model_dump_json() + "\n")
                progress.advance(bar)
            count = int(progress.tasks[0].completed)
        partial.replace(out_file)
    except OSError as exc:
        raise fail(f"--out {out_file}: {exc.strerror}") from None
    finally:
        partial.unlink(missing_ok=True)
    out.print(f"exported {count} tasks to {out_file}", highlight=False, soft_wrap=True)


def main() -> None:
    """Entry point of the `libnar` console script."""
    app()


if __name__ == "__main__":
    main()
