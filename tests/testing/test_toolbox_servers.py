"""The toolbox's test servers: what flow authors get from libnar.testing."""

from __future__ import annotations

from pathlib import Path

import pytest

from libnar.storage import read_json, write_json
from libnar.testing import AzuriteUnavailable, MotoServer
from libnar.testing._azurite import install_azurite


def test_azurite_without_node_says_what_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(AzuriteUnavailable, match=r"needs Node\.js and npm, not found on PATH"):
        install_azurite(tmp_path / "cache")


def test_s3_bucket_points_the_settings_at_moto(s3_bucket: str, moto_server: MotoServer) -> None:
    write_json(f"{s3_bucket}/a.json", {"a": 1})  # no options: the settings say where
    body = moto_server.client("s3").get_object(
        Bucket=s3_bucket.removeprefix("s3://"), Key="a.json"
    )["Body"]
    assert body.read() == b'{"a":1}'


def test_each_bucket_is_new(moto_server: MotoServer) -> None:
    first, second = moto_server.create_bucket(), moto_server.create_bucket()
    assert first != second
    write_json(f"{first}/x.json", [1], **moto_server.s3_options())
    assert read_json(f"{first}/x.json", **moto_server.s3_options()) == [1]
    with pytest.raises(FileNotFoundError):
        read_json(f"{second}/x.json", **moto_server.s3_options())
