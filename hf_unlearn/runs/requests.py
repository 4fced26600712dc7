"""The history of a folder's deletion requests, read-only: ``hf-unlearn requests list|show``.

A training run's request ledger (``requests.sqlite``, ``requests/ledger.py``) or an S3T / SISA
system's deletion ledger (``ledger.sqlite``: its ``requests`` table, the same columns where it has
them). Nothing is written (the ledger is opened read-only) and the ids of a request are shown only
when asked (``show_ids``): a table, a count and a salted commitment name a request otherwise.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from ..artifacts import REQUEST_LEDGER_FILE, S3T_LEDGER_FILE
from ..cards.tables import md_table
from ..requests import sqlite as db

COLUMNS = ("seq", "request_id", "created", "status", "method", "n_ids", "output")
# shown by ``show`` (the ids only with ``show_ids``); plain hashes of the ids are never shown
DETAILS = (
    "seq",
    "request_id",
    "created_at",
    "status",
    "method",
    "settings",
    "n_ids",
    "commitment",
    "output",
    "output_manifest_sha256",
    "honours",
    "error",
    "completed_at",
    "origin",
    "affected",
    "action",
)


class NoLedgerError(LookupError):
    """No deletion request was ever recorded for the folder (not an error for the commands: exit 0)."""


def ledger_path(folder: str | Path) -> Path:
    """The folder's ledger file: a run's ``requests.sqlite`` or an S3T system's ``ledger.sqlite``."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"folder not found: {folder}")
    for name in (REQUEST_LEDGER_FILE, S3T_LEDGER_FILE):
        if (folder / name).is_file():
            return folder / name
    raise NoLedgerError(f"no deletion requests recorded for {folder}")


def read_requests(folder: str | Path) -> list[dict]:
    """Every request of the folder's ledger (oldest first), ``ids`` decoded and ``n_ids`` filled in;
    a ledger that cannot be read raises ``sqlite3.Error`` naming it."""
    path = ledger_path(folder)
    conn = db.connect_readonly(path)
    try:
        cur = conn.execute("SELECT * FROM requests ORDER BY seq")
        cols = [c[0] for c in cur.description]
        rows = [dict(zip(cols, row)) for row in cur]
    except sqlite3.Error as err:
        raise sqlite3.Error(f"{path}: {err}") from err
    finally:
        conn.close()
    for row in rows:
        for key in ("ids", "settings", "honours", "affected"):
            if isinstance(row.get(key), str):
                row[key] = json.loads(row[key])
        row.setdefault("n_ids", len(row.get("ids") or []))
        row.setdefault("method", row.get("action"))
    return rows


def find_request(folder: str | Path, request_id: str) -> dict:
    """The request ``request_id`` of the folder's ledger; a ``KeyError`` naming it when absent."""
    for row in read_requests(folder):
        if row["request_id"] == request_id:
            return row
    raise KeyError(f"no request {request_id!r} in the ledger of {folder}")


def requests_table(rows: list[dict]) -> str:
    """The ``list`` table: one line per request, no ids."""
    body = [
        [str(r["seq"]), r["request_id"], r["created_at"], r["status"], str(r.get("method") or ""), str(r["n_ids"])]
        + [str(r.get("output") or "")]
        for r in rows
    ]
    return md_table(list(COLUMNS), body, right=[0, 5])


def request_details(row: dict, *, show_ids: bool = False) -> str:
    """The ``show`` text: one ``key: value`` line per recorded field; the ids only with ``show_ids``."""
    lines = []
    for key in DETAILS:
        if key in row and row[key] is not None:
            value = row[key]
            shown = json.dumps(value, sort_keys=True) if isinstance(value, (dict, list)) else str(value)
            lines.append(f"{key}: {shown}")
    if show_ids:
        lines.append("ids:")
        lines += [f"  {i}" for i in row.get("ids") or []]
    return "\n".join(lines)
