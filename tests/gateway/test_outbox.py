"""The outbox: one interface, on files and on a real PostgreSQL; leases, marks, bodies."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from libnar._gateway._outbox import (
    MAX_ENTRY_BYTES,
    FileOutbox,
    Outbox,
    OutboxEntry,
    OutboxUnavailable,
    UnreadableEntry,
)
from libnar.testing import PostgresServer


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


def postgres_url(server: PostgresServer) -> str:
    """A fresh database of the session's PostgreSQL (each test its own outbox)."""
    return server.create_database("outbox_" + uuid.uuid4().hex[:12])


@pytest.fixture(params=["files", pytest.param("postgresql", marks=pytest.mark.slow)])
def make_outbox(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[object]:
    """Make outboxes on one store, as several processes (or replicas) would open it."""
    opened: list[Outbox] = []
    if request.param == "files":

        def make(lease_seconds: float = 60.0) -> Outbox:
            outbox = FileOutbox(tmp_path / "outbox")
            outbox.create()
            opened.append(outbox)
            return outbox
    else:
        from libnar._gateway._outbox_pg import PostgresOutbox

        url = postgres_url(request.getfixturevalue("postgres_server"))

        def make(lease_seconds: float = 60.0) -> Outbox:
            outbox = PostgresOutbox(url, lease_seconds=lease_seconds, pool_size=2)
            outbox.create()
            opened.append(outbox)
            return outbox

    yield make
    for outbox in opened:
        outbox.close()


def names(leased: list[object]) -> list[str]:
    return [item.entry.event_key for item in leased]  # type: ignore[attr-defined]


def test_an_event_is_stored_once_and_answered_with_its_run_once_done(make_outbox: Any) -> None:
    outbox = make_outbox()
    first, repeat = entry(), entry(received_at="a moment later")
    assert outbox.add(first).state == "new"
    assert outbox.add(repeat).state == "pending"
    assert outbox.backlog().count == 1
    [leased] = outbox.lease(10)
    outbox.finish(leased, "run-1")
    stored = outbox.add(repeat)
    assert (stored.state, stored.flow_run_id) == ("done", "run-1")
    assert outbox.backlog().count == 0
    assert outbox.lease(10) == []


def test_other_deliveries_are_other_entries(make_outbox: Any) -> None:
    outbox = make_outbox()
    assert entry().name == entry(received_at="later").name
    for changed in (entry(), entry(deployment="other"), entry(event_key="webhook-def")):
        assert outbox.add(changed).state == "new"
    assert outbox.backlog().count == 3


def test_two_dispatchers_never_lease_the_same_entry(make_outbox: Any) -> None:
    one, two = make_outbox(), make_outbox()
    for index in range(6):
        one.add(entry(event_key=f"webhook-{index}"))
    first = one.lease(4)
    second = two.lease(10)
    assert len(first) == 4
    assert len(second) == 2
    assert not set(names(first)) & set(names(second))
    assert names(first) == [f"webhook-{i}" for i in range(4)]  # oldest first


def test_a_released_entry_is_leased_again_after_its_delay(make_outbox: Any) -> None:
    outbox = make_outbox()
    outbox.add(entry())
    [leased] = outbox.lease(10)
    outbox.release(leased, 0.5)
    assert outbox.lease(10) == []
    assert outbox.backlog().count == 1
    time.sleep(0.6)
    assert names(outbox.lease(10)) == ["webhook-abc"]


def test_a_rejected_entry_is_not_pending_and_keeps_its_reason(make_outbox: Any) -> None:
    outbox = make_outbox()
    outbox.add(entry())
    [leased] = outbox.lease(10)
    outbox.reject(leased, "no deployment 'f_deploy'")
    assert outbox.lease(10) == []
    assert outbox.backlog().count == 0
    # Sent again once it passes the checks (the deployment exists now): pending again.
    assert outbox.add(entry()).state == "new"


def test_the_backlog_counts_pending_entries_and_the_oldest_age(make_outbox: Any) -> None:
    outbox = make_outbox()
    assert (outbox.backlog().count, outbox.backlog().oldest_seconds) == (0, 0.0)
    outbox.add(entry(event_key="webhook-1"))
    time.sleep(0.3)
    outbox.add(entry(event_key="webhook-2"))
    backlog = outbox.backlog()
    assert backlog.count == 2
    assert 0.25 <= backlog.oldest_seconds < 30


def test_a_forced_attempt_stays_pending_until_it_has_its_own_run(make_outbox: Any) -> None:
    outbox = make_outbox()
    first = entry()
    outbox.add(first)
    [leased] = outbox.lease(10)
    outbox.finish(leased, "run-1")
    outbox.write(first.model_copy(update={"attempt": 1}))
    [forced] = outbox.lease(10)
    assert forced.entry.attempt == 1
    outbox.finish(forced, "run-2")
    # A late write of the forced attempt never becomes a third run.
    outbox.write(first.model_copy(update={"attempt": 1}))
    assert outbox.lease(10) == []
    assert outbox.add(first).flow_run_id == "run-2"


def test_large_bodies_are_kept_read_back_and_pruned(make_outbox: Any) -> None:
    outbox = make_outbox()
    claim_id = "a" * 64
    outbox.keep_body(claim_id, b'{"task": {}}')
    outbox.keep_body(claim_id, b'{"task": {}}')  # again: once
    assert outbox.read_body(claim_id) == b'{"task": {}}'
    assert outbox.read_body("b" * 64) is None
    assert outbox.prune_bodies(3600) == 0
    time.sleep(0.2)
    assert outbox.prune_bodies(0.1) == 1
    assert outbox.read_body(claim_id) is None


def test_entries_of_a_dispatcher_that_died_are_leased_again(make_outbox: Any) -> None:
    holder = make_outbox(lease_seconds=1.0)
    other = make_outbox(lease_seconds=1.0)
    holder.add(entry())
    assert len(holder.lease(10)) == 1
    assert other.lease(10) == []
    if isinstance(holder, FileOutbox):
        holder._queue.clear()
        for fd in os.listdir("/proc/self/fd"):  # what the kernel does when the process dies
            try:
                if os.readlink(f"/proc/self/fd/{fd}").startswith(str(holder.pending)):
                    os.close(int(fd))
            except OSError:
                continue
    else:
        time.sleep(1.2)  # the lease ends
    assert names(other.lease(10)) == ["webhook-abc"]


# -- files only ----------------------------------------------------------------------------


def test_a_file_lease_ends_when_the_process_is_killed(tmp_path: Path) -> None:
    outbox = FileOutbox(tmp_path)
    outbox.add(entry())
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time; from pathlib import Path;"
            " from libnar._gateway._outbox import FileOutbox;"
            " leased = FileOutbox(Path(sys.argv[1])).lease(10);"
            " print(len(leased), flush=True); time.sleep(60)",
            str(tmp_path),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == "1"
        assert outbox.lease(10) == []
        holder.send_signal(signal.SIGKILL)
        holder.wait(10)
        assert names(outbox.lease(10)) == ["webhook-abc"]
    finally:
        holder.kill()
        holder.wait(10)


def test_prefect_key_holds_the_deployment_id_and_the_attempt() -> None:
    assert entry().prefect_key("dep-1") == "dep-1:webhook-abc"
    assert entry(attempt=2).prefect_key("dep-1") == "dep-1:webhook-abc:attempt-2"


def test_a_done_entry_keeps_its_run_id(tmp_path: Path) -> None:
    outbox = FileOutbox(tmp_path)
    e = entry()
    outbox.add(e)
    [leased] = outbox.lease(1)
    outbox.finish(leased, "run-1")
    done = OutboxEntry.model_validate_json((tmp_path / "done" / e.file_name).read_text())
    assert done.flow_run_id == "run-1"
    assert list((tmp_path / "pending").iterdir()) == []
    assert list((tmp_path / "tmp").iterdir()) == []


def test_unreadable_entries_are_reported_once_and_the_rest_leased(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    outbox = FileOutbox(tmp_path / "outbox")
    outbox.create()
    outbox.add(entry())
    secret = tmp_path / "secret.json"
    secret.write_text(entry(event_key="webhook-secret").model_dump_json())
    (outbox.pending / "link.json").symlink_to(secret)
    (outbox.pending / "folder.json").mkdir()
    whole = entry().model_dump_json()
    (outbox.pending / "truncated.json").write_text(whole[: len(whole) // 2])
    (outbox.pending / "huge.json").write_bytes(b" " * (MAX_ENTRY_BYTES + 1))
    hand_edited = json.loads(whole) | {"flow": "x" * 70_000}
    (outbox.pending / "bad-flow.json").write_text(json.dumps(hand_edited))
    assert names(outbox.lease(100)) == ["webhook-abc"]
    assert outbox.lease(100) == []
    reasons = {u.name: u.reason for u in outbox.unreadable()}
    assert reasons["link.json"] == "a symlink (not followed)"
    assert reasons["folder.json"] == "not a regular file"
    assert "not a valid entry" in reasons["truncated.json"]
    assert "larger than any entry" in reasons["huge.json"]
    assert "flow: " in reasons["bad-flow.json"]
    assert caplog.text.count("skipping unreadable entry link.json") == 1
    assert outbox.backlog().count == 1  # the leased one; unreadable files are not counted
    assert secret.exists()


def test_iter_pending_reads_without_leasing(tmp_path: Path) -> None:
    outbox = FileOutbox(tmp_path)
    outbox.add(entry())
    (tmp_path / "pending" / "broken.json").write_text("{")
    found = list(outbox.iter_pending())
    assert [e.event_key for e in found if isinstance(e, OutboxEntry)] == ["webhook-abc"]
    assert [e.name for e in found if isinstance(e, UnreadableEntry)] == ["broken.json"]
    assert len(outbox.lease(10)) == 1


def test_a_pending_entry_whose_delivery_is_done_is_dropped_not_sent(tmp_path: Path) -> None:
    outbox = FileOutbox(tmp_path)
    e = entry()
    outbox.add(e)
    [leased] = outbox.lease(1)
    outbox.finish(leased, "run-1")
    # As left by a crash between a repeat's link and its check of the done mark.
    (tmp_path / "pending" / e.file_name).write_text(e.model_dump_json())
    assert outbox.lease(10) == []
    assert not (tmp_path / "pending" / e.file_name).exists()


def test_entries_written_before_the_event_was_kept_apart_are_read(tmp_path: Path) -> None:
    old = entry().model_dump()
    old["parameters"] = {"event": old.pop("event"), "tag": "x"}
    (tmp_path / "pending").mkdir()
    (tmp_path / "pending" / "old.json").write_text(json.dumps(old))
    [read] = FileOutbox(tmp_path).lease(1)
    assert read.entry.event == {"task": {"id": "1"}}
    assert read.entry.run_parameters("payload") == {"payload": {"task": {"id": "1"}}, "tag": "x"}


def test_a_nearly_full_disk_refuses_events_and_is_not_ready(tmp_path: Path) -> None:
    free = shutil.disk_usage(tmp_path).free
    outbox = FileOutbox(tmp_path, min_free_bytes=free * 2)
    with pytest.raises(OutboxUnavailable, match="LIBNAR_OUTBOX_MIN_FREE_BYTES"):
        outbox.add(entry())
    assert not outbox.is_writable()
    assert FileOutbox(tmp_path, min_free_bytes=1).is_writable()


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only directories")
def test_read_only_outbox_is_not_writable(tmp_path: Path) -> None:
    outbox = FileOutbox(tmp_path)
    outbox.create()
    (tmp_path / "tmp").chmod(0o500)
    try:
        assert not outbox.is_writable()
    finally:
        (tmp_path / "tmp").chmod(0o700)


def test_outbox_under_a_file_is_not_writable(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    assert not FileOutbox(tmp_path / "file" / "outbox").is_writable()
    assert FileOutbox(tmp_path / "outbox").is_writable()


# -- PostgreSQL only -----------------------------------------------------------------------


@pytest.mark.slow
def test_an_unreachable_database_is_unavailable_not_a_crash(tmp_path: Path) -> None:
    from libnar._gateway._outbox_pg import PostgresOutbox
    from libnar.testing import free_port

    outbox = PostgresOutbox(f"postgresql://nobody:pw-123@127.0.0.1:{free_port()}/none")
    try:
        with pytest.raises(OutboxUnavailable) as caught:
            outbox.add(entry())
        assert "pw-123" not in str(caught.value)
        assert not outbox.is_writable()
        assert "pw-123" not in repr(outbox)
    finally:
        outbox.close()


def test_an_outbox_url_that_is_not_postgresql_is_refused_naming_the_setting() -> None:
    from libnar._gateway._outbox_pg import sqlalchemy_url
    from libnar.settings import SettingsError

    assert sqlalchemy_url("postgresql://u:p@h/db") == "postgresql+psycopg://u:p@h/db"
    with pytest.raises(SettingsError, match="LIBNAR_OUTBOX_URL") as caught:
        sqlalchemy_url("mysql://u:secret@h/db")
    assert "secret" not in str(caught.value)
