"""The log writer: a ``TrainerCallback`` that writes the unlearning log of a run.

It decides WHEN things are written; ``recorders.py`` decides WHAT. The model and the optimizer
come from the callback arguments (the unwrapped model and the optimizer the Trainer steps), so
the writer works with any ``Trainer`` that feeds its recorders (``UnlearnableTrainer`` does, in
``training_step`` and ``compute_loss``).

- ``on_train_begin``: a fresh run resets the log and writes its header (``meta.json``, w_0, the
  per-sample subset); a resumed run removes the manifest and truncates the log to the
  checkpoint's step;
- ``on_pre_optimizer_step`` / ``on_optimizer_step``: the weights before and after the update
  (deltas) and the step's transcript line, per-sample gradients and learning rate;
- ``on_step_end``: the unlearning-error proxy every ``error_proxy_every`` steps; buffered records
  are flushed before a checkpoint is written (``control.should_save``) and again ``on_save`` (a
  save decided after the step, e.g. ``save_strategy="best"``), so a resumed run finds the log
  complete up to its checkpoint;
- ``on_train_end``: the last records; once every rank has flushed (a barrier when
  ``torch.distributed`` is initialized), the main rank writes the footer of ``meta.json`` (final
  fingerprint, the optimizer's description and final state, ``global_step`` and the transcript
  parts) and then, LAST, ``manifest.json``: the sha256 of every file, recorded while writing (the
  files of an earlier, killed process or of other ranks are hashed there).
"""

from __future__ import annotations

import datetime as _dt
import json
import math
import time
import uuid
from pathlib import Path

import torch
from transformers import TrainerCallback

from ..artifacts import library_versions, write_manifest
from ..data.forget import read_id_file
from ..data.loading import fingerprint_dataset
from ..models import weights_digest
from .data_order import KeyedDataset
from .error_proxy import distance_from_initial, dominant_hessian_eigenvalue, error_proxy
from .log_store import (
    FORMAT_VERSION,
    LOG_MANIFEST_KIND,
    META_FILE,
    atomic_save_tensors,
    atomic_write_json,
    initial_weights,
    load_tensors,
    model_structure,
    reset_log,
    sorted_parts,
    trainable_named,
    truncate_log,
)
from .optimizer_record import FINAL_STATE, describe_optimizer, save_final_state
from .recorders import Recorders

