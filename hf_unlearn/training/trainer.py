"""``UnlearnableTrainer``: a ``transformers.Trainer`` that prepares for deletion.

It adds the weight-change penalties of Thudi et al. ("Unrolling SGD", EuroS&P 2022), carries
example ids with every batch (they never reach the model), trains in a deterministic,
recorded data order (so the retrain twin can replay it without the forgotten ids), and
records the unlearning log (``log_writer.py``, a ``TrainerCallback``, feeds ``recorders.py``).
Only documented hooks are overridden: ``train`` (to pick the checkpoint to resume from),
``get_train_dataloader``, ``training_step``,
``compute_loss``, ``prediction_step``, ``log``, ``save_model``, ``create_model_card`` and
``push_to_hub``; version-specific Trainer attributes are reached through ``_compat.py``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path

import torch
from transformers import Trainer

from ..artifacts import TRAINING_ARGS_FILE, ids_digest, library_versions
from ..data.forget import ForgetRequestError, read_id_file
from ..data.loading import fingerprint_dataset
from . import _compat
from .arguments import UnlearnableTrainingArguments
from .checkpoints import CheckpointState, resolve_resume
from .data_order import DataOrder, DataOrderSampler, IdCarryingCollator, KeyedDataset, OrderedDataLoader
from .log_store import LOG_DIRNAME, atomic_write_json, trainable_named
from .log_writer import LogWriter
from .optimizer_record import grad_norm
from .penalties import unlearnable_loss

__all__ = ["UnlearnableTrainer", "batch_seed", "library_versions"]


def batch_seed(seed: int, epoch: int, pos: int) -> int:
    """Seed of the random state (dropout) of micro-batch ``pos`` of ``epoch``: independent of what ran before."""
    return (seed * 1_000_003 + epoch * 100_003 + pos * 7_919 + 17) % (2**62)


class UnlearnableTrainer(Trainer):
    """Trainer with SD-of-logits / L2-to-init penalties, id-carrying batches and an unlearning log.

    Extra keyword arguments:
        replay_order: ``{epoch: [[ids of a micro-batch], ...]}`` to train in a recorded order
            (the retrain twin) instead of a fresh order from the seed;
        drop_ids: ids removed from the replayed order (batch boundaries kept, empty batches skipped);
        log_dir: where to write the log (default ``output_dir/unlearning_log``);
        checkpoint_extra: recorded in every checkpoint's manifest;
        log_meta: more entries for the log's ``meta.json`` (never ids: the log is private, but its
            meta is what reports and audits quote), e.g. the ledgers ``hf-unlearn train
            --exclude_ledger`` excluded.

    ``args.exclude_ids_files``: every id they list is dropped from ``train_dataset`` here, before
    anything else (the data order, the log's fingerprint, the error proxy's batch) sees it; the log
    records ``excluded_ids`` = {count dropped, count listed, sha256 of the listed ids, the files}.

    Checkpoints hold no pickles (``training/checkpoints.py``); ``train(resume_from_checkpoint="latest")``
    resumes from the newest complete checkpoint.
    """

    def __init__(
        self,
        model=None,
        args: UnlearnableTrainingArguments | None = None,
        data_collator=None,
        train_dataset=None,
        eval_dataset=None,
        processing_class=None,
        *,
        replay_order: dict[int, list[list[str]]] | None = None,
        drop_ids: Iterable[str] = (),
        log_dir: str | os.PathLike | None = None,
        checkpoint_extra: dict | None = None,
        log_meta: dict | None = None,
        **kwargs,
    ):
        if not isinstance(args, UnlearnableTrainingArguments):
            raise TypeError("UnlearnableTrainer needs args=UnlearnableTrainingArguments(...)")
        self.excluded_ids: dict | None = None
        if train_dataset is not None:
            self._check_train_dataset(train_dataset)
            train_dataset, self.excluded_ids = without_excluded_ids(train_dataset, args.exclude_ids_files)
        if data_collator is None and processing_class is not None:
            data_collator = IdCarryingCollator(processing_class)
        super().__init__(
            model=model,
            args=args,
            data_collator=data_collator,
            train_dataset=train_dataset,
            eval_dataset=eval_dataset,
            processing_class=processing_class,
            **kwargs,
        )
        _compat.declare_loss_per_micro_batch(self)  # compute_loss returns a per-micro-batch mean
        self.log_root = Path(log_dir) if log_dir else Path(args.output_dir) / LOG_DIRNAME
        needs_w0 = args.l2_init_mu > 0
        self._initial_trainable = [p.detach().clone() for _, p in trainable_named(self.model)] if needs_w0 else None
        self._metric_sums: dict[str, float] = {}
        self._metric_count = 0
        self.data_order = self._data_order(train_dataset, replay_order, drop_ids)
        self.per_sample = None
        if args.record_per_sample:
            from .per_sample import PerSampleSubsetGradients

            self.per_sample = PerSampleSubsetGradients(
                self.model, args.per_sample_fraction, args.per_sample_seed, args.per_sample_module_share
            )
            self.per_sample.attach()
        self.log_writer = LogWriter(
            self.log_root,
            args,
            train_dataset=train_dataset,
            data_collator=self.data_collator,
            per_sample=self.per_sample,
            meta_extra={**(log_meta or {}), **({"excluded_ids": self.excluded_ids} if self.excluded_ids else {})},
        )
        self.records = self.log_writer.records
        self.add_callback(self.log_writer)
        self.checkpoint_state = CheckpointState(self, checkpoint_extra)
        self.add_callback(self.checkpoint_state)  # after the log writer: its on_save flushes first

    def train(self, resume_from_checkpoint=None, *args, **kwargs):
        """``Trainer.train``; ``resume_from_checkpoint="latest"`` (or ``True``) resumes from the newest
        COMPLETE checkpoint (half-written ones are skipped with a warning; none: from step 0), a path
        from that checkpoint once verified. Optimizer, scheduler and RNG states come from our files."""
        resume = resolve_resume(self.args.output_dir, resume_from_checkpoint, main=self.args.should_save)
        self.checkpoint_state.resume_from = resume
        return super().train(resume, *args, **kwargs)

    # ---- data -----------------------------------------------------------------------------------
    def _data_order(self, train_dataset, replay_order, drop_ids) -> DataOrder | None:
        """The seeded order of micro-batches, or the recorded one (minus ``drop_ids``) for a replay."""
        if train_dataset is None:
            return None
        args = self.args
        seed = args.data_seed if args.data_seed is not None else args.seed
        return DataOrder(
            train_dataset["id"],
            args.per_device_train_batch_size,
            seed,
            args.world_size,
            replay=replay_order,
            drop_ids=drop_ids,
        )

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
        sampler = DataOrderSampler(self.data_order, rank=self.args.process_index, on_epoch=self.records.record_order)
        return OrderedDataLoader(
            KeyedDataset(self.train_dataset),
            batch_sampler=sampler,
            collate_fn=self.data_collator,
            num_workers=self.args.dataloader_num_workers,
            pin_memory=self.args.dataloader_pin_memory and torch.cuda.is_available(),
        )

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
        ga = _compat.micro_batches_in_step(self)
        if self.per_sample is not None:
            self.per_sample.begin(scale=len(order["ids"]) * ga)
        loss = super().training_step(model, inputs, num_items_in_batch)
        if self.args.record_deltas and self.args.max_grad_norm and _compat.is_sync_step(self):
            # the norm clipping will see (step replay recomputes the clip without the forget examples)
            self.records.grad_norm = grad_norm(p for _, p in self.trainable_parameters())
        if self.per_sample is not None:
            self.records.add_per_sample(self.per_sample.collect())
        self.records.add_micro_batch(
            order["ids"], order["epoch"], order["pos"], len(order["ids"]) * ga * self.args.world_size
        )
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
            outputs.logits,
            labels,
            sd_lambda=self.current_sd_lambda(order["epoch"] if order else 0) if training else 0.0,
            l2_init_mu=self.args.l2_init_mu if training else 0.0,
            params=params,
            initial=initial,
        )
        if training:
            for key, value in (("ce_loss", terms.ce), ("sd_penalty", terms.sd), ("l2_penalty", terms.l2)):
                self._metric_sums[key] = self._metric_sums.get(key, 0.0) + float(value)
            self._metric_count += 1
            if self.args.record_learning_events and order is not None:
                self.records.add_events(
                    order["ids"], outputs.logits, labels, self.state.global_step + 1, order["epoch"]
                )
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
            if self.log_writer.last_error_proxy is not None:
                logs["error_proxy"] = self.log_writer.last_error_proxy
        _compat.parent_log(super().log, logs, start_time)

    def save_model(self, output_dir: str | None = None, _internal_call: bool = False):
        """Save as usual, then replace the pickled ``training_args.bin`` by ``training_args.json``; a LoRA
        model's save leaves no PEFT boilerplate card (``base_model: ''``; the card comes from ``push``)."""
        from ..models import is_lora_model

        super().save_model(output_dir, _internal_call)
        out = Path(output_dir or self.args.output_dir)
        if self.args.should_save and out.is_dir():
            (out / "training_args.bin").unlink(missing_ok=True)
            card = out / "README.md"
            if is_lora_model(self.model) and card.is_file() and "library_name: peft" in card.read_text("utf-8"):
                card.unlink()
            atomic_write_json(out / TRAINING_ARGS_FILE, json.loads(self.args.to_json_string()))

    # ---- Hub: our card, and an allow-listed upload that never includes the log ---------------------
    def training_summary(self) -> dict:
        """What the training card says: penalties, recorders, seeds, versions, data fingerprint."""
        args = self.args
        metrics = {k: v for h in self.state.log_history for k, v in h.items() if k.startswith("eval_")}
        return {
            "base_model": _base_name(self.model.config) or type(self.model).__name__,
            "dataset": {
                "source": None,
                "fingerprints": {"train": fingerprint_dataset(self.train_dataset)}
                if self.train_dataset is not None
                else {},
            },
            "penalties": {
                "sd_lambda": args.sd_lambda,
                "sd_lambda_decay": args.sd_lambda_decay,
                "l2_init_mu": args.l2_init_mu,
            },
            "recorders": args.recorders,
            "delta_dtype": args.delta_dtype,
            "per_sample_fraction": args.per_sample_fraction if args.record_per_sample else None,
            "seeds": {"seed": args.seed, "data_seed": args.data_seed},
            "versions": library_versions(),
            "metrics": metrics,
            "num_train_examples": len(self.train_dataset) if self.train_dataset is not None else None,
            "epochs": args.num_train_epochs,
            "repo_id": args.hub_model_id,
        }

    def create_model_card(self, *args, **kwargs):
        """Write hf_unlearn's training card (not the generic Trainer card) to ``output_dir/README.md``."""
        if not self.is_world_process_zero():
            return
        from ..cards import render_training_card

        render_training_card(self.training_summary(), self.args.output_dir)

    def push_to_hub(
        self,
        commit_message: str | None = "End of training",
        blocking: bool = True,
        token=None,
        revision=None,
        **kwargs,
    ):
        """Upload the model, tokenizer and card only (allow-list): the unlearning log, checkpoints and
        trainer state stay on disk. Intermediate pushes are off (``hub_strategy="end"``) for the same reason."""
        if not self.is_world_process_zero():
            return None
        from huggingface_hub import upload_folder

        from ..cards.privacy import CONFIG_FILES, TOKENIZER_FILES, WEIGHT_PATTERNS

        if self.hub_model_id is None:
            self.init_hf_repo(token=token)
        self.create_model_card()
        return upload_folder(
            repo_id=self.hub_model_id,
            folder_path=self.args.output_dir,
            commit_message=commit_message,
            token=token or self.args.hub_token,
            revision=revision or self.args.hub_revision,
            run_as_future=not blocking,
            allow_patterns=[*WEIGHT_PATTERNS, *CONFIG_FILES, *TOKENIZER_FILES, "README.md"],
            ignore_patterns=["*/*"],
        )  # top-level files only: never the log or checkpoints


def without_excluded_ids(train_dataset, files) -> tuple[object, dict | None]:
    """(``train_dataset`` without every id listed in ``files``, the log's record of it or None without
    files). An id listed but absent from the data is fine: ``count`` (dropped) < ``listed`` then."""
    if not files:
        return train_dataset, None
    listed: set[str] = set()
    for path in files:
        try:
            listed.update(read_id_file(path))
        except ForgetRequestError as exc:
            raise ForgetRequestError(f"--exclude_ids_files: {exc}") from None
    keep = [k for k, i in enumerate(train_dataset["id"]) if i not in listed]
    if not keep:
        raise ForgetRequestError(f"--exclude_ids_files lists every one of the {len(train_dataset)} training examples")
    dropped = len(train_dataset) - len(keep)
    if dropped:
        train_dataset = train_dataset.select(keep)
    record = {"count": dropped, "listed": len(listed), "sha256": ids_digest(listed), "files": list(files)}
    return train_dataset, record


def _base_name(config) -> str | None:
    """The model's Hub name or path; ``"tiny-bert"`` for one built from a configuration here (random weights)."""
    name = getattr(config, "_name_or_path", None)
    return name or ("tiny-bert" if getattr(config, "hf_unlearn_tiny_spec", None) else None)
