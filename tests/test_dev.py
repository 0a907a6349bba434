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

from libnar._dev import DevError, _prefect_api, dev_plans
from libnar.testing import free_port

from .without_test_extra import env_without_test_extra

ROOT = Path(__file__).parents[1]
EXAMPLES = ROOT / "examples"


def test_dev_applies_the_build_plan_of_each_package_on_the_local_pool() -> None:
    from libnar._build import check_package, make_plan

    found = dev_plans(EXAMPLES / "flows", warn=pytest.fail)
    assert [plan.flow_name for _, plan in found] == [
        "acm12_nightly_export_ptp",
        "fun69_boxes_ptp",
        "fun69_label_counts_ptp",
    ]
    for package, plan in found:
        built = make_plan(check_package(package.root))
        assert plan.workdir == str(package.root.resolve())  # runs start in the package
        for local, production in zip(plan.deployments, built.deployments, strict=True):
            same = ("name", "flow_name", "version", "entrypoint", "parameters", "schedule", "tags")
            assert {k: getattr(local, k) for k in same} == {k: getattr(production, k) for k in same}
            assert (local.work_pool, local.work_pool_type) == ("libnar-local", "process")
            cpu, memory = package.config.vcpu, package.config.memory_mib
            assert local.job_variables == {
                "cpu": format(cpu.normalize(), "f"),
                "env": {},
                "memory": f"{memory // 1024}Gi",
            }


def test_dev_skips_a_package_that_does_not_build_and_says_why(tmp_path: Path) -> None:
    from tests._build.conftest import write_package

    write_package(tmp_path, name="fun69_good_ptp")
    write_package(tmp_path, 'amount = "huge"', name="fun69_bad_ptp")
    said: list[str] = []
    found = dev_plans(tmp_path, warn=said.append)
    assert [plan.flow_name for _, plan in found] == ["fun69_good_ptp"]
    assert "fun69_bad_ptp: skipped, it does not build" in said[0]
    assert 'sama-build.amount: found "huge"' in said[0]


def test_dev_without_a_package_says_how_to_make_one(tmp_path: Path) -> None:
    (tmp_path / "loose_ptp.py").write_text("")
    with pytest.raises(DevError, match=r"no flow package that builds .*libnar init NAME"):
        dev_plans(tmp_path)
    with pytest.raises(DevError, match="no such folder"):
        dev_plans(tmp_path / "nope")


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
    launched = time.monotonic()
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(iter(process.stdout.readline, "")))  # type: ignore[union-attr]
    reader.start()
    started: set[int] = set()
    first_completed: float | None = None
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
                time.sleep(0.2)
                run = httpx.get(f"{api_url}/flow_runs/{run_id}", timeout=10).json()
                state = run["state"]["type"]
                assert state not in ("FAILED", "CRASHED"), "".join(lines)
            first_completed = first_completed or time.monotonic() - launched
            # Run by the worker on the local pool, in a process of its own, as in production.
            assert run["work_pool_name"] == "libnar-local"
            assert run["infrastructure_pid"]
            assert any(f"submitting flow run '{run_id}'" in line for line in lines)
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
    print(f"libnar dev: start to first completed run {first_completed:.1f} s")
    time.sleep(1)
    assert [pid for pid in started if is_running(pid)] == []
    assert "Stopping the Prefect server" in "".join(lines)


# -- memory and CPU on the local pool --------------------------------------------------------

HOG = """
import time
block = bytearray({mib} * 1024 * 1024)  # touched: zero-filled, resident
time.sleep(2)
"""


