"""``UnlearnableTrainingArguments``: ``TrainingArguments`` plus penalties and recorders.

Where a ``TrainingArguments`` default does not suit a run that prepares for deletion, the field
is redeclared with another default (never overwritten in ``__post_init__``); a setting that cannot
work is a ``ValueError`` that names the field.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field

import torch
from transformers import TrainingArguments
from transformers.trainer_utils import HubStrategy

from . import _compat
from .error_proxy import HVP_METHODS

DELTA_DTYPES = ("float32", "float16", "bfloat16")


def _cpu_ranks() -> bool:
    """Several ranks launched (``WORLD_SIZE`` > 1) on a machine without an accelerator: gloo DDP on the CPU."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1 and not _compat.has_accelerator()


def _bad(name: str, value, need: str) -> ValueError:
    return ValueError(f"--{name} {value!r}: {need}")


def check_training_numbers(args) -> None:
    """Numbers that would crash or silently void training are a ``ValueError`` naming the flag and the
    value (``--learning_rate -1``, NaN, ``--num_train_epochs inf`` or 0 without ``--max_steps``, ...)."""
    for name in ("learning_rate", "num_train_epochs", "weight_decay", "max_grad_norm", "adam_epsilon", "warmup_steps"):
        value = getattr(args, name, None)
        if isinstance(value, (int, float)) and not math.isfinite(value):
            raise _bad(name, value, "must be a finite number")
    if args.learning_rate < 0:
        raise _bad("learning_rate", args.learning_rate, "must be >= 0 (e.g. 5e-5)")
    warmup_ratio = getattr(args, "warmup_ratio", None)  # transformers < 5.x still has it
    if isinstance(warmup_ratio, (int, float)) and not 0 <= warmup_ratio <= 1:
        raise _bad("warmup_ratio", warmup_ratio, "must be between 0 and 1")
    if args.max_steps <= 0 and args.num_train_epochs <= 0:
        raise _bad("num_train_epochs", args.num_train_epochs, "must be > 0 (or give --max_steps N > 0)")
    for name in ("per_device_train_batch_size", "per_device_eval_batch_size", "gradient_accumulation_steps"):
        if getattr(args, name) < 1:
            raise _bad(name, getattr(args, name), "must be >= 1")
    for name in ("seed", "data_seed"):
        value = getattr(args, name, None)
        if value is not None and not 0 <= value < 2**32:
            raise _bad(name, value, "must be between 0 and 2**32 - 1")
    if args.weight_decay < 0 or args.adam_epsilon < 0:
        raise ValueError("--weight_decay and --adam_epsilon must be >= 0")
    if not 0.0 <= args.adam_beta1 < 1.0 or not 0.0 <= args.adam_beta2 < 1.0:
        raise ValueError(f"--adam_beta1 {args.adam_beta1} / --adam_beta2 {args.adam_beta2}: each must be in [0, 1)")
    for name in ("save_steps", "eval_steps"):
        value = getattr(args, name, None)
        if value is not None and value <= 0:
            raise _bad(name, value, "must be > 0")


