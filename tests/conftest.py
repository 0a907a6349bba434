"""Shared test setup: a Prefect home of the suite's own, removed at the end, and no telemetry.

The suite never uses the caller's Prefect configuration: a user's `PREFECT_HOME` (its
database, its `storage/` of results, its profiles) is left untouched. Set
`LIBNAR_TEST_PREFECT_API_URL` to run the flows against a server of your own.
"""

from __future__ import annotations

import os
import shutil
import tempfile

import pytest

# Before anything imports Prefect: its settings are read at import time.
for _name in [name for name in os.environ if name.startswith("PREFECT_")]:
    del os.environ[_name]
_HOME = tempfile.mkdtemp(prefix="libnar-tests-home-")
os.environ["PREFECT_HOME"] = _HOME
os.environ["DO_NOT_TRACK"] = "1"
os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"


def pytest_unconfigure(config: pytest.Config) -> None:
    """Remove the suite's Prefect home once every test and fixture is done."""
    shutil.rmtree(_HOME, ignore_errors=True)
