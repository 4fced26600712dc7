"""The log's writer thread (hf_unlearn/training/background_writes.py): hashes, order, errors."""

import hashlib
import threading

import pytest

from hf_unlearn.artifacts import atomic_write_bytes, recording_hashes
from hf_unlearn.training.background_writes import MAX_QUEUED, BackgroundWrites


def test_files_written_on_the_thread_are_hashed_by_the_recorders_of_the_caller(tmp_path):
    writes, names = BackgroundWrites(), []
    with recording_hashes(tmp_path) as recorded:
        for i in range(5):
            name = f"step_{i}.bin"
            names.append(name)
            writes.submit(lambda n=name, i=i: atomic_write_bytes(tmp_path / n, bytes([i]) * 100))
        writes.drain()
    writes.close()
    assert sorted(recorded) == names
    assert all(recorded[n] == hashlib.sha256((tmp_path / n).read_bytes()).hexdigest() for n in names)
    assert writes.bytes_written == 500


def test_at_most_max_queued_writes_wait(tmp_path):
    """A write blocked on an event holds the queue: the submit after MAX_QUEUED waits for it."""
    release, started, done = threading.Event(), threading.Event(), []
    writes = BackgroundWrites()

    def slow():
        started.set()
        release.wait()
        done.append("slow")
        return atomic_write_bytes(tmp_path / "slow", b"x")

    writes.submit(slow)
    started.wait()
    for i in range(MAX_QUEUED - 1):
        writes.submit(lambda i=i: atomic_write_bytes(tmp_path / f"f{i}", b"y"))
    submitter = threading.Thread(target=writes.submit, args=(lambda: atomic_write_bytes(tmp_path / "last", b"z"),))
    submitter.start()
    submitter.join(timeout=0.2)
    assert submitter.is_alive() and not done  # the queue is full: it waits for the slow write
    release.set()
    submitter.join()
    writes.close()
    assert done == ["slow"] and (tmp_path / "last").read_bytes() == b"z"


def test_a_failed_write_is_raised_at_drain_and_the_others_still_complete(tmp_path):
    writes = BackgroundWrites()

    def fail():
        raise OSError("disk full")

    writes.submit(fail)
    writes.submit(lambda: atomic_write_bytes(tmp_path / "after", b"ok"))
    with pytest.raises(OSError, match="disk full"):
        writes.drain()
    assert (tmp_path / "after").read_bytes() == b"ok"
    writes.close()
