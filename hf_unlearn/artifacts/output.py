"""Output folders: checked before any work, assembled beside, renamed into place whole.

A command that writes a folder (``train``, ``unlearn``, ``evaluate``, ``push --dry-run``, ...):

1. calls :func:`check_output_folder` BEFORE any work: a non-empty folder needs ``overwrite`` (or must
   be the command's own resumable state), a folder the command reads from is refused, and an
   unwritable parent is named;
2. writes everything inside :func:`staged_folder`, a temporary sibling (``.NAME.hf_unlearn-tmp-*``);
3. on success the sibling gets its ``manifest.json`` and takes the place of the folder as a whole
   (an old folder is moved aside first, then removed). On error, or a kill, the destination is
   left as it was or absent, never half-written; a folder without a manifest was never completed.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path

from .manifest import write_manifest
from .names import TEMP_MARKER
from .writing import _fsync_dir, recording_hashes, swap_folder_into_place


class OutputFolderError(ValueError):
    """The output folder cannot be used as asked (not empty, read from, or not writable)."""


class DiskSpaceError(OSError):
    """Not enough free space for what the configuration will write."""


def _nearest_existing(path: Path) -> Path:
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def _overlaps(a: Path, b: Path) -> bool:
    return a == b or a.is_relative_to(b) or b.is_relative_to(a)


def check_output_folder(
    dest: str | os.PathLike,
    *,
    overwrite: bool,
    reads_from: Iterable[str | os.PathLike] = (),
    flag: str = "--overwrite",
    what: str = "output folder",
) -> Path:
    """Refuse, before any work, an output folder that cannot be written as asked. Returns it resolved."""
    dest = Path(dest).expanduser().resolve()
    for src in reads_from:
        src = Path(src).expanduser().resolve()
        if _overlaps(dest, src):
            raise OutputFolderError(
                f"{what} {dest} overlaps {src}, which this command reads from; choose another folder"
            )
    if dest.exists() and not dest.is_dir():
        raise OutputFolderError(f"{what} {dest} is a file, not a folder")
    if dest.is_dir() and any(dest.iterdir()) and not overwrite:
        raise OutputFolderError(f"{what} {dest} is not empty; pass {flag} to replace it")
    parent = _nearest_existing(dest.parent)
    if not os.access(parent, os.W_OK | os.X_OK):
        raise OutputFolderError(f"cannot write the {what} {dest}: {parent} is not writable")
    return dest


def check_free_space(folder: str | os.PathLike, needed_bytes: int, *, what: str = "the output") -> None:
    """A :class:`DiskSpaceError` naming both numbers when ``folder``'s file system has less free space."""
    free = shutil.disk_usage(_nearest_existing(Path(folder).expanduser().resolve())).free
    if needed_bytes > free:
        raise DiskSpaceError(
            f"{what} needs about {needed_bytes / 1e9:.2f} GB but {folder} has {free / 1e9:.2f} GB free; "
            "free some space, choose another folder or record less"
        )


@contextlib.contextmanager
def staged_folder(dest: str | os.PathLike, *, kind: str, extra: dict | None = None) -> Iterator[Path]:
    """Yield a temporary sibling of ``dest`` to fill; on success it gets a manifest and replaces ``dest``.

    Call :func:`check_output_folder` first (before any work): this function replaces ``dest``.
    """
    dest = Path(dest).expanduser().resolve()
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}{TEMP_MARKER}", dir=dest.parent))
    old = tmp.with_name(tmp.name + "-old")
    try:
        with recording_hashes(tmp) as hashes:
            yield tmp
        write_manifest(tmp, hashes, kind=kind, extra=extra)
        swap_folder_into_place(tmp, dest, old)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.rmtree(old, ignore_errors=True)
    _fsync_dir(dest.parent)
