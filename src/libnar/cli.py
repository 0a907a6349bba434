"""The `libnar` command: parse arguments, call the layer that does the work, print the outcome.

Exit codes: 0 success, 1 the work itself failed (a failed run, invalid packages), 2 bad
arguments or bad input files.
"""

from __future__ import annotations

import json
import os
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


def main() -> None:
    """Entry point of the `libnar` console script."""
    app()


if __name__ == "__main__":
    main()
