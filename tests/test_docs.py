"""Every command and example in the docs runs as written, so the docs cannot drift.

Each page (`docs/*.md` and `README.md`) runs top to bottom in a workspace of its own, as a
reader would follow it: a flow repository with `flows/` (the examples' flows, unless the page
starts one with `libnar init`), `examples/`, a checkout of libnar in `libnar/` (README.md runs
there) and `.venv` (this test's venv). Fenced blocks, in order:

- `bash`: each command runs with bash and must exit 0. `export` lines set the environment
  of the commands after them; `libnar dev` and `libnar gateway serve` keep running (as in a
  second terminal) until the page ends, then get Ctrl-C and must stop cleanly. A `text` block
  right after a `bash` block is the output of its last command (`...` stands for anything).
- `python` whose first line is `# path/to/file.py`: a file the reader writes; it is written.
- `python` with `def test_...`: run with pytest (the `prefect_server` fixture uses this test
  session's server).
- any other `python`: run as a script (top-level `await` allowed).

A block right after `<!-- docs-test: skip (reason) -->` is not run; the reason is reported.
Commands in running text (`like this`) are not extracted.

Equivalents, so that the suite stays fast and on 127.0.0.1 (nothing else differs):

- Commands that need a real Prefect get this session's server as `PREFECT_API_URL`
  (`http://127.0.0.1:4200/api` in a page stands for it). SamaHub is a served fake holding
  the example task (`SAMA_API_URL`, ... point at it).
- `python3 -m venv .venv && ` is dropped (`.venv` is this venv) and `pip install ARGS` is
  checked with `pip install --dry-run --no-deps ARGS`: real installs into new venvs are
  `.ci/check_plain_install.py`'s job.
- `--host 0.0.0.0` listens on 127.0.0.1; servers get a free port instead of 8000;
  `https://<gateway host>` is the gateway started last; `curl` fails on an HTTP error.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from libnar import WebhookEvent
from libnar.testing import PrefectServer, free_port, make_task, serve_fake_samahub

ROOT = Path(__file__).parents[1]
PAGES = [*sorted(p.relative_to(ROOT).as_posix() for p in (ROOT / "docs").glob("*.md")), "README.md"]
BLOCK = re.compile(r"(?P<before>[^\n]*)\n```(?P<lang>[\w-]*)\n(?P<code>.*?)```", re.S)
SKIP = re.compile(r"<!--\s*docs-test:\s*skip\s*\((?P<reason>.+)\)\s*-->")
FILE_HEADER = re.compile(r"# (?P<path>[\w./-]+\.py)\n")

#: Commands known to fail, on pages this branch does not own: (page, command) -> why. A known
#: failure that passes fails the test too, so the entry is removed once the page is fixed.
KNOWN_FAILING: dict[tuple[str, str], str] = {}


@dataclass
class Block:
    """A fenced block of a page."""

    lang: str
    code: str
    line: int
    skip: str | None
    output: str | None = None  # for bash: the text block right after it


def blocks_of(page: str) -> list[Block]:
    text = (ROOT / page).read_text()
    found: list[Block] = []
    last_end = -1
    for match in BLOCK.finditer("\n" + text):
        marker = SKIP.search(match["before"])
        block = Block(
            lang=match["lang"],
            code=match["code"],
            line=text[: match.start()].count("\n") + 2,
            skip=marker["reason"] if marker else None,
        )
        between = ("\n" + text)[last_end : match.start()].strip()
        if block.lang == "text" and found and found[-1].lang == "bash" and not between:
            found[-1].output = block.code
        else:
            found.append(block)
        last_end = match.end()
    return found


def commands_of(code: str) -> list[str]:
    """The commands of a bash block: continuation lines joined, comments and blanks left out."""
    commands, current = [], ""
    for line in code.splitlines():
        stripped = line.strip()
        if stripped.endswith("\\"):
            current += stripped[:-1].rstrip() + " "
            continue
        current += stripped
        if current and not current.startswith("#"):
            commands.append(current)
        current = ""
    return commands


def matches(expected: str, actual: str) -> bool:
    """Whether `actual` is `expected`, each `...` standing for any text."""
    pattern = ".*?".join(re.escape(part) for part in expected.strip().split("..."))
    return re.fullmatch(pattern, actual.strip(), re.S) is not None


SNIPPET_RUNNER = """
import ast, asyncio, sys
path = sys.argv[1]
code = compile(open(path).read(), path, "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
result = eval(code, {"__name__": "__main__"})
if asyncio.iscoroutine(result):
    asyncio.run(result)
"""


@dataclass
class Server:
    command: str
    process: subprocess.Popen[str]
    lines: list[str] = field(default_factory=list)


@dataclass
class Session:
    """One page being followed: its workspace, environment, servers and failures."""

    page: str
    workspace: Path
    env: dict[str, str]
    prefect_api: str
    samahub: dict[str, str]
    servers: list[Server] = field(default_factory=list)
    gateway_url: str | None = None
    failures: list[tuple[str, str]] = field(default_factory=list)
    passed: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    snippets: int = 0

    def check(self, label: str, problem: str | None) -> None:
        if problem is None:
            self.passed.append(label)
        else:
            self.failures.append((label, problem))

    # -- bash -----------------------------------------------------------------------------

    def equivalent(self, command: str) -> str:
        command = re.sub(r"^python3 -m venv \S+ && ", "", command)
        command = re.sub(r"(\S*\bpip) install ", r"\1 install --dry-run --no-deps ", command)
        command = command.replace("--host 0.0.0.0", "--host 127.0.0.1")
        command = command.replace("http://127.0.0.1:4200/api", self.prefect_api)
        if self.gateway_url:
            command = command.replace("https://<gateway host>", self.gateway_url)
        if command.startswith("curl "):
            command = "curl --fail-with-body -sS --max-time 60 " + command[5:]
        if self.is_server(command):
            port = str(free_port())
            command = re.sub(r"--port \d+", f"--port {port}", command)
            if "--port" not in command:
                command = re.sub(r"(libnar (dev|gateway serve))", rf"\1 --port {port}", command)
        return command

    @staticmethod
    def is_server(command: str) -> bool:
        return command.startswith(("libnar dev", "libnar gateway serve"))

    def run_bash(self, block: Block) -> None:
        commands = commands_of(block.code)
        for number, written in enumerate(commands):
            command = self.equivalent(written)
            if re.match(r"(export )?[A-Z_][A-Z0-9_]*=", command):
                self.export(written, command)
            elif self.is_server(command):
                self.start_server(written, command)
            else:
                expected = block.output if number == len(commands) - 1 else None
                self.check(written, self.run_command(command, expected))

    def export(self, written: str, command: str) -> None:
        done = subprocess.run(
            ["bash", "-c", f"{command}\nenv -0"],
            capture_output=True,
            text=True,
            env=self.env,
            cwd=self.workspace,
            timeout=60,
        )
        if done.returncode != 0:
            self.check(written, f"exit {done.returncode}: {done.stderr[-2000:]}")
            return
        self.env = dict(item.split("=", 1) for item in done.stdout.split("\0") if "=" in item)
        self.check(written, None)

    def run_command(self, command: str, expected: str | None) -> str | None:
        # SamaHub is there for the commands that read it; `libnar dev` serves a fake of its own.
        env = {**self.env, **self.samahub} if command.startswith("libnar task") else self.env
        try:
            done = subprocess.run(
                ["bash", "-o", "pipefail", "-c", command],
                capture_output=True,
                text=True,
                env=env,
                cwd=self.workspace,
                timeout=300,
            )
        except subprocess.TimeoutExpired:
            return "no result in 300 s"
        if done.returncode != 0:
            return f"exit {done.returncode}\n{done.stdout[-2000:]}\n{done.stderr[-3000:]}"
        if expected is not None and not matches(expected, done.stdout):
            return f"the output differs from the page:\n{done.stdout[-3000:]}"
        return None

    def start_server(self, written: str, command: str) -> None:
        process = subprocess.Popen(
            ["bash", "-c", f"exec {command}"],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env={**self.env, "PYTHONUNBUFFERED": "1"},
            cwd=self.workspace,
            start_new_session=True,
        )
        server = Server(written, process)
        reader = threading.Thread(
            target=lambda: server.lines.extend(iter(process.stdout.readline, "")),  # type: ignore[union-attr]
            daemon=True,
        )
        reader.start()
        self.servers.append(server)
        port = re.search(r"--port (\d+)", command)
        assert port is not None
        url = f"http://127.0.0.1:{port[1]}"
        deadline = time.monotonic() + 180
        while not self.is_ready(command, server, url):
            if process.poll() is not None or time.monotonic() > deadline:
                why = (
                    f"exit {process.poll()}" if process.poll() is not None else "not ready in 180 s"
                )
                self.check(written, f"{why}\n{''.join(server.lines)[-3000:]}")
                return
            time.sleep(0.5)
        self.gateway_url = url
        problem = None
        if command.startswith("libnar dev"):
            # The curl lines `libnar dev` prints are commands of the page too.
            curls = [line.strip() for line in server.lines if line.startswith("curl ")]
            if not curls:
                problem = "libnar dev printed no curl line"
            for curl in curls:
                problem = problem or self.run_command(self.equivalent(curl), None)
        self.check(written, problem)

    @staticmethod
    def is_ready(command: str, server: Server, url: str) -> bool:
        if command.startswith("libnar dev"):
            return any("Ctrl-C stops everything" in line for line in server.lines)
        try:
            return httpx.get(f"{url}/health", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    def stop_servers(self) -> None:
        for server in self.servers:
            process = server.process
            if process.poll() is not None:
                continue
            process.send_signal(signal.SIGINT)
            try:
                code = process.wait(90)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
                self.failures.append((f"{server.command} (Ctrl-C)", "did not stop in 90 s"))
                continue
            if code != 0:
                self.failures.append(
                    (f"{server.command} (Ctrl-C)", f"exit {code}\n{''.join(server.lines)[-2000:]}")
                )

    # -- python ---------------------------------------------------------------------------

    def run_python(self, block: Block) -> None:
        header = FILE_HEADER.match(block.code)
        label = "python: " + block.code.strip().splitlines()[0]
        if header:
            target = self.workspace / header["path"]
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(block.code)
            return
        self.snippets += 1
        folder = self.workspace / ".docs-examples"
        folder.mkdir(exist_ok=True)
        if re.search(r"^def test_", block.code, re.M):
            path = folder / f"test_example_{self.snippets}.py"
            path.write_text(block.code)
            self.check(
                label, self.run_command(f"python -m pytest -q -p no:cacheprovider {path}", None)
            )
            return
        path = folder / f"example_{self.snippets}.py"
        path.write_text(block.code)
        runner = folder / "run_example.py"
        runner.write_text(SNIPPET_RUNNER)
        # A script runs as a reader's would: without a Prefect server unless it starts one.
        env = {k: v for k, v in self.env.items() if k != "PREFECT_API_URL"} | self.samahub
        done = subprocess.run(
            [sys.executable, str(runner), str(path)],
            capture_output=True,
            text=True,
            env=env,
            cwd=self.workspace,
            timeout=300,
        )
        self.check(label, None if done.returncode == 0 else done.stderr[-3000:])


def make_workspace(tmp_path: Path, page: str, blocks: list[Block]) -> Path:
    """A flow repository for a page (README.md: a libnar checkout), with `.venv`."""
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "dist", "build")
    checkout = tmp_path / "libnar"
    checkout.mkdir()
    for name in ("src", "examples"):
        shutil.copytree(ROOT / name, checkout / name, ignore=ignore)
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, checkout / name)
    if page == "README.md":
        workspace = checkout
    else:
        workspace = tmp_path / "flow-repository"
        shutil.copytree(ROOT / "examples", workspace / "examples", ignore=ignore)
        starts_a_repository = any(
            b.lang == "bash" and not b.skip and re.search(r"^libnar init ", b.code, re.M)
            for b in blocks
        )
        if not starts_a_repository:
            shutil.copytree(ROOT / "examples" / "flows", workspace / "flows", ignore=ignore)
    (workspace / ".venv").symlink_to(sys.prefix, target_is_directory=True)
    return workspace


@pytest.fixture
def samahub() -> Iterator[dict[str, str]]:
    """A served fake SamaHub with the example task and a few delivered tasks of its project."""
    example = WebhookEvent.model_validate_json(
        (ROOT / "examples/events/webhook_event.json").read_text()
    )
    with serve_fake_samahub() as fake:
        fake.add_event(example)
        fake.add_tasks(make_task(project_id=10423) for _ in range(3))
        yield fake.env()


@pytest.mark.slow
@pytest.mark.parametrize("page", PAGES)
def test_every_command_and_example_of_the_page_runs_as_written(
    page: str, tmp_path: Path, prefect_server: PrefectServer, samahub: dict[str, str]
) -> None:
    blocks = blocks_of(page)
    workspace = make_workspace(tmp_path, page, blocks)
    bin_dir = str(Path(sys.executable).parent)
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_API", "SAMA_", "LIBNAR_"))
    }
    env.update(
        PATH=f"{bin_dir}{os.pathsep}{env.get('PATH', '')}",
        PREFECT_API_URL=prefect_server.api_url,
        LIBNAR_TEST_PREFECT_API_URL=prefect_server.api_url,
        PIP_DISABLE_PIP_VERSION_CHECK="1",
        COLUMNS="200",
    )
    session = Session(page, workspace, env, prefect_server.api_url, samahub)
    try:
        for block in blocks:
            if block.lang not in ("bash", "python"):
                continue
            if block.skip:
                session.skipped.append(f"line {block.line}: {block.skip}")
            elif block.lang == "bash":
                session.run_bash(block)
            else:
                session.run_python(block)
    finally:
        session.stop_servers()
        for server in session.servers:
            if server.process.poll() is None:
                os.killpg(server.process.pid, signal.SIGKILL)

    known = {command: why for (where, command), why in KNOWN_FAILING.items() if where == page}
    unexpected = [
        f"{label}:\n{problem}" for label, problem in session.failures if label not in known
    ]
    fixed = [label for label in session.passed if label in known]
    assert not unexpected, f"{page}: commands that do not run as written:\n\n" + "\n\n".join(
        unexpected
    )
    assert not fixed, f"{page}: these now run; remove them from KNOWN_FAILING: {fixed}"
    assert session.passed or session.skipped or not blocks, f"{page}: nothing was run"


def test_the_extraction_finds_commands_outputs_and_skip_markers() -> None:
    blocks = blocks_of("docs/getting-started.md")
    run = next(b for b in blocks if b.lang == "bash" and "libnar run" in b.code)
    assert run.output is not None
    assert run.output.startswith("Running flow fun69_boxes_ptp")
    assert [b.skip for b in blocks if b.skip] == [
        "needs your organisation's package index",
        "needs access to libnar's git repository",
    ]
    assert commands_of("a \\\n  b  # c\n# only a comment\n\nd\n") == ["a b  # c", "d"]
    assert matches("x: ... s\ny", "x: 1.25 s\ny")
    assert not matches("state: Completed", "state: Failed")


def test_known_failures_name_commands_that_exist() -> None:
    for page, command in KNOWN_FAILING:
        labels = [
            *(c for b in blocks_of(page) if b.lang == "bash" for c in commands_of(b.code)),
            *(
                "python: " + b.code.strip().splitlines()[0]
                for b in blocks_of(page)
                if b.lang == "python"
            ),
        ]
        assert command in labels, f"{page}: {command!r} is not on the page any more"


def test_json_examples_in_the_docs_are_valid_json() -> None:
    for page in PAGES:
        for block in blocks_of(page):
            if block.lang == "json":
                json.loads(block.code)
