"""A real `prefect server`: one subprocess on 127.0.0.1 with its own PREFECT_HOME.

`libnar dev` runs one for the session; tests that run flows against one server started once
are much faster than a harness per test module (a fresh server takes about 10 s to answer). The server's database lives in a temporary
directory and is gone when the server stops.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

from libnar._local_stack._child import ChildServer, stop_child, wait_until_answering

__all__ = ["PrefectServer", "free_port"]


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class PrefectServer(ChildServer):
    """Start and stop `prefect server start` on 127.0.0.1 with a temporary home.

    The UI is off unless `ui=True` (`libnar dev` turns it on; tests need no UI). The late-runs
    service is off unless `late_runs=True`: with hundreds of runs nobody picks up (a load test)
    it locks SQLite; a test of `late` alerts turns it on.

    Example:
        ```python
        with PrefectServer() as server:
            os.environ["PREFECT_API_URL"] = server.api_url
        ```
    """

    def __init__(
        self,
        home: Path | None = None,
        port: int | None = None,
        *,
        ui: bool = False,
        late_runs: bool = False,
    ) -> None:
        self._tmp = None if home else tempfile.TemporaryDirectory(prefix="libnar-prefect-")
        self.home = home or Path(self._tmp.name)  # type: ignore[union-attr]
        self.port = port or free_port()
        self.ui = ui
        self.late_runs = late_runs
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def api_url(self) -> str:
        """The server's API URL, for `PREFECT_API_URL`."""
        return f"http://127.0.0.1:{self.port}/api"

    @property
    def ui_url(self) -> str | None:
        """The Prefect UI's URL, when the server serves it (`ui=True`)."""
        return f"http://127.0.0.1:{self.port}" if self.ui else None

    def environment(self) -> dict[str, str]:
        """Environment for the server process and for clients of it."""
        return {
            **os.environ,
            "PREFECT_HOME": str(self.home),
            "PREFECT_API_URL": self.api_url,
            "DO_NOT_TRACK": "1",
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
            "PREFECT_SERVER_UI_ENABLED": "true" if self.ui else "false",
            "PREFECT_SERVER_SERVICES_LATE_RUNS_ENABLED": "true" if self.late_runs else "false",
            "PREFECT_LOGGING_LEVEL": "WARNING",
        }

    def start(self, timeout: float = 90.0) -> PrefectServer:
        """Start the server and wait until `/api/health` answers.

        Raises:
            RuntimeError: the server exited or did not answer within `timeout` seconds; the
                message carries the end of its output (and the server is stopped).
        """
        log = (self.home / "server.log").open("wb")
        self.process = subprocess.Popen(  # noqa: S603 - fixed command, no shell
            [
                sys.executable,
                "-m",
                "prefect",
                "server",
                "start",
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
            ],
            env=self.environment(),
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            wait_until_answering(
                self.process,
                f"{self.api_url}/health",
                timeout,
                f"prefect server on port {self.port}",
                output=lambda: (self.home / "server.log").read_text(errors="replace")[-2000:],
            )
        except RuntimeError:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Stop the server (SIGTERM, then SIGKILL after 10 s) and remove its temporary home."""
        if self.process is not None:
            stop_child(self.process)
        self.process = None
        if self._tmp is not None:
            self._tmp.cleanup()
