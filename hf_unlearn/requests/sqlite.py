"""SQLite as hf_unlearn's ledgers use it (the run's request ledger and S3T's deletion ledger).

One design for every ledger: a single database file in the folder it describes, the rollback
journal (``journal_mode=DELETE``: one file at rest), ``synchronous=FULL`` (a committed
transaction survives a power cut), foreign keys on, and every change inside ``BEGIN IMMEDIATE``
... ``COMMIT`` (one writer at a time; a kill before ``COMMIT`` leaves the database as it was).
"""

from __future__ import annotations

import sqlite3
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path

from ..artifacts import crash_point

BUSY_TIMEOUT_S = 60


def utc_now() -> str:
    """The time stamps of every ledger: ISO 8601, UTC, milliseconds."""
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


def connect(path: str | Path) -> sqlite3.Connection:
    """A read-write connection with the ledgers' settings (autocommit: transactions are explicit)."""
    conn = sqlite3.connect(str(path), isolation_level=None, timeout=BUSY_TIMEOUT_S)
    conn.execute("PRAGMA journal_mode=DELETE")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute("PRAGMA foreign_keys=ON")
    return conn


def connect_readonly(path: str | Path) -> sqlite3.Connection:
    """A connection that cannot write (not even the rollback of a killed transaction's journal:
    such a database raises ``sqlite3.Error`` on read until a writer opens it)."""
    uri = Path(path).resolve().as_uri() + "?mode=ro"
    conn = sqlite3.connect(uri, uri=True, isolation_level=None, timeout=BUSY_TIMEOUT_S)
    conn.execute("PRAGMA query_only=ON")
    return conn


@contextmanager
def transaction(conn: sqlite3.Connection):
    """``BEGIN IMMEDIATE`` ... ``COMMIT``: all writes inside land together or not at all."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    crash_point("before-ledger-commit")
    conn.execute("COMMIT")
    crash_point("after-ledger-commit")


@contextmanager
def read_snapshot(conn: sqlite3.Connection):
    """One consistent read of several queries (``BEGIN`` ... ``COMMIT``)."""
    conn.execute("BEGIN")
    try:
        yield conn
    finally:
        conn.execute("COMMIT")
