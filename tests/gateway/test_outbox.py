"""The outbox on disk: durable pending entries, done and rejected marks, shared names."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from libnar._gateway._outbox import MAX_ENTRY_BYTES, Outbox, OutboxEntry, UnreadableEntry


def entry(**changes: object) -> OutboxEntry:
    values: dict[str, object] = {
        "source": "webhook",
        "flow": "f",
        "deployment": "f_deploy",
        "event_key": "webhook-abc",
        "event": {"task": {"id": "1"}},
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


def test_unreadable_entry_is_reported_and_the_rest_still_read(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    outbox = Outbox(tmp_path)
    outbox.write(entry())
    (tmp_path / "pending" / "broken.json").write_text("{")
    found = list(outbox.iter_pending())
    assert [e.event_key for e in found if isinstance(e, OutboxEntry)] == ["webhook-abc"]
    [unreadable] = [e for e in found if isinstance(e, UnreadableEntry)]
    assert unreadable.name == "broken.json"
    assert "not a valid entry" in unreadable.reason
    assert "skipping unreadable entry" in caplog.text


def pending_of(outbox: Outbox) -> tuple[list[OutboxEntry], dict[str, str]]:
    found = list(outbox.iter_pending())
    return (
        [e for e in found if isinstance(e, OutboxEntry)],
        {e.name: e.reason for e in found if isinstance(e, UnreadableEntry)},
    )


def test_symlinks_directories_and_truncated_files_are_reported_not_followed(
    tmp_path: Path,
) -> None:
    outbox = Outbox(tmp_path / "outbox")
    outbox.create()
    secret = tmp_path / "secret.json"
    secret.write_text(entry(event_key="webhook-secret").model_dump_json())
    (outbox.pending / "link.json").symlink_to(secret)
    (outbox.pending / "folder.json").mkdir()
    whole = entry().model_dump_json()
    (outbox.pending / "truncated.json").write_text(whole[: len(whole) // 2])
    (outbox.pending / "huge.json").write_bytes(b" " * (MAX_ENTRY_BYTES + 1))
    hand_edited = json.loads(whole) | {"flow": "x" * 70_000}
    (outbox.pending / "bad-flow.json").write_text(json.dumps(hand_edited))
    entries, unreadable = pending_of(outbox)
    assert entries == []
    assert unreadable["link.json"] == "a symlink (not followed)"
    assert unreadable["folder.json"] == "not a regular file"
    assert "not a valid entry" in unreadable["truncated.json"]
    assert "larger than any entry" in unreadable["huge.json"]
    assert "flow: " in unreadable["bad-flow.json"]


def test_a_repeat_written_after_the_done_mark_does_not_stay_pending(tmp_path: Path) -> None:
    outbox = Outbox(tmp_path)
    first, repeat = entry(), entry(received_at="a moment later")
    outbox.write(first)
    outbox.mark_done(first, "run-1")
    outbox.write(repeat)  # the repeat's write lands after the first was marked done
    assert list(outbox.iter_pending()) == []
    assert not (tmp_path / "pending" / first.file_name).exists()


def test_a_pending_entry_whose_delivery_is_done_is_dropped_not_replayed(tmp_path: Path) -> None:
    outbox = Outbox(tmp_path)
    e = entry()
    outbox.mark_done(e, "run-1")
    # As left by a crash between a repeat's rename and its check of the done mark.
    (tmp_path / "pending" / e.file_name).write_text(e.model_dump_json())
    assert list(outbox.iter_pending()) == []
    assert not (tmp_path / "pending" / e.file_name).exists()


def test_a_forced_attempt_stays_pending_until_it_has_its_own_run(tmp_path: Path) -> None:
    outbox = Outbox(tmp_path)
    e = entry()
    outbox.write(e)
    outbox.mark_done(e, "run-1")
    forced = e.model_copy(update={"attempt": 1})
    outbox.write(forced)
    assert [p.attempt for p in pending_of(outbox)[0]] == [1]


def test_entries_written_before_the_event_was_kept_apart_are_read(tmp_path: Path) -> None:
    old = entry().model_dump()
    old["parameters"] = {"event": old.pop("event"), "tag": "x"}
    (tmp_path / "pending").mkdir()
    (tmp_path / "pending" / "old.json").write_text(json.dumps(old))
    [read] = pending_of(Outbox(tmp_path))[0]
    assert read.event == {"task": {"id": "1"}}
    assert read.run_parameters("payload") == {"payload": {"task": {"id": "1"}}, "tag": "x"}


def test_a_nearly_full_disk_refuses_writes_and_is_not_ready(tmp_path: Path) -> None:
    free = shutil.disk_usage(tmp_path).free
    outbox = Outbox(tmp_path, min_free_bytes=free * 2)
    with pytest.raises(OSError, match="LIBNAR_OUTBOX_MIN_FREE_BYTES"):
        outbox.write(entry())
    assert not outbox.is_writable()
    assert Outbox(tmp_path, min_free_bytes=1).is_writable()


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