def limited(memory: str, code: str, cpu: str = "1") -> subprocess.CompletedProcess[str]:
    command = [
        sys.executable,
        "-m",
        "libnar._local_stack._limits",
        "--cpu",
        cpu,
        "--memory",
        memory,
    ]
    env = {k: v for k, v in os.environ.items() if k != "PREFECT__FLOW_RUN_ID"}
    return subprocess.run(
        [*command, "--", sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        check=False,
    )


def test_a_run_over_its_memory_is_killed_like_an_out_of_memory_kill() -> None:
    done = limited("300Mi", HOG.format(mib=600))
    assert done.returncode == 137, done.stderr
    assert 'out of memory: the run used more than the 300Mi of amount = "custom"' in done.stderr


def test_a_run_within_its_memory_keeps_its_own_exit_code() -> None:
    assert limited("1Gi", HOG.format(mib=100) + "raise SystemExit(3)").returncode == 3
    assert limited("1Gi", "print('ok')").returncode == 0


@pytest.mark.skipif(
    not hasattr(os, "sched_getaffinity") or len(os.sched_getaffinity(0)) < 2,
    reason="needs Linux and 2 cores",
)
def test_a_run_is_kept_on_as_many_cores_as_its_cpu() -> None:
    code = "import os, time; time.sleep(0.3); print(len(os.sched_getaffinity(0)))"
    assert limited("1Gi", code, cpu="0.5").stdout.strip() == "1"
    assert limited("1Gi", code, cpu="64").stdout.strip() == str(len(os.sched_getaffinity(0)))


@pytest.mark.parametrize(
    ("cpu", "memory", "expected"),
    [
        pytest.param(
            "0.5",
            512,
            ['amount = "very-low" (0.5 vCPU / 512Mi)', 'amount = "low" (1 vCPU / 2Gi)'],
            id="very-low",
        ),
        pytest.param(
            "1", 2048, ['amount = "low" (1 vCPU / 2Gi)', 'amount = "med" (1 vCPU / 4Gi)'], id="low"
        ),
        pytest.param(
            "2",
            4096,
            [
                'amount = "high" (2 vCPU / 4Gi)',
                'amount = "custom" with cpu = "2" and memory = "8Gi"',
            ],
            id="high",
        ),
        pytest.param(
            "4", 16384, ['amount = "custom" with memory = "16Gi"', 'memory = "32Gi"'], id="custom"
        ),
    ],
)
def test_the_out_of_memory_message_names_the_preset_and_the_next_one(
    cpu: str, memory: int, expected: list[str]
) -> None:
    from decimal import Decimal

    from libnar._local_stack._limits import memory_message

    message = memory_message(Decimal(cpu), memory, (memory + 10) * 1024 * 1024)
    assert all(text in message for text in expected), message
    assert "[sama-build]" in message


@pytest.mark.slow
def test_a_flow_over_its_preset_crashes_with_the_preset_and_one_within_completes(
    prefect_server: object, tmp_path: Path
) -> None:
    """Through the production path: deployments on the local pool, a real worker, real runs."""
    from prefect.deployments import run_deployment

    from libnar._build import apply_plan_sync, base_job_template
    from libnar._local_stack import WorkerProcess
    from tests._build.conftest import write_package

    source = """
from libnar import nps_flow

@nps_flow
def {name}(mib: int = 300) -> int:
    block = bytearray(mib * 1024 * 1024)
    return len(block) // (1024 * 1024)
"""
    for name, amount in (("fun69_small_ptp", "very-low"), ("fun69_roomy_ptp", "low")):
        write_package(tmp_path, f'amount = "{amount}"', name=name, source=source.format(name=name))
    template = {"local": base_job_template("local", python=sys.executable)}
    for _, plan in dev_plans(tmp_path, warn=pytest.fail):
        apply_plan_sync(plan, create_pools=True, pool_templates=template)
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[1])}
    with WorkerProcess("libnar-local", env, log=tmp_path / "worker.log"):
        small = run_deployment(
            "fun69_small_ptp/fun69_small_ptp_deploy", parameters={"mib": 700}, timeout=120
        )
        roomy = run_deployment(
            "fun69_roomy_ptp/fun69_roomy_ptp_deploy", parameters={"mib": 700}, timeout=120
        )
    log = (tmp_path / "worker.log").read_text()
    assert small.state is not None, log
    assert roomy.state is not None, log
    assert small.state.type.value == "CRASHED", log
    assert 'amount = "very-low" (0.5 vCPU / 512Mi)' in (small.state.message or "")
    assert 'amount = "low" (1 vCPU / 2Gi)' in (small.state.message or "")
    assert roomy.state.type.value == "COMPLETED", log
