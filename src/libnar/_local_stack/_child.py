"""Start a server as a child process, wait until it answers over HTTP, stop it cleanly.

Shared by `PrefectServer` and `GatewayProcess`: the same wait and the same stop everywhere.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable
from types import TracebackType
from typing import Self

import httpx

__all__ = ["ChildServer", "stop_child", "wait_until_answering"]


def wait_until_answering(
    process: subprocess.Popen[bytes],
    url: str,
    timeout: float,
    what: str,
    output: Callable[[], str] = lambda: "",
) -> None:
    """Wait until `GET url` answers 200.

    Raises:
        RuntimeError: the process exited, or `timeout` seconds passed; the message names
            `what` and carries `output()` (the end of the process's log, when there is one).
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and process.poll() is None:
        try:
            if httpx.get(url, timeout=1.0).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    code = process.poll()
    why = f"exited with code {code}" if code is not None else f"did not answer in {timeout:.0f} s"
    stop_child(process)
    raise RuntimeError(f"{what} {why} ({url})\n{output()}".rstrip())


def stop_child(process: subprocess.Popen[bytes], grace: float = 10.0) -> None:
    """SIGTERM, then SIGKILL after `grace` seconds; returns once the process is gone."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(grace)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


class ChildServer:
    """A server run as a child process: `with` starts it and stops it, whatever happens."""

    def start(self) -> Self:
        """Start the server and return once it answers."""
        raise NotImplementedError

    def stop(self) -> None:
        """Stop the server and release what it used."""
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
