"""The request ledger of a run: every deletion request made on it, in one SQLite file.

``RUN/requests.sqlite`` (private: it names training examples; never uploaded, not in the run's
manifest, changed only under the run folder's lock) has the design of S3T's deletion ledger
(``sqlite.py``) and one schema for every method::

    meta          key -> JSON value (schema_version, created_at, the run's train fingerprint)
    requests      seq, request_id (unique), created_at, ids (JSON, sorted distinct), ids_sha256,
                  n_ids, commitment (salted, see artifacts/commitment.py), method, settings (JSON),
                  status ('accepted' | 'served' | 'failed'), output, output_manifest_sha256,
                  honours (JSON: the request ids the output honours), error, completed_at,
                  origin (NULL: made on this run; else the ledger it was carried from by a
                  retrain that excluded it: ``carry_over``)
    forgotten_ids id -> seq of the first request that named it

The rule the ledger keeps: **every id ever accepted is forgotten for good.** A request is recorded
``accepted`` before any work; the output that serves it honours the union of every request
recorded so far (``forgotten_ids()``), and all of them are marked ``served`` by that output in one
transaction once the output folder is complete. A kill leaves ``accepted``; a failure
``failed`` (its ids stay forgotten: a retry or the next request serves them). Retraining with the
ledger excluded never sees any of them (``exclusion.py``).
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable
from pathlib import Path

from ..artifacts import REQUEST_LEDGER_FILE, atomic_write, ids_digest
from . import sqlite as db

SCHEMA_VERSION = 1
STATUSES = ("accepted", "served", "failed")
SCHEMA = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE requests (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, request_id TEXT NOT NULL UNIQUE, created_at TEXT NOT NULL,
    ids TEXT NOT NULL, ids_sha256 TEXT NOT NULL, n_ids INTEGER NOT NULL, commitment TEXT NOT NULL,
    method TEXT NOT NULL, settings TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('accepted', 'served', 'failed')),
    output TEXT, output_manifest_sha256 TEXT, honours TEXT, error TEXT, completed_at TEXT, origin TEXT);
CREATE TABLE forgotten_ids (id TEXT PRIMARY KEY, seq INTEGER NOT NULL REFERENCES requests(seq));
"""


class RequestConflictError(ValueError):
    """A request id already in the ledger was given again with other ids."""


