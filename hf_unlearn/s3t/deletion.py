"""What a deletion request changes: the served state and the plan (pure functions, no I/O).

An example in slice s of shard j was trained on by every stage of an order from the position
of s onwards, so each order of shard j is cut back to its longest prefix without s. A shard
whose orders all lost every stage has no clean model left: it is retrained on its remaining
data (``on_empty_shard="retrain"``) or dropped. With ``on_cut="retrain"`` (SISA) every cut
order is retrained from its last clean checkpoint.
"""

from __future__ import annotations

import copy
import hashlib
from dataclasses import asdict, dataclass, field

from .checkpoints import CheckpointKey

ACTIVE, PENDING, DROPPED = "active", "pending", "dropped"


@dataclass
class SystemState:
    """Active prefix length and per-stage checkpoint generation of every (shard, order), shard status."""

    prefix: list[list[int]]
    generations: list[list[list[int]]]
    status: list[str]

    @classmethod
    def initial(cls, num_shards: int, budget: int, num_slices: int) -> SystemState:
        return cls(
            prefix=[[num_slices] * budget for _ in range(num_shards)],
            generations=[[[0] * num_slices for _ in range(budget)] for _ in range(num_shards)],
            status=[ACTIVE] * num_shards,
        )

    def copy(self) -> SystemState:
        return copy.deepcopy(self)

    def served(self, shard: int) -> tuple[int, int] | None:
        """(order, prefix length) the shard serves: its longest surviving prefix, lowest order on ties."""
        if self.status[shard] == DROPPED:
            return None
        prefixes = self.prefix[shard]
        best = max(range(len(prefixes)), key=lambda b: (prefixes[b], -b))
        return (best, prefixes[best]) if prefixes[best] > 0 else None

    def keys(self, shard: int, order: int, stages) -> list[CheckpointKey]:
        gens = self.generations[shard][order]
        return [CheckpointKey(shard, order, k, gens[k]) for k in stages]

    def active_keys(self) -> list[CheckpointKey]:
        """Every checkpoint on a surviving prefix (any of them may be served after a later deletion)."""
        out = []
        for j, prefixes in enumerate(self.prefix):
            if self.status[j] != DROPPED:
                for b, p in enumerate(prefixes):
                    out += self.keys(j, b, range(p))
        return out

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> SystemState:
        return cls(prefix=data["prefix"], generations=data["generations"], status=data["status"])


@dataclass
class RetrainJob:
    shard: int
    order: int
    from_stage: int


@dataclass
class DeletionPlan:
    request_id: str
    ids: list[str]
    new_ids: list[str]
    already_deleted: list[str]
    affected: list[dict]
    old_state: SystemState
    new_state: SystemState
    jobs: list[RetrainJob] = field(default_factory=list)
    purge: list[CheckpointKey] = field(default_factory=list)

    @property
    def action(self) -> str:
        actions = {a["action"] for a in self.affected}
        if not self.new_ids:
            return "noop"
        for name in ("retrain", "drop", "cut"):
            if name in actions:
                return name
        return "recorded"


def request_id_for(ids) -> str:
    return "req-" + hashlib.sha256("\n".join(sorted(set(ids))).encode()).hexdigest()[:16]


def pending_jobs(state: SystemState, num_slices: int, on_cut: str) -> list[RetrainJob]:
    """Work a retrain must do: pending shards from stage 0; with on_cut='retrain' every cut order too."""
    jobs = []
    for j, prefixes in enumerate(state.prefix):
        if state.status[j] == DROPPED:
            continue
        for b, p in enumerate(prefixes):
            if state.status[j] == PENDING or (on_cut == "retrain" and p < num_slices):
                jobs.append(RetrainJob(j, b, 0 if state.status[j] == PENDING else p))
    return jobs


def plan_deletion(state, assignment, orders, ids, already_deleted, config, request_id=None) -> DeletionPlan:
    """The effect of deleting ``ids`` (already validated); ``already_deleted`` are skipped."""
    ids = sorted(set(ids))
    request_id = request_id or request_id_for(ids)
    new_ids = [i for i in ids if i not in already_deleted]
    hits: dict[int, set[int]] = {}
    for i in new_ids:
        j, s = assignment.locate(i)
        hits.setdefault(j, set()).add(s)
    new = state.copy()
    affected, purge = [], []
    for j in sorted(hits):
        entry = {"shard": j, "slices": sorted(hits[j]), "orders": [], "action": "unchanged"}
        if state.status[j] == DROPPED:
            entry["action"] = "already dropped"
        for b, order in enumerate(orders[j]):
            old = state.prefix[j][b]
            cut = min(old, min(order.index(s) for s in hits[j]))
            entry["orders"].append({"order": b, "prefix": [old, cut]})
            if cut < old:
                new.prefix[j][b] = cut
                purge += state.keys(j, b, range(cut, old))
                entry["action"] = "cut"
        if state.status[j] == "active" and all(p == 0 for p in new.prefix[j]):
            new.status[j] = PENDING if config.on_empty_shard == "retrain" else DROPPED
            entry["action"] = "retrain" if new.status[j] == PENDING else "drop"
        elif entry["action"] == "cut" and config.on_cut == "retrain":
            entry["action"] = "retrain"
        affected.append(entry)
    jobs = pending_jobs(new, config.num_slices, config.on_cut) if new_ids else []
    return DeletionPlan(
        request_id=request_id,
        ids=ids,
        new_ids=new_ids,
        already_deleted=sorted(set(ids) - set(new_ids)),
        affected=affected,
        old_state=state,
        new_state=new,
        jobs=jobs,
        purge=purge,
    )


def apply_retrain(state: SystemState, jobs: list[RetrainJob], generation_of, num_slices: int) -> SystemState:
    """State once ``jobs`` are trained: full prefixes, new generations for the retrained stages."""
    new = state.copy()
    for job in jobs:
        g = generation_of(job)
        for k in range(job.from_stage, num_slices):
            new.generations[job.shard][job.order][k] = g
        new.prefix[job.shard][job.order] = num_slices
        new.status[job.shard] = "active"
    return new


def next_generation(state: SystemState, job: RetrainJob) -> int:
    return max(state.generations[job.shard][job.order]) + 1
