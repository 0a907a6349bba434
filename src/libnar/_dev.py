"""`libnar dev`: NPS as production runs it, on a laptop, in one command.

Starts (or reuses) a Prefect server, applies every flow package's deployments from the same
plan as `libnar build` (names, parameters, schedules, entrypoints) on a local `process` work
pool, starts a real Prefect worker for that pool, runs the gateway in front of it, and prints
`curl` lines that trigger each flow as SamaHub would. Runs go gateway -> Prefect -> worker ->
flow process, held to the memory and CPU of their preset. Ctrl-C stops everything it started.
Layer 4: uses the build, the gateway and the local stack (`libnar._local_stack`: Prefect
server, worker, gateway process, fake SamaHub, sample events), none of which needs the test
extra.
"""

from __future__ import annotations

import json
import os
import secrets
import shlex
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from libnar.runs import event_parameter_of

if TYPE_CHECKING:
    from libnar._build import FlowPackage, PackagePlan
    from libnar._local_stack import FakeSamaHub
    from libnar.flow import NpsFlow

__all__ = ["DevError", "dev_plans", "run_dev"]


class DevError(RuntimeError):
    """`libnar dev` cannot start; the message says what to fix."""


def dev_plans(
    folder: Path, warn: Callable[[str], None] = print
) -> list[tuple[FlowPackage, PackagePlan]]:
    """The flow packages at or under `folder` and their plans on the local pool.

    A package with problems is reported through `warn` (every problem) and left out, so one
    broken package does not stop the others.

    Raises:
        DevError: no such folder, or no flow package that builds.
    """
    from libnar._build import BuildError, check_packages, local_plan, make_plan
    from libnar._build._pools import LOCAL_POOL

    if not folder.is_dir():
        raise DevError(f"{folder}: no such folder (give the folder that holds your flow packages)")
    found = []
    for root, result in check_packages(folder):
        if isinstance(result, BuildError):
            lines = "\n".join(f"  {problem}" for problem in result.problems)
            warn(f"{root}: skipped, it does not build (libnar validate {root}):\n{lines}")
            continue
        found.append((result, local_plan(result, make_plan(result), LOCAL_POOL)))
    if not found:
        raise DevError(
            f"{folder}: no flow package that builds (a folder with a pyproject.toml and its"
            " flow script; `libnar init NAME` writes one)"
        )
    return found


# -- the processes ---------------------------------------------------------------------------


@contextmanager
def _prefect_api(say: Callable[[str], None]) -> Iterator[str]:
    """`PREFECT_API_URL` when set, else a local Prefect server (with its UI) for this session."""
    from libnar.settings import mask_url

    given = os.environ.get("PREFECT_API_URL")
    if given:
        say(f"Prefect API: {mask_url(given)} (PREFECT_API_URL)")
        say(f"Prefect UI:  {mask_url(_ui_url(given))}")
        yield given
        return
    from libnar._local_stack import PrefectServer

    say("Starting a local Prefect server (about 15 s) ...")
    server = PrefectServer(ui=True)
    try:
        server.start()
    except RuntimeError as exc:
        raise DevError(str(exc)) from None
    try:
        say(f"Prefect API: {server.api_url}")
        say(f"Prefect UI:  {server.ui_url}  (flow runs, logs, deployments)")
        yield server.api_url
    finally:
        say("Stopping the Prefect server ...")
        server.stop()


def _ui_url(api_url: str) -> str:
    """The Prefect UI of an API: `PREFECT_UI_URL` when set, else Prefect's own guess."""
    from prefect.settings import PREFECT_API_URL, PREFECT_UI_URL, temporary_settings

    with temporary_settings(updates={PREFECT_API_URL: api_url}):
        return PREFECT_UI_URL.value() or api_url.removesuffix("/api")


def _dev_secrets(env: dict[str, str]) -> dict[str, str]:
    """The gateway's secrets: the configured ones, generated ones for what is not set."""
    from libnar.settings import get_settings

    settings = get_settings()
    generated = {}
    if not settings.gateway_secrets:
        generated["LIBNAR_GATEWAY_SECRETS"] = secrets.token_urlsafe(32)
    if settings.gateway_admin_key is None:
        generated["LIBNAR_GATEWAY_ADMIN_KEY"] = secrets.token_urlsafe(24)
    if not settings.dpp_keys:
        generated["LIBNAR_DPP_KEYS"] = secrets.token_urlsafe(24)
    env.update(generated)
    return {
        "secret": env.get("LIBNAR_GATEWAY_SECRETS", "").split(",")[0].strip()
        or settings.gateway_secrets[0].get_secret_value(),
        "dpp_key": env.get("LIBNAR_DPP_KEYS", "").split(",")[0].strip()
        or settings.dpp_keys[0].get_secret_value(),
    }


def curl_line(url: str, headers: dict[str, str], body: dict[str, Any]) -> str:
    """A `curl` command that posts `body` as JSON, quoted for a POSIX shell."""
    parts = ["curl", "-sS", "-X", "POST", url, "-H", "content-type: application/json"]
    for name, value in headers.items():
        parts += ["-H", f"{name}: {value}"]
    parts += ["-d", json.dumps(body, separators=(",", ":"))]
    return shlex.join(parts)


