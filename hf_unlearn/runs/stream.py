"""Deletion requests as a stream: every ``unlearn`` request goes through the run's request ledger.

The rule (``requests/ledger.py``): every id ever accepted in a run's ledger is forgotten for good,
so every output of the run honours the union of every request recorded so far. For one request
(``runs.unlearn.unlearn_run``, under the run folder's lock from start to end):

1. validate (ids, output folder, method options) before anything is written;
2. ``check_replay``: a request id already ``served`` is a no-op (the recorded outcome is returned,
   nothing is written); one left ``accepted`` (a killed run) or ``failed`` is served now, on its
   own row; a new one is ``accept``-ed in one transaction before any work (its commitment keyed
   with the run folder's private salt; its settings: the method options and the strategy);
3. the forget set given to the method is the union of the ledger's ids that the run trained on
   (ids carried over from an older run that this one never saw are honoured by exclusion already);
4. once the output folder is complete (renamed into place with its manifest), ONE transaction
   marks every earlier request not yet served as served by it (``serve``); an exception marks the
   request ``failed`` and is raised again; a kill leaves it ``accepted``.

Strategies (which weights the method starts from):

- ``union`` (the default for every method): from the trained weights, on the whole union. Exact,
  or cheaper than anything else, for the methods that roll back or replay the run's recorded
  training (:func:`union_only`): their record describes the trained weights and nothing else.
- ``chain`` (approximate methods only): from the model of the last output this run served (its
  manifest verified first), forgetting only the ids that output does not honour yet; the retain
  set is still the trained split without the union.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from .. import console
from ..artifacts import (
    MANIFEST_FILE,
    IntegrityError,
    forget_set_commitment,
    load_or_create_salt,
    sha256_file,
)
from ..data.forget import ForgetRequestError
from ..requests import RequestLedger
from .audit import verify_served_output

STRATEGIES = ("union", "chain")
DEFAULT_STRATEGY = "union"


class StrategyError(ValueError):
    """A ``--sequential_strategy`` the method cannot take, or a chain whose starting output is unusable."""


def union_only(spec) -> bool:
    """THE one place that says which methods always unlearn the union from the trained weights: exact
    methods and the methods that roll back or replay the run's recorded training (``needs_log``:
    amnesiac, amnesiac_per_sample, per_sample_replay, single_gradient). Their record is of the
    trained weights; applied to any other model it is wrong, and from the trained weights the union
    costs what the one request would."""
    return spec.guarantee == "exact" or bool(spec.needs_log)


def check_strategy(spec, strategy: str | None) -> str:
    """``strategy`` (None: the default) if ``spec``'s method can take it; else a one-line ``StrategyError``."""
    strategy = strategy or DEFAULT_STRATEGY
    if strategy not in STRATEGIES:
        raise StrategyError(f"--sequential_strategy must be one of {', '.join(STRATEGIES)}, not {strategy!r}")
    if strategy == "chain" and union_only(spec):
        raise StrategyError(
            f"--sequential_strategy chain does not apply to {spec.name} (it rolls back or replays the recorded "
            "training of the trained weights: every request unlearns the union from them); use "
            "--sequential_strategy union"
        )
    return strategy


def new_request_id() -> str:
    """A fresh request id: ``req-<UTC yyyymmddThhmmss>-<6 hex digits>``."""
    return f"req-{datetime.now(timezone.utc).strftime('%Y%m%dT%H%M%S')}-{secrets.token_hex(3)}"


def served_row(run_dir: str | Path, request_id: str) -> dict | None:
    """The ledger's row of ``request_id`` when it was already served, else None (a peek before the
    request's checks; the lock's ``check_replay`` decides). Opened read-write, so the journal of a
    transaction a kill cut short is rolled back rather than failing the read."""
    if not Path(run_dir).is_dir():
        return None
    ledger = RequestLedger.open(run_dir)
    if ledger is None:
        return None
    with ledger:
        row = ledger.find(request_id)
    return row if row is not None and row["status"] == "served" else None


def already_served(row: dict) -> dict:
    """The outcome of a replayed request id: one line said, the recorded outcome returned (no ids)."""
    console.result(f"request {row['request_id']} was already served by {row['output']}")
    return {
        "already_served": True,
        "request": {k: row[k] for k in ("seq", "request_id", "status", "output", "completed_at", "n_ids")},
    }


@dataclass
class ChainStart:
    """Where a chained request starts: the last output this run served and the ids it honours."""

    output: Path
    honoured_ids: set[str]


@dataclass
class StreamRequest:
    """One request being served: its ledger row, the union it honours and what the method forgets."""

    ledger: RequestLedger
    request_id: str
    strategy: str
    through_seq: int = 0  # the last request recorded when work started: the output honours every one up to it
    honoured: int = 0  # how many requests that is
    union: frozenset = frozenset()  # every id the ledger names (also ids this run never trained on)
    forget_ids: tuple = ()  # the union restricted to the ids the run trained on (evaluation, twin)
    method_ids: tuple = ()  # what the method forgets: forget_ids (union) or those the start does not honour
    start: ChainStart | None = None

    def section(self, salt: bytes) -> dict:
        """The report's ``requests`` section: counts, the strategy and the commitment over the union."""
        return {
            "honoured": self.honoured,
            "forgotten": len(self.union),
            "commitment": forget_set_commitment(self.union, salt),
            "strategy": self.strategy,
        }


