"""Shared machinery of the unlearning methods: configs, results, a short training loop.

A method is a function ``(model, forget, retain, config, log, context) -> dict`` registered
by name in ``registry.py``; it modifies ``model`` in place (``unlearn`` hands it a copy) and
returns its statistics. ``forget`` and ``retain`` are tokenized ``datasets.Dataset``s with
``id``, ``label`` and model-input columns.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable

import torch
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from ..training.data_order import IdCarryingCollator


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
            raise ValueError(f"{type(self).__name__}: learning_rate and epochs must be > 0, batch_size >= 1, max_steps >= 0")


@dataclass
class UnlearnResult:
    """The unlearned model and what it cost: ``stats`` holds ``wall_time_s``, ``optimizer_steps``,
    ``log_bytes_read`` and method-specific figures."""

    model: torch.nn.Module
    stats: dict = field(default_factory=dict)


@dataclass
class MethodContext:
    """What a method may need besides the data: the tokenizer (for batching) and the device."""

    tokenizer: object
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    progress: bool = False

    def loader(self, dataset, batch_size: int, shuffle: bool, seed: int = 0) -> DataLoader:
        gen = torch.Generator().manual_seed(seed)
        keep = [c for c in dataset.column_names if c in ("id", "label", "input_ids", "attention_mask", "token_type_ids")]
        return DataLoader(dataset.select_columns(keep), batch_size=batch_size, shuffle=shuffle, generator=gen,
                          collate_fn=IdCarryingCollator(self.tokenizer))

    def to_device(self, batch: dict) -> dict:
        return {k: v.to(self.device) for k, v in batch.items() if k != "_order"}


def forward_logits(model, batch: dict) -> torch.Tensor:
    return model(**{k: v for k, v in batch.items() if k != "labels"}).logits


def cycle(loader: DataLoader):
    """Endless iterator over a loader (reshuffles every pass)."""
    while True:
        yield from loader


def run_steps(
    model: torch.nn.Module,
    ctx: MethodContext,
    config: MethodConfig,
    n_batches_per_epoch: int,
    step_loss: Callable[[int], torch.Tensor],
    params: list[torch.nn.Parameter] | None = None,
    grad_hook: Callable[[], None] | None = None,
) -> int:
    """Run AdamW steps on ``step_loss(step)`` for ``epochs * n_batches_per_epoch`` steps (capped by ``max_steps``).

    ``grad_hook`` runs between backward and the optimizer step (SalUn masks gradients there).
    Returns the number of optimizer steps taken.
    """
    total = max(1, math.ceil(config.epochs * n_batches_per_epoch))
    if config.max_steps:
        total = min(total, config.max_steps)
    params = params if params is not None else [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=config.learning_rate, weight_decay=config.weight_decay)
    model.train()
    torch.manual_seed(config.seed)
    for step in tqdm(range(total), desc="unlearning steps", disable=None, leave=False):
        optimizer.zero_grad(set_to_none=True)
        loss = step_loss(step)
        if not torch.isfinite(loss):
            raise FloatingPointError(f"non-finite loss at unlearning step {step}: lower the learning rate")
        loss.backward()
        if grad_hook is not None:
            grad_hook()
        optimizer.step()
    model.eval()
    return total
