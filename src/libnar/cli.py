"""The `libnar` command: parse arguments, call the layer that does the work, print the outcome.

Exit codes: 0 success, 1 the work itself failed (a failed run, invalid packages), 2 bad
arguments or bad input files.
"""

from __future__ import annotations

import json
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


def main() -> None:
    """Entry point of the `libnar` console script."""
    app()


if __name__ == "__main__":
    main()
