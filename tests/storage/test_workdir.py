"""workdir(): the attached disk on giver, the image's folder elsewhere, a temp folder locally."""

from __future__ import annotations

from pathlib import Path

import pytest

from libnar.settings import get_settings
from libnar.storage import StorageURLError, workdir


def test_the_setting_wins(tmp_path: Path) -> None:
    settings = get_settings(workdir=tmp_path / "mine", attached_disk=tmp_path)
    assert workdir("frames", settings=settings) == tmp_path / "mine" / "frames"
    assert (tmp_path / "mine" / "frames").is_dir()


def test_the_attached_disk_when_it_is_mounted(tmp_path: Path) -> None:
    disk = tmp_path / "disk"
    disk.mkdir()
    settings = get_settings(attached_disk=disk, image_workdir=tmp_path)
    assert workdir(settings=settings) == disk
    assert workdir("a", "b", settings=settings) == disk / "a" / "b"


def test_the_image_folder_without_an_attached_disk(tmp_path: Path) -> None:
    settings = get_settings(attached_disk=tmp_path / "absent", image_workdir=tmp_path)
    assert workdir(settings=settings) == tmp_path / "work"


def test_a_temp_folder_locally_the_same_for_the_whole_process(tmp_path: Path) -> None:
    settings = get_settings(attached_disk=tmp_path / "absent", image_workdir=tmp_path / "absent")
    first = workdir(settings=settings)
    assert first.name.startswith("libnar-work-")
    assert workdir("x", settings=settings) == first / "x"


@pytest.mark.parametrize("part", ["/etc", "../up", "a/../../b", "a\\b"])
def test_parts_cannot_leave_the_work_folder(part: str, tmp_path: Path) -> None:
    with pytest.raises(StorageURLError, match="must be a relative name inside the work folder"):
        workdir(part, settings=get_settings(workdir=tmp_path))
