"""``S3TModel``: an exact-unlearning ensemble of shard models (S3T; SISA subclasses it).

Inference is the mean of the served shards' logits. ``delete(ids)`` records the request in the
ledger and cuts the affected orders in the same SQLite transaction, then (only if a shard lost
every stage) retrains that shard without the deleted ids. ``audit(ids)`` rebuilds the proof
that no active checkpoint was trained on them.
"""

from __future__ import annotations

import contextlib
import time
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from datasets import Dataset

from ..data import fingerprint_dataset
from .assignment import ASSIGNMENT_FILE, Assignment
from .audit import _salt_of, audit_ids, with_problems
from .checkpoints import CheckpointKey, load_checkpoint
from .config import S3TConfig
from .consistency import find_problems, publish, repair, repair_if_idle, served_records, system_summary
from .deletion import DeletionPlan, SystemState, next_generation, pending_jobs, plan_deletion, request_id_for
from .encoding import EncodedData
from .engine import Ensemble
from .ledger import LEDGER_FILE, Ledger, debug_pause
from .locking import system_lock
from .persistence import BASE_DIR, SERVED_FILE, copy_system, load_base, read_json, read_system_config
from .prefix_scheme import scheme_for
from .report import load_report, record_evaluation, save_report
from .staged import Layout, S3TScheme, train_unit
from .unlearning import DeletionResult, commit_deletion, commit_retrain, replayed_result, retrain_unit

SYSTEMS: dict[str, type] = {}


class ReadOnlySystemError(RuntimeError):
    """The system was loaded without its private files (assignment, ledger): inference only."""


class MissingTrainingDataError(RuntimeError):
    """A retrain needs the private training split and none is attached."""


@dataclass
class Predictions:
    logits: np.ndarray
    predictions: np.ndarray
    label_ids: np.ndarray | None = None


