"""The local stack (`libnar._local_stack`): importable and usable without the test extra."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from .without_test_extra import env_without_test_extra

EVERY_MODULE_BUT_TESTING = """
import importlib, pkgutil, libnar
names = [m.name for m in pkgutil.walk_packages(libnar.__path__, "libnar.")
         if not m.name.startswith("libnar.testing")]
for name in names:
    importlib.import_module(name)
print(len(names), "modules")
"""

SERVE_THE_FAKE = """
from libnar._local_stack import make_task, serve_fake_samahub
from libnar.sama import SamaClient
with serve_fake_samahub() as fake:
    task = fake.add_task(make_task())
    with SamaClient(fake.api_key, base_url=fake.api_url, max_retries=0) as sama:
        got = sama.get_task(10, task.id)
print(got == task)
"""


def python(code: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120
    )


def test_the_test_extra_is_really_blocked_in_these_checks(tmp_path: Path) -> None:
    done = python("import pytest", env_without_test_extra(tmp_path))
    assert done.returncode == 1
    assert "is in the test extra" in done.stderr


def test_every_module_outside_libnar_testing_imports_without_the_test_extra(
    tmp_path: Path,
) -> None:
    done = python(EVERY_MODULE_BUT_TESTING, env_without_test_extra(tmp_path))
    assert done.returncode == 0, done.stderr
    assert "modules" in done.stdout


def test_the_fake_samahub_is_served_without_the_test_extra(tmp_path: Path) -> None:
    done = python(SERVE_THE_FAKE, env_without_test_extra(tmp_path))
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["True"]


def test_libnar_testing_re_exports_the_local_stack() -> None:
    import libnar._local_stack as stack
    import libnar.testing as testing

    for name in (
        "PrefectServer",
        "GatewayProcess",
        "free_port",
        "FakeSamaHub",
        "FakeCall",
        "serve_fake_samahub",
        "make_task",
        "make_webhook_event",
        "make_dpp_event",
        "make_task_id",
    ):
        assert getattr(testing, name) is getattr(stack, name), name
