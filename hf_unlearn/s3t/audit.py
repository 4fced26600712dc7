"""Audit: for each id, the evidence that no active checkpoint was trained on it.

The proof is rebuilt from the three records a system keeps: the assignment (which shard and
slice hold the id), the active prefixes (which stages of which orders are live) and the ledger
(when the id was deleted, and up to which request each checkpoint's training excluded deleted
ids). The training-set hash recorded with every active checkpoint is recomputed from those
records and compared, so the records are checked against what was actually trained.
"""

from __future__ import annotations

from ..artifacts import ids_digest, verify_commitment
from .deletion import DROPPED


class _TrainingSets:
    """Rebuilds the training set of each active checkpoint from the records and checks it (once per
    checkpoint) against the count and hash recorded when it was trained."""

    def __init__(self, assignment, deleted, records, salt):
        self.assignment, self.deleted, self.records, self.salt = assignment, deleted, records, salt
        self.cache: dict = {}
        self.verified: set = set()
        self.consistent = True

    def record(self, key):
        rec = self.records.get(key)
        if rec is None:
            self.consistent = False
        return rec

    def verify(self, key, slices) -> None:
        if key in self.verified:
            return
        self.verified.add(key)
        rec = self.records[key]
        limit = rec["excluded_through_seq"]
        members = self.assignment.members(key.shard, slices)
        train_ids = [i for i in members if not (i in self.deleted and self.deleted[i] <= limit)]
        recorded = rec["train_ids_sha256"]  # the salted commitment (a plain sha256 in older ledgers)
        if recorded.startswith("hmac-"):
            same = self.salt is not None and verify_commitment(train_ids, self.salt, recorded)
        else:
            same = ids_digest(train_ids) == recorded
        if not same or len(train_ids) != rec["n_train"]:
            self.consistent = False


def audit_ids(ids, *, assignment, orders, state, deleted, records, requests, salt=None) -> dict:
    """``deleted``: id -> request seq; ``records``: CheckpointKey -> ledger row; ``requests``: seq -> request id;
    ``salt``: the system's commitment salt (checks the recorded training-set commitments)."""
    sets = _TrainingSets(assignment, deleted, records, salt)
    entries = [_audit_one(x, sets, assignment, orders, state, deleted, requests) for x in ids]
    return {
        "all_clean": all(e["clean"] for e in entries),
        "n_ids": len(entries),
        "n_clean": sum(e["clean"] for e in entries),
        "n_deleted": sum(e["deleted"] for e in entries),
        "checkpoints_verified": len(sets.verified),
        "records_consistent": sets.consistent,
        "ids": entries,
    }


def _audit_one(x, sets: _TrainingSets, assignment, orders, state, deleted, requests) -> dict:
    """The evidence for one id: where it lives, and for each order of its shard why no live stage saw it."""
    j, s = assignment.locate(x)
    seq = deleted.get(x)
    entry = {
        "id": x,
        "shard": j,
        "slice": s,
        "deleted": seq is not None,
        "request_id": requests.get(seq),
        "request_seq": seq,
        "shard_status": state.status[j],
        "served": None,
        "orders": [],
        "other_shards": f"the id is in no other shard's data (assignment: shard {j} only)",
    }
    served = state.served(j)
    if served:
        entry["served"] = {"order": served[0], "prefix_len": served[1]}
    trained_any = False
    for b, order in enumerate(orders[j]):
        evidence = _order_evidence(j, b, order, s, seq, sets, state)
        trained_any |= bool(evidence["stages_trained_on_it"])
        entry["orders"].append(evidence)
    entry["clean"] = not trained_any
    return entry


def _order_evidence(j, b, order, s, seq, sets: _TrainingSets, state) -> dict:
    prefix = 0 if state.status[j] == DROPPED else state.prefix[j][b]
    pos = order.index(s)
    stages_on_it, excluded_at = [], []
    for key in state.keys(j, b, range(prefix)):
        rec = sets.record(key)
        if rec is None:
            continue
        slices = order[: key.stage + 1]
        sets.verify(key, slices)
        if s in slices:
            if seq is not None and seq <= rec["excluded_through_seq"]:
                excluded_at.append(key.stage)
            else:
                stages_on_it.append(key.stage)
    if stages_on_it:
        reason = f"TRAINED ON IT: active stages {stages_on_it} include slice {s}"
    elif prefix == 0:
        reason = "no active stage (order cut to nothing" + (", shard dropped)" if state.status[j] == DROPPED else ")")
    elif pos >= prefix:
        reason = f"slice {s} is at position {pos}, beyond the active prefix of {prefix} stage(s)"
    else:
        reason = f"stages {excluded_at} were retrained after request {seq} with the id excluded"
    return {
        "order": b,
        "slice_position": pos,
        "prefix_len": prefix,
        "generations": state.generations[j][b][:prefix],
        "stages_trained_on_it": stages_on_it,
        "reason": reason,
    }


def with_problems(report: dict, problems: list[str]) -> dict:
    """Add the disagreements between the ledger and the public files, and the overall verdict
    ``consistent`` (records verified AND no problem)."""
    report["problems"] = list(problems)
    report["consistent"] = bool(report["records_consistent"]) and not problems
    return report


def audit_folder(system_dir, ids=None, *, deleted: bool = False) -> dict:
    """Audit a system folder WITHOUT writing anything (no model is loaded, the ledger is opened
    read-only, a running mutation is waited for through a shared lock).

    ``ids`` (or every deleted id with ``deleted=True``) are checked as ``S3TModel.audit`` does; the
    result adds ``problems`` / ``consistent`` (``consistency.find_problems``). Raises
    ``FileNotFoundError`` (no system / private files), ``ForeignLedgerError``, ``ForgetRequestError``.
    """
    import sqlite3
    from pathlib import Path

    from .assignment import ASSIGNMENT_FILE, Assignment
    from .consistency import InconsistentSystemError, check_ledger_owner, find_problems
    from .ledger import LEDGER_FILE, Ledger
    from .locking import shared_lock
    from .persistence import read_system_config

    root = Path(system_dir)
    _, info = read_system_config(root)
    for name in (LEDGER_FILE, ASSIGNMENT_FILE):
        if not (root / name).is_file():
            raise FileNotFoundError(f"{root} lacks {name}: only the system's owner can audit it")
    assignment = Assignment.load(root)
    orders = [[tuple(o) for o in shard] for shard in info["orders"]]
    with shared_lock(root):
        ledger = Ledger(root / LEDGER_FILE, readonly=True)
        try:
            check_ledger_owner(ledger, root)
            records = ledger.audit_records()
            problems = find_problems(root, ledger)
        except sqlite3.Error as err:  # e.g. a killed transaction's journal, which only a writer rolls back
            raise InconsistentSystemError(
                f"{root / LEDGER_FILE} cannot be read without writing ({err}): run hf-unlearn s3t resume first"
            ) from err
        finally:
            ledger.close()
    ids = sorted(records["deleted"]) if deleted else assignment.check_known(ids or [])
    salt = _salt_of(root)
    return with_problems(audit_ids(ids, assignment=assignment, orders=orders, salt=salt, **records), problems)


def _salt_of(root):
    from ..artifacts import COMMITMENT_SALT_FILE, read_salt

    path = root / COMMITMENT_SALT_FILE
    return read_salt(path) if path.is_file() else None
