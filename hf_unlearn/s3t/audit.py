"""Audit: for each id, the evidence that no active checkpoint was trained on it.

The proof is rebuilt from the three records a system keeps: the assignment (which shard and
slice hold the id), the active prefixes (which stages of which orders are live) and the ledger
(when the id was deleted, and up to which request each checkpoint's training excluded deleted
ids). The training-set hash recorded with every active checkpoint is recomputed from those
records and compared, so the records are checked against what was actually trained.
"""

from __future__ import annotations

from ..artifacts import forget_set_commitment
from .deletion import DROPPED


def audit_ids(ids, *, assignment, orders, state, deleted, records, requests) -> dict:
    """``deleted``: id -> request seq; ``records``: CheckpointKey -> ledger row; ``requests``: seq -> request id."""
    cache: dict = {}

    def training_ids(key, slices):
        if key not in cache:
            limit = records[key]["excluded_through_seq"]
            members = assignment.members(key.shard, slices)
            cache[key] = [i for i in members if not (i in deleted and deleted[i] <= limit)]
        return cache[key]

    entries, verified, consistent = [], set(), True
    for x in ids:
        j, s = assignment.locate(x)
        seq = deleted.get(x)
        entry = {
            "id": x, "shard": j, "slice": s, "deleted": seq is not None,
            "request_id": requests.get(seq), "request_seq": seq,
            "shard_status": state.status[j], "served": None, "orders": [],
            "other_shards": f"the id is in no other shard's data (assignment: shard {j} only)",
        }
        served = state.served(j)
        if served:
            entry["served"] = {"order": served[0], "prefix_len": served[1]}
        trained_any = False
        for b, order in enumerate(orders[j]):
            prefix = 0 if state.status[j] == DROPPED else state.prefix[j][b]
            pos = order.index(s)
            stages_on_it, excluded_at = [], []
            for key in state.keys(j, b, range(prefix)):
                rec = records.get(key)
                if rec is None:
                    consistent = False
                    continue
                slices = order[: key.stage + 1]
                train_ids = training_ids(key, slices)
                if key not in verified:
                    verified.add(key)
                    if forget_set_commitment(train_ids) != rec["train_ids_sha256"] or len(train_ids) != rec["n_train"]:
                        consistent = False
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
            trained_any |= bool(stages_on_it)
            entry["orders"].append({
                "order": b, "slice_position": pos, "prefix_len": prefix,
                "generations": state.generations[j][b][:prefix],
                "stages_trained_on_it": stages_on_it, "reason": reason,
            })
        entry["clean"] = not trained_any
        entries.append(entry)
    return {
        "all_clean": all(e["clean"] for e in entries),
        "n_ids": len(entries),
        "n_clean": sum(e["clean"] for e in entries),
        "n_deleted": sum(e["deleted"] for e in entries),
        "checkpoints_verified": len(verified),
        "records_consistent": consistent,
        "ids": entries,
    }
