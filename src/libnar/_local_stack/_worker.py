"""A real Prefect worker on a work pool, as a child process: what `libnar dev` runs flows with.

`prefect worker start --pool POOL --type process` is the production path on a laptop: the
worker polls the pool, renders the pool's base job template with each run's job variables,
and starts the run's process (on libnar's local pool: within the run's memory and CPU).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import IO

import httpx

from libnar._local_stack._child import ChildServer, stop_child

__all__ = ["WorkerProcess"]


class WorkerProcess(ChildServer):
    """Run `prefect worker start` for one pool until stopped (a `with` block stops it).

    `start()` returns once the worker has registered with the pool, so a run created after
    it is picked up within `query_seconds`.

    Example:
        ```python
        with WorkerProcess("libnar-local", {**os.environ, "PREFECT_API_URL": api_url}):
            ...  # runs of deployments on the pool are executed
        ```
    """

    def __init__(
        self,
        pool: str,
        env: Mapping[str, str],
        *,
        pool_type: str = "process",
        query_seconds: float = 1.0,
        log: Path | None = None,
    ) -> None:
        self.pool = pool
        self.pool_type = pool_type
        self.env = dict(env)
        self.query_seconds = query_seconds
        self.log = log
        self.name = f"libnar-dev-{os.getpid()}-{time.monotonic_ns() % 100000}"
        self.process: subprocess.Popen[bytes] | None = None
        self._log_file: IO[bytes] | None = None

    @property
    def api_url(self) -> str:
        """The Prefect API the worker polls (`PREFECT_API_URL` of its environment)."""
        return self.env["PREFECT_API_URL"].rstrip("/")

    def start(self, timeout: float = 90.0) -> WorkerProcess:
        """Start the worker and wait until it has registered with its pool.

        Raises:
            RuntimeError: the worker exited or did not register within `timeout` seconds;
                the message carries the end of its log when `log` is set.
        """
        env = {
            **self.env,
            "PREFECT_WORKER_QUERY_SECONDS": str(self.query_seconds),
            "PREFECT_WORKER_HEARTBEAT_SECONDS": str(max(5.0, self.query_seconds)),
            "PREFECT_WORKER_PREFETCH_SECONDS": "1",
        }
        self._log_file = self.log.open("wb") if self.log else None
        self.process = subprocess.Popen(  # noqa: S603 - our own command, no shell
            [
                sys.executable,
                "-m",
                "prefect",
                "worker",
                "start",
                "--pool",
                self.pool,
                "--type",
                self.pool_type,
                "--name",
                self.name,
            ],
            env=env,
            stdout=self._log_file,
            stderr=subprocess.STDOUT if self._log_file else None,
        )
        deadline = time.monotonic() + timeout
        while not self._is_registered():
            code = self.process.poll()
            if code is not None or time.monotonic() > deadline:
                why = (
                    f"exited with code {code}"
                    if code is not None
                    else f"did not register in {timeout:.0f} s"
                )
                self.stop()
                raise RuntimeError(
                    f"the Prefect worker for pool {self.pool!r} {why}\n{self._log_tail()}".rstrip()
                )
            time.sleep(0.3)
        return self

    def _is_registered(self) -> bool:
        try:
            answer = httpx.post(
                f"{self.api_url}/work_pools/{self.pool}/workers/filter", json={}, timeout=5
            )
        except httpx.HTTPError:
            return False
        return answer.status_code == 200 and any(w["name"] == self.name for w in answer.json())

    def stop(self) -> None:
        """Stop the worker (SIGTERM, then SIGKILL after 15 s); its runs' processes with it."""
        if self.process is not None:
            stop_child(self.process, grace=15.0)
            self.process = None
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None

    def _log_tail(self) -> str:
        return self.log.read_text(errors="replace")[-2000:] if self.log else ""
