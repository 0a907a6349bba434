"""Azurite (Azure's storage emulator, from the npm registry) on 127.0.0.1, for `az://` tests.

Azurite is a Node.js program: `install_azurite()` runs `npm install azurite` into a cache
folder (`LIBNAR_AZURITE_DIR`, default `~/.cache/libnar/azurite`) that tests and CI share.
Where Node.js, npm or the install is missing, `AzuriteUnavailable` says which.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
import uuid
from pathlib import Path
from typing import Self

from libnar._local_stack._child import ChildServer, stop_child
from libnar._local_stack._prefect import free_port

__all__ = ["Azurite", "AzuriteUnavailable", "azurite_folder", "install_azurite"]

#: The version range installed; 3.x speaks the blob API adlfs uses.
AZURITE_PACKAGE = "azurite@3"
#: Azurite's well-known development account (public, the same in every install).
ACCOUNT_NAME = "devstoreaccount1"
ACCOUNT_KEY = (
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
)


class AzuriteUnavailable(RuntimeError):
    """Azurite cannot run here; the message says what is missing and how to get it."""


def azurite_folder() -> Path:
    """The cache folder Azurite is installed into."""
    given = os.environ.get("LIBNAR_AZURITE_DIR")
    if given:
        return Path(given)
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache) / "libnar" / "azurite"


def _program(folder: Path) -> Path:
    return folder / "node_modules" / ".bin" / "azurite-blob"


def install_azurite(folder: Path | None = None, timeout: float = 300) -> Path:
    """The `azurite-blob` program, installed with npm into `folder` first if needed.

    Raises:
        AzuriteUnavailable: no node/npm, or the install failed (the message has npm's words).
    """
    folder = folder or azurite_folder()
    program = _program(folder)
    if program.exists():
        return program
    npm, node = shutil.which("npm"), shutil.which("node")
    if not npm or not node:
        raise AzuriteUnavailable(
            "Azurite needs Node.js and npm, not found on PATH (apt install nodejs npm)"
        )
    folder.mkdir(parents=True, exist_ok=True)
    try:
        done = subprocess.run(  # noqa: S603 - a fixed command
            [npm, "install", "--prefix", str(folder), "--no-audit", "--no-fund", AZURITE_PACKAGE],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise AzuriteUnavailable(
            f"npm install {AZURITE_PACKAGE} took over {timeout:.0f} s"
        ) from None
    if done.returncode != 0 or not program.exists():
        raise AzuriteUnavailable(
            f"npm install {AZURITE_PACKAGE} into {folder} failed ({done.returncode}):"
            f" {done.stderr.strip()[-500:]}"
        )
    return program


class Azurite(ChildServer):
    """Azurite's blob service in memory on 127.0.0.1, telemetry off.

    Example:
        ```python
        with Azurite() as azurite:
            container = azurite.create_container()     # "az://libnar-test-..."
            write_json(f"{container}/x.json", {"a": 1}, **azurite.az_options())
        ```
    """

    def __init__(self, port: int | None = None, program: Path | None = None) -> None:
        self.port = port or free_port()
        self.program = program or install_azurite()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def blob_url(self) -> str:
        """The blob endpoint of the development account."""
        return f"http://127.0.0.1:{self.port}/{ACCOUNT_NAME}"

    @property
    def connection_string(self) -> str:
        """An Azure storage connection string for this server."""
        return (
            f"DefaultEndpointsProtocol=http;AccountName={ACCOUNT_NAME};"
            f"AccountKey={ACCOUNT_KEY};BlobEndpoint={self.blob_url};"
        )

    def start(self) -> Self:
        """Start Azurite and return once it accepts connections."""
        command = [
            str(self.program),
            "--blobHost",
            "127.0.0.1",
            "--blobPort",
            str(self.port),
            "--inMemoryPersistence",
            "--disableTelemetry",
            "--skipApiVersionCheck",
            "--loose",
            "--silent",
        ]
        self.process = subprocess.Popen(  # noqa: S603 - our own command
            command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd="/"
        )
        deadline = time.monotonic() + 60
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return self
            except OSError:
                pass
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise AzuriteUnavailable(f"Azurite did not start on port {self.port}")
            time.sleep(0.2)

    def stop(self) -> None:
        """Stop Azurite; its data (in memory) is gone."""
        if self.process is not None:
            stop_child(self.process)
            self.process = None

    def az_options(self) -> dict[str, str]:
        """Storage options for `az://` URLs on this server."""
        return {"connection_string": self.connection_string}

    def env(self) -> dict[str, str]:
        """Settings that point `az://` and `abfs://` URLs at this server."""
        return {"LIBNAR_AZURE_CONNECTION_STRING": self.connection_string}

    def create_container(self, name: str | None = None) -> str:
        """Create a container (a unique name by default) and return its `az://` URL."""
        from adlfs import AzureBlobFileSystem

        name = name or f"libnar-test-{uuid.uuid4().hex[:12]}"
        AzureBlobFileSystem(connection_string=self.connection_string).mkdir(name)
        return f"az://{name}"
