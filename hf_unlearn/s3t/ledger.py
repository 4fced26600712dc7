"""The deletion ledger: an SQLite database (standard library) in the system folder.

It holds the deletion requests (id, time, ids, affected shards/slices/orders, action), the
deleted ids, the checkpoints with what they were trained on, AND the active prefixes / shard
status. Keeping the served state in the same database lets one transaction record a request
and change what is served: after a crash the two are both before or both after the request.

``ledger.sqlite`` names training examples: it is one of the two private files that publishing
leaves out. It is built on the SQLite design every ledger shares (``hf_unlearn/requests/sqlite.py``:
rollback journal, not WAL, so a single file at rest; ``synchronous=FULL``; ``BEGIN IMMEDIATE``).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterable
from pathlib import Path

from ..artifacts import S3T_LEDGER_FILE, atomic_write
from ..requests import sqlite as db
from .checkpoints import CheckpointKey
from .deletion import SystemState

LEDGER_FILE = S3T_LEDGER_FILE
PAUSE_ENV = "HF_UNLEARN_S3T_PAUSE_AT"  # test hook: "in_transaction" or "after_commit"
PAUSE_SECONDS_ENV = "HF_UNLEARN_S3T_PAUSE_SECONDS"
PAUSE_MARKER_ENV = "HF_UNLEARN_S3T_PAUSE_MARKER"

SCHEMA = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE orders_state (
    shard INTEGER NOT NULL, order_idx INTEGER NOT NULL, prefix_len INTEGER NOT NULL,
    generations TEXT NOT NULL, PRIMARY KEY (shard, order_idx));
CREATE TABLE shards (shard INTEGER PRIMARY KEY, status TEXT NOT NULL);
CREATE TABLE requests (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, request_id TEXT NOT NULL UNIQUE, created_at TEXT NOT NULL,
    ids TEXT NOT NULL, ids_sha256 TEXT NOT NULL, n_new INTEGER NOT NULL, affected TEXT NOT NULL,
    action TEXT NOT NULL, status TEXT NOT NULL, completed_at TEXT);
CREATE TABLE deleted_ids (id TEXT PRIMARY KEY, seq INTEGER NOT NULL REFERENCES requests(seq));
CREATE TABLE checkpoints (
    shard INTEGER NOT NULL, order_idx INTEGER NOT NULL, stage INTEGER NOT NULL, generation INTEGER NOT NULL,
    excluded_through_seq INTEGER NOT NULL, n_train INTEGER NOT NULL, train_ids_sha256 TEXT NOT NULL,
    created_at TEXT NOT NULL, purged_at TEXT, PRIMARY KEY (shard, order_idx, stage, generation));
"""


_now = db.utc_now


def debug_pause(point: str) -> None:
    """Test hook: when ``HF_UNLEARN_S3T_PAUSE_AT == point``, touch the marker file and sleep."""
    if os.environ.get(PAUSE_ENV) != point:
        return
    marker = os.environ.get(PAUSE_MARKER_ENV)
    if marker:
        Path(marker).write_text(point)
    time.sleep(float(os.environ.get(PAUSE_SECONDS_ENV, "30")))


