"""The `libnar` command: parse arguments, call the layer that does the work, print the outcome.

Exit codes, the same for every command: 0 success; 1 the work itself failed (a failed run,
invalid flow packages, SamaHub or Prefect refused or failed); 2 the command cannot start: bad
arguments, a bad or missing input file or folder, or a setting that is missing or invalid.
An error is one line on stderr (a list of problems when there are several); a traceback
means a bug in libnar.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text
from typer.core import TyperCommand

if TYPE_CHECKING:
    from libnar._build import BuildError, BuildProblem, FlowPackage, PackagePlan
    from libnar.sama import SamaClient


class _Command(TyperCommand):
    """A command whose help shows arguments as `KIND` and `[PATH]...`.

    Typer's own help shows them as `{kind}`, `paths... <list[Path]>` and `<str>`: names and
    Python types where a user expects what to type.
    """

    def collect_usage_pieces(self, ctx: Any) -> list[str]:
        pieces = [self.options_metavar] if self.options_metavar else []
        for param in self.get_params(ctx):
            if param.param_type_name == "argument":
                name = _argument_name(param)
                pieces.append(name if param.required else f"[{name}]")
                if param.nargs != 1:
                    pieces[-1] += "..."
        return pieces

    def format_options(self, ctx: Any, formatter: Any) -> None:
        arguments, options = [], []
        for param in self.get_params(ctx):
            record = param.get_help_record(ctx)
            if record is None:
                continue
            if param.param_type_name == "argument":
                arguments.append((_argument_name(param), record[1]))
            else:
                options.append(record)
        for title, rows in (("Arguments", arguments), ("Options", options)):
            if rows:
                with formatter.section(title):
                    formatter.write_dl(rows)


def _argument_name(param: Any) -> str:
    return param.metavar or (param.name or "").upper()


app = typer.Typer(
    name="libnar",
    help="Write, test, build and trigger NPS flows for SamaHub on Prefect 3.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    # Help texts are plain text: "[sama-build]" must not be read as rich markup.
    rich_markup_mode=None,
)
# Text from users, flows, SamaHub and Prefect is data: these consoles never read markup
# ("[project]" prints as "[project]"); colour comes only from `Text` styles set here.
out = Console(markup=False, highlight=False, soft_wrap=True)
err = Console(stderr=True, markup=False, highlight=False, soft_wrap=True)


def _print_version(value: bool) -> None:
    if value:
        from importlib.metadata import PackageNotFoundError, version
        from platform import python_version

        from libnar import __version__

        try:
            prefect = version("prefect")
        except PackageNotFoundError:  # pragma: no cover - prefect is a dependency
            prefect = "not installed"
        print(f"libnar {__version__} (Prefect {prefect}, Python {python_version()})")
        raise typer.Exit()


@app.callback()
def _options(
    version: Annotated[
        bool,
        typer.Option(
            "--version",
            callback=_print_version,
            is_eager=True,
            help="Print libnar's version (and Prefect's and Python's) and exit.",
        ),
    ] = False,
) -> None:
    """Write, test, build and trigger NPS flows for SamaHub on Prefect 3."""


def fail(message: str, code: int = 2) -> typer.Exit:
    """Print an error on stderr, as plain text, and return the `Exit` to raise."""
    err.print(Text.assemble(("error:", "bold red"), " ", message))
    return typer.Exit(code)


@app.command(cls=_Command)
def schema(
    kind: Annotated[
        Literal["webhook", "dpp", "result", "task"],
        typer.Argument(metavar="KIND", help="Which payload: webhook, dpp, result or task."),
    ],
) -> None:
    """Print the JSON Schema of a SamaHub payload."""
    from libnar.events import event_json_schema

    print(json.dumps(event_json_schema(kind), indent=2))


@app.command(cls=_Command)
def settings(
    values: Annotated[
        bool,
        typer.Option(
            "--values",
            help="Show what each setting is now (secrets masked) and where it comes from.",
        ),
    ] = False,
) -> None:
    """Print every setting libnar reads, with its environment variable and default."""
    from libnar.settings import SettingsError, mask_url, settings_table, settings_values_table

    if not values:
        print(settings_table(), end="")
        return
    try:
        print(settings_values_table(), end="")
    except SettingsError as exc:
        raise fail(str(exc)) from None
    from prefect.settings import PREFECT_API_URL

    api_url = PREFECT_API_URL.value()
    print(
        f"\nPrefect: PREFECT_API_URL = {mask_url(api_url)}"
        if api_url
        else "\nPrefect: PREFECT_API_URL is not set (`libnar run` starts an embedded server;"
        " deploy, deploy-json and the gateway need it)"
    )


# --- build: validate, build, deploy, deploy-json -------------------------------------------


@app.command(cls=_Command)
def init(
    name: Annotated[
        str,
        typer.Argument(metavar="NAME", help="Script name, e.g. fun69_boxes (the type is added)."),
    ],
    script_type: Annotated[
        Literal["ptp", "prp", "utl"],
        typer.Option(
            "--type", metavar="TYPE", help="ptp post-processing, prp pre-processing, utl utility."
        ),
    ] = "ptp",
    event: Annotated[
        Literal["webhook", "dpp", "none"],
        typer.Option(
            metavar="KIND",
            help="The SamaHub event the flow takes: dpp, webhook, or none (runs on a schedule).",
        ),
    ] = "dpp",
    flows_dir: Annotated[
        Path, typer.Option("--dir", metavar="FOLDER", help="The flows folder.")
    ] = Path("flows"),
    schedule: Annotated[
        list[str] | None,
        typer.Option(
            metavar="CRON",
            help='Run on this cron schedule, e.g. "30 2 * * *": writes deploy.json (repeat for'
            " more deployments).",
        ),
    ] = None,
    timezone: Annotated[
        str, typer.Option(metavar="ZONE", help="The schedules' IANA timezone.")
    ] = "UTC",
    custom_image: Annotated[
        bool,
        typer.Option(
            "--custom-image",
            help="Write the package's own Dockerfile (custom-image = true), to add system"
            " packages.",
        ),
    ] = False,
) -> None:
    """Write a new flow package that follows the NPS rules, with a sample event and a test."""
    from libnar._build import ScaffoldError, write_flow_package

    try:
        root = write_flow_package(
            name,
            script_type,
            event,
            flows_dir,
            schedules=schedule or (),
            timezone=timezone,
            custom_image=custom_image,
        )
    except ScaffoldError as error:
        raise fail(str(error)) from None
    out.print(Text.assemble(("created", "green"), f" {root}"))
    for file in sorted(p for p in root.rglob("*") if p.is_file()):
        out.print(f"  {file.relative_to(root)}")
    out.print(f"next: libnar validate {root} && pytest {root}")


FlowsPath = Annotated[
    list[Path] | None,
    typer.Argument(
        metavar="PATH",
        help="Flow packages, or folders to search for them (default: flows/).",
        show_default=False,
    ),
]


def _print_problems(root: Path, problems: list[BuildProblem]) -> None:
    errors = [p for p in problems if p.level == "error"]
    mark = ("x", "red") if errors else ("!", "yellow")
    count = f"{len(errors)} problem{'s' if len(errors) != 1 else ''}" if errors else "warnings"
    out.print(Text.assemble(mark, " ", (str(root), "bold"), f" ({count})"))
    for problem in problems:
        style = "red" if problem.level == "error" else "yellow"
        out.print(Text.assemble("  ", (str(problem), style)))


def _checked(paths: list[Path]) -> list[tuple[Path, FlowPackage | BuildError]]:
    from libnar._build import check_packages

    for path in paths:
        if not path.exists():
            raise fail(
                f"{path}: no such folder; give a flow package or a folder of them"
                " (`libnar init NAME` writes a new package under flows/)"
            )
        if not path.is_dir():
            raise fail(f"{path}: not a folder; give a flow package's folder or a folder of them")
    try:
        results = [result for path in paths for result in check_packages(path)]
    except OSError as exc:
        raise fail(f"{exc.filename}: {exc.strerror}") from None
    if not results:
        listed = ", ".join(str(p) for p in paths)
        raise fail(f"no flow package (a folder with a pyproject.toml) at or under {listed}")
    return results


def _valid_or_exit(paths: list[Path]) -> list[FlowPackage]:
    """Every package under `paths`; print all problems and exit 1 if any has one."""
    from libnar._build import BuildError

    results = _checked(paths)
    packages = [found for _, found in results if not isinstance(found, BuildError)]
    for root, found in results:
        problems = found.problems if isinstance(found, BuildError) else found.warnings
        if problems:
            _print_problems(root, problems)
    if len(packages) < len(results):
        bad = len(results) - len(packages)
        raise fail(f"{bad} of {len(results)} flow packages have problems (listed above)", 1)
    return packages


@app.command(cls=_Command)
def validate(paths: FlowsPath = None) -> None:
    """Check flow packages: names, [sama-build], deploy.json, parameters; every problem at once."""
    packages = _valid_or_exit(paths or [Path("flows")])
    deployments = sum(len(p.deployments) for p in packages)
    out.print(
        Text.assemble(
            ("ok", "green"),
            f" {len(packages)} flow package{'s' if len(packages) != 1 else ''} valid"
            f" ({deployments} deployment{'s' if deployments != 1 else ''})",
        )
    )


@app.command(cls=_Command)
def build(
    path: Annotated[
        Path, typer.Argument(metavar="PATH", help="A flow package (or a folder of them).")
    ],
    output: Annotated[
        Path | None,
        typer.Option(
            metavar="FILE", help="Where to write prefect.yaml (default: PACKAGE/prefect.yaml)."
        ),
    ] = None,
    output_format: Annotated[
        Literal["table", "yaml", "json"],
        typer.Option(
            "--format", metavar="FORMAT", help="How to print the plan: table, yaml or json."
        ),
    ] = "table",
    check: Annotated[
        bool,
        typer.Option(
            "--check",
            help="Also replay the image recipe's install steps in a fresh venv and load the"
            " flow from its entrypoint, as the image will (about a minute a package).",
        ),
    ] = False,
    check_timeout: Annotated[
        float,
        typer.Option(metavar="SECONDS", help="Most seconds one package's --check may take."),
    ] = 900.0,
) -> None:
    """Print the plan; write the image recipe (Dockerfile) and the prefect.yaml that builds,
    pushes and deploys it with `prefect deploy --all`."""
    from libnar._build import (
        RecipeError,
        make_plan,
        plan_to_json,
        plan_to_prefect_yaml,
        replay_recipe,
        write_recipe,
    )

    packages = _valid_or_exit([path])
    if output is not None and len(packages) > 1:
        raise fail(f"{path} holds {len(packages)} flow packages; --output needs one package")
    failed = 0
    for package in packages:
        plan = make_plan(package)
        try:
            recipe = write_recipe(package, plan)
        except RecipeError as error:
            err.print(Text.assemble(("x ", "red"), (str(package.root), "bold"), f": {error}"))
            failed += 1
            continue
        text = plan_to_prefect_yaml(plan)
        if output_format == "json":
            print(plan_to_json(plan), end="")
        elif output_format == "yaml":
            print(text, end="")
        else:
            out.print(_plan_table(plan), soft_wrap=False)
        target = output or package.root / "prefect.yaml"
        target.write_text(text, encoding="utf-8")
        used = "checked" if package.config.custom_image else "wrote"
        err.print(f"{used} {recipe}\nwrote {target}")
        if check:
            err.print(f"replaying {recipe} in a fresh venv ...")
            try:
                replay = replay_recipe(package, plan, timeout=check_timeout)
            except RecipeError as error:
                err.print(Text.assemble(("x ", "red"), (str(package.root), "bold"), f": {error}"))
                failed += 1
                continue
            for note in replay.notes:
                err.print(Text.assemble(("! ", "yellow"), note))
            for skipped in replay.skipped:
                err.print(
                    Text.assemble(
                        ("! ", "yellow"), f"not replayed (not an install step): RUN {skipped}"
                    )
                )
            err.print(
                Text.assemble(
                    ("ok ", "green"),
                    f"{len(replay.ran)} install steps ran and flow {replay.flow_name} loaded"
                    f" from its entrypoint in {replay.seconds:.0f} s",
                )
            )
    if failed:
        raise fail(f"{failed} of {len(packages)} flow packages did not build (listed above)", 1)


def _plan_table(plan: PackagePlan) -> Table:
    table = Table(title=f"{plan.package} {plan.version} ({plan.image})", title_justify="left")
    for column in ("deployment", "schedule", "pool / queue", "job variables", "parameters"):
        table.add_column(column, overflow="fold")
    for d in plan.deployments:
        schedule = ", ".join(f"{k}={v}" for k, v in (d.schedule or {}).items()) or "-"
        variables = ", ".join(f"{k}={v}" for k, v in d.job_variables.items() if k != "image")
        table.add_row(
            d.name,
            schedule,
            f"{d.work_pool} / {d.work_queue}",
            variables,
            json.dumps(d.parameters, sort_keys=True) if d.parameters else "-",
        )
    return table


@app.command(cls=_Command)
def deploy(
    paths: FlowsPath = None,
    create_pools: Annotated[
        bool,
        typer.Option(
            help="Create missing work pools (with libnar's base job templates) and queues."
        ),
    ] = False,
) -> None:
    """Create or update the deployments of flow packages on PREFECT_API_URL, and their automations.

    `[sama-build] escalate` and `notify` become Prefect automations named
    "libnar:FLOW/DEPLOYMENT:...", kept in step (escalation needs LIBNAR_GATEWAY_PUBLIC_URL
    and LIBNAR_GATEWAY_ADMIN_KEY).

    The deployments run each package's image, which must be built and pushed already:
    `prefect deploy --all` in the package (after `libnar build`) builds, pushes and deploys.
    """
    from libnar._build import DeployError, apply_plan_sync, image_status, make_plan

    packages = _valid_or_exit(paths or [Path("flows")])
    _require_prefect_api("deployments would go to a temporary local server and be lost")
    table = Table("flow", "deployment", "change", "id")
    style = {"created": "green", "updated": "yellow", "unchanged": "dim", "deleted": "red"}
    images = []
    automations: list[Any] = []
    try:
        for package in packages:
            plan = make_plan(package)
            for change in apply_plan_sync(plan, create_pools=create_pools):
                action = Text(change.action, style=style[change.action])
                table.add_row(change.flow_name, change.name, action, str(change.deployment_id))
                automations.extend(change.automations)
            images.append((package.root, plan.image))
    except DeployError as error:
        raise fail(str(error), 1) from None
    out.print(table, soft_wrap=False)
    for automation in automations:
        out.print(
            Text.assemble(
                "automation ", automation.name, ": ", (automation.action, style[automation.action])
            )
        )
    for root, image in images:
        status = image_status(image)
        if status == "found":
            continue
        what = (
            "is not in its registry"
            if status == "missing"
            else "may not be built yet (libnar cannot tell here)"
        )
        err.print(
            Text.assemble(
                ("! ", "yellow"),
                f"image {image} {what}: build and push it with `libnar build {root}` then"
                f" `prefect deploy --all` in {root}, or `docker build -t {image} {root}` and"
                f" `docker push {image}`",
            )
        )


def _require_prefect_api(why: str) -> None:
    """Exit 2, as for every missing setting, when PREFECT_API_URL is not set."""
    from prefect.settings import PREFECT_API_URL

    if not PREFECT_API_URL.value():
        raise fail(
            f"PREFECT_API_URL is not set: {why}; set it to your Prefect API"
            " (e.g. http://127.0.0.1:4200/api)"
        )


@app.command("deploy-json", cls=_Command)
def deploy_json(
    flow: Annotated[str, typer.Argument(metavar="FLOW", help="The flow's name.")],
    deployment: Annotated[
        str | None, typer.Option(metavar="NAME", help="Only this deployment of the flow.")
    ] = None,
) -> None:
    """Print a flow's deployments on PREFECT_API_URL as deploy.json, ready to commit."""
    from libnar._build import DeployError, export_deploy_json_sync

    _require_prefect_api("the deployments are read from your Prefect server")
    try:
        document = export_deploy_json_sync(flow, deployment)
    except DeployError as error:
        raise fail(str(error), 1) from None
    print(json.dumps(document, indent=2))


