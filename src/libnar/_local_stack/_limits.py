"""Run one flow run within its resources: the command of `libnar dev`'s local work pool.

`python -m libnar._local_stack._limits --cpu 1 --memory 2Gi [-- COMMAND...]` starts COMMAND
(default: `python -m prefect.engine`, what a process worker runs) and holds it to the run's
job variables, as production's infrastructure does:

- memory: a watchdog adds up the resident memory of the run's processes several times a
  second and, past the limit, kills them (SIGKILL), as an out-of-memory kill does on ECS or
  Kubernetes. The flow run is then marked Crashed with a message that names the preset and
  how to raise it, and this process exits 137 (128 + SIGKILL), the code production reports.
  Linux reads `/proc`; macOS asks `ps`. Resident memory is what cgroups limit in production;
  an rlimit on address space would stop Python long before (threads and allocator arenas
  reserve far more than they use).
- cpu: on Linux the run is kept on that many cores (rounded up) of those this process may
  use; macOS has no such call, so CPU is not limited there.

The limits come from the run's own job variables (a per-run value replaces the deployment's),
since the worker renders the pool's template for each run.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from decimal import Decimal
from pathlib import Path

__all__ = ["main", "memory_message", "tree_rss_bytes"]

#: Seconds between two looks at the run's memory.
POLL_SECONDS = 0.1
OOM_EXIT_CODE = 137


def _parse_memory(text: str) -> int:
    """`"2Gi"`, `"512Mi"` or a number of MiB -> MiB."""
    if text.endswith("Gi"):
        return int(text[:-2]) * 1024
    if text.endswith("Mi"):
        return int(text[:-2])
    return int(text)


def _parse_cpu(text: str) -> Decimal:
    return Decimal(text[:-1]) / 1000 if text.endswith("m") else Decimal(text)


def _children_linux() -> dict[int, list[int]]:
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    return children


def _rss_linux(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError):
        pass
    return 0


def _ps_table() -> list[tuple[int, int, int]]:
    done = subprocess.run(
        ["ps", "-A", "-o", "pid=,ppid=,rss="],  # noqa: S607 - ps from PATH, as on any Mac
        capture_output=True,
        text=True,
        check=False,
    )
    rows = []
    for line in done.stdout.splitlines():
        parts = line.split()
        if len(parts) == 3 and all(p.isdigit() for p in parts):
            rows.append((int(parts[0]), int(parts[1]), int(parts[2]) * 1024))
    return rows


def _tree_linux(root: int) -> list[int]:
    """`root` and its descendants from `/proc/<pid>/task/<tid>/children`, else a full scan."""
    found, todo = [root], [root]
    while todo:
        pid = todo.pop()
        try:
            tasks = list(Path(f"/proc/{pid}/task").iterdir())
            kids = [int(k) for t in tasks for k in (t / "children").read_text().split()]
        except FileNotFoundError:
            continue  # exited meanwhile
        except OSError:
            return _tree(root, _children_linux())  # a kernel without the children files
        for kid in kids:
            if kid not in found:
                found.append(kid)
                todo.append(kid)
    return found


def _tree(root: int, children: dict[int, list[int]]) -> list[int]:
    found, todo = [root], [root]
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in found:
                found.append(child)
                todo.append(child)
    return found


def tree_rss_bytes(root: int) -> tuple[int, list[int]]:
    """The resident memory of `root` and its descendants, and their pids."""
    if sys.platform.startswith("linux"):
        pids = _tree_linux(root)
        return sum(_rss_linux(pid) for pid in pids), pids
    rows = _ps_table()
    children: dict[int, list[int]] = {}
    rss = {}
    for pid, ppid, size in rows:
        children.setdefault(ppid, []).append(pid)
        rss[pid] = size
    pids = _tree(root, children)
    return sum(rss.get(pid, 0) for pid in pids), pids


def _mib(size: int) -> str:
    mib = size / (1024 * 1024)
    return f"{mib / 1024:.1f}Gi" if mib >= 1024 else f"{mib:.0f}Mi"


def memory_message(cpu: Decimal, memory_mib: int, used_bytes: int) -> str:
    """The out-of-memory message: what was used, the preset, and how to raise it."""
    from libnar._build._config import PRESETS, format_mib

    preset = next(
        (name for name, (vcpu, mib) in PRESETS.items() if vcpu == cpu and mib == memory_mib),
        None,
    )
    cpu_text = format(cpu.normalize(), "f")
    given = (
        f'amount = "{preset}" ({cpu_text} vCPU / {format_mib(memory_mib)})'
        if preset
        else f'amount = "custom" with memory = "{format_mib(memory_mib)}"'
    )
    larger = sorted((mib, vcpu, name) for name, (vcpu, mib) in PRESETS.items() if mib > memory_mib)
    double = format_mib(memory_mib * 2)
    if larger:
        mib, vcpu, name = larger[0]
        fix = (
            f'amount = "{name}" ({format(vcpu.normalize(), "f")} vCPU / {format_mib(mib)}),'
            f' or amount = "custom" with cpu = "{cpu_text}" and memory = "{format_mib(mib)}"'
        )
    else:
        fix = f'amount = "custom" with cpu = "{cpu_text}" and memory = "{double}"'
    return (
        f"out of memory: the run used more than the {format_mib(memory_mib)} of {given} and was"
        f" stopped at {_mib(used_bytes)}, as production stops it; raise it in the flow"
        f" package's pyproject.toml [sama-build]: {fix}"
    )


def _pin_cpus(pid: int, cpu: Decimal) -> None:
    """Keep `pid` on ceil(cpu) of the cores this process may use (Linux only)."""
    if not hasattr(os, "sched_setaffinity"):
        return
    allowed = sorted(os.sched_getaffinity(0))
    wanted = max(1, math.ceil(cpu))
    if wanted < len(allowed):
        # A process that has exited already, or a system that refuses: nothing to hold.
        with contextlib.suppress(OSError):
            os.sched_setaffinity(pid, allowed[:wanted])


def _report_crash(message: str) -> None:
    """Mark this flow run Crashed with `message` (the worker's own report says only 137)."""
    run_id = os.environ.get("PREFECT__FLOW_RUN_ID")
    if not run_id:
        return
    from prefect.client.orchestration import get_client
    from prefect.states import Crashed

    with get_client(sync_client=True) as client:
        client.set_flow_run_state(run_id, Crashed(message=message), force=True)


def _kill(pids: Sequence[int]) -> None:
    for pid in pids:
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command within the limits; return its exit code (137 when it ran out of memory)."""
    parser = argparse.ArgumentParser(prog="python -m libnar._local_stack._limits")
    parser.add_argument("--cpu", required=True, help='vCPU, e.g. "1", "0.5" or "500m"')
    parser.add_argument("--memory", required=True, help='e.g. "2Gi", "512Mi"')
    parser.add_argument("command", nargs="*", help="default: python -m prefect.engine")
    args = parser.parse_args(argv)
    cpu, memory_mib = _parse_cpu(args.cpu), _parse_memory(args.memory)
    limit = memory_mib * 1024 * 1024
    command = args.command or [sys.executable, "-m", "prefect.engine"]

    child = subprocess.Popen(command)  # noqa: S603 - the pool's own command
    _pin_cpus(child.pid, cpu)

    def forward(signum: int, _frame: object) -> None:
        if child.poll() is None:
            child.send_signal(signum)

    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, forward)
    peak = 0
    while child.poll() is None:
        used, pids = tree_rss_bytes(child.pid)
        peak = max(peak, used)
        if used > limit:
            _kill(pids[::-1])
            child.wait()
            message = memory_message(cpu, memory_mib, used)
            print(f"libnar: {message}", file=sys.stderr, flush=True)
            try:
                _report_crash(message)
            except Exception as exc:  # the run is over either way; say why it is not marked
                print(f"libnar: could not mark the run Crashed: {exc}", file=sys.stderr)
            return OOM_EXIT_CODE
        time.sleep(POLL_SECONDS)
    return child.returncode


if __name__ == "__main__":
    sys.exit(main())
