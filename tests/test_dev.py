"""`libnar dev`: flows discovered, served behind the gateway, and everything stopped on Ctrl-C."""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

from libnar._dev import DevError, _prefect_api, discover_flows
from libnar.testing import free_port

from .without_test_extra import env_without_test_extra

ROOT = Path(__file__).parents[1]
EXAMPLES = ROOT / "examples"

FLOW = """
from libnar import WebhookEvent, nps_flow

@nps_flow
def {name}(event: WebhookEvent) -> str:
    return event.task.id
"""


def test_discovery_finds_each_flow_once_and_skips_tests_and_broken_files(tmp_path: Path) -> None:
    (tmp_path / "a_ptp.py").write_text(FLOW.format(name="a_ptp"))
    (tmp_path / "nested" / "pkg").mkdir(parents=True)
    (tmp_path / "nested" / "pkg" / "a_ptp.py").write_text(FLOW.format(name="a_ptp"))
    (tmp_path / "nested" / "pkg" / "b_ptp.py").write_text(FLOW.format(name="b_ptp"))
    (tmp_path / "nested" / "pkg" / "reuse.py").write_text("from b_ptp import b_ptp\n")
    (tmp_path / "test_a.py").write_text(FLOW.format(name="t_ptp"))
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "c_ptp.py").write_text(FLOW.format(name="c_ptp"))
    (tmp_path / "broken.py").write_text("import nothing_here\n")
    warnings: list[str] = []
    found = discover_flows(tmp_path, warn=warnings.append)
    assert [(f.flow.name, f.path.relative_to(tmp_path).as_posix()) for f in found] == [
        ("a_ptp", "a_ptp.py"),
        ("b_ptp", "nested/pkg/b_ptp.py"),
    ]
    assert any(
        "broken.py: skipped, importing it failed: ModuleNotFoundError" in w for w in warnings
    )
    assert any("flow 'a_ptp' skipped, already found in" in w for w in warnings)


@pytest.mark.parametrize(
    ("api_url", "ui_url", "shown_api"),
    [
        ("http://127.0.0.1:4200/api", "http://127.0.0.1:4200", "http://127.0.0.1:4200/api"),
        (
            "https://api.prefect.cloud/api/accounts/a1/workspaces/w1",
            "https://app.prefect.cloud/account/a1/workspace/w1",
            "https://api.prefect.cloud/api/accounts/a1/workspaces/w1",
        ),
        (
            "http://admin:hunter2@prefect.test/api",
            "http://admin:***@prefect.test",
            "http://admin:***@prefect.test/api",
        ),
    ],
    ids=["local", "cloud", "credentials"],
)
def test_dev_prints_the_prefect_ui_next_to_a_given_api(
    api_url: str, ui_url: str, shown_api: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PREFECT_API_URL", api_url)
    said: list[str] = []
    with _prefect_api(said.append) as used:
        assert used == api_url
    assert said == [f"Prefect API: {shown_api} (PREFECT_API_URL)", f"Prefect UI:  {ui_url}"]


def test_discovery_of_a_missing_folder_says_so(tmp_path: Path) -> None:
    with pytest.raises(DevError, match="no such folder"):
        discover_flows(tmp_path / "nope")


def run_logs(api_url: str, run_id: str, wait: float = 30) -> str:
    """The messages a flow run logged, once its print has reached the API."""
    deadline = time.monotonic() + wait
    while True:
        logs = httpx.post(
            f"{api_url}/logs/filter",
            json={"logs": {"flow_run_id": {"any_": [run_id]}}, "limit": 200},
            timeout=10,
        ).json()
        text = "\n".join(log["message"] for log in logs)
        if "task " in text or time.monotonic() > deadline:
            return text
        time.sleep(1)


def descendants(pid: int) -> set[int]:
    """Every process below `pid`, read from /proc."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found: set[int] = set()
    todo = [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def is_running(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.mark.slow
def test_dev_serves_the_examples_behind_the_gateway_and_ctrl_c_stops_everything(
    tmp_path: Path,
) -> None:
    """As after a plain `pip install libnar`: nothing of the test extra can be imported."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("PREFECT_API_URL", "LIBNAR_GATEWAY_", "LIBNAR_DPP_"))
    }
    env.update(
        PYTHONUNBUFFERED="1",
        LIBNAR_OUTBOX_DIR=str(tmp_path / "outbox"),
        PREFECT_HOME=str(tmp_path / "home"),
    )
    env = env_without_test_extra(tmp_path / "no-test-extra", env)
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "libnar.cli", "dev", str(EXAMPLES), "--port", str(port)],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(iter(process.stdout.readline, "")))  # type: ignore[union-attr]
    reader.start()
    started: set[int] = set()
    try:
        deadline = time.monotonic() + 120
        while not any("Ctrl-C stops everything" in line for line in lines):
            assert process.poll() is None, "".join(lines)
            assert time.monotonic() < deadline, "".join(lines)
            time.sleep(0.2)
        started = descendants(process.pid)
        assert started, "dev started no processes"
        api_url = next(line for line in lines if line.startswith("Prefect API: ")).split()[2]
        ui_url = next(line for line in lines if line.startswith("Prefect UI: ")).split()[2]
        assert ui_url == api_url.removesuffix("/api")
        page = httpx.get(ui_url, timeout=10)
        assert page.status_code == 200
        assert "text/html" in page.headers["content-type"]
        assert any(line.startswith("SamaHub: a local fake at http://127.0.0.1:") for line in lines)
        for route in ("/webhook-event", "/dpp-event"):
            # The DPP flow's result goes to dev's fake SamaHub: the run can only complete if
            # the fake accepted it.
            curl = shlex.split(next(line for line in lines if route in line))
            url = curl[curl.index("POST") + 1]
            headers = dict(h.split(": ", 1) for h in curl[1:][:-1] if ": " in h)
            body = curl[curl.index("-d") + 1]

            answer = httpx.post(url, content=body, headers=headers, timeout=30)
            assert answer.status_code == 200, answer.text
            run_id = answer.json()["flow_run_id"]
            state = None
            deadline = time.monotonic() + 90
            while state != "COMPLETED":
                assert time.monotonic() < deadline, f"run stuck in {state}:\n{''.join(lines)}"
                time.sleep(1)
                run = httpx.get(f"{api_url}/flow_runs/{run_id}", timeout=10).json()
                state = run["state"]["type"]
                assert state not in ("FAILED", "CRASHED"), "".join(lines)
            if route == "/webhook-event":
                # fun69_label_counts_ptp found the sample's labels (it printed {} when dev's
                # samples and the examples disagreed on the answer format).
                assert "{'car': 1, 'pedestrian': 1}" in run_logs(api_url, run_id)
        started |= descendants(process.pid)
    finally:
        process.send_signal(signal.SIGINT)
        try:
            code = process.wait(90)
        except subprocess.TimeoutExpired:
            process.kill()
            for pid in descendants(process.pid):
                os.kill(pid, signal.SIGKILL)
            raise
        reader.join(10)
    assert code == 0, "".join(lines)
    time.sleep(1)
    assert [pid for pid in started if is_running(pid)] == []
    assert "Stopping the Prefect server" in "".join(lines)