INITIAL_WEIGHTS = "initial_weights.safetensors"


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def _barrier() -> None:
    """Wait for every rank (a no-op outside an initialized ``torch.distributed`` process group)."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.barrier()


class LogWriter(TrainerCallback):
    """Writes the unlearning log under ``root`` from the training events.

    ``train_dataset`` and ``data_collator`` describe the data (the header's fingerprint, the fixed
    batch of the error proxy); ``per_sample`` is the trainer's per-sample gradient hook, if any;
    ``meta_extra`` adds entries to ``meta.json`` (never over one of its own keys; never ids).
    """

    def __init__(self, root: str | Path, args, *, train_dataset, data_collator, per_sample=None, meta_extra=None):
        self.root, self.args = Path(root), args
        self.meta_extra = dict(meta_extra or {})
        self.train_dataset, self.data_collator, self.per_sample = train_dataset, data_collator, per_sample
        deletable = set(read_id_file(args.deletable_ids_file)) if args.deletable_ids_file else None
        self.records = Recorders(self.root, args, deletable)
        self.last_lr = args.learning_rate
        self.last_error_proxy: float | None = None
        self._sigmas: list[float] = []
        self._power_iteration: dict = {}  # the last dominant eigenvector: each evaluation starts from it
        self._initial_trainable: list[torch.Tensor] | None = None
        self._proxy_inputs: dict | None = None

    # ---- callback events --------------------------------------------------------------------------
    def on_train_begin(self, args, state, control, model=None, **kwargs):
        named = trainable_named(model)
        if state.global_step == 0:
            self.write_header(model)
        else:
            truncate_log(self.root, state.global_step, self.records.hashes)
        if args.record_error_proxy:
            self._initial_trainable = self._w0_of(named, fresh=state.global_step == 0)
        self.records.reference = None
        if args.record_deltas:
            self.records.take_reference(named)

    def on_pre_optimizer_step(self, args, state, control, model=None, **kwargs):
        if args.record_deltas and self.records.deletable is not None and self.records.step_touches_deletable():
            self.records.take_reference(trainable_named(model))

    def on_optimizer_step(self, args, state, control, model=None, optimizer=None, **kwargs):
        self.last_lr = float(optimizer.param_groups[0]["lr"])
        self.records.end_step(state.global_step + 1, self.last_lr, trainable_named(model))

    def on_step_end(self, args, state, control, model=None, **kwargs):
        self.maybe_record_error_proxy(model, state.global_step)
        if control.should_save:
            self.records.flush(state.global_step)

    def on_epoch_end(self, args, state, control, **kwargs):
        if control.should_save:
            self.records.flush(state.global_step)

    def on_save(self, args, state, control, **kwargs):
        self.records.flush(state.global_step)  # a no-op when on_step_end already flushed

    def on_train_end(self, args, state, control, model=None, optimizer=None, **kwargs):
        self.records.flush(state.global_step)
        self.records.writes.close()
        _barrier()  # every rank's parts are on disk before the main rank lists and hashes them
        self.write_footer(model, optimizer, state.global_step)
        self.write_manifest()
        _barrier()  # no rank reads the log before its manifest exists

    # ---- header and footer of meta.json (main rank) -----------------------------------------------
    def write_header(self, model: torch.nn.Module) -> None:
        """Fresh run: reset the log, write ``meta.json``, w_0 and the per-sample subset."""
        args = self.args
        if args.process_index != 0:
            return
        reset_log(self.root, self.records.hashes)
        with self.records.recording():
            self._write_header(model)

    def _write_header(self, model: torch.nn.Module) -> None:
        args = self.args
        atomic_save_tensors(self.root / INITIAL_WEIGHTS, initial_weights(model))
        named = trainable_named(model)
        meta = {
            "format_version": FORMAT_VERSION,
            "log_id": uuid.uuid4().hex,
            "created": _now(),
            "model_class": type(model).__name__,
            "fingerprint": weights_digest(named),
            "final_fingerprint": None,
            "structure": model_structure(named),
            "recorders": args.recorders,
            "delta_dtype": args.delta_dtype,
            "deletable_only": self.records.deletable is not None,
            "per_sample_fraction": args.per_sample_fraction if args.record_per_sample else None,
            "per_sample_seed": args.per_sample_seed if args.record_per_sample else None,
            "per_sample_module_share": args.per_sample_module_share if args.record_per_sample else None,
            "per_sample_k": self.per_sample.num_entries if self.per_sample is not None else None,
            "seed": args.seed,
            "data_seed": args.data_seed if args.data_seed is not None else args.seed,
            "per_device_train_batch_size": args.per_device_train_batch_size,
            "gradient_accumulation_steps": args.gradient_accumulation_steps,
            "world_size": args.world_size,
            "num_train_examples": len(self.train_dataset),
            "train_fingerprint": fingerprint_dataset(self.train_dataset),
            "training_args": json.loads(args.to_json_string()),
            "versions": library_versions(),
        }
        meta.update({k: v for k, v in self.meta_extra.items() if k not in meta})
        atomic_write_json(self.root / META_FILE, meta)
        if self.per_sample is not None:
            index = self.per_sample.subset_index()
            atomic_save_tensors(
                self.root / "per_sample" / "index.safetensors", index, metadata={"order": json.dumps(list(index))}
            )

    def write_footer(self, model: torch.nn.Module, optimizer, global_step: int) -> None:
        """End of training (main rank, every rank flushed): final fingerprint, optimizer description
        and final state, and what the transcript must cover: ``global_step`` and its part files."""
        if self.args.process_index != 0 or not (self.root / META_FILE).is_file():
            return
        meta = json.loads((self.root / META_FILE).read_text())
        named = trainable_named(model)
        meta["final_fingerprint"] = weights_digest(named)
        with self.records.recording():
            if self.args.record_deltas and optimizer is not None:
                meta["optimizer"] = describe_optimizer(optimizer, named, self.args.max_grad_norm)
                meta["optimizer"]["final_state"] = save_final_state(self.root / FINAL_STATE, optimizer, named)
            meta["global_step"] = global_step
            parts = sorted_parts(self.root / "transcript", "jsonl")
            meta["transcript_parts"] = sorted(f"transcript/{p.name}" for p in parts)
            meta["completed"] = _now()
            atomic_write_json(self.root / META_FILE, meta)

    def write_manifest(self) -> None:
        """LAST (main rank): ``manifest.json`` over every file of the log; a log with it is complete."""
        if self.args.process_index != 0 or not (self.root / META_FILE).is_file():
            return
        log_id = json.loads((self.root / META_FILE).read_text()).get("log_id")
        write_manifest(self.root, self.records.hashes, kind=LOG_MANIFEST_KIND, extra={"log_id": log_id})

    # ---- the unlearning-error proxy (main rank) ---------------------------------------------------
    def _w0_of(self, named: list[tuple[str, torch.Tensor]], fresh: bool) -> list[torch.Tensor]:
        """w_0 of the trainable parameters: the weights now on a fresh run, else the log's copy."""
        if fresh:
            return [p.detach().clone() for _, p in named]
        saved = load_tensors(self.root / INITIAL_WEIGHTS)
        return [saved[n].to(p.device, p.dtype) for n, p in named]

    def maybe_record_error_proxy(self, model: torch.nn.Module, step: int) -> None:
        args = self.args
        if not args.record_error_proxy or step % args.error_proxy_every or args.process_index != 0:
            return
        started = time.perf_counter()
        eig = dominant_hessian_eigenvalue(
            model,
            self._proxy_batch(),
            args.error_proxy_power_iters,
            seed=args.seed,
            warm=self._power_iteration,
            hvp=args.error_proxy_hvp,
        )
        sigma = math.sqrt(abs(eig))
        self._sigmas.append(sigma)
        dist = distance_from_initial([p for _, p in trainable_named(model)], self._initial_trainable)
        lr, rolling = self.last_lr, sum(self._sigmas) / len(self._sigmas)
        self.last_error_proxy = error_proxy(lr, step, dist, sigma)
        self.records.add_error_proxy(
            {
                "step": step,
                "lr": lr,
                "distance_from_init": dist,
                "hessian_max_eig": eig,
                "sigma": sigma,
                "error_proxy": self.last_error_proxy,
                "error_proxy_rolling": error_proxy(lr, step, dist, rolling),
                "hessian_products": self._power_iteration.get("products"),
                "gradient_passes": self._power_iteration.get("gradients"),
                "seconds": round(time.perf_counter() - started, 4),
            }
        )

    def _proxy_batch(self) -> dict:
        """A fixed batch of ``error_proxy_batch_size`` training examples (rows drawn with the seed)."""
        if self._proxy_inputs is None:
            n = min(self.args.error_proxy_batch_size, len(self.train_dataset))
            gen = torch.Generator().manual_seed(self.args.seed)
            rows = torch.randperm(len(self.train_dataset), generator=gen)[:n]
            batch = self.data_collator(KeyedDataset(self.train_dataset).__getitems__([(int(r), 0, 0) for r in rows]))
            batch.pop("_order", None)
            self._proxy_inputs = {k: v.to(self.args.device) for k, v in batch.items()}
        return self._proxy_inputs
