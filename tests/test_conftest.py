"""The suite's own setup (`tests/conftest.py`): it leaves nothing behind and touches no user's
Prefect home. Each check runs a small pytest session in a subprocess with that setup."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from libnar.testing import PrefectServer

ROOT = Path(__file__).parents[1]

PROBE = """
import os
from pathlib import Path

from prefect import flow


@flow(persist_result=True)
def kept() -> int:
    return 7


def test_a_persisted_result_goes_to_the_suites_own_home(prefect_server) -> None:
    assert kept() == 7
    home = Path(os.environ["PREFECT_HOME"])
    assert home.name.startswith("libnar-tests-home-")
    assert list((home / "storage").iterdir())
"""


@pytest.mark.slow
@pytest.mark.parametrize("users_home", [True, False], ids=["PREFECT_HOME-set", "no-PREFECT_HOME"])
def test_the_suite_leaves_no_home_behind_and_never_writes_into_a_users_prefect_home(
    users_home: bool, tmp_path: Path, prefect_server: PrefectServer
) -> None:
    home, temp, probe = tmp_path / "users-prefect-home", tmp_path / "tmp", tmp_path / "probe"
    for folder in (home, temp, probe):
        folder.mkdir()
    (probe / "test_probe.py").write_text(PROBE)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env.update(TMPDIR=str(temp), LIBNAR_TEST_PREFECT_API_URL=prefect_server.api_url)
    if users_home:
        env["PREFECT_HOME"] = str(home)
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "-p",
            "tests.conftest",
            "--rootdir",
            str(probe),
            str(probe),
        ],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=180,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "1 passed" in done.stdout
    assert list(home.iterdir()) == []
    assert list(temp.glob("libnar-tests-home-*")) == []
