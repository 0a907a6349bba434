"""Shared test setup: an isolated PREFECT_HOME, no telemetry, and sample payloads."""

from __future__ import annotations

import os
import tempfile

# Before anything imports Prefect: its settings are read at import time.
os.environ.setdefault("PREFECT_HOME", tempfile.mkdtemp(prefix="libnar-tests-home-"))
os.environ["DO_NOT_TRACK"] = "1"
os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
os.environ.pop("PREFECT_API_URL", None)