class S3TModel:
    config_class = S3TConfig
    scheme_class = S3TScheme
    method = "s3t"
    preload_all = True  # keep every active checkpoint in memory: a cut never touches the disk

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        SYSTEMS[cls.method] = cls

    def __init__(self, system_dir, *, config, info, state, ensemble, tokenizer, ledger=None, assignment=None):
        self.system_dir = Path(system_dir)
        self.config, self.info, self.state = config, info, state
        self.ensemble, self.tokenizer = ensemble, tokenizer
        self.ledger, self.assignment = ledger, assignment
        self.layout = Layout(**info["layout"])
        self.orders = [[tuple(o) for o in shard] for shard in info["orders"]]
        self.scheme = ensemble.scheme
        self._train_data: EncodedData | None = None
        self._train_source: Dataset | Callable[[], Dataset] | None = None
        self.lock_timeout: float | None = None  # None: a mutation waits for the system lock; 0: busy fails

    # -- construction ---------------------------------------------------------------------------
    @classmethod
    def train(cls, config, model, tokenizer, train_dataset, eval_dataset=None, **kwargs):
        """Train a system in ``config.output_dir`` (every rank under ``accelerate launch``); returns it on
        rank 0, None elsewhere. See ``hf_unlearn.s3t.training.train_system`` for the keyword arguments."""
        from .training import train_system

        return train_system(cls, config, model, tokenizer, train_dataset, eval_dataset=eval_dataset, **kwargs)

    @classmethod
    def from_pretrained(cls, system_dir, *, train_dataset=None, lock_timeout: float | None = None) -> S3TModel:
        """Load a system. Without ``assignment.json`` and ``ledger.sqlite`` it is read-only (inference).

        A ledger made for another system raises ``ForeignLedgerError``. When no other request holds the
        system, what a killed request left undone is finished first (``consistency.repair``); the
        served state is always the ledger's. ``lock_timeout``: how long mutations wait for the lock."""
        root = Path(system_dir)
        _, info = read_system_config(root)
        klass = SYSTEMS.get(info["method"], cls) if cls is S3TModel else cls
        private = (root / LEDGER_FILE).is_file() and (root / ASSIGNMENT_FILE).is_file()
        ledger = Ledger(root / LEDGER_FILE) if private else None
        if ledger is not None:
            try:
                repair_if_idle(root, ledger)
            except BaseException:
                ledger.close()
                raise
        state = ledger.read_state() if ledger else SystemState.from_dict(read_json(root / SERVED_FILE)["state"])
        system = klass._build(root, info, state, ledger, Assignment.load(root) if private else None)
        system.lock_timeout = lock_timeout
        system._load_served()
        if train_dataset is not None:
            system.attach_training_data(train_dataset)
        return system

    def _load_served(self, attempts: int = 5) -> None:
        """Load the checkpoints served (all active ones with ``preload_all``); a checkpoint removed by a
        concurrent request meanwhile makes it read the ledger's state again."""
        for attempt in range(attempts):
            chains = [k for c in self._chains().values() for k in c]
            try:
                self.ensemble.ensure(self.state.active_keys() if self.preload_all else chains)
                return
            except FileNotFoundError:
                if self.ledger is None or attempt == attempts - 1:
                    raise
                time.sleep(0.2)
                self._refresh()

    def _refresh(self) -> None:
        """Serve the ledger's committed state (another process may have changed it)."""
        state = self.ledger.read_state()
        if state != self.state:
            active = set(state.active_keys())
            self.ensemble.forget([k for k in list(self.ensemble.checkpoints) if k not in active])
            self.state = state

    @contextlib.contextmanager
    def _mutation(self):
        """Hold the system lock, serve the ledger's state and repair what a killed request left."""
        with system_lock(self.system_dir, timeout=self.lock_timeout):
            self._refresh()
            repair(self.system_dir, self.ledger)
            yield

    @classmethod
    def assemble(cls, system_dir, selection: dict[int, tuple[int, int]]) -> S3TModel:
        """A read-only system made ONLY of the checkpoints ``{shard: (order, prefix_len)}`` select
        (generations as recorded in ``system_dir``); shards not listed are left out."""
        root = Path(system_dir)
        _, info = read_system_config(root)
        klass = SYSTEMS.get(info["method"], cls) if cls is S3TModel else cls
        source = (
            Ledger(root / LEDGER_FILE).read_state()
            if (root / LEDGER_FILE).is_file()
            else SystemState.from_dict(read_json(root / SERVED_FILE)["state"])
        )
        state = source.copy()
        for j in range(len(state.prefix)):
            state.prefix[j] = [0] * len(state.prefix[j])
            state.status[j] = "active" if j in selection else "dropped"
            if j in selection:
                b, p = selection[j]
                state.prefix[j][b] = p
        system = klass._build(root, info, state, None, None)
        system.ensemble.ensure([k for c in system._chains().values() for k in c])
        return system

    @classmethod
    def _build(cls, root: Path, info, state, ledger, assignment) -> S3TModel:
        config = cls.config_class.from_dict(read_system_config(root)[0])
        scheme = scheme_for(cls, config)
        base, tokenizer = load_base(root / BASE_DIR)
        layout = Layout(**info["layout"])
        ensemble = Ensemble(base, layout, config, scheme, loader=lambda key: load_checkpoint(root, key))
        parts = dict(info=info, state=state, ensemble=ensemble, tokenizer=tokenizer)
        return cls(root, config=config, ledger=ledger, assignment=assignment, **parts)

    # -- inference ------------------------------------------------------------------------------
    @property
    def read_only(self) -> bool:
        return self.ledger is None or self.assignment is None

    @property
    def served(self) -> dict[int, dict]:
        out = {}
        for j in range(self.config.num_shards):
            s = self.state.served(j)
            out[j] = {"order": s[0], "prefix_len": s[1]} if s else {"status": self.state.status[j]}
        return out

    def served_records(self) -> list[dict]:
        """``served`` as a list (JSON files: no dict keyed by numbers)."""
        return served_records(self.state, self.config.num_shards)

    def pending_shards(self) -> list[int]:
        return [j for j, s in enumerate(self.state.status) if s == "pending"]

    def _chains(self) -> dict[int, list[CheckpointKey]]:
        chains = {}
        for j in range(self.config.num_shards):
            s = self.state.served(j)
            if s:
                chains[j] = self.state.keys(j, s[0], self.scheme.served_stages(s[1]))
        return chains

    def encode(self, data) -> EncodedData:
        if isinstance(data, EncodedData):
            return data
        if isinstance(data, str):
            data = [data]
        if isinstance(data, (list, tuple)):
            return EncodedData.from_texts(data, self.tokenizer, self.config.max_length)
        return EncodedData.from_dataset(data, self.tokenizer, self.config.max_length)

    def logits(self, data) -> torch.Tensor:
        """Mean of the served shards' logits for a Dataset (``text`` column), texts, or EncodedData."""
        return self.ensemble.logits(self._chains(), self.encode(data), self.config.per_device_eval_batch_size)

    def predict(self, data) -> Predictions:
        enc = self.encode(data)
        logits = self.logits(enc).numpy()
        labels = enc.labels if (enc.labels >= 0).all() else None
        return Predictions(logits=logits, predictions=logits.argmax(-1), label_ids=labels)

    def evaluate(self, dataset, *, record: bool = True, split: str = "test") -> dict:
        """Accuracy (fraction) on a labelled Dataset; recorded in report.json (original / unlearned)."""
        out = self.predict(dataset)
        if out.label_ids is None:
            raise ValueError("evaluate needs a 'label' column")
        acc = float((out.predictions == out.label_ids).mean())
        if record and not self.read_only:
            with self._mutation():
                report = record_evaluation(load_report(self.system_dir), acc, len(out.predictions), split)
                report["system"] = system_summary(self.state, self.config.num_shards)
                save_report(self.system_dir, report)
        return {"accuracy": acc, "n": int(len(out.predictions))}

    # -- deletion -------------------------------------------------------------------------------
    def _require_writable(self, what: str) -> None:
        if self.read_only:
            raise ReadOnlySystemError(
                f"{what} needs the system's private files ({ASSIGNMENT_FILE}, {LEDGER_FILE}), which this copy "
                f"of {self.system_dir} lacks (a published system is inference-only)"
            )

    def plan_deletion(self, ids) -> DeletionPlan:
        """What ``delete(ids)`` would do, without doing it."""
        self._require_writable("plan_deletion")
        ids = self.assignment.check_known(ids)
        already = self.ledger.deleted_among(ids)
        return plan_deletion(self.state, self.assignment, self.orders, ids, already, self.config)

    def delete(
        self, ids, *, request_id: str | None = None, retrain: bool = True, train_dataset=None
    ) -> DeletionResult:
        """Forget ``ids`` exactly. Unknown ids raise ``ForgetRequestError`` before anything changes;
        replaying a request (same ``request_id``, default: derived from the ids) changes nothing but
        finishing a retrain a killed request left pending. Requests on one system run one at a time
        (the system lock; ``lock_timeout`` says how long to wait, then ``BusyError``)."""
        start = time.perf_counter()
        self._require_writable("delete")
        ids = self.assignment.check_known(ids)
        rid = request_id or request_id_for(ids)
        with self._mutation():
            previous, plan, seq = commit_deletion(self.ledger, self.assignment, self.orders, self.config, ids, rid)
            if previous is not None:
                result = replayed_result(previous, ids, rid, self.served, start)
            else:
                debug_pause("after_commit")
                self._apply_cut(plan, start)
                result = DeletionResult(
                    rid, seq, plan.action, plan.new_ids, plan.already_deleted, plan.affected, self.served
                )
            if pending_jobs(self.state, self.config.num_slices, self.config.on_cut):
                self._retrain_or_defer(result, retrain, train_dataset)
        result.seconds = time.perf_counter() - start
        return result

    def _apply_cut(self, plan: DeletionPlan, start: float) -> None:
        """After the commit: serve the plan's state, drop and delete the purged checkpoints, and
        update ``active_prefixes.json`` and the report (unlearning time counted from ``start``)."""
        self.state = plan.new_state
        self.ensemble.forget(plan.purge)
        for key in plan.purge:
            (self.system_dir / key.relpath).unlink(missing_ok=True)
        publish(self.system_dir, self.ledger, unlearn_s=time.perf_counter() - start)

    def _retrain_or_defer(self, result: DeletionResult, retrain: bool, train_dataset) -> None:
        """Run the pending retrains when asked to and training data is at hand; else record them
        as pending in ``result`` (with a warning if a retrain was asked for)."""
        if retrain and (train_dataset is not None or self._train_source is not None or self._train_data):
            result.retrained = self.retrain_pending(train_dataset)
            result.served = self.served
            return
        result.pending_retrain = [
            asdict(j) for j in pending_jobs(self.state, self.config.num_slices, self.config.on_cut)
        ]
        if retrain:
            warnings.warn(
                "deletion served exactly, but the retrain it needs has no training data: the affected "
                "shard(s) stay out of the ensemble until retrain_pending(train_dataset) runs",
                stacklevel=3,  # the caller of delete()
            )

    def attach_training_data(self, train_dataset) -> None:
        """The private training split (a Dataset, or a callable returning it), used by retrains only."""
        self._train_source, self._train_data = train_dataset, None

    def _training_data(self, train_dataset=None) -> EncodedData:
        if train_dataset is not None:
            self.attach_training_data(train_dataset)
        if self._train_data is None:
            source = self._train_source
            if source is None:
                raise MissingTrainingDataError("a retrain needs the private training split: pass train_dataset=")
            data = source() if callable(source) else source
            known = set(data["id"])
            missing = [i for i in self.assignment.ids if i not in known]
            if missing:
                raise MissingTrainingDataError(
                    f"the training data lacks {len(missing)} assigned id(s), e.g. {missing[:3]}"
                )
            self._train_data = EncodedData.from_dataset(data, self.tokenizer, self.config.max_length)
        return self._train_data

    def retrain_pending(self, train_dataset=None) -> list[dict]:
        """Retrain every shard/order that deletions left without its full set of clean stages (also
        what a killed request left pending: ``hf-unlearn s3t resume``). Holds the system lock."""
        self._require_writable("retrain")
        with self._mutation():
            return self._retrain_locked(train_dataset)

    def _retrain_locked(self, train_dataset) -> list[dict]:
        done = []
        while True:
            jobs = pending_jobs(self.state, self.config.num_slices, self.config.on_cut)
            if not jobs:
                return done
            data = self._training_data(train_dataset)
            base, _ = load_base(self.system_dir / BASE_DIR)
            seq, deleted = self.ledger.last_seq(), set(self.ledger.deleted())
            trained, rows, gens = [], [], {}
            for job in jobs:
                t0 = time.perf_counter()
                order = self.orders[job.shard][job.order]
                gens[(job.shard, job.order)] = g = next_generation(self.state, job)
                prior_keys = self.state.keys(job.shard, job.order, range(job.from_stage))
                self.ensemble.ensure(prior_keys)
                prior = [self.ensemble.checkpoints[k] for k in prior_keys]
                unit = retrain_unit(job, order, g, self.assignment, deleted, seq, prior)
                ckpts = train_unit(base, data, unit, self.layout, self.config, self.scheme, self.system_dir)
                trained += ckpts
                rows += [c.meta for c in ckpts]
                done.append({**asdict(job), "generation": g, "seconds": round(time.perf_counter() - t0, 3)})
            new_state = commit_retrain(self.ledger, jobs, gens, rows, seq, self.config.num_slices)
            if new_state is None:  # a request arrived meanwhile: train again
                continue
            self.state = new_state
            for c in trained:
                self.ensemble.add(c)
            publish(self.system_dir, self.ledger)

    def audit(self, ids) -> dict:
        """Per id: shard, slice, deletion request, and for every active stage whether it trained on it."""
        self._require_writable("audit")
        ids, records, salt = self.assignment.check_known(ids), self.ledger.audit_records(), _salt_of(self.system_dir)
        report = audit_ids(ids, assignment=self.assignment, orders=self.orders, salt=salt, **records)
        return with_problems(report, find_problems(self.system_dir, self.ledger))

    def requests(self) -> list[dict]:
        self._require_writable("requests")
        return self.ledger.requests()

    # -- persistence ----------------------------------------------------------------------------
    def save_pretrained(self, save_dir, *, include_private: bool = True) -> Path:
        """Write the whole system to ``save_dir`` (under the system lock, after a repair);
        ``include_private=False`` leaves out the assignment, the ledger and the commitment salt (what
        the Hub publisher uploads: the copy is inference-only)."""
        save_dir = Path(save_dir)
        with contextlib.nullcontext() if self.read_only else self._mutation():
            if save_dir.resolve() == self.system_dir.resolve():
                return save_dir
            rels = [k.relpath for k in self.state.active_keys()]
            return copy_system(self.system_dir, save_dir, rels, include_private and not self.read_only)

    def fingerprint_ok(self, train_dataset) -> bool:
        return fingerprint_dataset(train_dataset) == self.info.get("fingerprints", {}).get("private_train")

    def __repr__(self) -> str:
        mode = "read-only" if self.read_only else "writable"
        return f"{type(self).__name__}({str(self.system_dir)!r}, {mode}, served={self.served})"


SYSTEMS[S3TModel.method] = S3TModel