class Ledger:
    def __init__(self, path: str | Path, *, readonly: bool = False):
        """Open the ledger; ``readonly`` opens it so that nothing can be written (not even the
        rollback of a killed transaction's journal: such a ledger raises ``sqlite3.Error`` on read)."""
        self.path = Path(path)
        if not self.path.is_file():
            raise FileNotFoundError(f"no ledger at {self.path}")
        self.readonly = readonly
        self.conn = db.connect_readonly(self.path) if readonly else db.connect(self.path)

    @classmethod
    def create(cls, path: str | Path, state: SystemState, checkpoints: list[dict], meta: dict) -> Ledger:
        path = Path(path)
        if path.exists():
            raise FileExistsError(f"a ledger already exists at {path}")

        def fill(tmp: str) -> None:  # the whole database is built in the temporary file, then renamed
            conn = db.connect(tmp)
            try:
                conn.executescript(SCHEMA)
                conn.execute("BEGIN IMMEDIATE")
                conn.executemany("INSERT INTO meta VALUES (?, ?)", [(k, json.dumps(v)) for k, v in meta.items()])
                cls._write_state(conn, state)
                cls._insert_checkpoints(conn, checkpoints)
                conn.execute("COMMIT")
            finally:
                conn.close()

        atomic_write(path, fill)
        return cls(path)

    def close(self) -> None:
        self.conn.close()

    def transaction(self):
        """``BEGIN IMMEDIATE`` ... ``COMMIT``: all writes inside land together or not at all."""
        return db.transaction(self.conn)

    # -- served state -------------------------------------------------------------------------
    def read_state(self) -> SystemState:
        rows = self.conn.execute("SELECT shard, order_idx, prefix_len, generations FROM orders_state ORDER BY 1, 2")
        prefix: dict[int, list] = {}
        gens: dict[int, list] = {}
        for j, _order, p, g in rows:
            prefix.setdefault(j, []).append(p)
            gens.setdefault(j, []).append(json.loads(g))
        status = [s for (s,) in self.conn.execute("SELECT status FROM shards ORDER BY shard")]
        return SystemState([prefix[j] for j in sorted(prefix)], [gens[j] for j in sorted(gens)], status)

    def write_state(self, state: SystemState) -> None:
        self._write_state(self.conn, state)

    @staticmethod
    def _write_state(conn, state: SystemState) -> None:
        conn.executemany(
            "INSERT OR REPLACE INTO orders_state VALUES (?, ?, ?, ?)",
            [
                (j, b, p, json.dumps(state.generations[j][b]))
                for j, prefixes in enumerate(state.prefix)
                for b, p in enumerate(prefixes)
            ],
        )
        conn.executemany("INSERT OR REPLACE INTO shards VALUES (?, ?)", list(enumerate(state.status)))

    # -- requests -----------------------------------------------------------------------------
    def find_request(self, request_id: str) -> dict | None:
        rows = self.requests(where="request_id = ?", args=(request_id,))
        return rows[0] if rows else None

    def requests(self, where: str = "1", args=()) -> list[dict]:
        cur = self.conn.execute(f"SELECT * FROM requests WHERE {where} ORDER BY seq", args)
        cols = [c[0] for c in cur.description]
        out = []
        for row in cur:
            rec = dict(zip(cols, row))
            rec["ids"] = json.loads(rec["ids"])
            rec["affected"] = json.loads(rec["affected"])
            out.append(rec)
        return out

    def insert_request(self, request_id, ids, ids_sha256, n_new, affected, action, status) -> int:
        cur = self.conn.execute(
            "INSERT INTO requests (request_id, created_at, ids, ids_sha256, n_new, affected, action, status, completed_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                request_id,
                _now(),
                json.dumps(ids),
                ids_sha256,
                n_new,
                json.dumps(affected),
                action,
                status,
                _now() if status == "done" else None,
            ),
        )
        return int(cur.lastrowid)

    def finish_requests(self, status_from: str = "retraining") -> None:
        self.conn.execute(
            "UPDATE requests SET status = 'done', completed_at = ? WHERE status = ?", (_now(), status_from)
        )

    def last_seq(self) -> int:
        (seq,) = self.conn.execute("SELECT COALESCE(MAX(seq), 0) FROM requests").fetchone()
        return int(seq)

    # -- deleted ids --------------------------------------------------------------------------
    def insert_deleted(self, ids: Iterable[str], seq: int) -> None:
        self.conn.executemany("INSERT INTO deleted_ids VALUES (?, ?)", [(i, seq) for i in ids])

    def deleted_among(self, ids: list[str]) -> dict[str, int]:
        out = {}
        for i in range(0, len(ids), 500):
            chunk = ids[i : i + 500]
            q = f"SELECT id, seq FROM deleted_ids WHERE id IN ({','.join('?' * len(chunk))})"
            out.update(dict(self.conn.execute(q, chunk).fetchall()))
        return out

    def deleted(self) -> dict[str, int]:
        return dict(self.conn.execute("SELECT id, seq FROM deleted_ids").fetchall())

    def last_request_date(self) -> str | None:
        row = self.conn.execute("SELECT created_at FROM requests WHERE n_new > 0 ORDER BY seq DESC LIMIT 1").fetchone()
        return row[0] if row else None

    # -- checkpoints --------------------------------------------------------------------------
    def add_checkpoints(self, rows: list[dict]) -> None:
        self._insert_checkpoints(self.conn, rows)

    @staticmethod
    def _insert_checkpoints(conn, rows: list[dict]) -> None:
        conn.executemany(
            "INSERT OR REPLACE INTO checkpoints VALUES (?, ?, ?, ?, ?, ?, ?, ?, NULL)",
            [
                (
                    r["shard"],
                    r["order"],
                    r["stage"],
                    r["generation"],
                    r["excluded_through_seq"],
                    r["n_train"],
                    r.get("train_ids_commitment") or r["train_ids_sha256"],  # the latter: older files
                    r["created_at"],
                )
                for r in rows
            ],
        )

    def checkpoint_records(self) -> dict[CheckpointKey, dict]:
        cur = self.conn.execute("SELECT * FROM checkpoints")
        cols = [c[0] for c in cur.description]
        out = {}
        for row in cur:
            rec = dict(zip(cols, row))
            out[CheckpointKey(rec["shard"], rec["order_idx"], rec["stage"], rec["generation"])] = rec
        return out

    def mark_purged(self, keys: list[CheckpointKey]) -> None:
        self.conn.executemany(
            "UPDATE checkpoints SET purged_at = ? WHERE shard = ? AND order_idx = ? AND stage = ? AND generation = ?",
            [(_now(), k.shard, k.order, k.stage, k.generation) for k in keys],
        )

    def meta(self) -> dict:
        return {k: json.loads(v) for k, v in self.conn.execute("SELECT key, value FROM meta")}

    def audit_records(self) -> dict:
        """What ``audit_ids`` reads, in one read transaction: state, deleted ids, checkpoints, requests."""
        with db.read_snapshot(self.conn):
            return {
                "state": self.read_state(),
                "deleted": self.deleted(),
                "records": self.checkpoint_records(),
                "requests": {r["seq"]: r["request_id"] for r in self.requests()},
            }

    def set_meta(self, key: str, value) -> None:
        self.conn.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, json.dumps(value)))
