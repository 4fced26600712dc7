"""The per-step files of the unlearning log written on one background thread.

A step's batch delta and per-sample gradients are computed on the training thread (they read the
weights as the step left them) and written, hashed and fsynced on a writer thread while the next
step computes: serialising, sha256 and fsync release the GIL for most of their time. At most
:data:`MAX_QUEUED` writes wait; :meth:`BackgroundWrites.drain` waits for all of them and raises the
first error. The log writer drains before every part flush (so before each checkpoint) and before
the manifest, so what is on disk at a checkpoint or at the end is what synchronous writes give.
"""

from __future__ import annotations

import contextvars
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

MAX_QUEUED = 2


class BackgroundWrites:
    """One writer thread; ``submit(write)`` queues a function that writes one file and returns its path."""

    def __init__(self):
        self._pool: ThreadPoolExecutor | None = None
        self._pending: list[Future] = []
        self.bytes_written = 0

    def submit(self, write: Callable[[], Path]) -> None:
        while len(self._pending) >= MAX_QUEUED:
            self._collect(self._pending.pop(0))
        if self._pool is None:
            self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="hf-unlearn-log")
        context = contextvars.copy_context()  # the hash recorders open on the training thread
        self._pending.append(self._pool.submit(context.run, lambda: write().stat().st_size))

    def drain(self) -> None:
        """Wait for every queued write; the first failure is raised here (the rest still complete)."""
        pending, self._pending = self._pending, []
        errors = []
        for future in pending:
            try:
                self._collect(future)
            except Exception as exc:  # noqa: BLE001 - re-raised below, after every write has ended
                errors.append(exc)
        if errors:
            raise errors[0]

    def close(self) -> None:
        """Drain, then stop the thread."""
        try:
            self.drain()
        finally:
            if self._pool is not None:
                self._pool.shutdown(wait=True)
                self._pool = None

    def _collect(self, future: Future) -> None:
        self.bytes_written += future.result()
