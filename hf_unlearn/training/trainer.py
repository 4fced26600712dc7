"""``UnlearnableTrainer``: a ``transformers.Trainer`` that prepares for deletion.

It adds the weight-change penalties of Thudi et al. ("Unrolling SGD", EuroS&P 2022), carries
example ids with every batch (they never reach the model), trains in a deterministic,
recorded data order (so the retrain twin can replay it without the forgotten ids), and
records the unlearning log (``recorders.py``). Only documented hooks are overridden:
``get_train_dataloader``, ``training_step``, ``compute_loss``, ``prediction_step``, ``log``,
``save_model``, ``create_model_card`` and callbacks.
"""

from __future__ import annotations

import datetime as _dt
import json
import math
import os
from pathlib import Path
from typing import Iterable

import torch
from transformers import Trainer, TrainerCallback

from ..artifacts import library_versions
from ..data.forget import read_id_file
from ..data.loading import fingerprint_dataset
from .arguments import UnlearnableTrainingArguments
from .data_order import DataOrder, DataOrderSampler, IdCarryingCollator, KeyedDataset, OrderedDataLoader
from .error_proxy import distance_from_initial, error_proxy, dominant_hessian_eigenvalue
from .log_store import (
    FORMAT_VERSION,
    LOG_DIRNAME,
    atomic_save_tensors,
    atomic_write_json,
    model_structure,
    reset_log,
    trainable_named,
    weights_fingerprint,
)
from .optimizer_record import FINAL_STATE, describe_optimizer, grad_norm, save_final_state
from .penalties import unlearnable_loss
from .recorders import LogRecorder


def batch_seed(seed: int, epoch: int, pos: int) -> int:
    """Seed of the random state (dropout) of micro-batch ``pos`` of ``epoch``: independent of what ran before."""
    return (seed * 1_000_003 + epoch * 100_003 + pos * 7_919 + 17) % (2**62)


