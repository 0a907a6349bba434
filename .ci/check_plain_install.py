#!/usr/bin/env python3
"""CI: libnar works as a flow author installs it, without the test extra.

In a fresh venv with only `pip install .`: `libnar --version` answers; a package written by
`libnar init` installs there (its `libnar>=...` line takes the installed pre-release);
`libnar dev` serves the examples on 127.0.0.1, the curl lines it prints are run as printed,
and each webhook or DPP request gets its flow run, Completed by the worker on dev's local
work pool (the time from `libnar dev`'s start to the first completed run is printed). Loopback only; every step has a
deadline. Standard library only.

Usage: python3 .ci/check_plain_install.py [--keep]   (--keep leaves the temporary folder)
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
INSTALL_SECONDS = 900
DEV_START_SECONDS = 240
RUN_SECONDS = 180
STOP_SECONDS = 90


class CheckFailed(Exception):
    """A step of the check failed; the message says which and why."""


def step(text: str) -> None:
    print(f"[plain install] {text}", flush=True)


def run(args: list[str], timeout: float, **kwargs: object) -> subprocess.CompletedProcess[str]:
    """Run a command; raise `CheckFailed` with its output when it fails or takes too long."""
    try:
        done = subprocess.run(  # noqa: S603 - fixed commands, no shell
            args, capture_output=True, text=True, timeout=timeout, **kwargs
        )
    except subprocess.TimeoutExpired:
        raise CheckFailed(f"{shlex.join(args)}: no result in {timeout:.0f} s") from None
    if done.returncode != 0:
        raise CheckFailed(
            f"{shlex.join(args)}: exit {done.returncode}\n{done.stdout[-3000:]}{done.stderr[-3000:]}"
        )
    return done


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def plain_env(home: Path) -> dict[str, str]:
    """A flow author's environment: no Prefect API, no SamaHub, no gateway secrets set."""
    keep = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "PIP_INDEX_URL", "PIP_EXTRA_INDEX_URL")
    env = {k: v for k, v in os.environ.items() if k in keep or k.startswith("PIP_")}
    env.update(
        PREFECT_HOME=str(home / "prefect-home"),
        LIBNAR_OUTBOX_DIR=str(home / "outbox"),
        DO_NOT_TRACK="1",
        PREFECT_SERVER_ANALYTICS_ENABLED="false",
        PYTHONUNBUFFERED="1",
    )
    return env


def install(work: Path) -> Path:
    """A fresh venv with `pip install .`; return its bin folder."""
    bin_dir = work / "venv" / "bin"
    run([sys.executable, "-m", "venv", str(work / "venv")], 120)
    started = time.monotonic()
    run([str(bin_dir / "pip"), "install", "-q", str(ROOT)], INSTALL_SECONDS)
    step(f"pip install . took {time.monotonic() - started:.0f} s")
    for extra in ("pytest", "respx"):
        probe = subprocess.run(  # noqa: S603
            [str(bin_dir / "python"), "-c", f"import {extra}"], capture_output=True, timeout=60
        )
        if probe.returncode == 0:
            raise CheckFailed(f"{extra} is installed by `pip install .`: the check means nothing")
    return bin_dir


def check_a_new_flow_package_installs(bin_dir: Path, work: Path, env: dict[str, str]) -> None:
    """`libnar init` writes a package whose dependency line the installed libnar satisfies."""
    version = run([str(bin_dir / "libnar"), "--version"], 60, env=env).stdout.strip()
    step(version)
    run([str(bin_dir / "libnar"), "init", "fun1_demo", "--dir", "flows"], 60, cwd=work, env=env)
    package = work / "flows" / "fun" / "fun1" / "fun1_demo_ptp"
    run([str(bin_dir / "pip"), "install", "-q", str(package)], 300, env=env)
    run([str(bin_dir / "pip"), "check"], 60, env=env)
    step("a package from libnar init installs next to libnar")


