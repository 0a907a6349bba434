"""Creating tasks without creating them twice, nor taking another batch for them: no I/O here.

SamaHub's batch creation is not idempotent, and SamaHub creates a batch as a job: its tasks
appear in the task listing some time after the creation was answered. So `create_batch`:

- with a `client_batch_id`, first checks that no task carries it yet, and refuses a reused
  one (`SamaBatchIdInUseError`): only then can a batch found by that id be this call's;
- never sends a creation again once it may have reached SamaHub (no answer, a cut-off, a 5xx
  other than 503, an answer too large to read): it looks the batch up by `client_batch_id`,
  again and again for up to `SAMA_BATCH_LOOKUP_SECONDS`, and takes the batch whose tasks are
  the ones sent (as many, with the same data); else it raises
  `SamaBatchOutcomeUnknownError`, naming the `client_batch_id` to check.

`SamaClient` and `AsyncSamaClient` run the same plan; only the sending and sleeping differ.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, replace
from typing import Any, Literal, TypeAlias

import pydantic_core

from libnar.events import Task
from libnar.sama._calls import MAX_BATCH_TASKS, Call, Endpoints, Pager
from libnar.sama._errors import (
    SamaAnswerTooLargeError,
    SamaBatchIdInUseError,
    SamaBatchOutcomeUnknownError,
    SamaError,
    SamaServerError,
    SamaTaskDataError,
    SamaTransportError,
)

__all__ = [
    "BatchPlan",
    "BatchSearch",
    "Part",
    "Via",
    "log_lost_batch",
    "lookup_waits",
    "refuse_task_data",
    "task_data_problems",
    "task_fingerprint",
]

logger = logging.getLogger("libnar.sama")

#: How `create_batch` sends the tasks: in the request body (1,000 a batch), as a file (one
#: batch of any size), or "auto": by file when there are more than 1,000.
Via: TypeAlias = Literal["auto", "body", "file"]

#: The waits between look-ups for a batch whose creation answer was lost, in seconds; the
#: last one repeats until SAMA_BATCH_LOOKUP_SECONDS is used up.
_LOOKUP_WAITS = (1.0, 2.0, 4.0, 8.0, 15.0)


def lookup_waits(budget: float) -> Iterator[float]:
    """Yield the wait before each look-up: 0 (look at once), then 1, 2, 4, 8, 15, 15... s.

    The waits add up to `budget` exactly (the last one is shortened), so the last look-up
    happens when the budget is used up.
    """
    yield 0.0
    spent, step = 0.0, 0
    while spent < budget:
        wait = min(_LOOKUP_WAITS[min(step, len(_LOOKUP_WAITS) - 1)], budget - spent)
        spent += wait
        step += 1
        yield wait


def _as_text(value: Any) -> Any:
    """Spell numbers and booleans as text, nested: SamaHub often sends numbers back as strings."""
    if isinstance(value, dict):
        return {key: _as_text(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_as_text(item) for item in value]
    if isinstance(value, bool | int | float):
        return json.dumps(value)
    return value


def task_fingerprint(data: Mapping[str, Any]) -> str:
    """A digest of a task's `data`, the same however SamaHub spells numbers back (1 or "1").

    `data` is taken as it is sent: through JSON (datetimes become text, and so on).
    """
    plain = pydantic_core.from_json(pydantic_core.to_json(data))
    text = json.dumps(_as_text(plain), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


@dataclass(frozen=True)
class Part:
    """One creation call of a `create_batch`: tasks `start` to `stop - 1` of the call."""

    call: Call[Any]
    start: int
    stop: int
    fingerprints: Counter[str]

    @property
    def tasks(self) -> str:
        """The tasks of this part, for messages: `tasks 0-999`, `task 4`."""
        return _task_range(self.start, self.stop)


def _task_range(start: int, stop: int) -> str:
    return f"task {start}" if stop - start == 1 else f"tasks {start}-{stop - 1}"


class BatchSearch:
    """What one look-up by `client_batch_id` shows of the batch a lost answer was about.

    Feed it every listed task (`add`), then ask `found()`. Batches in `exclude` (created
    earlier by the same call) are not candidates.
    """

    def __init__(self, part: Part, exclude: Iterable[str]) -> None:
        self._part = part
        self._exclude = set(exclude)
        self._listed: dict[str, Counter[str]] = {}

    def add(self, task: Task) -> None:
        """Count a listed task in its batch."""
        if task.batch_id is None or str(task.batch_id) in self._exclude:
            return
        batch = self._listed.setdefault(str(task.batch_id), Counter())
        batch[task_fingerprint(task.data)] += 1

    def found(self) -> str | None:
        """The batch whose listed tasks are exactly the part's, if one is listed."""
        for batch_id, listed in self._listed.items():
            if listed == self._part.fingerprints:
                return batch_id
        return None

    def seen(self) -> str:
        """What the look-up saw besides the batch it looked for, for the error message."""
        notes = []
        wanted = self._part.fingerprints
        for batch_id, listed in self._listed.items():
            count = listed.total()
            if not listed - wanted:  # all its tasks are among the ones sent
                notes.append(
                    f"batch {batch_id} lists {count} of these {wanted.total()} tasks so far:"
                    " most likely this creation, still running"
                )
            else:
                notes.append(f"batch {batch_id} has the same client_batch_id and other tasks")
        return "; ".join(notes)


