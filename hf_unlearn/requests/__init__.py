"""Deletion requests as a stream: the request ledger of a run (``ledger.py``) on the SQLite design
every ledger shares (``sqlite.py``), and the ledgers a retrain excludes (``exclusion.py``)."""

from .exclusion import (
    Exclusion,
    LedgerExclusionError,
    forgotten_ids_of,
    read_exclusion,
    uncovered_requests,
    write_carried_ledger,
)
from .ledger import RequestConflictError, RequestLedger, read_forgotten_ids

__all__ = [
    "Exclusion",
    "LedgerExclusionError",
    "RequestConflictError",
    "RequestLedger",
    "forgotten_ids_of",
    "read_exclusion",
    "read_forgotten_ids",
    "uncovered_requests",
    "write_carried_ledger",
]
