"""The outbox on disk: durable pending entries, done and rejected marks, shared names."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from libnar._gateway._outbox import Outbox, OutboxEntry


def entry(**changes: object) -> OutboxEntry:
    values: dict[str, object] = {
        "source": "webhook",
        "flow": "f",
        "deployment": "f_deploy",
        "event_key": "webhook-abc",
        "parameters": {"event": {"task": {"id": "1"}}},
        "run_name": "f-1-1",
        "tags": ["task:1"],
        **changes,
    }
    return OutboxEntry.model_validate(values)


def test_written_entry_is_pending_and_read_back(tmp_path: Path) -> None:
    outbox = Outbox(tmp_path)
    path = outbox.write(entry())
    assert path.parent == tmp_path / "pending"
    assert [e.event_key for e in outbox.iter_pending()] == ["webhook-abc"]
    assert list((tmp_path / "tmp").iterdir()) == []


def test_the_same_event_for_the_same_deployment_gets_the_same_file(tmp_path: Path) -> None:
    first, again = entry(), entry(received_at="later")
    assert first.file_name == again.file_name
    assert entry(deployment="other").file_name != first.file_name
    assert entry(event_key="webhook-def").file_name != first.file_name
    Outbox(tmp_path).write(first)
    Outbox(tmp_path).write(again)  # a second replica writing the same event
    assert len(list((tmp_path / "pending").iterdir())) == 1


def test_done_entry_keeps_its_run_id_and_leaves_pending(tmp_path: Path) -> None:
    outbox = Outbox(tmp_path)
    e = entry()
    outbox.write(e)
    outbox.mark_done(e, "run-1")
    assert list(outbox.iter_pending()) == []
    done = OutboxEntry.model_validate_json((tmp_path / "done" / e.file_name).read_text())
    assert done.flow_run_id == "run-1"


def test_rejected_entry_is_not_pending(tmp_path: Path) -> None:
    outbox = Outbox(tmp_path)
    e = entry()
    outbox.write(e)
    outbox.mark_rejected(e, "no deployment")
    assert list(outbox.iter_pending()) == []
    assert "no deployment" in (tmp_path / "rejected" / e.file_name).read_text()


def test_prefect_key_holds_the_deployment_id_and_the_attempt() -> None:
    assert entry().prefect_key("dep-1") == "dep-1:webhook-abc"
    assert entry(attempt=2).prefect_key("dep-1") == "dep-1:webhook-abc:attempt-2"


def test_unreadable_entry_is_skipped(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    outbox = Outbox(tmp_path)
    outbox.write(entry())
    (tmp_path / "pending" / "broken.json").write_text("{")
    assert [e.event_key for e in outbox.iter_pending()] == ["webhook-abc"]
    assert "skipping unreadable entry" in caplog.text


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only directories")
def test_read_only_outbox_is_not_writable(tmp_path: Path) -> None:
    outbox = Outbox(tmp_path)
    outbox.create()
    (tmp_path / "tmp").chmod(0o500)
    try:
        assert not outbox.is_writable()
    finally:
        (tmp_path / "tmp").chmod(0o700)


def test_outbox_under_a_file_is_not_writable(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    assert not Outbox(tmp_path / "file" / "outbox").is_writable()
    assert Outbox(tmp_path / "outbox").is_writable()
