"""`libnar gateway serve` as a child process on 127.0.0.1: for tests, benchmarks and `libnar dev`."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO

from libnar._local_stack._child import ChildServer, stop_child, wait_until_answering
from libnar._local_stack._prefect import free_port

__all__ = ["GatewayProcess"]


class GatewayProcess(ChildServer):
    """Run the gateway as its own process, the way production runs it.

    Settings come from `env` (`LIBNAR_GATEWAY_SECRETS`, `PREFECT_API_URL`, ...). `start()`
    returns once `/ready` answers, so Prefect is reachable and the outbox writable.

    Example:
        ```python
        with GatewayProcess({**os.environ, "LIBNAR_GATEWAY_SECRETS": "s"}) as gateway:
            httpx.post(f"{gateway.url}/webhook-event", ...)
        ```
    """

    def __init__(
        self,
        env: Mapping[str, str],
        *,
        host: str = "127.0.0.1",
        port: int | None = None,
        args: Sequence[str] = (),
        log: Path | None = None,
        cwd: Path | None = None,
    ) -> None:
        self.env = dict(env)
        self.host = host
        self.port = port or free_port()
        self.args = list(args)
        self.log = log
        self.cwd = cwd
        self.process: subprocess.Popen[bytes] | None = None
        self._log_file: IO[bytes] | None = None

    @property
    def url(self) -> str:
        """The gateway's base URL."""
        return f"http://{self.host}:{self.port}"

    def start(self, timeout: float = 60.0) -> GatewayProcess:
        """Start the gateway and wait until `/ready` answers.

        Raises:
            RuntimeError: it exited (e.g. a missing secret) or did not get ready in time; the
                message carries the end of its log when `log` is set.
        """
        self._log_file = self.log.open("wb") if self.log else None
        self.process = subprocess.Popen(  # noqa: S603 - our own command, no shell
            [
                sys.executable,
                "-m",
                "libnar.cli",
                "gateway",
                "serve",
                "--host",
                self.host,
                "--port",
                str(self.port),
                *self.args,
            ],
            env=self.env,
            cwd=self.cwd,
            stdout=self._log_file,
            stderr=subprocess.STDOUT if self._log_file else None,
        )
        try:
            wait_until_answering(
                self.process, f"{self.url}/ready", timeout, "the gateway", output=self._log_tail
            )
        except RuntimeError:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Stop the gateway (SIGTERM, then SIGKILL after 15 s)."""
        if self.process is not None:
            stop_child(self.process, grace=15.0)
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None

    def _log_tail(self) -> str:
        return self.log.read_text(errors="replace")[-2000:] if self.log else ""
