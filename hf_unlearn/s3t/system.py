"""``S3TModel``: an exact-unlearning ensemble of shard models (S3T; SISA subclasses it).

Inference is the mean of the served shards' logits. ``delete(ids)`` records the request in the
ledger and cuts the affected orders in the same SQLite transaction, then (only if a shard lost
every stage) retrains that shard without the deleted ids. ``audit(ids)`` rebuilds the proof
that no active checkpoint was trained on them.
"""

from __future__ import annotations

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
from .audit import audit_ids
from .checkpoints import CheckpointKey, load_checkpoint
from .config import S3TConfig
from .deletion import DeletionPlan, SystemState, next_generation, pending_jobs, plan_deletion, request_id_for
from .encoding import EncodedData
from .engine import Ensemble
from .ledger import LEDGER_FILE, Ledger, debug_pause
from .persistence import BASE_DIR, SERVED_FILE, copy_system, load_base, read_json, read_system_config, write_json
from .report import forget_section, load_report, record_evaluation, save_report
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

    # -- construction ---------------------------------------------------------------------------
    @classmethod
    def train(cls, config, model, tokenizer, train_dataset, eval_dataset=None, **kwargs):
        """Train a system in ``config.output_dir`` (every rank under ``accelerate launch``); returns it on
        rank 0, None elsewhere. See ``hf_unlearn.s3t.training.train_system`` for the keyword arguments."""
        from .training import train_system

        return train_system(cls, config, model, tokenizer, train_dataset, eval_dataset=eval_dataset, **kwargs)

    @classmethod
    def from_pretrained(cls, system_dir, *, train_dataset=None) -> S3TModel:
        """Load a system. Without ``assignment.json`` and ``ledger.sqlite`` it is read-only (inference)."""
        root = Path(system_dir)
        _, info = read_system_config(root)
        klass = SYSTEMS.get(info["method"], cls) if cls is S3TModel else cls
        private = (root / LEDGER_FILE).is_file() and (root / ASSIGNMENT_FILE).is_file()
        ledger = Ledger(root / LEDGER_FILE) if private else None
        state = ledger.read_state() if ledger else SystemState.from_dict(read_json(root / SERVED_FILE)["state"])
        system = klass._build(root, info, state, ledger, Assignment.load(root) if private else None)
        if ledger is not None:  # finish what a crash between commit and clean-up left undone
            system._export_served()
            for key, rec in ledger.checkpoint_records().items():
                if rec["purged_at"]:
                    (root / key.relpath).unlink(missing_ok=True)
            if ((load_report(root).get("forget") or {}).get("count") or 0) != len(ledger.deleted()):
                system._update_report()
        keys = state.active_keys() if klass.preload_all else [k for c in system._chains().values() for k in c]
        system.ensemble.ensure(keys)
        if train_dataset is not None:
            system.attach_training_data(train_dataset)
        return system

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
        scheme = cls.scheme_class()
        base, tokenizer = load_base(root / BASE_DIR)
        layout = Layout(**info["layout"])
        ensemble = Ensemble(base, layout, config, scheme, loader=lambda key: load_checkpoint(root, key))
        return cls(
            root,
            config=config,
            info=info,
            state=state,
            ensemble=ensemble,
            tokenizer=tokenizer,
            ledger=ledger,
            assignment=assignment,
        )

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
        return [{"shard": j, **entry} for j, entry in self.served.items()]

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
            report = record_evaluation(load_report(self.system_dir), acc, len(out.predictions), split)
            report["system"] = self._system_summary()
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
        replaying a request (same ``request_id``, default: derived from the ids) is a no-op."""
        start = time.perf_counter()
        self._require_writable("delete")
        ids = self.assignment.check_known(ids)
        rid = request_id or request_id_for(ids)
        previous, plan, seq = commit_deletion(self.ledger, self.assignment, self.orders, self.config, ids, rid)
        if previous is not None:
            return replayed_result(previous, ids, rid, self.served, start)
        debug_pause("after_commit")
        self._apply_cut(plan, start)
        result = DeletionResult(rid, seq, plan.action, plan.new_ids, plan.already_deleted, plan.affected, self.served)
        if plan.jobs:
            self._retrain_or_defer(result, plan, retrain, train_dataset)
        result.seconds = time.perf_counter() - start
        return result

    def _apply_cut(self, plan: DeletionPlan, start: float) -> None:
        """After the commit: serve the plan's state, drop and delete the purged checkpoints, and
        update ``served.json`` and the report (unlearning time counted from ``start``)."""
        self.state = plan.new_state
        self.ensemble.forget(plan.purge)
        for key in plan.purge:
            (self.system_dir / key.relpath).unlink(missing_ok=True)
        self._export_served()
        self._update_report(time.perf_counter() - start)

    def _retrain_or_defer(self, result: DeletionResult, plan: DeletionPlan, retrain: bool, train_dataset) -> None:
        """Run the retrains ``plan`` needs when asked to and training data is at hand; else record them
        as pending in ``result`` (with a warning if a retrain was asked for)."""
        if retrain and (train_dataset is not None or self._train_source is not None or self._train_data):
            result.retrained = self.retrain_pending(train_dataset)
            result.served = self.served
            return
        result.pending_retrain = [asdict(j) for j in plan.jobs]
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
        """Retrain every shard/order that deletions left without its full set of clean stages."""
        self._require_writable("retrain")
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
            self._export_served()
            self._update_report()

    def audit(self, ids) -> dict:
        """Per id: shard, slice, deletion request, and for every active stage whether it trained on it."""
        self._require_writable("audit")
        ids = self.assignment.check_known(ids)
        requests = {r["seq"]: r["request_id"] for r in self.ledger.requests()}
        return audit_ids(
            ids,
            assignment=self.assignment,
            orders=self.orders,
            state=self.ledger.read_state(),
            deleted=self.ledger.deleted(),
            records=self.ledger.checkpoint_records(),
            requests=requests,
        )

    def requests(self) -> list[dict]:
        self._require_writable("requests")
        return self.ledger.requests()

    # -- persistence ----------------------------------------------------------------------------
    def _system_summary(self) -> dict:
        active = [j for j in range(self.config.num_shards) if self.state.served(j)]
        return {"served": self.served_records(), "active_shards": len(active), "num_shards": self.config.num_shards}

    def _export_served(self) -> None:
        write_json(self.system_dir / SERVED_FILE, {"state": self.state.to_dict(), "served": self.served_records()})

    def _update_report(self, unlearn_s: float | None = None) -> None:
        report = load_report(self.system_dir)
        report["forget"] = forget_section(self.ledger.deleted(), self.ledger.last_request_date())
        report["system"] = self._system_summary()
        if unlearn_s is not None:
            report.setdefault("timings", {})["unlearn_s"] = round(unlearn_s, 4)
        if report["forget"] and report.get("evaluation"):
            report["evaluation"]["unlearned_is_stale"] = True  # evaluate() again to refresh it
        save_report(self.system_dir, report)

    def save_pretrained(self, save_dir, *, include_private: bool = True) -> Path:
        """Write the whole system to ``save_dir``; ``include_private=False`` leaves out the assignment
        and the ledger (what the Hub publisher uploads: the copy is inference-only)."""
        save_dir = Path(save_dir)
        if not self.read_only:
            self._export_served()
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