@dataclass
class UnlearnableTrainingArguments(TrainingArguments):
    """Training arguments for a run that prepares for deletion.

    Penalties (Thudi et al., "Unrolling SGD: Understanding Factors Influencing Machine
    Unlearning", EuroS&P 2022): ``sd_lambda`` weighs the mean per-example standard deviation
    of the logits, ``l2_init_mu`` weighs ``||w_t - w_0||_2^2``. Recorders write the
    unlearning log under ``output_dir/unlearning_log``.
    """

    # ---- TrainingArguments fields with another default --------------------------------------------
    remove_unused_columns: bool = field(
        default=False,
        metadata={"help": "Must stay False: example ids travel with every batch and the trainer strips them itself."},
    )
    hub_strategy: str = field(
        default="end",
        metadata={
            "help": "Must be 'end' with push_to_hub: intermediate pushes would upload the whole output_dir, the "
            "private unlearning log included; the final push goes through the trainer's allow-list."
        },
    )
    save_only_model: bool = field(
        default=True,
        metadata={
            "help": "Must stay True: the Trainer then writes no pickles; hf_unlearn's checkpoint callback saves "
            "optimizer, scheduler and RNG states as safetensors + JSON, so resuming still works."
        },
    )
    # The two defaults below are read from the machine when the package is imported (``accelerate
    # launch`` sets WORLD_SIZE before that); a field's default, not a value overwritten later.
    dataloader_pin_memory: bool = field(
        default=torch.cuda.is_available(),
        metadata={"help": "Pin DataLoader memory (default: True only when CUDA is available)."},
    )
    use_cpu: bool = field(
        default=_cpu_ranks(),
        metadata={
            "help": "Train on the CPU (default: True when several ranks are launched on a machine without an "
            "accelerator, which gloo DDP needs)."
        },
    )

    overwrite: bool = field(
        default=False,
        metadata={
            "help": "Replace a non-empty output_dir (its old contents are removed first). Without it, train "
            "writes only into an empty folder or resumes its own interrupted run (--resume_from_checkpoint latest)."
        },
    )

    # ---- penalties and recorders -----------------------------------------------------------------------
    sd_lambda: float = field(
        default=0.0, metadata={"help": "Weight of the SD-of-logits penalty: L = CE + lambda * mean_i std_c(z_i)."}
    )
    sd_lambda_decay: float = field(
        default=1.0,
        metadata={
            "help": "Divide sd_lambda by this factor after every epoch (1 = no decay; below 1 the weight rises)."
        },
    )
    l2_init_mu: float = field(
        default=0.0,
        metadata={
            "help": "Weight of the L2-to-initial-weights penalty mu * ||w_t - w_0||_2^2 (trainable parameters)."
        },
    )
    record_transcript: bool = field(
        default=True,
        metadata={"help": "Record, per optimizer step, epoch, learning rate and the ids of every example."},
    )
    record_deltas: bool = field(
        default=False,
        metadata={
            "help": "Record w_after - w_before of the trainable parameters per optimizer step (amnesiac rollback)."
        },
    )
    delta_dtype: str = field(
        default="float32", metadata={"help": f"Storage dtype of the deltas, one of {DELTA_DTYPES}."}
    )
    deletable_ids_file: str | None = field(
        default=None,
        metadata={"help": "Only record deltas of steps that saw an id listed in this file (one id per line)."},
    )
    exclude_ids_files: list[str] | None = field(
        default=None,
        metadata={
            "help": "Files of ids (one per line) never to train on: the trainer drops them from the training "
            "set before the data order is drawn; the log records how many, and their digest (no ids)."
        },
    )
    record_per_sample: bool = field(
        default=False,
        metadata={"help": "Record per-sample gradients on a fixed random subset of the trainable parameters."},
    )
    per_sample_fraction: float = field(
        default=0.01, metadata={"help": "Fraction p of the trainable parameters in the per-sample subset."}
    )
    per_sample_seed: int = field(default=0, metadata={"help": "Seed of the per-sample parameter subset."})
    per_sample_module_share: float = field(
        default=1.0,
        metadata={
            "help": "Share q of the modules that hold the subset (drawn at random, at least one; the subset keeps "
            "p of all entries): only those modules are hooked (e.g. 0.1 on a LoRA model, where hooks cost per module)."
        },
    )
    record_learning_events: bool = field(
        default=False,
        metadata={
            "help": "Record per example per step the true-class confidence and correctness (memorization proxies)."
        },
    )
    record_error_proxy: bool = field(
        default=False,
        metadata={
            "help": "Log the unlearning-error proxy e_t = (eta^2/2) t ||w_t - w_0|| sigma "
            "every error_proxy_every steps."
        },
    )
    error_proxy_every: int = field(
        default=200,
        metadata={
            "help": "Steps between two evaluations of the unlearning-error proxy. One evaluation (power iteration "
            "with forward-difference Hessian-vector products on error_proxy_batch_size examples) costs a few ordinary "
            "forward/backward passes on those examples (MiniLM + LoRA: 6 the first time, 4 once warm)."
        },
    )
    error_proxy_batch_size: int = field(
        default=64, metadata={"help": "Examples in the fixed batch used for the largest Hessian eigenvalue."}
    )
    error_proxy_power_iters: int = field(
        default=5, metadata={"help": "Power-iteration steps (Hessian-vector products) for the largest eigenvalue."}
    )
    error_proxy_hvp: str = field(
        default="forward_difference",
        metadata={
            "help": "Hessian-vector products of the error proxy: 'forward_difference' (one ordinary gradient per "
            "product, any attention kernel), 'central_difference' (two, error O(eps^2)) or 'double_backward' "
            "(exact, about three times the cost of a gradient)."
        },
    )

    def __post_init__(self):
        check_training_numbers(self)
        if self.sd_lambda < 0 or self.l2_init_mu < 0:
            raise ValueError("sd_lambda and l2_init_mu must be >= 0")
        if self.sd_lambda_decay <= 0:
            raise ValueError("sd_lambda_decay must be > 0")
        if self.delta_dtype not in DELTA_DTYPES:
            raise ValueError(f"delta_dtype must be one of {DELTA_DTYPES}, got {self.delta_dtype!r}")
        if not 0.0 < self.per_sample_fraction <= 1.0:
            raise ValueError(f"per_sample_fraction must be in (0, 1], got {self.per_sample_fraction}")
        if not 0.0 < self.per_sample_module_share <= 1.0:
            raise ValueError(f"per_sample_module_share must be in (0, 1], got {self.per_sample_module_share}")
        if self.error_proxy_every < 1 or self.error_proxy_batch_size < 1 or self.error_proxy_power_iters < 1:
            raise ValueError("error_proxy_every, error_proxy_batch_size and error_proxy_power_iters must be >= 1")
        if self.error_proxy_hvp not in HVP_METHODS:
            raise ValueError(f"error_proxy_hvp must be one of {HVP_METHODS}, got {self.error_proxy_hvp!r}")
        if isinstance(self.exclude_ids_files, (str, os.PathLike)):
            self.exclude_ids_files = [self.exclude_ids_files]
        if self.exclude_ids_files:
            self.exclude_ids_files = [str(os.path.abspath(os.path.expanduser(f))) for f in self.exclude_ids_files]
        if self.deletable_ids_file and not self.record_deltas:
            raise ValueError("deletable_ids_file only applies with record_deltas=True")
        if (
            self.record_deltas or self.record_per_sample or self.record_learning_events
        ) and not self.record_transcript:
            raise ValueError(
                "deltas, per-sample gradients and learning events are indexed by the transcript: "
                "keep record_transcript=True"
            )
        if not self.use_cpu and _cpu_ranks():
            raise ValueError(
                f"use_cpu=False with {os.environ['WORLD_SIZE']} ranks on a machine without an accelerator "
                "cannot start: distributed training on the CPU (gloo) needs use_cpu=True (--use_cpu)"
            )
        if not self.save_only_model:
            raise ValueError(
                "save_only_model=False would make the Trainer pickle optimizer, scheduler and RNG states into "
                "every checkpoint: leave it at its default (True); resuming restores them from safetensors + JSON"
            )
        if self.remove_unused_columns:
            raise ValueError(
                "remove_unused_columns=True would drop the example ids the trainer needs: "
                "leave it at its default (False); the trainer keeps only the model inputs itself"
            )
        if self.push_to_hub and HubStrategy(self.hub_strategy) is not HubStrategy.END:
            raise ValueError(
                f"hub_strategy={str(self.hub_strategy)!r} with push_to_hub would upload the private "
                "unlearning log with every save: use hub_strategy='end' (the default)"
            )
        super().__post_init__()

    @property
    def recorders(self) -> list[str]:
        """Names of the recorders switched on, in log order."""
        flags = {
            "transcript": self.record_transcript,
            "deltas": self.record_deltas,
            "per_sample": self.record_per_sample,
            "learning_events": self.record_learning_events,
            "error_proxy": self.record_error_proxy,
        }
        return [name for name, on in flags.items() if on]
