"""Shared machinery of the unlearning methods: configs, results, the method's view of the one loop.

A method is a function ``(model, forget, retain, config, log, context) -> dict`` registered
by name in ``registry.py``; it modifies ``model`` in place (``unlearn`` hands it a copy) and
returns its statistics. ``forget`` and ``retain`` are tokenized ``datasets.Dataset``s with
``id``, ``label`` and model-input columns. Batching and optimizer steps are
``training/loops.py``'s; this module only binds them to a method's config and context.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
from torch.utils.data import DataLoader

from ..training import loops
from ..training.loops import cycle, forward_logits  # noqa: F401  (the methods' names for the loop's parts)
from ._early_stopping import EarlyStopping

TRAINER_DEFAULT_LR = 5e-5  # transformers' TrainingArguments.learning_rate: the fallback without a log


@dataclass
class MethodConfig:
    """Fields every loop-based method shares.

    ``learning_rate`` left unset (None) is derived from the run it unlearns, by one rule
    (:func:`resolve_learning_rate`): ``LR_FACTOR`` times the peak learning rate the run trained
    with (the largest per-step ``lr`` in the unlearning log's transcript); without a log (a plain
    Hugging Face model) it is ``FALLBACK_LEARNING_RATE``. A method sets its own factor and fallback
    as class attributes (NegGrad, an unbounded ascent: 0.1; SCRUB: 0.2; the others 1).
    ``early_stopping`` stops the steps when the forget set's mean loss reaches that of held-out
    examples and keeps the best state (``_early_stopping.py``; it needs ``unlearn(..., holdout=)``).
    """

    LR_FACTOR: ClassVar[float] = 1.0
    FALLBACK_LEARNING_RATE: ClassVar[float] = TRAINER_DEFAULT_LR
    USES_LEARNING_RATE: ClassVar[bool] = True  # False: the method takes no optimizer steps (nothing to report)

    learning_rate: float | None = field(
        default=None,
        metadata={
            "help": "Learning rate of the unlearning updates (default: the method's factor x the peak learning "
            "rate recorded in the run's log; 5e-5 without a log)."
        },
    )
    epochs: float = field(default=1.0, metadata={"help": "Passes over the data the method iterates on."})
    batch_size: int = field(default=32, metadata={"help": "Examples per batch."})
    max_steps: int = field(default=0, metadata={"help": "Stop after this many optimizer steps (0 = no limit)."})
    weight_decay: float = field(default=0.0, metadata={"help": "AdamW weight decay."})
    seed: int = field(default=0, metadata={"help": "Seed of batch order and random labels."})
    early_stopping: bool = field(
        default=False,
        metadata={
            "help": "Stop when the forget loss reaches the loss of held-out examples (the run's test split) and "
            "keep the best state seen."
        },
    )
    eval_every: int = field(default=10, metadata={"help": "Early stopping: evaluate every this many steps."})
    patience: int = field(
        default=3,
        metadata={"help": "Early stopping: stop after this many evaluations without improvement (0 = never)."},
    )

    def __post_init__(self):
        lr_bad = self.learning_rate is not None and not self.learning_rate > 0
        if lr_bad or self.epochs <= 0 or self.batch_size < 1 or self.max_steps < 0:
            raise ValueError(
                f"{type(self).__name__}: learning_rate and epochs must be > 0, batch_size >= 1, max_steps >= 0"
            )
        if self.eval_every < 1 or self.patience < 0:
            raise ValueError(f"{type(self).__name__}: eval_every must be >= 1 and patience >= 0")

    def planned_steps(self, n_batches_per_epoch: int) -> int:
        """``ceil(epochs * n_batches_per_epoch)`` (at least 1), capped by ``max_steps`` when set."""
        total = max(1, math.ceil(self.epochs * n_batches_per_epoch))
        return min(total, self.max_steps) if self.max_steps else total


def peak_training_lr(log) -> float | None:
    """The largest per-step learning rate in the log's transcript (the training arguments' learning
    rate when every recorded one is 0); None without a log."""
    if log is None:
        return None
    peak = max((float(s.lr) for s in log.steps()), default=0.0)
    if peak > 0:
        return peak
    recorded = (log.meta.get("training_args") or {}).get("learning_rate")
    return float(recorded) if recorded else None


def default_learning_rate(config_class: type, log) -> tuple[float, str]:
    """(the learning rate a config of ``config_class`` gets when none is given, how it was derived)."""
    factor = getattr(config_class, "LR_FACTOR", 1.0)
    peak = peak_training_lr(log)
    if peak is None:
        fallback = getattr(config_class, "FALLBACK_LEARNING_RATE", TRAINER_DEFAULT_LR)
        return fallback, f"fallback {fallback:g} (no unlearning log)"
    return factor * peak, f"{factor:g} x peak training lr {peak:g}"


def resolve_learning_rate(config, log):
    """``config`` with ``learning_rate`` set: as given, else :func:`default_learning_rate` (the one place
    the rule is applied; ``unlearn`` and RUM's groups call it). Configs without the field pass through."""
    if not isinstance(config, MethodConfig) or config.learning_rate is not None:
        return config
    return dataclasses.replace(config, learning_rate=default_learning_rate(type(config), log)[0])


def loop_config(config: MethodConfig, **overrides) -> MethodConfig:
    """A plain :class:`MethodConfig` with the shared fields of ``config`` (its early stopping included),
    ``overrides`` applied: for a method whose loop is not its own config's (SCRUB's schedule, repair)."""
    shared = {f.name: getattr(config, f.name) for f in dataclasses.fields(MethodConfig)}
    return MethodConfig(**{**shared, **overrides})


@dataclass
class UnlearnResult:
    """The unlearned model and what it cost: ``stats`` holds ``wall_time_s``, ``optimizer_steps``,
    ``log_bytes_read`` and method-specific figures."""

    model: torch.nn.Module
    stats: dict = field(default_factory=dict)


@dataclass
class MethodContext:
    """What a method may need besides the data: the tokenizer (for batching) and the device.

    ``progress``: show the method's progress bars (``console.progress``, which is off when the
    output is quiet); False keeps a method silent whatever the output settings.
    """

    tokenizer: object
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    progress: bool = True
    forget: Any = None  # the forget set (early stopping's signal), set by ``unlearn``
    holdout: Any = None  # held-out examples the run never trained on (early stopping's reference; RUM's proxy)
    notes: dict = field(default_factory=dict)  # statistics of the shared loop (early stopping), merged into stats

    def loader(self, dataset, batch_size: int, shuffle: bool, seed: int = 0) -> DataLoader:
        return loops.make_loader(dataset, self.tokenizer, batch_size, shuffle=shuffle, seed=seed)

    def to_device(self, batch: dict) -> dict:
        return loops.to_device(batch, self.device)


def run_steps(
    model: torch.nn.Module,
    ctx: MethodContext,
    config: MethodConfig,
    n_batches_per_epoch: int,
    step_loss: Callable[[int], torch.Tensor],
    params: list[torch.nn.Parameter] | None = None,
    grad_hook: Callable[[], None] | None = None,
) -> int:
    """:func:`training.loops.run_steps` for ``config.planned_steps(n_batches_per_epoch)`` steps.

    ``grad_hook`` runs between backward and the optimizer step (SalUn masks gradients there).
    With ``config.early_stopping`` the steps stop early and the best state is kept
    (:class:`._early_stopping.EarlyStopping` on ``ctx.forget`` against ``ctx.holdout``; its
    statistics go to ``ctx.notes``). Returns the number of optimizer steps taken.
    """
    if config.learning_rate is None:
        raise ValueError(f"{type(config).__name__}.learning_rate is unset: resolve it with resolve_learning_rate")
    stopper = None
    if config.early_stopping:
        if ctx.forget is None or ctx.holdout is None:
            raise ValueError("early_stopping needs the forget set and held-out examples (unlearn(..., holdout=))")
        stopper = EarlyStopping(
            model,
            ctx.forget,
            ctx.holdout,
            ctx.tokenizer,
            eval_every=config.eval_every,
            patience=config.patience,
            seed=config.seed,
        )
        stopper.start()
    steps = loops.run_steps(
        model,
        config.planned_steps(n_batches_per_epoch),
        step_loss,
        learning_rate=config.learning_rate,
        params=params,
        weight_decay=config.weight_decay,
        seed=config.seed,
        grad_hook=grad_hook,
        progress=ctx.progress,
        should_stop=stopper.after_step if stopper else None,
    )
    if stopper is not None:
        ctx.notes.update(stopper.finish())
    return steps