def last_output(ledger: RequestLedger) -> dict | None:
    """The row of the newest request served by an output of this run (None before the first)."""
    rows = ledger.requests("status = 'served' AND origin IS NULL AND output IS NOT NULL")
    return rows[-1] if rows else None


def chain_start(ledger: RequestLedger) -> ChainStart | None:
    """The last output this run served, its manifest verified against the ledger's record; None before any.
    Missing, damaged or replaced: a one-line ``StrategyError`` naming it."""
    row = last_output(ledger)
    if row is None:
        return None
    output = Path(row["output"])
    hint = "or pass --sequential_strategy union (every request from the trained weights)"
    try:
        verify_served_output(output, row["output_manifest_sha256"])
    except (IntegrityError, FileNotFoundError, OSError) as exc:
        raise StrategyError(f"the last output of this run, {output}, cannot be chained from ({exc}); {hint}") from None
    honours = set(row["honours"] or [])
    honoured_ids = {i for r in ledger.requests() if r["request_id"] in honours for i in r["ids"]}
    return ChainStart(output, honoured_ids)


def open_request(run_dir: Path, train_fingerprint: str | None, request_id: str, ids: list[str]) -> tuple:
    """(the ledger, the previous row of ``request_id`` or None): the ledger opened (created if absent,
    recording the run's train fingerprint) and the id checked for a replay (other ids under a known id:
    ``RequestConflictError``)."""
    ledger = RequestLedger.open_or_create(run_dir, meta={"train_fingerprint": train_fingerprint})
    try:
        return ledger, ledger.check_replay(request_id, ids)
    except BaseException:
        ledger.close()
        raise


def plan_request(ledger, previous, request_id, ids, trained_ids, spec, options, strategy, run_dir) -> StreamRequest:
    """Check the chain's start (before anything is recorded), then accept the request (a new one; its
    settings: the method's ``options`` and the ``strategy``) in one transaction and take the snapshot
    the output will honour: the union and its count of requests."""
    settings = {"options": options, "strategy": strategy}
    plan = StreamRequest(ledger, request_id, strategy)
    if strategy == "chain":
        plan.start = chain_start(ledger)
        if (
            plan.start is not None
            and not ((ledger.forgotten_ids() | set(ids)) & trained_ids) - plan.start.honoured_ids
        ):
            raise ForgetRequestError(
                f"every id of request {request_id} is already honoured by {plan.start.output}: nothing to unlearn"
            )
    with ledger.transaction():
        if previous is None:
            salt = load_or_create_salt(run_dir)  # the run folder's private salt keys the ledger's commitments
            commitment = forget_set_commitment(ids, salt)
            ledger.accept(request_id, ids, method=spec.name, settings=settings, commitment=commitment)
        plan.through_seq = ledger.last_seq()
        plan.honoured = len(ledger.requests("seq <= ?", (plan.through_seq,)))
        plan.union = frozenset(ledger.forgotten_ids())
    plan.forget_ids = tuple(sorted(plan.union & trained_ids))
    honoured = plan.start.honoured_ids if plan.start is not None else set()
    plan.method_ids = tuple(i for i in plan.forget_ids if i not in honoured)
    return plan


def mark_served(plan: StreamRequest, output_dir: str | Path) -> list[str]:
    """ONE transaction: every request up to the plan's snapshot served by the complete ``output_dir``."""
    output = Path(output_dir).expanduser().resolve()
    with plan.ledger.transaction():
        return plan.ledger.serve(plan.through_seq, str(output), sha256_file(output / MANIFEST_FILE))


def mark_failed(plan: StreamRequest, exc: BaseException) -> None:
    """Record ``exc`` as the request's one-line error (its ids stay forgotten: a retry serves them)."""
    with plan.ledger.transaction():
        plan.ledger.fail(plan.request_id, f"{type(exc).__name__}: {exc}")


def starting_point(run, splits: dict, plan: StreamRequest) -> tuple:
    """(model, log, forget split) the method starts from: the trained model, its log and the union's
    forget split; or, chained, the last output's model (no log: it describes the trained weights only)
    and the ids that output does not honour yet."""
    if plan.start is None:
        return run.model, run.log, splits["forget"]
    from ..models import load_classifier

    model, _ = load_classifier(
        plan.start.output, num_labels=run.model_args.num_labels, attn_implementation=run.model_args.attn_implementation
    )
    model.eval()
    train, wanted = run.tokenized["train"], set(plan.method_ids)
    return model, None, train.select([k for k, i in enumerate(train["id"]) if i in wanted])
