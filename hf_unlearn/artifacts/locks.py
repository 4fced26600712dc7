"""One request at a time on a folder: an advisory lock file (``fcntl.flock``).

The lock is held by an open file descriptor, so the kernel releases it when the process dies
(also on SIGKILL): a crashed request never leaves a folder locked.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import time
from collections.abc import Iterator
from pathlib import Path

from .names import LOCK_FILE


class BusyError(RuntimeError):
    """Another request holds the folder's lock."""


@contextlib.contextmanager
def folder_lock(folder: str | os.PathLike, *, timeout: float | None = None, poll: float = 0.05) -> Iterator[Path]:
    """Hold the exclusive lock of ``folder`` for the block. ``timeout=None`` waits as long as it takes,
    ``0`` fails at once; a timeout is a :class:`BusyError` ("busy, retry")."""
    path = Path(folder) / LOCK_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        acquire_flock(fd, path.parent, timeout, poll)
        try:
            yield path
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def acquire_flock(fd: int, folder: Path, timeout: float | None, poll: float = 0.05, *, shared: bool = False) -> None:
    """Take the exclusive (or ``shared``) flock of the open lock file ``fd``, polling until ``timeout``
    (None: wait as long as it takes); a :class:`BusyError` naming ``folder`` when it runs out."""
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        try:
            fcntl.flock(fd, (fcntl.LOCK_SH if shared else fcntl.LOCK_EX) | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            if deadline is not None and time.monotonic() >= deadline:
                raise BusyError(f"{folder} is busy with another request; retry when it has finished") from None
            time.sleep(poll)
