"""The runnable examples in the docs: every test the docs show must pass as written."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from libnar.testing import PrefectServer

DOCS = Path(__file__).parents[1] / "docs"
BLOCK = re.compile(r"```python\n(.*?)```", re.S)


def example_tests(page: str) -> list[str]:
    """The Python blocks of a docs page that define pytest tests."""
    text = (DOCS / page).read_text()
    return [block for block in BLOCK.findall(text) if re.search(r"^def test_", block, re.M)]


@pytest.mark.slow
@pytest.mark.parametrize("page", ["testing.md"])
def test_example_tests_in_the_docs_pass(
    page: str, tmp_path: Path, prefect_server: PrefectServer
) -> None:
    blocks = example_tests(page)
    assert blocks, f"docs/{page} shows no example test"
    for number, block in enumerate(blocks):
        (tmp_path / f"test_example_{number}.py").write_text(block)
    env = {
        **os.environ,
        "LIBNAR_TEST_PREFECT_API_URL": prefect_server.api_url,
        # Examples may run the `libnar` command: the one installed next to this Python.
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
    }
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(tmp_path)],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout[-3000:]
    expected = sum(len(re.findall(r"^def test_", block, re.M)) for block in blocks)
    assert f"{expected} passed" in done.stdout
