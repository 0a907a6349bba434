"""Run code as after `pip install libnar`: the test extra's packages cannot be imported.

`blocking_test_extra(folder)` writes stand-ins that raise `ImportError` for pytest, respx and
the rest of `[test]`; put the folder first on `PYTHONPATH` of a subprocess (its children
inherit it) and any import of them fails as it would in a plain install.
"""

from __future__ import annotations

import os
from pathlib import Path

#: Top-level modules of the `[test]` extra (and what they bring) that libnar must not need.
TEST_EXTRA_MODULES = (
    "pytest",
    "_pytest",
    "pytest_asyncio",
    "respx",
    "hypothesis",
    "schemathesis",
    "mkdocs",
    "material",
    "mypy",
    "pycocotools",
    # The toolbox's test servers and the cloud/database extras the test extra pulls in.
    "moto",
    "gcp_storage_emulator",
    "s3fs",
    "gcsfs",
    "adlfs",
    "boto3",
    "botocore",
    "psycopg",
)


def blocking_test_extra(folder: Path) -> Path:
    """Write a stand-in package for each test-extra module into `folder`; return it."""
    for name in TEST_EXTRA_MODULES:
        package = folder / name
        package.mkdir(parents=True, exist_ok=True)
        (package / "__init__.py").write_text(
            f"raise ImportError({name!r} ' is in the test extra; a plain install has no such module')\n"
        )
    return folder


def env_without_test_extra(folder: Path, env: dict[str, str] | None = None) -> dict[str, str]:
    """`env` (default: this process's) with the test extra blocked for subprocesses."""
    env = dict(os.environ if env is None else env)
    blocked = blocking_test_extra(folder)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(blocked), env.get("PYTHONPATH")]))
    return env
