"""Build problems: one per thing to fix, collected for a whole package, raised together."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict

__all__ = ["BuildError", "BuildProblem"]


class BuildProblem(BaseModel):
    """One thing to fix in a flow package: where it is and what to do."""

    model_config = ConfigDict(frozen=True)

    file: Path
    message: str
    key: str | None = None
    """Dotted key path inside the file (`sama-build.disk`, `deploy[0].schedule.cron`)."""
    line: int | None = None
    level: Literal["error", "warning"] = "error"
    """A warning (a deprecated key, an ignored setting) does not stop the build."""

    def __str__(self) -> str:
        place = f"{self.file}:{self.line}" if self.line else str(self.file)
        key = f"{self.key}: " if self.key else ""
        return f"{place}: {key}{self.message}"


class BuildError(ValueError):
    """A flow package cannot be built; `problems` lists every reason, one line each."""

    def __init__(self, problems: Iterable[BuildProblem]) -> None:
        self.problems = list(problems)
        count = len(self.problems)
        lines = "\n".join(f"  {problem}" for problem in self.problems)
        super().__init__(f"{count} build problem{'s' if count != 1 else ''}:\n{lines}")
