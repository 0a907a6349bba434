"""Every storage backend, for real: memory, local files, S3 (moto's server), GCS (an
emulator) and Azure (Azurite; skipped with the reason where it cannot be installed)."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

BACKENDS = ["memory", "file", "s3", "gs", "az"]


@pytest.fixture(params=BACKENDS)
def store(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The URL of an empty folder on one backend; the settings point at its server."""
    backend = request.param
    if backend == "memory":
        return f"memory://libnar-{uuid.uuid4().hex[:12]}"
    if backend == "file":
        return tmp_path.as_uri()
    fixture = {"s3": "s3_bucket", "gs": "gs_bucket", "az": "az_container"}[backend]
    return str(request.getfixturevalue(fixture))
