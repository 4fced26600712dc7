"""The one atomic writer: how every file of hf_unlearn is written.

Everything that lands on disk goes through :func:`atomic_write` (or one of its typed wrappers):
the bytes go to a uniquely named temporary file in the destination folder, are flushed and
fsync'ed, then renamed over the destination, so a reader sees the old file or the new one,
never half of one, and two concurrent writers never share a temporary name.

Inside :func:`recording_hashes`, every file written under the recorded folder has its sha256
taken from the temporary file just before the rename (the bytes are still in the page cache), so a
manifest (``manifest.py``) needs no later pass over the folder.
"""

from __future__ import annotations

import contextlib
import contextvars
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

from .names import TEMP_MARKER

T = TypeVar("T")


# ---- the one atomic writer ---------------------------------------------------------------------------
def atomic_write(path: str | os.PathLike, write: Callable[[str], None], *, mode: int = 0o644) -> Path:
    """Write ``path`` atomically: ``write(tmp_path)`` fills a unique temporary file beside it, which is
    fsync'ed and renamed over ``path``. On any error the temporary file is removed and ``path`` is
    left as it was. Returns ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}{TEMP_MARKER}", dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        _record_hash(path, tmp)
        os.chmod(tmp, mode)  # mkstemp creates 0600
        crash_point("before-rename")
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    _fsync_dir(path.parent)
    crash_point("after-rename")
    return path


# ---- fault injection for the crash tests ----------------------------------------------------------
KILL_ENV = "HF_UNLEARN_KILL_AT_WRITE"
_crash_points = [0]


def crash_point(where: str) -> None:
    """Crash tests only: with ``HF_UNLEARN_KILL_AT_WRITE=N`` in the environment, the process kills
    itself (SIGKILL, as ``kill -9`` would) at the N-th crash point it passes: before and after every
    rename into place. Unset (always, outside ``tests/``), this is a counter increment."""
    target = os.environ.get(KILL_ENV)
    if not target:
        return
    _crash_points[0] += 1
    if _crash_points[0] == int(target):
        import signal

        os.kill(os.getpid(), signal.SIGKILL)


# ---- hashing while writing -------------------------------------------------------------------------
_RECORDERS: contextvars.ContextVar[tuple] = contextvars.ContextVar("hf_unlearn_hash_recorders", default=())


@contextlib.contextmanager
def recording_hashes(root: str | os.PathLike) -> Iterator[dict[str, str]]:
    """Record ``{relative path: sha256}`` of every file :func:`atomic_write` writes under ``root``
    while the context is open (the last write of a path wins)."""
    hashes: dict[str, str] = {}
    token = _RECORDERS.set(_RECORDERS.get() + ((Path(root).resolve(), hashes),))
    try:
        yield hashes
    finally:
        _RECORDERS.reset(token)


def _record_hash(path: Path, tmp: str) -> None:
    recorders = _RECORDERS.get()
    if not recorders:
        return
    target = path.resolve()
    digest = None
    for root, hashes in recorders:
        if target.is_relative_to(root):
            digest = digest or sha256_file(tmp)
            hashes[target.relative_to(root).as_posix()] = digest


def _fsync_dir(folder: Path) -> None:
    with contextlib.suppress(OSError):  # not every file system lets a folder be opened for fsync
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    def write(tmp: str) -> None:
        with open(tmp, "wb") as f:
            f.write(data)

    return atomic_write(path, write)


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | os.PathLike, obj, *, indent: int = 1, sort_keys: bool = True) -> Path:
    """JSON with sorted keys (stable bytes for the same content); values JSON cannot hold are ``str()``-ed."""
    text = json.dumps(obj, indent=indent, sort_keys=sort_keys, default=str) + "\n"
    return atomic_write_text(path, text)


def atomic_save_tensors(path: str | os.PathLike, tensors: dict, metadata: dict[str, str] | None = None) -> Path:
    """A safetensors file (tensors are detached, made contiguous and moved to the CPU first)."""
    from safetensors.torch import save_file

    cpu = {k: v.detach().contiguous().cpu() for k, v in tensors.items()}
    return atomic_write(path, lambda tmp: save_file(cpu, tmp, metadata=metadata))


def atomic_write_folder(path: str | os.PathLike, fill: Callable[[Path], T]) -> T:
    """Build a folder atomically: ``fill(tmp_dir)`` writes it in a unique temporary folder beside
    ``path``, which then takes the place of ``path`` (a previous ``path`` is moved aside and removed).
    On any error ``path`` is left as it was. Returns what ``fill`` returned."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}{TEMP_MARKER}", dir=path.parent))
    old = tmp.with_name(tmp.name + "-old")
    try:
        result = fill(tmp)
        swap_folder_into_place(tmp, path, old)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.rmtree(old, ignore_errors=True)
    _fsync_dir(path.parent)
    return result


def swap_folder_into_place(tmp: Path, path: Path, old: Path) -> None:
    """Rename the filled folder ``tmp`` to ``path``; a previous ``path`` is first moved to ``old`` (the
    caller removes it) and put back if the rename fails. A kill between the two renames leaves
    ``path`` absent and the previous folder at ``old`` (a temporary name)."""
    os.chmod(tmp, 0o755)  # mkdtemp creates 0700
    if path.exists():
        os.replace(path, old)
        crash_point("folder-moved-aside")
    try:
        os.replace(tmp, path)
    except BaseException:
        if old.exists():
            os.replace(old, path)
        raise


def is_temporary(path: str | os.PathLike) -> bool:
    """A temporary file of :func:`atomic_write` (left behind only by a killed writer)."""
    return TEMP_MARKER in Path(path).name


@contextlib.contextmanager
def private_temp_dir(parent: str | os.PathLike | None = None, prefix: str = "hf_unlearn-") -> Iterator[Path]:
    """A temporary folder removed on exit, also on error; inside ``parent`` when given (a run folder)."""
    if parent is not None:
        Path(parent).mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=prefix, dir=parent) as tmp:
        yield Path(tmp)


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()
