"""acm12_new_frames_prp on a real Prefect server, against a served fake SamaHub.

`prefect_server` (from libnar.testing) starts one Prefect server for the test session; the
fake SamaHub is served on 127.0.0.1 and the settings point at it.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from libnar.testing import (
    FakeSamaHub,
    assert_build_valid,
    make_creation_schema,
    serve_fake_samahub,
)

PACKAGE = Path(__file__).parents[1]
sys.path.insert(0, str(PACKAGE))  # the flow script sits beside tests/, as in its image

from acm12_new_frames_prp import acm12_new_frames_prp  # noqa: E402

pytestmark = pytest.mark.usefixtures("prefect_server")


def write_csv(path: Path, rows: int, start: int = 0) -> Path:
    lines = ["url,name,camera"] + [
        f"https://assets.acm.test/frames/{n:05d}.jpg,{n:05d},front"
        for n in range(start, start + rows)
    ]
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture
def samahub(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeSamaHub]:
    """A served fake SamaHub with project 10423 and its creation schema."""
    with serve_fake_samahub() as fake:
        for name, value in fake.env().items():
            monkeypatch.setenv(name, value)
        fake.add_project(10423)
        sample = {"url": "https://...", "name": "00001", "camera": "front"}
        fake.schemas["10423"] = {"create_task": make_creation_schema(sample)}
        yield fake


def test_build_is_valid() -> None:
    assert_build_valid(PACKAGE)


def test_a_second_run_creates_no_task(samahub: FakeSamaHub, tmp_path: Path) -> None:
    write_csv(tmp_path / "monday.csv", rows=1500)  # over 1,000: one batch, by file
    write_csv(tmp_path / "tuesday.csv", rows=20, start=1500)

    first = acm12_new_frames_prp(project_id="10423", inbox=str(tmp_path))
    created = len(samahub.created_tasks(10423))
    second = acm12_new_frames_prp(project_id="10423", inbox=str(tmp_path))

    assert first == {"created": ["monday.csv", "tuesday.csv"], "skipped": [], "refused": []}
    assert second == {"created": [], "skipped": ["monday.csv", "tuesday.csv"], "refused": []}
    assert created == len(samahub.created_tasks(10423)) == 1520  # the second run created none
    assert len(samahub.calls("continue_batch")) + len(samahub.calls("create_batch")) == 3


def test_a_new_file_is_created_and_the_old_ones_are_not(
    samahub: FakeSamaHub, tmp_path: Path
) -> None:
    write_csv(tmp_path / "monday.csv", rows=3)
    acm12_new_frames_prp(project_id="10423", inbox=str(tmp_path))
    write_csv(tmp_path / "wednesday.csv", rows=2, start=3)

    later = acm12_new_frames_prp(project_id="10423", inbox=str(tmp_path))

    assert later == {"created": ["wednesday.csv"], "skipped": ["monday.csv"], "refused": []}
    names = sorted(t.data["name"] for t in samahub.created_tasks(10423))
    assert names == ["00000", "00001", "00002", "00003", "00004"]


def test_a_bad_file_fails_the_run_after_the_good_ones_are_created(
    samahub: FakeSamaHub, tmp_path: Path
) -> None:
    write_csv(tmp_path / "a_good.csv", rows=2)
    (tmp_path / "b_bad.csv").write_text("url,name,camera\nhttps://x.test/1.jpg,1,front\n,,\n")
    (tmp_path / "c_columns.csv").write_text("link,name\nx,y\n")

    state = acm12_new_frames_prp(project_id="10423", inbox=str(tmp_path), return_state=True)

    assert state.is_failed()
    assert "2 file(s) refused, the others done: ['b_bad.csv', 'c_columns.csv']" in (
        state.message or ""
    )
    assert len(samahub.created_tasks(10423)) == 2
    assert samahub.calls("upload_tasks") == []  # the bad file's tasks were never sent
