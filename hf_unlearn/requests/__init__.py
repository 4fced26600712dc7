"""Deletion requests as a stream: the request ledger of a run (``ledger.py``) on the SQLite design
every ledger shares (``sqlite.py``)."""

from .ledger import RequestConflictError, RequestLedger, read_forgotten_ids

__all__ = ["RequestConflictError", "RequestLedger", "read_forgotten_ids"]