@app.command(cls=_Command)
def packages(
    path: Annotated[
        Path, typer.Argument(metavar="[PATH]", help="Where to look (default: flows/).")
    ] = Path("flows"),
    changed_since: Annotated[
        str | None,
        typer.Option(
            metavar="REV",
            help="Only packages with a file changed between this git revision and HEAD.",
        ),
    ] = None,
) -> None:
    """List flow packages, one folder a line: what a CI script loops over."""
    from libnar._build._ci import CiError, list_packages

    if not path.is_dir():
        raise fail(f"{path}: no such folder; give the folder of your flow packages")
    try:
        found = list_packages(path, changed_since)
    except CiError as error:
        raise fail(str(error)) from None
    for package in found:
        print(package)


@app.command("ci-template", cls=_Command)
def ci_template(
    kind: Annotated[
        Literal["github", "gitlab"],
        typer.Argument(metavar="KIND", help="github (Actions) or gitlab (CI)."),
    ],
) -> None:
    """Print a flow repository's pipeline: validate and test every package on every push,
    build and deploy the changed ones on main ("[skip ci]" skips it)."""
    from libnar._build._ci import ci_template as template

    print(template(kind), end="")


# -- libnar pools ---------------------------------------------------------------------------

pools_app = typer.Typer(
    help="The base job templates of the work pools the plan targets.", no_args_is_help=True
)
app.add_typer(pools_app, name="pools")