class RequestLedger:
    """The request ledger of one run folder (see the module docstring)."""

    def __init__(self, path: str | Path, *, readonly: bool = False):
        self.path = Path(path)
        if not self.path.is_file():
            raise FileNotFoundError(f"no request ledger at {self.path}")
        self.readonly = readonly
        self.conn = db.connect_readonly(self.path) if readonly else db.connect(self.path)

    # -- opening ------------------------------------------------------------------------------
    @staticmethod
    def path_in(folder: str | Path) -> Path:
        return Path(folder) / REQUEST_LEDGER_FILE

    @classmethod
    def exists_in(cls, folder: str | Path) -> bool:
        return cls.path_in(folder).is_file()

    @classmethod
    def open(cls, folder: str | Path, *, readonly: bool = False) -> RequestLedger | None:
        """The ledger of ``folder``, or None when no request was ever made on it."""
        return cls(cls.path_in(folder), readonly=readonly) if cls.exists_in(folder) else None

    @classmethod
    def open_or_create(cls, folder: str | Path, meta: dict | None = None) -> RequestLedger:
        """The ledger of ``folder``, created (built whole in a temporary file, then renamed) if absent."""
        path = cls.path_in(folder)
        if not path.is_file():
            values = {"schema_version": SCHEMA_VERSION, "created_at": db.utc_now(), **(meta or {})}

            def fill(tmp: str) -> None:
                conn = db.connect(tmp)
                try:
                    conn.executescript(SCHEMA)
                    with db.transaction(conn):
                        conn.executemany(
                            "INSERT INTO meta VALUES (?, ?)", [(k, json.dumps(v)) for k, v in values.items()]
                        )
                finally:
                    conn.close()

            atomic_write(path, fill, mode=0o600)
        return cls(path)

    def close(self) -> None:
        self.conn.close()

    def __enter__(self) -> RequestLedger:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def transaction(self):
        return db.transaction(self.conn)

    # -- reading ------------------------------------------------------------------------------
    def meta(self) -> dict:
        return {k: json.loads(v) for k, v in self.conn.execute("SELECT key, value FROM meta")}

    def requests(self, where: str = "1", args=()) -> list[dict]:
        """Every request (oldest first) as a dict; ``ids``, ``settings`` and ``honours`` decoded.
        The dicts hold the ids: callers show them only when asked to (``--show_ids``)."""
        cur = self.conn.execute(f"SELECT * FROM requests WHERE {where} ORDER BY seq", args)
        cols = [c[0] for c in cur.description]
        rows = []
        for row in cur:
            rec = dict(zip(cols, row))
            for key in ("ids", "settings", "honours"):
                rec[key] = json.loads(rec[key]) if rec[key] is not None else None
            rows.append(rec)
        return rows

    def find(self, request_id: str) -> dict | None:
        rows = self.requests("request_id = ?", (request_id,))
        return rows[0] if rows else None

    def forgotten_ids(self) -> set[str]:
        """Every id any recorded request named (whatever its status): what every output honours."""
        return {i for (i,) in self.conn.execute("SELECT id FROM forgotten_ids")}

    def last_seq(self) -> int:
        (seq,) = self.conn.execute("SELECT COALESCE(MAX(seq), 0) FROM requests").fetchone()
        return int(seq)

    def state(self) -> dict:
        """A summary without ids, for logs and reports: counts, last sequence number, digest of the ids."""
        with db.read_snapshot(self.conn):
            counts = dict(self.conn.execute("SELECT status, COUNT(*) FROM requests GROUP BY status").fetchall())
            ids = self.forgotten_ids()
            last = self.last_seq()
        return {
            "requests": sum(counts.values()),
            **{status: counts.get(status, 0) for status in STATUSES},
            "forgotten_ids": len(ids),
            "forgotten_ids_sha256": ids_digest(ids),
            "last_seq": last,
        }

    # -- writing (each inside ``with ledger.transaction():``) -----------------------------------
    def accept(self, request_id: str, ids: Iterable[str], *, method: str, settings: dict, commitment: str) -> int:
        """Record ``request_id`` as accepted; its ids become forgotten. Returns its sequence number."""
        ids = sorted(set(ids))
        cur = self.conn.execute(
            "INSERT INTO requests (request_id, created_at, ids, ids_sha256, n_ids, commitment, method, settings,"
            " status) VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'accepted')",
            (
                request_id,
                db.utc_now(),
                json.dumps(ids),
                ids_digest(ids),
                len(ids),
                commitment,
                method,
                json.dumps(settings, sort_keys=True, default=str),
            ),
        )
        seq = int(cur.lastrowid)
        self.conn.executemany("INSERT OR IGNORE INTO forgotten_ids VALUES (?, ?)", [(i, seq) for i in ids])
        return seq

    def check_replay(self, request_id: str, ids: Iterable[str]) -> dict | None:
        """The recorded request ``request_id`` (None if new); a different id set under it raises."""
        previous = self.find(request_id)
        if previous is not None and previous["ids"] != sorted(set(ids)):
            raise RequestConflictError(f"request id {request_id!r} was already used for other ids")
        return previous

    def serve(self, through_seq: int, output: str, manifest_sha256: str | None) -> list[str]:
        """Mark every request up to ``through_seq`` not yet served as served by ``output``; returns
        the request ids ``output`` honours (every request up to ``through_seq``)."""
        honours = [r for (r,) in self.conn.execute("SELECT request_id FROM requests WHERE seq <= ?", (through_seq,))]
        self.conn.execute(
            "UPDATE requests SET status = 'served', output = ?, output_manifest_sha256 = ?, honours = ?,"
            " error = NULL, completed_at = ? WHERE seq <= ? AND status != 'served'",
            (output, manifest_sha256, json.dumps(honours), db.utc_now(), through_seq),
        )
        return honours

    def carry_over(self, rows: list[dict], origin: str, honoured_by: str) -> int:
        """Record requests of another ledger (``rows`` from its ``requests()``) that a retrain honoured by
        excluding their ids: each keeps its request id, time, ids, commitment, method and settings, is
        ``served`` by ``honoured_by`` (the new run) and names ``origin``; an id already here is skipped.
        Returns how many were added. The carried ids stay forgotten here: the ledger of every later
        run still names them."""
        added = 0
        for row in rows:
            if self.find(row["request_id"]) is not None:
                continue
            cur = self.conn.execute(
                "INSERT INTO requests (request_id, created_at, ids, ids_sha256, n_ids, commitment, method, settings,"
                " status, output, completed_at, origin) VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'served', ?, ?, ?)",
                (
                    row["request_id"],
                    row["created_at"],
                    json.dumps(sorted(row["ids"])),
                    row["ids_sha256"],
                    row["n_ids"],
                    row["commitment"],
                    row["method"],
                    json.dumps(row["settings"], sort_keys=True, default=str),
                    honoured_by,
                    db.utc_now(),
                    row.get("origin") or origin,
                ),
            )
            self.conn.executemany(
                "INSERT OR IGNORE INTO forgotten_ids VALUES (?, ?)", [(i, int(cur.lastrowid)) for i in row["ids"]]
            )
            added += 1
        return added

    def fail(self, request_id: str, error: str) -> None:
        """Mark ``request_id`` failed with a one-line ``error`` (its ids stay forgotten)."""
        self.conn.execute(
            "UPDATE requests SET status = 'failed', error = ?, completed_at = ? WHERE request_id = ?",
            (error.splitlines()[0][:500] if error else "failed", db.utc_now(), request_id),
        )


def read_forgotten_ids(folder: str | Path) -> tuple[set[str], dict]:
    """(every id the ledger of ``folder`` names, its state) read-only; (empty, {}) without a ledger.
    A ledger that cannot be read raises ``sqlite3.Error`` with the path."""
    ledger = RequestLedger.open(folder, readonly=True)
    if ledger is None:
        return set(), {}
    try:
        with ledger:
            return ledger.forgotten_ids(), ledger.state()
    except sqlite3.Error as err:
        raise sqlite3.Error(f"{ledger.path}: {err}") from err