def _sample_request(
    plan: PackagePlan | NpsFlow[Any, Any],
    gateway_url: str,
    keys: dict[str, str],
    fake: FakeSamaHub | None,
) -> str | None:
    """A curl line that triggers the flow with a sample event (known to the fake).

    `plan` is a flow package's plan, or the flow itself: both say which events it takes.
    """
    from libnar._gateway import mint_token
    from libnar._local_stack import make_dpp_event, make_webhook_event
    from libnar.events import DppEvent, WebhookEvent
    from libnar.flow import NpsFlow

    if isinstance(plan, NpsFlow):
        schema, flow_name = plan.parameters.model_dump(mode="json"), plan.name
    else:
        schema, flow_name = plan.parameter_schema, plan.flow_name
    found = event_parameter_of(schema)
    kinds = found[1] if found else ()
    event: WebhookEvent | DppEvent
    if "webhook" in kinds or "task" in kinds:
        event = make_webhook_event()
        url, headers = (
            f"{gateway_url}/webhook-event",
            {"x-auth-token": mint_token(keys["secret"], flow_name)},
        )
    elif "dpp" in kinds:
        event = make_dpp_event(name=flow_name)
        url, headers = f"{gateway_url}/dpp-event", {"Authorization": f"Bearer {keys['dpp_key']}"}
    else:
        return None
    if fake is not None:
        fake.add_event(event)  # so the flow can fetch the task or return a DPP result
    return curl_line(url, headers, event.model_dump(mode="json"))


@contextmanager
def _samahub(say: Callable[[str], None]) -> Iterator[FakeSamaHub | None]:
    """A local fake SamaHub for the served flows, unless SAMA_API_URL or SAMA_DPP_URL is set.

    Flows on a laptop must not send DPP results to the real SamaHub by accident; with the fake,
    a DPP flow runs to the end and its result lands in the fake.
    """
    if os.environ.get("SAMA_API_URL") or os.environ.get("SAMA_DPP_URL"):
        say("SamaHub: the one SAMA_API_URL / SAMA_DPP_URL point at")
        yield None
        return
    from libnar._local_stack import FakeSamaHub, serve_fake_samahub

    with serve_fake_samahub(FakeSamaHub()) as fake:
        os.environ.update(fake.env())
        say(f"SamaHub: a local fake at {fake.api_url} (set SAMA_API_URL to use a real one)")
        try:
            yield fake
        finally:
            for name in fake.env():
                os.environ.pop(name, None)


def _apply_locally(
    plans: list[tuple[FlowPackage, PackagePlan]], say: Callable[[str], None]
) -> None:
    """Apply every plan on the local pool, its template current, its schedules paused."""
    from libnar._build import DeployError, apply_plan_sync, base_job_template

    template = {"local": base_job_template("local", python=sys.executable)}
    for package, plan in plans:
        try:
            # No automations: escalation calls the gateway, which starts after this.
            changes = apply_plan_sync(
                plan,
                create_pools=True,
                schedules_active=False,
                pool_templates=template,
                automations=False,
            )
        except DeployError as exc:
            raise DevError(str(exc)) from None
        job = plan.deployments[0].job_variables
        amount = package.config.amount
        for change in changes:
            say(
                f"deployment {plan.flow_name}/{change.name}  ({package.root};"
                f" amount {amount}: {job['cpu']} vCPU / {job['memory']})"
            )
        if any(d.schedule for d in plan.deployments):
            say(f"  {plan.flow_name}: schedules applied paused (resume them in the Prefect UI)")


def run_dev(
    folder: Path,
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    say: Callable[[str], None] = print,
) -> None:
    """Run Prefect, the flows' deployments on a local pool, a worker and the gateway until Ctrl-C.

    Raises:
        DevError: no flow package in the folder, or a part did not start.
    """
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    plans = dev_plans(folder, warn=say)
    with ExitStack() as stack:
        api_url = stack.enter_context(_prefect_api(say))
        fake = stack.enter_context(_samahub(say))
        os.environ["PREFECT_API_URL"] = api_url
        from prefect.settings import PREFECT_API_URL, temporary_settings

        stack.enter_context(temporary_settings(updates={PREFECT_API_URL: api_url}))
        _apply_locally(plans, say)

        env = {**os.environ, "PREFECT_API_URL": api_url}
        # Locally the answer names the run (a link to follow), unless set otherwise.
        env.setdefault("LIBNAR_GATEWAY_WAIT_FOR_RUN", "true")
        keys = _dev_secrets(env)
        from libnar._build._pools import LOCAL_POOL
        from libnar._local_stack import GatewayProcess, WorkerProcess

        try:
            worker = stack.enter_context(WorkerProcess(LOCAL_POOL, env))
            gateway = stack.enter_context(GatewayProcess(env, host=host, port=port))
        except RuntimeError as exc:
            raise DevError(f"{exc} (see above)") from None
        say(f"worker: {worker.name} on work pool {LOCAL_POOL} (process; memory enforced)")
        gateway_url = gateway.url
        say(f"gateway: {gateway_url}  (API docs: {gateway_url}/docs)")
        say("")
        say("Trigger a flow as SamaHub would (paste one line):")
        for _, plan in plans:
            line = _sample_request(plan, gateway_url, keys, fake)
            if line is not None:
                say(f"# {plan.flow_name}")
                say(line)
        say("")
        say("Runs go through the worker; Ctrl-C stops everything.")
        try:
            while True:
                for name, process in (("worker", worker.process), ("gateway", gateway.process)):
                    if process is not None and process.poll() is not None:
                        raise DevError(f"the {name} stopped (exit {process.returncode}); see above")
                time.sleep(0.5)
        except KeyboardInterrupt:
            pass
        say("Stopping ...")
