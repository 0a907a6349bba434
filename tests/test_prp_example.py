"""The pre-processing example package's own tests pass, on this session's Prefect server.

`examples/flows/acm/acm12/acm12_new_frames_prp/tests/` is what a flow author copies: it runs
the scheduled flow twice against a served fake SamaHub and checks that the second run creates
no task. Here it runs as a flow repository runs it, in a pytest of its own.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from libnar.testing import PrefectServer

PACKAGE = Path(__file__).parents[1] / "examples/flows/acm/acm12/acm12_new_frames_prp"


@pytest.mark.slow
def test_the_prp_example_creates_each_file_once(
    prefect_server: PrefectServer, tmp_path: Path
) -> None:
    env = {**os.environ, "LIBNAR_TEST_PREFECT_API_URL": prefect_server.api_url}
    env = {k: v for k, v in env.items() if not k.startswith("SAMA_")}
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(PACKAGE / "tests")],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    assert "4 passed" in done.stdout
