"""A pretrained base for S3T: a disjoint "public" split fine-tunes the base fully, the "private"
rest trains the S3T adapters and is what deletion requests refer to.

S3T presumes a pretrained base: LoRA adapters on a randomly initialised model barely learn.
Real use starts from a Hub model (``distilbert-base-uncased``); offline, the tiny BERT is first
fine-tuned on the public split (its tokenizer should be trained on the public texts only).
"""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
from datasets import Dataset

from ..data import balanced_subset
from ..training.loops import batched_logits
from .encoding import EncodedData
from .staged import fit


def split_public_private(train: Dataset, n_public: int, seed: int = 0) -> tuple[Dataset, Dataset]:
    """A label-balanced ``n_public`` subset (never a canary) and the rest, both in split order."""
    if n_public <= 0:
        return train.select([]), train
    rows = np.arange(len(train))
    if "is_canary" in train.column_names:
        rows = rows[~np.asarray(train["is_canary"], dtype=bool)]
    candidates = train.select(rows.tolist()).add_column("_row", rows.tolist())
    if n_public >= len(candidates):
        raise ValueError(f"n_public={n_public} leaves no private examples (only {len(candidates)} candidates)")
    public_rows = set(balanced_subset(candidates, n_public, seed)["_row"])
    private_rows = [r for r in range(len(train)) if r not in public_rows]
    return train.select(sorted(public_rows)), train.select(private_rows)


def finetune_base(
    model,
    tokenizer,
    dataset: Dataset,
    *,
    epochs: int = 3,
    learning_rate: float = 5e-4,
    batch_size: int = 32,
    max_length: int = 128,
    seed: int = 0,
    warmup_ratio: float = 0.0,
) -> dict:
    """Full fine-tuning of ``model`` (every weight) on ``dataset``; returns the loop's stats."""
    args = SimpleNamespace(
        per_device_train_batch_size=batch_size,
        num_train_epochs=epochs,
        learning_rate=learning_rate,
        weight_decay=0.0,
        warmup_ratio=warmup_ratio,
        max_grad_norm=1.0,
    )
    data = EncodedData.from_dataset(dataset, tokenizer, max_length)
    for p in model.parameters():
        p.requires_grad_(True)
    stats = fit(model, data, list(range(len(data))), args, seed)
    model.eval()
    return stats


def model_accuracy(model, tokenizer, dataset: Dataset, *, max_length: int = 128, batch_size: int = 64) -> float:
    """Accuracy (fraction) of a single classifier on a labelled Dataset (``text`` or ``input_ids``)."""
    data = EncodedData.from_dataset(dataset, tokenizer, max_length)
    encoded = Dataset.from_dict({"input_ids": data.input_ids})
    logits = batched_logits(model, encoded, tokenizer, batch_size=batch_size)
    model.eval()
    return float((logits.argmax(-1).numpy() == data.labels).mean())
