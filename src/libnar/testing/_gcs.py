"""A GCS emulator (`gcp-storage-emulator`, pure Python) on 127.0.0.1, for `gs://` tests.

It speaks GCS's JSON API, which gcsfs uses; libnar's `filesystem()` talks to it through
gcsfs's JSON-API filesystem whenever an endpoint URL is set.
"""

from __future__ import annotations

import subprocess
import sys
import uuid
from pathlib import Path
from typing import Self

from libnar._local_stack._child import ChildServer, stop_child, wait_until_answering
from libnar._local_stack._prefect import free_port

__all__ = ["GcsEmulator"]


class GcsEmulator(ChildServer):
    """`gcp-storage-emulator` in memory as a child process."""

    project = "libnar-test"

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def endpoint_url(self) -> str:
        """The emulator's base URL, for `endpoint_url=` of gcsfs and libnar."""
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> Self:
        """Start the emulator and return once it answers."""
        program = Path(sys.executable).parent / "gcp-storage-emulator"
        command = [str(program), "start", "--host", "127.0.0.1", "--port", str(self.port)]
        self.process = subprocess.Popen(  # noqa: S603 - our own command
            [*command, "--in-memory"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        wait_until_answering(self.process, f"{self.endpoint_url}/", 60, "GCS emulator")
        return self

    def stop(self) -> None:
        """Stop the emulator; its data (in memory) is gone."""
        if self.process is not None:
            stop_child(self.process)
            self.process = None

    def gs_options(self) -> dict[str, str]:
        """Storage options for `gs://` URLs on this emulator."""
        return {"endpoint_url": self.endpoint_url, "token": "anon", "project": self.project}

    def env(self) -> dict[str, str]:
        """Settings that point `gs://` URLs at this emulator."""
        return {
            "LIBNAR_GCS_ENDPOINT_URL": self.endpoint_url,
            "LIBNAR_GCS_TOKEN": "anon",
            "LIBNAR_GCS_PROJECT": self.project,
        }

    def create_bucket(self, name: str | None = None) -> str:
        """Create a bucket (a unique name by default) and return its `gs://` URL."""
        import httpx

        name = name or f"libnar-test-{uuid.uuid4().hex[:12]}"
        httpx.post(
            f"{self.endpoint_url}/storage/v1/b",
            params={"project": self.project},
            json={"name": name},
            timeout=10,
        ).raise_for_status()
        return f"gs://{name}"
