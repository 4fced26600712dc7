"""One mutation at a time on a system folder.

Every request that changes a system (``delete``, ``retrain_pending`` / ``s3t resume``, ``evaluate``
recording its figure, training into the folder, ``reconcile``) holds the folder's exclusive lock
(:func:`hf_unlearn.artifacts.folder_lock`, released by the kernel if the process dies). The lock
is re-entrant per thread, so a locked step may call another locked step. Readers that must not
write (``audit``) take the same lock *shared*, and only when its file already exists.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import threading
from collections.abc import Iterator
from pathlib import Path

from ..artifacts import LOCK_FILE, folder_lock
from ..artifacts.locks import acquire_flock

_held: dict[tuple[str, int], int] = {}
_guard = threading.Lock()


def _key(root) -> tuple[str, int]:
    return (str(Path(root).resolve()), threading.get_ident())


@contextlib.contextmanager
def system_lock(root: str | os.PathLike, timeout: float | None = None) -> Iterator[None]:
    """Hold ``root``'s exclusive lock for the block (re-entrant in one thread). ``timeout``: None
    waits, 0 fails at once; when it runs out, :class:`~hf_unlearn.artifacts.BusyError` ("busy, retry")."""
    key = _key(root)
    with _guard:
        depth = _held.get(key, 0)
        if depth:
            _held[key] = depth + 1
    if depth:
        try:
            yield
        finally:
            with _guard:
                _held[key] -= 1
        return
    with folder_lock(root, timeout=timeout):
        with _guard:
            _held[key] = 1
        try:
            yield
        finally:
            with _guard:
                _held.pop(key, None)


def holds_lock(root: str | os.PathLike) -> bool:
    return _held.get(_key(root), 0) > 0


@contextlib.contextmanager
def shared_lock(root: str | os.PathLike, timeout: float | None = None, poll: float = 0.05) -> Iterator[None]:
    """A reader's lock: waits while a mutation runs, writes nothing (no lock file is created)."""
    path = Path(root) / LOCK_FILE
    if holds_lock(root) or not path.is_file():
        yield
        return
    fd = os.open(path, os.O_RDONLY)
    try:
        acquire_flock(fd, Path(root), timeout, poll, shared=True)
        try:
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)
