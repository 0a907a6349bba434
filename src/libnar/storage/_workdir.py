"""A local folder for a run's scratch files, wherever the run is.

On `giver` a run's big disk is the attached volume (`disk` in `[sama-build]`), not the 8 GiB
main storage; in a flow image it is the image's folder; on a laptop a temp folder. The earlier
`narcon.create_path("base"/"giver"/"debug", p)` made the caller choose; `workdir()` knows.
"""

from __future__ import annotations

import os
import tempfile
import threading
from pathlib import Path, PurePosixPath

from libnar.settings import Settings, get_settings
from libnar.storage._errors import StorageURLError

__all__ = ["workdir"]

_lock = threading.Lock()
_temporary: list[Path] = []  # this process's temp folder, made on first use


def _writable_folder(folder: Path) -> bool:
    return folder.is_dir() and os.access(folder, os.W_OK | os.X_OK)


def _base(settings: Settings) -> Path:
    if settings.workdir is not None:
        return settings.workdir
    if _writable_folder(settings.attached_disk):
        return settings.attached_disk
    if _writable_folder(settings.image_workdir):
        return settings.image_workdir / "work"
    with _lock:
        if not _temporary:
            _temporary.append(Path(tempfile.mkdtemp(prefix="libnar-work-")))
        return _temporary[0]


def workdir(*parts: str, settings: Settings | None = None) -> Path:
    """A local folder for scratch files, created if needed: `workdir("frames")`.

    The base is, in order: `LIBNAR_WORKDIR` when set; the attached disk
    (`LIBNAR_ATTACHED_DISK`, on `giver`) when it is mounted; `<image folder>/work` in a flow
    image (`LIBNAR_IMAGE_WORKDIR`); else one temp folder per process. `parts` name a
    subfolder inside it and may not leave it.

    Raises:
        StorageURLError: a part is absolute or contains `..`.
    """
    for part in parts:
        pure = PurePosixPath(part)
        if pure.is_absolute() or ".." in pure.parts or "\\" in part:
            raise StorageURLError(
                f"workdir part {part!r} must be a relative name inside the work folder"
                " (no leading /, no ..)"
            )
    folder = _base(settings or get_settings()).joinpath(*parts)
    folder.mkdir(parents=True, exist_ok=True)
    return folder
