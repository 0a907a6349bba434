"""Scheduled pre-processing: turn each new CSV file of frames into SamaHub tasks, once.

Each run lists the files in `inbox` that match `pattern` (one frame a row: `url`, `name`,
`camera`), builds each task's inputs from a row, and creates one batch per file, every task
checked against the project's creation schema first. The batch's `client_batch_id` names the
file and a digest of its content, so a file already turned into tasks is refused before
anything is sent (`SamaBatchIdInUseError`) and counted as skipped: a re-run, a retry or two
schedules overlapping never create a task twice. A changed file is a new batch.

The files are read with `pathlib` today. `libnar.storage.path` (s3://, gs://, az://, with the
same API) replaces it in one line: the `open_inbox` import below.
"""

from __future__ import annotations

import csv
import hashlib
import io

# The one line to change for libnar.storage: `from libnar.storage import path as open_inbox`.
from pathlib import Path as open_inbox
from typing import Any

from libnar import SamaBatchIdInUseError, SamaClient, SamaTaskDataError, nps_flow

#: The CSV columns a file must have, and the task input each one becomes.
INPUTS = {"url": "url", "name": "name", "camera": "camera"}


def task_inputs(content: bytes, file_name: str) -> list[dict[str, Any]]:
    """Each CSV row's task inputs (SamaHub takes inputs as strings)."""
    rows = csv.DictReader(io.StringIO(content.decode("utf-8-sig")))
    missing = sorted(set(INPUTS) - set(rows.fieldnames or ()))
    if missing:
        raise ValueError(f"{file_name}: no column {', '.join(missing)} (columns: url,name,camera)")
    # An empty cell is a missing input: the creation schema check names it.
    return [
        {INPUTS[c]: value.strip() for c in INPUTS if (value := row.get(c) or "").strip()}
        for row in rows
    ]


def client_batch_id(file_name: str, content: bytes) -> str:
    """The id of the batch made from a file: its name and a digest of its content."""
    digest = hashlib.sha256(content).hexdigest()[:12]
    return f"acm12-{file_name.rsplit('.', 1)[0]}-{digest}"


@nps_flow(log_prints=True)
def acm12_new_frames_prp(
    project_id: str = "", inbox: str = "", pattern: str = "*.csv", priority: int = 0
) -> dict[str, list[str]]:
    """Create the tasks of every file in `inbox` not created yet; say what was done."""
    done: dict[str, list[str]] = {"created": [], "skipped": [], "refused": []}
    if not project_id or not inbox:
        print("nothing to do: set project_id and inbox")
        return done
    with SamaClient() as sama:
        for file in sorted(open_inbox(inbox).glob(pattern)):
            content = file.read_bytes()
            try:
                tasks = task_inputs(content, file.name)
                batches = sama.create_batch(
                    project_id,
                    tasks,
                    client_batch_id=client_batch_id(file.name, content),
                    priority=priority,
                    check_schema=True,
                )
            except SamaBatchIdInUseError:
                print(f"{file.name}: its tasks exist already")
                done["skipped"].append(file.name)
                continue
            except (SamaTaskDataError, ValueError) as error:
                print(f"{file.name}: refused: {error}")
                done["refused"].append(file.name)
                continue
            print(f"{file.name}: {len(tasks)} tasks in batch {', '.join(batches)}")
            done["created"].append(file.name)
    if done["refused"]:
        raise ValueError(
            f"{len(done['refused'])} file(s) refused, the others done: {done['refused']};"
            " fix them (see the run's log) and the next run creates their tasks"
        )
    return done
