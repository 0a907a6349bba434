"""A real PostgreSQL server on 127.0.0.1 for tests: started from the installed binaries.

PostgreSQL refuses to run as root, so when the tests run as root the server runs as an
unprivileged user (`postgres` when it exists, else one created for the purpose). Tests that
need it use the `postgres_server` fixture, which skips with the reason when the server
binaries are not installed.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Self

from libnar._local_stack._child import ChildServer
from libnar._local_stack._prefect import free_port

__all__ = ["PostgresServer", "PostgresUnavailable", "find_postgres_bin"]

_USER = "libnar"  # the database superuser the server is initialised with
_RUN_AS_CANDIDATES = ("postgres", "libnar-pg")


class PostgresUnavailable(RuntimeError):
    """The PostgreSQL server binaries are not installed (the message says where it looked)."""


def find_postgres_bin() -> Path:
    """The folder holding `initdb`, `pg_ctl` and `postgres`.

    Looks where `pg_config --bindir` says, then on `PATH`, then in `/usr/lib/postgresql/*/bin`.

    Raises:
        PostgresUnavailable: no server binaries were found.
    """
    candidates: list[Path] = []
    pg_config = shutil.which("pg_config")
    if pg_config:
        done = subprocess.run(  # noqa: S603 - a fixed command
            [pg_config, "--bindir"], capture_output=True, text=True, check=False
        )
        if done.returncode == 0:
            candidates.append(Path(done.stdout.strip()))
    initdb = shutil.which("initdb")
    if initdb:
        candidates.append(Path(initdb).parent)
    candidates += sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True)
    for folder in candidates:
        if (folder / "initdb").exists() and (folder / "pg_ctl").exists():
            return folder
    raise PostgresUnavailable(
        "PostgreSQL server binaries (initdb, pg_ctl) not found: looked where `pg_config"
        " --bindir` says, on PATH and in /usr/lib/postgresql/*/bin (apt install postgresql)"
    )


def _unprivileged_user() -> str | None:
    """The user to run the server as when running as root; None when not root."""
    if os.geteuid() != 0:
        return None
    for name in _RUN_AS_CANDIDATES:
        try:
            pwd.getpwnam(name)
        except KeyError:
            continue
        return name
    subprocess.run(  # noqa: S603 - a fixed command
        ["useradd", "--system", "--no-create-home", _RUN_AS_CANDIDATES[-1]],  # noqa: S607
        check=True,
        capture_output=True,
    )
    return _RUN_AS_CANDIDATES[-1]


class PostgresServer(ChildServer):
    """A throwaway PostgreSQL cluster on 127.0.0.1 (trust auth, loopback only).

    Example:
        ```python
        with PostgresServer() as pg:
            url = pg.create_database("outbox")  # postgresql://libnar@127.0.0.1:PORT/outbox
        ```
    """

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self.bin = find_postgres_bin()
        self.run_as = _unprivileged_user()
        self.directory: Path | None = None

    def url(self, database: str = "postgres", driver: str | None = None) -> str:
        """The URL of a database: `postgresql://` or, with a driver, `postgresql+<driver>://`."""
        scheme = f"postgresql+{driver}" if driver else "postgresql"
        return f"{scheme}://{_USER}@127.0.0.1:{self.port}/{database}"

    def start(self) -> Self:
        """Initialise a cluster in a temp folder and start it; returns once it accepts work."""
        self.directory = Path(tempfile.mkdtemp(prefix="libnar-pg-"))
        data = self.directory / "data"
        if self.run_as is not None:
            info = pwd.getpwnam(self.run_as)
            os.chown(self.directory, info.pw_uid, info.pw_gid)
        self._run("initdb", "-D", str(data), "-U", _USER, "--auth=trust", "-E", "UTF8")
        options = f"-h 127.0.0.1 -p {self.port} -k {self.directory} -c fsync=off"
        self._run(
            "pg_ctl",
            "-D",
            str(data),
            "-o",
            options,
            "-l",
            str(self.directory / "log"),
            "-w",
            "start",
        )
        deadline = time.monotonic() + 30
        while self._run("pg_isready", "-h", "127.0.0.1", "-p", str(self.port), check=False):
            if time.monotonic() > deadline:
                raise RuntimeError(f"PostgreSQL did not get ready:\n{self.log_tail()}")
            time.sleep(0.2)
        return self

    def create_database(self, name: str) -> str:
        """Create a database and return its `postgresql://` URL."""
        self._run("createdb", "-h", "127.0.0.1", "-p", str(self.port), "-U", _USER, name)
        return self.url(name)

    def stop(self) -> None:
        """Stop the server (fast shutdown) and delete its files."""
        if self.directory is None:
            return
        data = self.directory / "data"
        if data.exists():
            self._run("pg_ctl", "-D", str(data), "-m", "fast", "-w", "stop", check=False)
        shutil.rmtree(self.directory, ignore_errors=True)
        self.directory = None

    def log_tail(self) -> str:
        """The end of the server's log."""
        if self.directory is None:
            return ""
        log = self.directory / "log"
        return log.read_text(errors="replace")[-2000:] if log.exists() else ""

    def _run(self, tool: str, *args: str, check: bool = True) -> int:
        command = [str(self.bin / tool), *args]
        if self.run_as is not None:
            command = ["runuser", "-u", self.run_as, "--", *command]
        done = subprocess.run(  # noqa: S603 - our own command, no shell
            command, capture_output=True, text=True, check=False, cwd="/"
        )
        if check and done.returncode != 0:
            raise RuntimeError(
                f"{tool} failed ({done.returncode}): {done.stderr.strip()}\n{self.log_tail()}"
            )
        return done.returncode
