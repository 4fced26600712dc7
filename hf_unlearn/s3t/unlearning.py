"""The ledger steps of ``S3TModel.delete`` and ``S3TModel.retrain_pending``, and their result.

A deletion is recorded and its cuts applied in ONE ledger transaction (:func:`commit_deletion`);
a replayed request id is answered from the ledger (:func:`replayed_result`). A retrain trains
each pending order again without the deleted ids (:func:`retrain_unit`) and swaps the new
checkpoints in, in one transaction, only if no request arrived meanwhile (:func:`commit_retrain`).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

from ..artifacts import ids_digest
from ..data import ForgetRequestError
from .assignment import Assignment
from .config import S3TConfig
from .deletion import DeletionPlan, RetrainJob, SystemState, apply_retrain, plan_deletion
from .ledger import Ledger, debug_pause
from .staged import UnitJob


@dataclass
class DeletionResult:
    request_id: str
    seq: int | None
    action: str
    new_ids: list[str]
    already_deleted: list[str]
    affected: list[dict]
    served: dict
    replayed: bool = False
    retrained: list[dict] = field(default_factory=list)
    pending_retrain: list[dict] = field(default_factory=list)
    seconds: float = 0.0

    def to_dict(self) -> dict:
        return asdict(self)


def commit_deletion(
    ledger: Ledger, assignment: Assignment, orders, config: S3TConfig, ids: list[str], rid: str
) -> tuple[dict | None, DeletionPlan | None, int | None]:
    """Record request ``rid`` for ``ids`` and cut what saw them, in one ledger transaction.

    Returns ``(previous, None, None)`` when ``rid`` is already in the ledger (nothing is written),
    else ``(None, plan, seq)``: the plan that was committed and the request's sequence number.
    """
    with ledger.transaction():
        previous = ledger.find_request(rid)
        if previous is not None:
            return previous, None, None
        state = ledger.read_state()
        already = ledger.deleted_among(ids)
        plan = plan_deletion(state, assignment, orders, ids, already, config, rid)
        seq = ledger.insert_request(
            rid,
            ids,
            ids_digest(ids),
            len(plan.new_ids),
            plan.affected,
            plan.action,
            "retraining" if plan.jobs else "done",
        )
        ledger.insert_deleted(plan.new_ids, seq)
        debug_pause("in_transaction")
        ledger.write_state(plan.new_state)
        ledger.mark_purged(plan.purge)
    return None, plan, seq


def replayed_result(previous: dict, ids: list[str], rid: str, served: dict, start: float) -> DeletionResult:
    """The no-op answer to a request id already in the ledger; other ids under it raise."""
    if sorted(previous["ids"]) != ids:
        raise ForgetRequestError(f"request id {rid!r} was already used for other ids")
    return DeletionResult(
        rid,
        previous["seq"],
        "noop",
        [],
        ids,
        previous["affected"],
        served,
        replayed=True,
        seconds=time.perf_counter() - start,
    )


def retrain_unit(
    job: RetrainJob,
    order: Sequence[int],
    generation: int,
    assignment: Assignment,
    deleted: set[str],
    seq: int,
    prior: list,
) -> UnitJob:
    """The training unit that retrains ``job``: stage k trains on the first k+1 slices of ``order``
    of the shard, deleted ids left out, on top of the ``prior`` checkpoints of the stages kept."""
    return UnitJob(
        job.shard,
        job.order,
        order,
        generation,
        [[i for i in assignment.members(job.shard, order[: k + 1]) if i not in deleted] for k in range(len(order))],
        from_stage=job.from_stage,
        excluded_through_seq=seq,
        prior=prior,
    )


def commit_retrain(
    ledger: Ledger, jobs: list[RetrainJob], gens: dict, rows: list[dict], seq: int, num_slices: int
) -> SystemState | None:
    """Swap the retrained checkpoints in (one transaction) and finish the pending requests.

    Returns the new state, or None (nothing written) when a request arrived after ``seq``: the
    retrain no longer excludes every deleted id and must run again.
    """
    with ledger.transaction():
        if ledger.last_seq() != seq:  # a request arrived meanwhile: train again
            return None
        new_state = apply_retrain(
            ledger.read_state(),
            jobs,
            lambda j, gens=gens: gens[(j.shard, j.order)],
            num_slices,
        )
        ledger.add_checkpoints(rows)
        ledger.write_state(new_state)
        ledger.finish_requests()
    return new_state
