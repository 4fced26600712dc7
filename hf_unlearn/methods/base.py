"""Shared machinery of the unlearning methods: configs, results, the method's view of the one loop.

A method is a function ``(model, forget, retain, config, log, context) -> dict`` registered
by name in ``registry.py``; it modifies ``model`` in place (``unlearn`` hands it a copy) and
returns its statistics. ``forget`` and ``retain`` are tokenized ``datasets.Dataset``s with
``id``, ``label`` and model-input columns. Batching and optimizer steps are
``training/loops.py``'s; this module only binds them to a method's config and context.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch.utils.data import DataLoader

from ..training import loops
from ..training.loops import cycle, forward_logits  # noqa: F401  (the methods' names for the loop's parts)


@dataclass
class MethodConfig:
    """Fields every loop-based method shares."""

    learning_rate: float = field(default=5e-5, metadata={"help": "Learning rate of the unlearning updates."})
    epochs: float = field(default=1.0, metadata={"help": "Passes over the data the method iterates on."})
    batch_size: int = field(default=32, metadata={"help": "Examples per batch."})
    max_steps: int = field(default=0, metadata={"help": "Stop after this many optimizer steps (0 = no limit)."})
    weight_decay: float = field(default=0.0, metadata={"help": "AdamW weight decay."})
    seed: int = field(default=0, metadata={"help": "Seed of batch order and random labels."})

    def __post_init__(self):
        if self.learning_rate <= 0 or self.epochs <= 0 or self.batch_size < 1 or self.max_steps < 0:
            raise ValueError(
                f"{type(self).__name__}: learning_rate and epochs must be > 0, batch_size >= 1, max_steps >= 0"
            )

    def planned_steps(self, n_batches_per_epoch: int) -> int:
        """``ceil(epochs * n_batches_per_epoch)`` (at least 1), capped by ``max_steps`` when set."""
        total = max(1, math.ceil(self.epochs * n_batches_per_epoch))
        return min(total, self.max_steps) if self.max_steps else total


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
    Returns the number of optimizer steps taken.
    """
    return loops.run_steps(
        model,
        config.planned_steps(n_batches_per_epoch),
        step_loss,
        learning_rate=config.learning_rate,
        params=params,
        weight_decay=config.weight_decay,
        seed=config.seed,
        grad_hook=grad_hook,
        progress=ctx.progress,
    )