def get_json(url: str) -> dict[str, object]:
    with urllib.request.urlopen(url, timeout=10) as answer:  # noqa: S310 - loopback http
        return json.loads(answer.read())  # type: ignore[no-any-return]


def check_dev(bin_dir: Path, work: Path, env: dict[str, str]) -> None:
    """`libnar dev examples/flows`: each printed curl line gets its run, Completed."""
    port = free_port()
    launched = time.monotonic()
    first_completed: float | None = None
    process = subprocess.Popen(  # noqa: S603
        [str(bin_dir / "libnar"), "dev", str(ROOT / "examples" / "flows"), "--port", str(port)],
        cwd=work,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    lines: list[str] = []
    reader = threading.Thread(
        target=lambda: lines.extend(iter(process.stdout.readline, "")),  # type: ignore[union-attr]
        daemon=True,
    )
    reader.start()
    try:
        deadline = time.monotonic() + DEV_START_SECONDS
        while not any("Ctrl-C stops everything" in line for line in lines):
            if process.poll() is not None:
                raise CheckFailed(f"libnar dev exited with {process.returncode}")
            if time.monotonic() > deadline:
                raise CheckFailed(f"libnar dev not ready in {DEV_START_SECONDS} s")
            time.sleep(0.5)
        step("libnar dev is serving the examples")
        api_url = next(line for line in lines if line.startswith("Prefect API: ")).split()[2]
        curls = [line.strip() for line in lines if line.startswith("curl ")]
        for route in ("/webhook-event", "/dpp-event"):
            line = next((c for c in curls if route in c), None)
            if line is None:
                raise CheckFailed(f"libnar dev printed no curl line for {route}")
            answer = run([*shlex.split(line), "--max-time", "60", "--fail-with-body"], 90)
            run_id = json.loads(answer.stdout)["flow_run_id"]
            deadline = time.monotonic() + RUN_SECONDS
            state = None
            while state != "COMPLETED":
                if state in ("FAILED", "CRASHED", "CANCELLED"):
                    raise CheckFailed(f"{route}: flow run {run_id} ended {state}")
                if time.monotonic() > deadline:
                    raise CheckFailed(
                        f"{route}: flow run {run_id} still {state} after {RUN_SECONDS} s"
                    )
                time.sleep(0.2)
                found = get_json(f"{api_url}/flow_runs/{run_id}")
                state = found["state"]["type"]  # type: ignore[index]
            if found["work_pool_name"] != "libnar-local":
                raise CheckFailed(f"{route}: run {run_id} did not go through the local pool")
            if first_completed is None:
                first_completed = time.monotonic() - launched
                step(f"libnar dev start to a completed first run: {first_completed:.1f} s")
            step(f"{route}: flow run {run_id} Completed by the worker on libnar-local")
    except Exception:
        print("".join(lines)[-6000:], file=sys.stderr)
        raise
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(STOP_SECONDS)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
                raise CheckFailed(
                    f"libnar dev did not stop within {STOP_SECONDS} s of Ctrl-C"
                ) from None
        reader.join(10)
    if process.returncode != 0:
        print("".join(lines)[-6000:], file=sys.stderr)
        raise CheckFailed(f"libnar dev exited with {process.returncode} on Ctrl-C")
    step("Ctrl-C stopped libnar dev cleanly")


def main() -> int:
    keep = "--keep" in sys.argv[1:]
    work = Path(tempfile.mkdtemp(prefix="libnar-plain-install-"))
    started = time.monotonic()
    try:
        bin_dir = install(work)
        env = plain_env(work)
        check_a_new_flow_package_installs(bin_dir, work, env)
        check_dev(bin_dir, work, env)
    except CheckFailed as failed:
        print(f"[plain install] FAILED: {failed}", file=sys.stderr)
        return 1
    finally:
        if keep:
            step(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    step(f"passed in {time.monotonic() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