class UnlearnableTrainer(Trainer):
    """Trainer with SD-of-logits / L2-to-init penalties, id-carrying batches and an unlearning log.

    Extra keyword arguments:
        replay_order: ``{epoch: [[ids of a micro-batch], ...]}`` to train in a recorded order
            (the retrain twin) instead of a fresh order from the seed;
        drop_ids: ids removed from the replayed order (batch boundaries kept, empty batches skipped);
        log_dir: where to write the log (default ``output_dir/unlearning_log``).
    """

    def __init__(self, model=None, args: UnlearnableTrainingArguments | None = None, data_collator=None,
                 train_dataset=None, eval_dataset=None, processing_class=None, *,
                 replay_order: dict[int, list[list[str]]] | None = None, drop_ids: Iterable[str] = (),
                 log_dir: str | os.PathLike | None = None, **kwargs):
        if not isinstance(args, UnlearnableTrainingArguments):
            raise TypeError("UnlearnableTrainer needs args=UnlearnableTrainingArguments(...)")
        if train_dataset is not None:
            self._check_train_dataset(train_dataset)
        if data_collator is None and processing_class is not None:
            data_collator = IdCarryingCollator(processing_class)
        super().__init__(model=model, args=args, data_collator=data_collator, train_dataset=train_dataset,
                         eval_dataset=eval_dataset, processing_class=processing_class, **kwargs)
        self.loss_is_scaled_for_ga = False  # compute_loss returns a per-micro-batch mean
        self.log_root = Path(log_dir) if log_dir else Path(args.output_dir) / LOG_DIRNAME
        self.deletable_ids = set(read_id_file(args.deletable_ids_file)) if args.deletable_ids_file else None
        named = trainable_named(self.model)
        self._initial_state = {k: v.detach().cpu().clone() for k, v in self.model.state_dict().items()}
        self._initial_fingerprint = weights_fingerprint(named)
        needs_w0 = args.l2_init_mu > 0 or args.record_error_proxy
        self._initial_trainable = [p.detach().clone() for _, p in named] if needs_w0 else None
        self._metric_sums: dict[str, float] = {}
        self._metric_count = 0
        self._last_lr = args.learning_rate
        self._sigmas: list[float] = []
        self.data_order = None
        if train_dataset is not None:
            self.data_order = DataOrder(train_dataset["id"], args.per_device_train_batch_size,
                                        args.data_seed if args.data_seed is not None else args.seed,
                                        args.world_size, replay=replay_order, drop_ids=drop_ids)
        self.per_sample = None
        if args.record_per_sample:
            from .per_sample import PerSampleSubsetGradients

            self.per_sample = PerSampleSubsetGradients(self.model, args.per_sample_fraction, args.per_sample_seed).attach()
        self.recorder = LogRecorder(self, self.log_root)
        self.add_callback(_LogSetup(self))
        self.add_callback(self.recorder)

    # ---- data -----------------------------------------------------------------------------------
    @staticmethod
    def _check_train_dataset(ds) -> None:
        cols = getattr(ds, "column_names", None)
        if cols is None:
            raise TypeError("train_dataset must be a datasets.Dataset with 'id' and 'label' columns")
        if "id" not in cols:
            raise ValueError(f"train_dataset has no 'id' column (columns: {cols}); load data with hf_unlearn.data")
        if "label" not in cols and "labels" not in cols:
            raise ValueError(f"train_dataset has no 'label' column (columns: {cols})")
        if len(set(ds["id"])) != len(ds):
            raise ValueError("train_dataset ids are not unique")

    def get_train_dataloader(self):
        if self.train_dataset is None:
            raise ValueError("UnlearnableTrainer: training requires a train_dataset")
        sampler = DataOrderSampler(self.data_order, rank=self.args.process_index, on_epoch=self.recorder.record_order)
        return OrderedDataLoader(KeyedDataset(self.train_dataset), batch_sampler=sampler, collate_fn=self.data_collator,
                                 num_workers=self.args.dataloader_num_workers, pin_memory=self.args.dataloader_pin_memory and torch.cuda.is_available())

    def trainable_parameters(self) -> list[tuple[str, torch.nn.Parameter]]:
        return trainable_named(self.model)

    # ---- loss ------------------------------------------------------------------------------------
    def current_sd_lambda(self, epoch: int | None) -> float:
        return self.args.sd_lambda / (self.args.sd_lambda_decay ** (epoch or 0))

    def training_step(self, model, inputs, num_items_in_batch=None):
        order = inputs.pop("_order", None)
        if order is None:
            raise KeyError("batch carries no ids: use the trainer's own data loader and IdCarryingCollator")
        self._order = order
        torch.manual_seed(batch_seed(self.args.seed, order["epoch"], order["pos"]))
        ga = self.current_gradient_accumulation_steps
        if self.per_sample is not None:
            self.per_sample.begin(scale=len(order["ids"]) * ga)
        loss = super().training_step(model, inputs, num_items_in_batch)
        if self.args.record_deltas and self.args.max_grad_norm and self.accelerator.sync_gradients:
            # the norm clipping will see (step replay recomputes the clip without the forget examples)
            self.recorder.grad_norm = grad_norm(p for _, p in self.trainable_parameters())
        if self.per_sample is not None:
            self.recorder.add_per_sample(self.per_sample.collect())
        self.recorder.add_micro_batch(order["ids"], order["epoch"], order["pos"], len(order["ids"]) * ga * self.args.world_size)
        return loss

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        inputs = dict(inputs)
        inputs.pop("_order", None)
        labels = inputs.pop("labels")
        outputs = model(**inputs)
        training = model.training
        order = getattr(self, "_order", None) if training else None
        params = initial = None
        if training and self.args.l2_init_mu:
            params = [p for _, p in self.trainable_parameters()]
            initial = self._initial_trainable
        terms = unlearnable_loss(
            outputs.logits, labels,
            sd_lambda=self.current_sd_lambda(order["epoch"] if order else 0) if training else 0.0,
            l2_init_mu=self.args.l2_init_mu if training else 0.0, params=params, initial=initial,
        )
        if training:
            for key, value in (("ce_loss", terms.ce), ("sd_penalty", terms.sd), ("l2_penalty", terms.l2)):
                self._metric_sums[key] = self._metric_sums.get(key, 0.0) + float(value)
            self._metric_count += 1
            if self.args.record_learning_events and order is not None:
                self.recorder.add_events(order["ids"], outputs.logits, labels, self.state.global_step + 1, order["epoch"])
        return (terms.total, outputs) if return_outputs else terms.total

    def prediction_step(self, model, inputs, prediction_loss_only, ignore_keys=None):
        inputs = {k: v for k, v in inputs.items() if k != "_order"}
        if self.per_sample is not None:
            with self.per_sample.paused():
                return super().prediction_step(model, inputs, prediction_loss_only, ignore_keys)
        return super().prediction_step(model, inputs, prediction_loss_only, ignore_keys)

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        if "loss" in logs and self._metric_count:
            for key, total in self._metric_sums.items():
                logs[key] = round(total / self._metric_count, 6)
            self._metric_sums, self._metric_count = {}, 0
            if self._sigmas:
                logs["error_proxy"] = self._last_proxy
        super().log(logs, start_time)

    # ---- unlearning-error proxy -------------------------------------------------------------------
    def maybe_record_error_proxy(self, step: int) -> None:
        args = self.args
        if not args.record_error_proxy or step % args.error_proxy_every or args.process_index != 0:
            return
        batch = self._proxy_batch()
        eig = dominant_hessian_eigenvalue(self.model, batch, args.error_proxy_power_iters, seed=args.seed)
        sigma = math.sqrt(abs(eig))
        self._sigmas.append(sigma)
        dist = distance_from_initial([p for _, p in self.trainable_parameters()], self._initial_trainable)
        lr = self._last_lr
        rolling = sum(self._sigmas) / len(self._sigmas)
        self._last_proxy = error_proxy(lr, step, dist, sigma)
        self.recorder.add_error_proxy({"step": step, "lr": lr, "distance_from_init": dist, "hessian_max_eig": eig,
                                       "sigma": sigma, "error_proxy": self._last_proxy,
                                       "error_proxy_rolling": error_proxy(lr, step, dist, rolling)})

    def _proxy_batch(self) -> dict:
        if not hasattr(self, "_proxy_inputs"):
            n = min(self.args.error_proxy_batch_size, len(self.train_dataset))
            rows = torch.randperm(len(self.train_dataset), generator=torch.Generator().manual_seed(self.args.seed))[:n]
            feats = KeyedDataset(self.train_dataset).__getitems__([(int(r), 0, 0) for r in rows])
            batch = self.data_collator(feats)
            batch.pop("_order", None)
            self._proxy_inputs = {k: v.to(self.args.device) for k, v in batch.items()}
        return self._proxy_inputs

    # ---- the log's meta data ------------------------------------------------------------------------
    def write_log_header(self) -> None:
        """Fresh run: reset the log, write ``meta.json``, w_0 and the per-sample subset (main rank)."""
        args = self.args
        if args.process_index != 0:
            return
        reset_log(self.log_root)
        atomic_save_tensors(self.log_root / "initial_weights.safetensors", self._initial_state)
        named = self.trainable_parameters()
        meta = {
            "format_version": FORMAT_VERSION,
            "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "model_class": type(self.model).__name__,
            "fingerprint": self._initial_fingerprint,
            "final_fingerprint": None,
            "structure": model_structure(named),
            "recorders": args.recorders,
            "delta_dtype": args.delta_dtype,
            "deletable_only": self.deletable_ids is not None,
            "per_sample_fraction": args.per_sample_fraction if args.record_per_sample else None,
            "per_sample_seed": args.per_sample_seed if args.record_per_sample else None,
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
        atomic_write_json(self.log_root / "meta.json", meta)
        if self.per_sample is not None:
            index = self.per_sample.subset_index()
            atomic_save_tensors(self.log_root / "per_sample" / "index.safetensors", index,
                                metadata={"order": json.dumps(list(index))})

    def finalize_log_meta(self) -> None:
        if self.args.process_index != 0 or not (self.log_root / "meta.json").is_file():
            return
        meta = json.loads((self.log_root / "meta.json").read_text())
        meta["final_fingerprint"] = weights_fingerprint(self.trainable_parameters())
        if self.args.record_deltas and self.optimizer is not None:
            named = self.trainable_parameters()
            meta["optimizer"] = describe_optimizer(self.optimizer, named, self.args.max_grad_norm)
            meta["optimizer"]["final_state"] = save_final_state(self.log_root / FINAL_STATE, self.optimizer, named)
        meta["global_step"] = self.state.global_step
        meta["completed"] = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
        atomic_write_json(self.log_root / "meta.json", meta)

    def save_model(self, output_dir: str | None = None, _internal_call: bool = False):
        """Save as usual, then replace the pickled ``training_args.bin`` by ``training_args.json``."""
        super().save_model(output_dir, _internal_call)
        out = Path(output_dir or self.args.output_dir)
        if self.args.should_save and out.is_dir():
            (out / "training_args.bin").unlink(missing_ok=True)
            atomic_write_json(out / "training_args.json", json.loads(self.args.to_json_string()))


    # ---- Hub: our card, and an allow-listed upload that never includes the log ---------------------
    def training_summary(self) -> dict:
        """What the training card says: penalties, recorders, seeds, versions, data fingerprint."""
        args = self.args
        metrics = {k: v for h in self.state.log_history for k, v in h.items() if k.startswith("eval_")}
        return {"base_model": getattr(self.model.config, "_name_or_path", None) or type(self.model).__name__,
                "dataset": {"source": None, "fingerprints": {"train": fingerprint_dataset(self.train_dataset)}
                            if self.train_dataset is not None else {}},
                "penalties": {"sd_lambda": args.sd_lambda, "sd_lambda_decay": args.sd_lambda_decay, "l2_init_mu": args.l2_init_mu},
                "recorders": args.recorders, "delta_dtype": args.delta_dtype,
                "per_sample_fraction": args.per_sample_fraction if args.record_per_sample else None,
                "seeds": {"seed": args.seed, "data_seed": args.data_seed}, "versions": library_versions(),
                "metrics": metrics, "num_train_examples": len(self.train_dataset) if self.train_dataset is not None else None,
                "epochs": args.num_train_epochs, "repo_id": args.hub_model_id}

    def create_model_card(self, *args, **kwargs):
        """Write hf_unlearn's training card (not the generic Trainer card) to ``output_dir/README.md``."""
        if not self.is_world_process_zero():
            return
        from ..cards import render_training_card

        render_training_card(self.training_summary(), self.args.output_dir)

    def push_to_hub(self, commit_message: str | None = "End of training", blocking: bool = True, token=None,
                    revision=None, **kwargs):
        """Upload the model, tokenizer and card only (allow-list): the unlearning log, checkpoints and
        trainer state stay on disk. Intermediate pushes are off (``hub_strategy="end"``) for the same reason."""
        if not self.is_world_process_zero():
            return None
        from huggingface_hub import upload_folder

        from ..cards.privacy import CONFIG_FILES, TOKENIZER_FILES, WEIGHT_PATTERNS

        if self.hub_model_id is None:
            self.init_hf_repo(token=token)
        self.create_model_card()
        return upload_folder(repo_id=self.hub_model_id, folder_path=self.args.output_dir, commit_message=commit_message,
                             token=token or self.args.hub_token, revision=revision or self.args.hub_revision,
                             run_as_future=not blocking,
                             allow_patterns=[*WEIGHT_PATTERNS, *CONFIG_FILES, *TOKENIZER_FILES, "README.md"],
                             ignore_patterns=["*/*"])  # top-level files only: never the log or checkpoints


class _LogSetup(TrainerCallback):
    """Writes the log header on a fresh run; records the learning rate of each step."""

    def __init__(self, trainer: UnlearnableTrainer):
        self.trainer = trainer

    def on_train_begin(self, args, state, control, **kwargs):
        if state.global_step == 0:
            self.trainer.write_log_header()

    def on_optimizer_step(self, args, state, control, **kwargs):
        self.trainer._last_lr = float(self.trainer.optimizer.param_groups[0]["lr"])