@pools_app.command("show", cls=_Command)
def pools_show(
    kind: Annotated[
        Literal["narwhal", "giver", "gke", "local"] | None,
        typer.Argument(
            metavar="[KIND]",
            help="narwhal (ECS), giver or gke (Kubernetes), local (libnar dev's process pool).",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Print a pool kind's base job template as JSON (`prefect work-pool create
    --base-job-template` takes it), or, without KIND, every kind and its job variables."""
    from libnar._build import POOL_KINDS, base_job_template
    from libnar._build._pools import LOCAL_POOL

    if kind is not None:
        print(json.dumps(base_job_template(kind), indent=2))
        return
    from libnar._build._plan import default_work_pool
    from libnar.settings import get_settings

    renamed = get_settings().work_pools
    table = Table("kind", "pool type", "default pool", "job variables")
    for name, pool_type in POOL_KINDS.items():
        pool = LOCAL_POOL if name == "local" else default_work_pool(name, "aws", "us")
        pool = renamed.get(pool, pool)
        variables = ", ".join(sorted(base_job_template(name)["variables"]["properties"]))
        table.add_row(name, pool_type, pool, variables)
    out.print(table, soft_wrap=False)


# -- libnar run ----------------------------------------------------------------------------


def _split_param(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise fail(f"--param {text!r}: expected KEY=VALUE, e.g. --param min_box_px=8")
    return key, value


@app.command(cls=_Command)
def run(
    target: Annotated[
        str,
        typer.Argument(metavar="PATH.py", help="The flow file, as PATH.py or PATH.py:FUNCTION."),
    ],
    event: Annotated[
        Path | None,
        typer.Option(
            "--event",
            "-e",
            metavar="FILE",
            help="A JSON file with the event (webhook or DPP payload).",
        ),
    ] = None,
    param: Annotated[
        list[str] | None,
        typer.Option(
            "--param",
            "-p",
            metavar="KEY=VALUE",
            help="A flow parameter, read as its type needs: text as written, JSON for lists,"
            " dicts and models. Repeat for more.",
        ),
    ] = None,
    submit: Annotated[
        bool,
        typer.Option(help="Send a DPP flow's result to SamaHub (off: only print it)."),
    ] = False,
) -> None:
    """Run a flow once on a local Prefect and print its name, state, duration and result.

    Uses PREFECT_API_URL when set, else an embedded Prefect server. A DPP event's own
    `parameters` apply as they do in production; --param values override them. A DPP flow's
    result is sent to SamaHub only with --submit (SAMA_DPP_URL and SAMA_DPP_KEY are checked
    before the run); the `sent:` line says what was sent.
    """
    # The embedded server would otherwise send usage telemetry from the author's laptop.
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    import pydantic_core

    from libnar.flow import ParameterError
    from libnar.flow._loading import FlowLoadError, load_flow
    from libnar.flow._local import (
        check_submit,
        describe_submission,
        local_parameters,
        run_locally,
    )
    from libnar.settings import SettingsError

    try:
        flow = load_flow(target)
    except FlowLoadError as exc:
        raise fail(str(exc)) from None
    try:
        body = event.read_bytes() if event is not None else None
    except OSError as exc:
        raise fail(f"--event {event}: {exc.strerror}") from None
    texts = dict(_split_param(p) for p in param or [])
    try:
        parameters = local_parameters(flow, body, texts, event_file=str(event))
    except ParameterError as exc:
        raise fail(str(exc)) from None
    if submit:
        try:
            check_submit(flow, parameters)
        except SettingsError as exc:
            raise fail(str(exc)) from None

    out.print(Text.assemble("Running flow ", (flow.name, "bold"), " on Prefect ..."))
    done = run_locally(flow, parameters, submit_result=submit)
    colour = "green" if done.is_completed else "red"
    out.print(Text.assemble("run:      ", (done.name, "bold")))
    out.print(Text.assemble("state:    ", (str(done.state.name), colour)))
    out.print(f"duration: {done.seconds:.2f} s")
    sent = describe_submission(flow, parameters, done, submit=submit)
    if sent is not None:
        out.print(f"sent:     {sent}")
    if not done.is_completed:
        raise fail(done.state.message or f"the run ended {done.state.name}", 1)
    out.print("result:", highlight=False)
    print(pydantic_core.to_json(done.result(), indent=2, fallback=repr).decode())


@app.command(cls=_Command)
def trigger(
    flow: Annotated[str, typer.Argument(metavar="FLOW", help="The flow name.")],
    event: Annotated[
        Path,
        typer.Option(
            "--event", "-e", metavar="FILE", help="A JSON file with the event (webhook or DPP)."
        ),
    ],
    deployment: Annotated[
        str | None,
        typer.Option(metavar="NAME", help="The deployment (default FLOW_deploy)."),
    ] = None,
    amount: Annotated[
        str | None,
        typer.Option(
            metavar="PRESET",
            help="The run's resources: very-low, low, med, high, or custom (with --param"
            " cpu=... --param memory=...).",
        ),
    ] = None,
    param: Annotated[
        list[str] | None,
        typer.Option(
            "--param",
            "-p",
            metavar="KEY=VALUE",
            help="A run parameter (JSON when it parses as JSON, else text); special ones too"
            " (cpu, memory, disk, no_round). Repeat for more.",
        ),
    ] = None,
    watch: Annotated[
        bool, typer.Option(help="Follow the run to its final state; exit 1 unless Completed.")
    ] = False,
) -> None:
    """Create one run of a deployment on PREFECT_API_URL for an event, as the gateway would.

    Exactly once per event: the same event with the same parameters lands on the run that
    exists. Prints the run's id and its UI link (PREFECT_UI_URL).
    """
    import json

    from libnar._gateway._trigger import TriggerError
    from libnar.trigger import TriggerRefused, trigger_run, watch_run

    _require_prefect_api("the run would go to a temporary local server and be lost")
    parameters: dict[str, Any] = {}
    for text in param or []:
        key, value = _split_param(text)
        try:
            parameters[key] = json.loads(value)
        except ValueError:
            parameters[key] = value
    try:
        run = trigger_run(flow, event, deployment=deployment, amount=amount, parameters=parameters)
    except TriggerRefused as exc:
        raise fail(str(exc)) from None
    except TriggerError as exc:
        raise fail(str(exc), 1) from None
    out.print(Text.assemble("run:      ", (run.flow_run_name, "bold")))
    out.print(Text(f"id:       {run.flow_run_id}"))
    if run.duplicate:
        out.print(Text("          (this event was triggered before: its run is the one above)"))
    if run.job_variables:
        shown = ", ".join(f"{k}={v}" for k, v in run.job_variables.items())
        out.print(Text(f"resources: {shown}"))
    if run.ui_url:
        out.print(Text(f"ui:       {run.ui_url}"))
    if not watch:
        return

    def said(state: Any) -> None:
        out.print(Text(f"state:    {state.name}"))

    final = watch_run(run.flow_run_id, on_state=said)
    if not final.is_completed():
        raise fail(final.message or f"the run ended {final.name}", 1)


# -- libnar task ---------------------------------------------------------------------------

task_app = typer.Typer(
    help="Read and create SamaHub tasks (the API key and URL come from settings: "
    "SAMA_API_KEY, ...).",
    no_args_is_help=True,
)
app.add_typer(task_app, name="task")

#: Which API key the task commands use (`libnar task --key secondary ...`).
_task_key: dict[str, Literal["primary", "secondary"]] = {"key": "primary"}


@task_app.callback()
def _task_options(
    key: Annotated[
        str,
        typer.Option(
            "--key",
            metavar="KEY",
            help="The API key to use: primary (SAMA_API_KEY) or secondary"
            " (SAMA_SECONDARY_API_KEY).",
        ),
    ] = "primary",
) -> None:
    # Retries log a warning each: show them as lines of their own, not Python's bare default.
    logging.basicConfig(level=logging.WARNING, format="warning: %(message)s")
    if key not in ("primary", "secondary"):
        raise fail(f"--key {key!r}: choose primary or secondary")
    _task_key["key"] = "secondary" if key == "secondary" else "primary"


def _sama() -> SamaClient:
    """A `SamaClient` with the key the task commands were told to use."""
    from libnar.sama import SamaClient

    return SamaClient(key=_task_key["key"])


@contextmanager
def _sama_errors() -> Iterator[None]:
    """Turn SamaHub errors into one line on stderr: exit 2 for settings, 1 for SamaHub."""
    from libnar.sama import SamaError
    from libnar.settings import SettingsError

    try:
        yield
    except SettingsError as exc:  # also SamaConfigError: a missing or invalid setting
        raise fail(str(exc), 2) from None
    except SamaError as exc:
        raise fail(str(exc), 1) from None


def _parse_since(text: str) -> datetime:
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise fail(
            f"--delivered-since {text!r}: expected an ISO date or time, e.g. 2024-05-01 or "
            "2024-05-01T08:00:00Z"
        ) from None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


@task_app.command("get", cls=_Command)
def task_get(
    project_id: Annotated[str, typer.Argument(metavar="PROJECT", help="The SamaHub project id.")],
    task_id: Annotated[
        str, typer.Argument(metavar="TASK", help="The task id (24 hex characters).")
    ],
) -> None:
    """Print one task as JSON, in delivery format."""
    with _sama_errors(), _sama() as sama:
        task = sama.get_task(project_id, task_id)
    print(task.model_dump_json(indent=2))


@task_app.command("export", cls=_Command)
def task_export(
    project_id: Annotated[str, typer.Argument(metavar="PROJECT", help="The SamaHub project id.")],
    delivered_since: Annotated[
        str,
        typer.Option(
            "--delivered-since",
            metavar="WHEN",
            help="Export tasks delivered at or after this ISO date or time (UTC if no offset).",
        ),
    ],
    out_file: Annotated[
        Path,
        typer.Option(
            "--out", "-o", metavar="FILE", help="The JSON Lines file to write, one task a line."
        ),
    ],
) -> None:
    """Write the tasks delivered since a time to a JSON Lines file, page by page.

    The file appears only when every page has been read: a failed export leaves no partial file.
    """
    from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

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
            _sama() as sama,
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
    out.print(f"exported {count} tasks to {out_file}")


def _read_task_data(path: Path) -> list[dict[str, Any]]:
    """Read the tasks' data from a JSON array or JSON Lines file; exit 2 naming a bad line."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise fail(f"{path}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise fail(
            f"{path}: not UTF-8 text; expected JSON (an array, or one object a line)"
        ) from None
    items: list[tuple[str, Any]] = []
    where = "the file"
    try:
        if text.lstrip().startswith("["):
            items = [(f"item {n}", item) for n, item in enumerate(json.loads(text))]
        else:
            for number, line in enumerate(text.splitlines(), start=1):
                where = f"line {number}"
                if line.strip():
                    items.append((where, json.loads(line)))
    except json.JSONDecodeError as exc:
        raise fail(
            f"{path}: {where}: not JSON ({exc.msg}); expected a JSON array of"
            " objects, or one JSON object a line"
        ) from None
    for where, item in items:
        if not isinstance(item, dict):
            raise fail(
                f"{path}: {where} is {type(item).__name__}; each task is an object of its"
                ' inputs, e.g. {"url": "https://..."}'
            )
    if not items:
        raise fail(f"{path}: no tasks in the file; expected one object per task")
    return [item for _, item in items]


_VIA: dict[str, Literal["auto", "body", "file"]] = {"auto": "auto", "body": "body", "file": "file"}


def _batch_id_for(path: Path) -> str:
    """A client_batch_id that names the file's content: the same file gives the same id."""
    import hashlib

    digest = hashlib.sha256(path.read_bytes()).hexdigest()[:12]
    return f"{path.stem}-{digest}"


@task_app.command("create", cls=_Command)
def task_create(
    project_id: Annotated[str, typer.Argument(metavar="PROJECT", help="The SamaHub project id.")],
    file: Annotated[
        Path,
        typer.Argument(
            metavar="FILE",
            help="The tasks' inputs: a JSON array of objects, or JSON Lines (one object a line).",
        ),
    ],
    client_batch_id: Annotated[
        str | None,
        typer.Option(
            "--client-batch-id",
            metavar="ID",
            help="Name this creation (default: the file's name and a digest of its content, so"
            " that creating the same file again is refused instead of duplicated).",
        ),
    ] = None,
    priority: Annotated[
        int | None, typer.Option(metavar="N", help="The tasks' priority (lower first).")
    ] = None,
    submit: Annotated[
        bool, typer.Option("--submit", help="Create the tasks submitted (pre-annotations done).")
    ] = False,
    notify: Annotated[
        str | None,
        typer.Option(metavar="EMAIL", help="The address SamaHub tells when the batch is done."),
    ] = None,
    via: Annotated[
        str,
        typer.Option(
            metavar="HOW",
            help="auto (a file upload above 1,000 tasks), body (batches of 1,000) or file.",
        ),
    ] = "auto",
    check: Annotated[
        bool,
        typer.Option(
            "--check/--no-check",
            help="Check every task against the project's creation schema first.",
        ),
    ] = True,
) -> None:
    """Create tasks from a file, with a progress bar; never twice for the same file.

    More than 1,000 tasks go as one batch through SamaHub's file upload. A lost answer is
    looked up by the client_batch_id, never sent again.
    """
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
        TransferSpeedColumn,
    )

    from libnar.sama import SamaBatchIdInUseError, SamaTaskDataError

    if via not in _VIA:
        raise fail(f"--via {via!r}: choose auto, body or file")
    tasks = _read_task_data(file)
    batch_name = client_batch_id or _batch_id_for(file)
    columns = (
        TextColumn("uploading {task.fields[count]} tasks"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
    )
    with (
        _sama_errors(),
        _sama() as sama,
        Progress(*columns, console=err, transient=True) as progress,
    ):
        bar = progress.add_task("upload", total=None, count=len(tasks))

        def show(sent: int, total: int) -> None:
            progress.update(bar, completed=sent, total=total)

        try:
            ids = sama.create_batch(
                project_id,
                tasks,
                client_batch_id=batch_name,
                priority=priority,
                submit=submit or None,
                notification_email=notify,
                via=_VIA[via],
                check_schema=check,
                progress=show,
            )
        except SamaTaskDataError as exc:  # the file's content: fix it and run again
            raise fail(f"{file}: {exc}", 2) from None
        except SamaBatchIdInUseError as exc:
            raise fail(f"{file}: {exc}", 1) from None
    batches = ", ".join(ids)
    noun = "batch" if len(ids) == 1 else "batches"
    out.print(f"created {len(tasks)} tasks in {noun} {batches} (client_batch_id {batch_name})")


@task_app.command("batch", cls=_Command)
def task_batch(
    project_id: Annotated[str, typer.Argument(metavar="PROJECT", help="The SamaHub project id.")],
    batch_id: Annotated[str, typer.Argument(metavar="BATCH", help="The batch id.")],
    omit_failed_task_data: Annotated[
        bool,
        typer.Option(
            "--omit-failed-task-data", help="Leave out the data of tasks that failed creation."
        ),
    ] = False,
) -> None:
    """Print a batch's status and task records as JSON."""
    with _sama_errors(), _sama() as sama:
        batch = sama.get_batch(project_id, batch_id, omit_failed_task_data=omit_failed_task_data)
    print(batch.model_dump_json(indent=2))


@task_app.command("stats", cls=_Command)
def task_stats(
    project_id: Annotated[str, typer.Argument(metavar="PROJECT", help="The SamaHub project id.")],
) -> None:
    """Print the project's statistics as JSON."""
    with _sama_errors(), _sama() as sama:
        stats = sama.get_project_stats(project_id)
    print(json.dumps(stats, indent=2))


@task_app.command("schema", cls=_Command)
def task_schema(
    project_id: Annotated[str, typer.Argument(metavar="PROJECT", help="The SamaHub project id.")],
    delivery: Annotated[
        bool,
        typer.Option(
            "--delivery", help="The delivery schema (answers) instead of the creation schema."
        ),
    ] = False,
) -> None:
    """Print the project's creation schema (task inputs), or its delivery schema, as JSON."""
    with _sama_errors(), _sama() as sama:
        schema = (
            sama.get_delivery_schema(project_id)
            if delivery
            else sama.get_creation_schema(project_id)
        )
    print(json.dumps(schema, indent=2))


# -- libnar gateway ------------------------------------------------------------------------

gateway_app = typer.Typer(
    help="Receive SamaHub webhooks and DPP requests; trigger one Prefect flow run each.",
    no_args_is_help=True,
)
app.add_typer(gateway_app, name="gateway")


@gateway_app.command("serve", cls=_Command)
def gateway_serve(
    host: Annotated[
        str, typer.Option(metavar="ADDRESS", help="Address to listen on.")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(metavar="PORT", help="Port to listen on.")] = 8000,
    workers: Annotated[int, typer.Option(min=1, metavar="N", help="Worker processes.")] = 1,
    access_log: Annotated[
        bool,
        typer.Option(help="Log each HTTP request as uvicorn does (the audit line has more)."),
    ] = True,
) -> None:
    """Serve the gateway with uvicorn (settings from the environment; see `libnar settings`)."""
    from libnar._gateway import GatewayConfig, configure_logging
    from libnar._gateway._server import serve
    from libnar.settings import SettingsError

    try:
        GatewayConfig.from_settings()
    except (SettingsError, ValueError) as exc:
        raise fail(str(exc)) from None
    configure_logging()
    serve(host, port, workers=workers, access_log=access_log)


@gateway_app.command("replay", cls=_Command)
def gateway_replay(
    force: Annotated[
        bool,
        typer.Option(
            "--force", help="Run each pending event again with a new key, even if it has a run."
        ),
    ] = False,
) -> None:
    """Trigger every event still pending in the outbox (same keys: no duplicate runs)."""
    import asyncio

    from libnar._gateway import configure_logging, replay_outbox
    from libnar.settings import SettingsError

    configure_logging()
    try:
        report = asyncio.run(replay_outbox(force=force))
    except SettingsError as exc:
        raise fail(str(exc)) from None
    print(json.dumps(report.as_dict(), indent=2))
    if not report.is_complete:
        raise typer.Exit(1)


# -- libnar dev ----------------------------------------------------------------------------


@app.command(cls=_Command)
def dev(
    flows_dir: Annotated[
        Path, typer.Argument(metavar="FLOWS_DIR", help="The folder with your flow files.")
    ],
    host: Annotated[
        str, typer.Option(metavar="ADDRESS", help="Address the gateway listens on.")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(metavar="PORT", help="Port the gateway listens on.")] = 8000,
) -> None:
    """Run Prefect, every @nps_flow in FLOWS_DIR and the gateway locally, until Ctrl-C.

    Uses PREFECT_API_URL when set, else starts a local Prefect server. Gateway secrets that are
    not set are generated for the session. Prints curl lines that trigger each flow.
    """
    from libnar._dev import DevError, run_dev

    try:
        run_dev(flows_dir, host=host, port=port, say=lambda line: print(line, flush=True))
    except DevError as exc:
        raise fail(str(exc)) from None


def main() -> None:
    """Entry point of the `libnar` console script."""
    app()


if __name__ == "__main__":
    main()
