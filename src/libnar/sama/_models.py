"""Typed answers of SamaHub's API beyond `Task`: projects and batches.

Like `Task`, these keep every field SamaHub sends, known or not, so nothing is lost when an
answer is passed on or re-serialised.
"""

from __future__ import annotations

from typing import Any

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, field_validator

from libnar.events import Task

__all__ = ["Batch", "Project"]


def _id_as_str(value: Any) -> Any:
    if isinstance(value, bool):
        raise ValueError("expected an id (int or str)")
    return str(value) if isinstance(value, int) else value


class _Answer(BaseModel):
    """Base of answer models: unknown fields are kept and re-serialised unchanged."""

    model_config = ConfigDict(extra="allow")


class Project(_Answer):
    """A SamaHub project (`GET /projects/{pid}.json`); `id` is always a `str`."""

    id: str
    name: str | None = None
    state: str | None = None
    type: str | None = None

    _id = field_validator("id", mode="before")(_id_as_str)


class Batch(_Answer):
    """A batch-creation job and its tasks (`GET /projects/{pid}/batches/{bid}.json`).

    `tasks` holds SamaHub's per-task creation records as sent (ids, and the data of tasks that
    failed, unless asked with `omit_failed_task_data`), not delivery-format tasks.
    """

    id: str | None = None
    state: str | None = None
    client_batch_id: str | None = None
    tasks: list[dict[str, Any]] = Field(default_factory=list)

    _ids = field_validator("id", "client_batch_id", mode="before")(_id_as_str)


class TaskAnswer(BaseModel):
    """`{"task": {...}}`, the answer for one task."""

    task: Task


class BatchCreated(_Answer):
    """The answer to a batch creation: the new batch's id (+ task ids)."""

    batch_id: str = Field(validation_alias=AliasChoices("batch_id", "id"))

    _id = field_validator("batch_id", mode="before")(_id_as_str)


class BatchUpload(_Answer):
    """The answer to starting a batch by file: its id and where to PUT the tasks file."""

    batch_id: str = Field(validation_alias=AliasChoices("batch_id", "id"))
    tasks_put_url: str

    _id = field_validator("batch_id", mode="before")(_id_as_str)


def whole_batch(pages: list[Batch]) -> Batch:
    """One `Batch` from the pages of its status: the first page's fields, every task record."""
    first = pages[0]
    rows = [row for page in pages for row in page.tasks]
    return first.model_copy(update={"tasks": rows})
