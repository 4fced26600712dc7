"""The one short loop: batches, a few optimizer steps, batched logits.

Everything outside the ``Trainer`` that iterates over tokenized data goes through here: the
unlearning methods (``run_steps`` over a ``step_loss``), the memorization proxies (fine-tuning
on held-out data), the evaluation (``batched_logits``) and S3T (staged LoRA training).

Batches come from :func:`make_loader`: the ``id``, ``label`` and model-input columns of a
tokenized ``datasets.Dataset``, padded per batch by :class:`~.data_order.IdCarryingCollator`,
the ids carried aside under ``batch["_order"]`` (:func:`to_device` drops them).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterator

import torch
from torch.utils.data import DataLoader
from transformers import DataCollatorWithPadding, get_linear_schedule_with_warmup

from .. import console
from .data_order import IdCarryingCollator

MODEL_INPUTS = ("input_ids", "attention_mask", "token_type_ids")
LOADER_COLUMNS = ("id", "label", *MODEL_INPUTS)


def make_loader(dataset, tokenizer, batch_size: int, *, shuffle: bool = False, seed: int = 0) -> DataLoader:
    """A loader over the ``id``, ``label`` and model-input columns; batches are padded and carry their ids.

    With ``shuffle`` the order comes from a generator seeded with ``seed`` (a fresh order every pass).
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    keep = [c for c in dataset.column_names if c in LOADER_COLUMNS]
    gen = torch.Generator().manual_seed(seed)
    return DataLoader(
        dataset.select_columns(keep),
        batch_size=batch_size,
        shuffle=shuffle,
        generator=gen,
        collate_fn=IdCarryingCollator(tokenizer),
    )


def pad_batch(features: list[dict], tokenizer) -> dict[str, torch.Tensor]:
    """Features (token id lists, optional ``label``) padded by the tokenizer into tensors (``label`` -> ``labels``)."""
    return DataCollatorWithPadding(tokenizer, return_tensors="pt")(features)


def to_device(batch: dict, device) -> dict:
    """The batch's tensors on ``device``; the carried ids (``_order``) stay behind."""
    return {k: v.to(device) for k, v in batch.items() if k != "_order"}


def forward_logits(model: torch.nn.Module, batch: dict) -> torch.Tensor:
    """Logits of ``model`` on ``batch`` (its ``labels`` and carried ids never reach the model)."""
    out = model(**{k: v for k, v in batch.items() if k not in ("labels", "_order")})
    return out.logits if hasattr(out, "logits") else out


def cycle(loader: DataLoader) -> Iterator[dict]:
    """Endless iterator over a loader (a shuffled loader reshuffles every pass)."""
    while True:
        yield from loader


def model_device(model: torch.nn.Module) -> torch.device:
    first = next(model.parameters(), None)
    return first.device if first is not None else torch.device("cpu")


def input_columns(model: torch.nn.Module, dataset, tokenizer) -> list[str]:
    """Dataset columns the model takes: the tokenizer's model inputs that its ``forward`` accepts."""
    wanted = list(getattr(tokenizer, "model_input_names", None) or MODEL_INPUTS)
    params = inspect.signature(model.forward).parameters
    takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    cols = [c for c in wanted if c in dataset.column_names and (takes_any or c in params)]
    if "input_ids" not in cols:
        raise ValueError(f"dataset has no input_ids column (columns: {dataset.column_names}); tokenize it first")
    return cols


def batched_logits(model: torch.nn.Module, dataset, tokenizer, *, batch_size: int = 64, device=None) -> torch.Tensor:
    """Logits ``[n, C]`` (float32, on the CPU) of every row of a tokenized dataset, in row order.

    Runs in eval mode under ``torch.no_grad`` (the previous train/eval mode is restored), pads
    each batch with ``DataCollatorWithPadding`` and feeds only the model-input columns (``id``,
    ``label`` and anything else stay out of the forward pass). ``device`` defaults to the model's.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    cols = input_columns(model, dataset, tokenizer)
    inputs = dataset.with_format(None).select_columns(cols)  # plain Python lists, whatever format was set
    loader = DataLoader(
        inputs,
        batch_size=batch_size,
        shuffle=False,
        collate_fn=DataCollatorWithPadding(tokenizer, return_tensors="pt"),
    )
    device = torch.device(device) if device is not None else model_device(model)
    chunks = []
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            for batch in loader:
                chunks.append(forward_logits(model, to_device(batch, device)).float().cpu())
    finally:
        model.train(was_training)
    if not chunks:
        n_classes = int(getattr(getattr(model, "config", None), "num_labels", 0) or 0)
        return torch.zeros((0, n_classes), dtype=torch.float32)
    return torch.cat(chunks)


def run_steps(
    model: torch.nn.Module,
    n_steps: int,
    step_loss: Callable[[int], torch.Tensor],
    *,
    learning_rate: float,
    params: list[torch.nn.Parameter] | None = None,
    weight_decay: float = 0.0,
    seed: int = 0,
    grad_hook: Callable[[], None] | None = None,
    desc: str = "unlearning steps",
    max_grad_norm: float | None = None,
    warmup_steps: int | None = None,
    leave: bool = True,
    progress: bool = True,
    should_stop: Callable[[int], bool] | None = None,
) -> int:
    """``n_steps`` AdamW steps on ``step_loss(step)``; returns the number of steps taken.

    The model is in train mode during the steps and in eval mode after them; the global torch
    seed is set to ``seed`` first (dropout). ``grad_hook`` runs between backward and the step
    (SalUn masks gradients there); ``max_grad_norm`` clips the gradient norm of ``params``;
    ``warmup_steps`` switches the constant learning rate to a linear schedule (warmup, then
    decay to 0 at ``n_steps``). A non-finite loss raises ``FloatingPointError``. The steps show
    one progress bar labelled ``desc`` (``console.progress``; ``leave=False`` clears it at the end,
    ``progress=False`` shows none). ``should_stop(steps_taken)`` runs after every optimizer step;
    True ends the loop there (early stopping).
    """
    if n_steps <= 0:
        return 0
    params = params if params is not None else [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=learning_rate, weight_decay=weight_decay)
    schedule = get_linear_schedule_with_warmup(optimizer, warmup_steps, n_steps) if warmup_steps is not None else None
    model.train()
    torch.manual_seed(seed)
    steps = console.progress(range(n_steps), desc=desc, leave=leave) if progress else range(n_steps)
    taken = 0
    for step in steps:
        optimizer.zero_grad(set_to_none=True)
        loss = step_loss(step)
        if not torch.isfinite(loss):
            raise FloatingPointError(f"non-finite loss at step {step} of {desc!r}: lower the learning rate")
        loss.backward()
        if grad_hook is not None:
            grad_hook()
        if max_grad_norm:
            torch.nn.utils.clip_grad_norm_(params, max_grad_norm)
        optimizer.step()
        if schedule is not None:
            schedule.step()
        taken = step + 1
        if should_stop is not None and should_stop(taken):
            break
    optimizer.zero_grad(set_to_none=True)
    model.eval()
    return taken