class BatchPlan:
    """Everything a `create_batch` sends and looks up, built before anything is sent.

    With the tasks in the request body, `parts` are the creation calls, 1,000 tasks each.
    By file (`by_file`), there is one part, one batch of any size: `file_start` opens the
    batch and answers the tasks file's URL, `file_content` is PUT there, and
    `continue_part(batch_id)` is the call that creates the tasks: the one whose lost answer is
    looked up by `client_batch_id`, as a body part's is.
    """

    def __init__(
        self,
        endpoints: Endpoints,
        pid: str | int,
        tasks: Iterable[Mapping[str, Any]],
        *,
        client_batch_id: str | None,
        priority: int | None,
        submit: bool | None,
        notification_email: str | None,
        via: Via = "body",
    ) -> None:
        if via not in ("auto", "body", "file"):
            raise ValueError(f"via must be 'auto', 'body' or 'file', got {via!r}")
        self.pid = pid
        self.client_batch_id = client_batch_id
        self._endpoints = endpoints
        extra: dict[str, Any] = {
            "client_batch_id": client_batch_id,
            "submit": submit,
            "notification_email": notification_email,
        }
        extra = {key: value for key, value in extra.items() if value is not None}
        self.parts: list[Part] = []
        chunks = split_tasks(tasks, priority)
        total = sum(len(chunk) for chunk in chunks)
        self.by_file = via == "file" or (via == "auto" and total > MAX_BATCH_TASKS)
        self.file_content = b""
        if self.by_file:
            specs = [spec for chunk in chunks for spec in chunk]
            if submit is not None:
                for spec in specs:
                    spec["submit"] = submit
            self.file_content = pydantic_core.to_json(specs)
            digest = hashlib.sha256(self.file_content).hexdigest()[:16]
            start = {key: value for key, value in extra.items() if key != "submit"}
            self.file_start = endpoints.start_file_batch(
                pid, {"tasks_file_name": f"libnar-tasks-{digest}.json", **start}
            )
            fingerprints = Counter(task_fingerprint(spec["data"]) for spec in specs)
            self.parts.append(Part(self.file_start, 0, total, fingerprints))
        else:
            start_at = 0
            for specs in chunks:
                call = endpoints.create_batch(pid, {"tasks": specs, **extra})
                fingerprints = Counter(task_fingerprint(spec["data"]) for spec in specs)
                self.parts.append(Part(call, start_at, start_at + len(specs), fingerprints))
                start_at += len(specs)
        #: Asks whether any task carries `client_batch_id` already (one task is enough).
        self.in_use: Pager | None = None
        if client_batch_id is not None:
            self.in_use = endpoints.tasks(pid, self._filters, 1)

    @property
    def total_bytes(self) -> int:
        """How many bytes of tasks the plan sends (for progress)."""
        if self.by_file:
            return len(self.file_content)
        return sum(len(part.call.body or b"") for part in self.parts)

    def part_bytes(self, part: Part) -> int:
        """How many bytes of tasks a body part sends."""
        return len(part.call.body or b"")

    def continue_part(self, batch_id: str) -> Part:
        """The by-file part with its creating call: continue batch `batch_id`."""
        [part] = self.parts
        part = replace(part, call=self._endpoints.continue_batch(self.pid, batch_id))
        self.parts = [part]
        return part

    @property
    def _filters(self) -> dict[str, Any]:
        return {"client_batch_id": self.client_batch_id, "omit_answers": True}

    def lookup(self) -> Pager:
        """A new pager over every task that carries the `client_batch_id` (answers left out)."""
        return self._endpoints.tasks(self.pid, self._filters, MAX_BATCH_TASKS)

    def check_not_in_use(self, rows: list[Any]) -> None:
        """Refuse the `client_batch_id` if the `in_use` call listed a task carrying it."""
        if not rows or self.in_use is None:
            return
        [task] = self.in_use.tasks(rows[:1])
        first = self.parts[0].call
        error = SamaBatchIdInUseError(
            f"client_batch_id {self.client_batch_id!r} is already used by batch "
            f"{task.batch_id}; nothing was sent",
            method=first.method,
            path=first.path,
            hint=(
                "a client_batch_id must be new for each create_batch call, so that a creation "
                "whose answer is lost can be found by it: choose a new one (e.g. with the "
                f"date); if batch {task.batch_id} is this creation done before, it is there "
                f"already (get_batch({self.pid!r}, {str(task.batch_id)!r}))"
            ),
        )
        error.client_batch_id = self.client_batch_id
        error.batch_id = None if task.batch_id is None else str(task.batch_id)
        raise error

    @staticmethod
    def answer_lost(error: SamaError) -> bool:
        """Say whether a creation that failed with `error` may have been done anyway."""
        if isinstance(error, SamaTransportError):
            return error.outcome_unknown
        if isinstance(error, SamaServerError):  # 503 says the work was not done
            return error.status_code != 503
        return isinstance(error, SamaAnswerTooLargeError)  # a 2xx: it was done

    def outcome_unknown(
        self,
        part: Part,
        created: list[str],
        lost: SamaError,
        *,
        search: BatchSearch | None = None,
        seconds: float = 0.0,
        lookup_failed: SamaError | None = None,
    ) -> SamaBatchOutcomeUnknownError:
        """Build the error for a part whose creation may or may not have happened."""
        cid = self.client_batch_id
        why = (
            f"SamaHub may or may not have created {part.tasks}: the answer was lost "
            f"({lost.summary})"
        )
        if cid is None:
            hint = (
                "without a client_batch_id libnar cannot look the batch up: check the project's "
                "newest batches before creating these tasks again, and pass client_batch_id=... "
                "to make create_batch safe"
            )
        else:
            if lookup_failed is not None:
                why += f", and looking it up failed ({lookup_failed.summary})"
            else:
                why += (
                    f", and no batch with client_batch_id {cid!r} holding these tasks was "
                    f"listed within {seconds:g} s (SAMA_BATCH_LOOKUP_SECONDS)"
                )
            seen = search.seen() if search is not None else ""
            if seen:
                why += f" ({seen})"
            hint = (
                f"check with iter_tasks({self.pid!r}, client_batch_id={cid!r}) before creating "
                "these tasks again"
            )
        done = self._created(created)
        if done:
            why += f"; {done}"
        end = self.parts[-1].stop
        if part.stop < end:
            verb = "was" if end - part.stop == 1 else "were"
            why += f"; {_task_range(part.stop, end)} {verb} not sent"
        error = SamaBatchOutcomeUnknownError(
            why, method=part.call.method, path=part.call.path, hint=hint
        )
        error.outcome_unknown = True
        error.client_batch_id = cid
        error.created = tuple(created)
        error.in_doubt = (part.start, part.stop)
        error.attempts = lost.attempts
        return error

    def _created(self, created: list[str]) -> str:
        if not created:
            return ""
        tasks = _task_range(0, self.parts[len(created) - 1].stop)
        if len(created) == 1:
            return f"batch {created[0]} was created for {tasks}"
        return f"batches {', '.join(created)} were created for {tasks}"


