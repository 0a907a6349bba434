"""`libnar dev`: a production-like NPS on a laptop, in one command.

Starts (or reuses) a Prefect server, serves a `<flow>_deploy` deployment of every `@nps_flow`
in a folder, runs the gateway in front of it, and prints `curl` lines that trigger each flow as
SamaHub would. Ctrl-C stops everything it started. Layer 4: uses the gateway, the flows and
the local stack (`libnar._local_stack`: Prefect server, gateway process, fake SamaHub, sample
events), none of which needs the test extra.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import shlex
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from libnar.events import DppEvent, Task, WebhookEvent
from libnar.flow import NpsFlow
from libnar.flow._loading import FlowLoadError, flows_defined_in, import_flow_file
from libnar.naming import default_deployment_names

if TYPE_CHECKING:
    from prefect.deployments.runner import RunnerDeployment

    from libnar._local_stack import FakeSamaHub

__all__ = ["DevError", "discover_flows", "run_dev"]

logger = logging.getLogger("libnar.dev")

_SKIPPED_DIRS = frozenset({"tests", "test", "__pycache__", "node_modules", "site", "build", "dist"})


class DevError(RuntimeError):
    """`libnar dev` cannot start; the message says what to fix."""


@dataclass(frozen=True)
class FoundFlow:
    """An `@nps_flow` found in a file."""

    flow: NpsFlow[Any, Any]
    path: Path


def discover_flows(folder: Path, warn: Callable[[str], None] = logger.warning) -> list[FoundFlow]:
    """Import every `*.py` under `folder` and collect its `@nps_flow`s, one per flow name.

    Test files, hidden folders and `tests/` are skipped; a file that fails to import is
    reported through `warn` and skipped; of two flows with one name the shallower file wins.
    """
    if not folder.is_dir():
        raise DevError(f"{folder}: no such folder (give the folder that holds your flow files)")
    paths = sorted(
        (p for p in folder.rglob("*.py") if _is_flow_file(p.relative_to(folder))),
        key=lambda p: (len(p.relative_to(folder).parts), str(p)),
    )
    found: dict[str, FoundFlow] = {}
    for index, path in enumerate(paths):
        try:
            module = import_flow_file(path, f"_libnar_dev_{index}_{path.stem}")
        except FlowLoadError as exc:
            cause = exc.__cause__ or exc
            warn(f"{path}: skipped, importing it failed: {type(cause).__name__}: {cause}")
            continue
        for value in flows_defined_in(module).values():
            if value.name in found:
                if found[value.name].path != path:
                    warn(
                        f"{path}: flow {value.name!r} skipped, already found in {found[value.name].path}"
                    )
                continue
            found[value.name] = FoundFlow(value, path)
    return sorted(found.values(), key=lambda f: f.flow.name)


def _is_flow_file(relative: Path) -> bool:
    if any(part.startswith((".", "_")) or part in _SKIPPED_DIRS for part in relative.parts[:-1]):
        return False
    name = relative.name
    return not (name.startswith("test_") or name.endswith("_test.py") or name == "conftest.py")


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
    flow: NpsFlow[Any, Any], gateway_url: str, keys: dict[str, str], fake: FakeSamaHub | None
) -> str | None:
    """A curl line that triggers `flow` with a sample event (known to the fake SamaHub)."""
    from libnar._gateway import mint_token
    from libnar._local_stack import make_dpp_event, make_webhook_event

    kinds = flow.signature.event_kinds
    event: WebhookEvent | DppEvent
    if WebhookEvent in kinds or kinds == (Task,):
        event = make_webhook_event()
        url, headers = (
            f"{gateway_url}/webhook-event",
            {"x-auth-token": mint_token(keys["secret"], flow.name)},
        )
    elif DppEvent in kinds:
        event = make_dpp_event(name=flow.name)
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


def run_dev(
    folder: Path,
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    say: Callable[[str], None] = print,
) -> None:
    """Run Prefect, the flows' deployments and the gateway until Ctrl-C.

    Raises:
        DevError: no flows in the folder, or a part did not start.
    """
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    flows = discover_flows(folder, warn=say)
    if not flows:
        raise DevError(f"{folder}: no @nps_flow in any *.py file")
    with ExitStack() as stack:
        api_url = stack.enter_context(_prefect_api(say))
        fake = stack.enter_context(_samahub(say))
        os.environ["PREFECT_API_URL"] = api_url
        from prefect import serve
        from prefect.settings import PREFECT_API_URL, temporary_settings

        stack.enter_context(temporary_settings(updates={PREFECT_API_URL: api_url}))
        deployments = []
        for found in flows:
            name = default_deployment_names(found.flow.name)[0]
            deployment = cast("RunnerDeployment", found.flow.to_deployment(name=name))
            deployment.apply()
            deployments.append(deployment)
            say(f"deployment {found.flow.name}/{name}  ({found.path})")

        env = {**os.environ, "PREFECT_API_URL": api_url}
        # Locally the answer names the run (a link to follow), unless set otherwise.
        env.setdefault("LIBNAR_GATEWAY_WAIT_FOR_RUN", "true")
        keys = _dev_secrets(env)
        from libnar._local_stack import GatewayProcess

        try:
            gateway = stack.enter_context(GatewayProcess(env, host=host, port=port))
        except RuntimeError as exc:
            raise DevError(f"{exc} (see above)") from None
        gateway_url = gateway.url
        say(f"gateway: {gateway_url}  (API docs: {gateway_url}/docs)")
        say("")
        say("Trigger a flow as SamaHub would (paste one line):")
        for found in flows:
            line = _sample_request(found.flow, gateway_url, keys, fake)
            if line is not None:
                say(f"# {found.flow.name}")
                say(line)
        say("")
        say("Serving the deployments; Ctrl-C stops everything.")
        with suppress(KeyboardInterrupt):
            serve(
                *deployments, pause_on_shutdown=False, print_starting_message=False, query_seconds=2
            )
        say("Stopping ...")
