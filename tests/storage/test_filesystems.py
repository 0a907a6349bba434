"""filesystem() / path(): every scheme, credentials from settings or options, the extras."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from pydantic import SecretStr

from libnar.storage import StorageURLError, filesystem, path, read_json, storage_options, write_json
from libnar.testing import MotoServer, free_port

ROOT = Path(__file__).parents[2]


def test_path_is_a_upath_on_the_same_filesystem(s3_bucket: str) -> None:
    report = path(f"{s3_bucket}/reports/day.txt")
    report.write_text("12 tasks")
    sibling = report.parent / "day.json"
    write_json(str(sibling), {"tasks": 12})
    assert report.read_text() == "12 tasks"
    assert sorted(p.name for p in report.parent.iterdir()) == ["day.json", "day.txt"]
    assert sibling.fs is report.fs is filesystem(s3_bucket)


def test_a_plain_local_path_is_a_pathlib_path(tmp_path: Path) -> None:
    local = path(str(tmp_path / "a.json"))
    local.write_text("[1]")
    assert isinstance(local, Path)
    assert read_json(str(tmp_path / "a.json")) == [1]


def test_explicit_options_win_over_settings(
    moto_server: MotoServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    bucket = moto_server.create_bucket()
    monkeypatch.setenv("LIBNAR_S3_ENDPOINT_URL", f"http://127.0.0.1:{free_port()}")  # nothing there
    monkeypatch.setenv("LIBNAR_S3_ACCESS_KEY_ID", "wrong")
    options = moto_server.s3_options() | {"secret": SecretStr(moto_server.secret_access_key)}
    write_json(f"{bucket}/x.json", {"ok": True}, **options)
    assert read_json(f"{bucket}/x.json", **options) == {"ok": True}


def test_settings_give_each_scheme_its_options(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LIBNAR_S3_ENDPOINT_URL", "http://127.0.0.1:9000")
    monkeypatch.setenv("LIBNAR_S3_SECRET_ACCESS_KEY", "s3cr3t")
    monkeypatch.setenv("LIBNAR_S3_REGION", "eu-west-1")
    monkeypatch.setenv("LIBNAR_GCS_PROJECT", "nps")
    monkeypatch.setenv("LIBNAR_AZURE_ACCOUNT_NAME", "npsdata")
    assert storage_options("s3") == {
        "endpoint_url": "http://127.0.0.1:9000",
        "secret": "s3cr3t",
        "client_kwargs": {"region_name": "eu-west-1"},
    }
    assert storage_options("gs") == {"project": "nps"}
    assert storage_options("abfs") == {"account_name": "npsdata"}
    assert storage_options("memory") == {}


def test_an_unknown_scheme_names_the_ones_that_work() -> None:
    with pytest.raises(StorageURLError, match=r"unknown scheme 'nope'; use s3://, gs://"):
        filesystem("nope://bucket/x.json")


@pytest.mark.parametrize(
    ("url", "blocked", "extra"),
    [
        ("s3://bucket/x.json", "s3fs", "aws"),
        ("gs://bucket/x.json", "gcsfs", "gcp"),
        ("az://container/x.json", "adlfs", "azure"),
        ("abfs://container/x.json", "adlfs", "azure"),
    ],
)
def test_a_missing_extra_names_the_pip_install(
    url: str, blocked: str, extra: str, tmp_path: Path
) -> None:
    """As after `pip install libnar` alone: the backend cannot be imported."""
    (tmp_path / blocked).mkdir()
    (tmp_path / blocked / "__init__.py").write_text("raise ImportError('not installed')\n")
    script = textwrap.dedent(
        f"""
        from libnar.storage import MissingExtraError, read_json
        try:
            read_json({url!r})
        except MissingExtraError as exc:
            assert isinstance(exc, ImportError)
            print(exc)
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script],
        env={"PYTHONPATH": str(tmp_path), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        check=True,
    )
    assert f"pip install 'libnar[{extra}]'" in done.stdout
    assert done.stdout.startswith(f"{url.split(':')[0]}:// URLs need {blocked}")


def test_the_toolbox_imports_without_cloud_extras_or_prefect(tmp_path: Path) -> None:
    """`import libnar.storage` (and secrets, slack) works on a plain install, fast: no Prefect."""
    for name in ("s3fs", "gcsfs", "adlfs", "boto3", "botocore", "sqlalchemy", "psycopg"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "__init__.py").write_text("raise ImportError('not installed')\n")
    script = (
        "import sys, libnar.storage, libnar.secrets, libnar.slack, libnar.db\n"
        "from libnar.storage import read_json, write_json\n"
        "write_json('memory://x/a.json', [1]); assert read_json('memory://x/a.json') == [1]\n"
        "print(sorted(m for m in ('prefect', 's3fs', 'fsspec.implementations.http') if m in sys.modules))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script],
        env={"PYTHONPATH": str(tmp_path), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        check=True,
    )
    assert done.stdout.strip() == "[]"