def split_tasks(
    tasks: Iterable[Mapping[str, Any]], priority: int | None
) -> list[list[dict[str, Any]]]:
    """Turn tasks' `data` into creation specs, 1,000 a batch at most."""
    specs: list[dict[str, Any]] = []
    for data in tasks:
        spec: dict[str, Any] = {"data": dict(data)}
        if priority is not None:
            spec["priority"] = priority
        specs.append(spec)
    if not specs:
        raise ValueError("create_batch needs at least one task")
    return [
        specs[start : start + MAX_BATCH_TASKS] for start in range(0, len(specs), MAX_BATCH_TASKS)
    ]


def log_lost_batch(plan: BatchPlan, part: Part, lost: SamaError) -> None:
    """Say that a creation's answer was lost and that the batch is being looked for."""
    logger.warning(
        "%s %s: the answer about %s was lost (%s); looking for the batch by client_batch_id %r"
        " instead of sending it again",
        part.call.method,
        part.call.path,
        part.tasks,
        lost.summary,
        plan.client_batch_id,
        extra={"sama_method": part.call.method, "sama_path": part.call.path},
    )


def task_data_problems(
    tasks: Iterable[Mapping[str, Any]], schema: Mapping[str, Any], *, limit: int = 50
) -> list[str]:
    """Every way tasks' `data` break a creation schema (up to `limit`), one line each."""
    from libnar.answers import schema_problems

    lines: list[str] = []
    for index, data in enumerate(tasks):
        plain = pydantic_core.from_json(pydantic_core.to_json(data))  # as it is sent
        lines += [str(p) for p in schema_problems(plain, schema, root=f"tasks[{index}].data")]
        if len(lines) >= limit:
            return lines[:limit]
    return lines


def refuse_task_data(pid: str | int, problems: list[str], count: int) -> SamaTaskDataError:
    """The error for tasks that break the creation schema: nothing was sent."""
    return SamaTaskDataError(
        f"{len(problems)} problem{'s' * (len(problems) != 1)} in the {count} tasks' data"
        f" against project {pid}'s creation schema; nothing was sent",
        problems,
        method="POST",
        path=f"/projects/{pid}/batches.json",
    )
