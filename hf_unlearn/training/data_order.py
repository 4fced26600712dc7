"""Deterministic, recorded data order: which examples form each micro-batch of each epoch.

Epoch ``e`` shuffles the training rows with ``numpy.random.default_rng([seed, e])`` and cuts
them into micro-batches of ``batch_size`` (the last one smaller). Under data parallelism
with ``world_size`` ranks the global micro-batches are dealt round-robin (rank ``r`` takes
positions ``r, r + world_size, ...``); an epoch whose batch count does not divide by the
world size has its last batches halved until it does, so every rank runs the same number
of steps and no example is repeated.

A replay takes the recorded batches (by id), removes the dropped ids, keeps every batch
boundary and skips batches left empty: this is the data order of the retrain twin
(Thudi et al., "Unrolling SGD", EuroS&P 2022: same order with the forgotten points removed).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset as TorchDataset
from torch.utils.data import Sampler
from transformers import DataCollatorWithPadding

MODEL_KEYS = ("input_ids", "attention_mask", "token_type_ids", "label", "labels")


def shuffled_batches(n_rows: int, batch_size: int, seed: int, epoch: int) -> list[list[int]]:
    order = np.random.default_rng([seed, epoch]).permutation(n_rows)
    return [order[i : i + batch_size].tolist() for i in range(0, n_rows, batch_size)]


def balance_for_ranks(batches: list[tuple[int, list[int]]], world_size: int) -> list[tuple[int, list[int]]]:
    """Halve the last splittable ``(position, rows)`` batch until the count divides by ``world_size``.

    Both halves keep the position of the batch they came from (it seeds their dropout).
    """
    batches = [(pos, list(b)) for pos, b in batches]
    while len(batches) % world_size:
        k = max((i for i, (_, b) in enumerate(batches) if len(b) >= 2), default=None)
        if k is None:
            raise ValueError(f"{sum(len(b) for _, b in batches)} examples cannot be spread over {world_size} ranks")
        pos, b = batches.pop(k)
        batches[k:k] = [(pos, b[: len(b) // 2]), (pos, b[len(b) // 2 :])]
    return batches


class DataOrder:
    """Global micro-batches (row indices) per epoch, fresh from the seed or replayed by id."""

    def __init__(
        self,
        ids: Sequence[str],
        batch_size: int,
        seed: int,
        world_size: int = 1,
        replay: dict[int, list[list[str]]] | None = None,
        drop_ids: Iterable[str] = (),
    ):
        if batch_size < 1:
            raise ValueError("batch_size must be >= 1")
        self.ids = list(ids)
        self.row_of = {i: r for r, i in enumerate(self.ids)}
        self.batch_size, self.seed, self.world_size = batch_size, seed, world_size
        self.drop_ids = set(drop_ids)
        self.replay = None
        if replay is not None:
            self.replay = {}
            for epoch, batches in replay.items():
                kept = [(pos, [self.row_of[i] for i in b if i not in self.drop_ids]) for pos, b in enumerate(batches)]
                missing = {i for b in batches for i in b if i not in self.drop_ids and i not in self.row_of}
                if missing:
                    raise KeyError(
                        f"replay order names {len(missing)} id(s) absent from the data set, e.g. {sorted(missing)[:5]}"
                    )
                self.replay[int(epoch)] = balance_for_ranks([(pos, b) for pos, b in kept if b], world_size)
        elif self.drop_ids:
            raise ValueError("drop_ids only applies to a replayed order")

    def global_batches(self, epoch: int) -> list[tuple[int, list[int]]]:
        """``(position in the recorded order, rows)`` of every global micro-batch of ``epoch``."""
        if self.replay is not None:
            if epoch not in self.replay:
                raise KeyError(f"the recorded order has no epoch {epoch} (epochs: {sorted(self.replay)})")
            return self.replay[epoch]
        batches = shuffled_batches(len(self.ids), self.batch_size, self.seed, epoch)
        return balance_for_ranks(list(enumerate(batches)), self.world_size)

    def batches_per_rank(self) -> int:
        """Micro-batches every rank runs per epoch (the largest epoch, for a replay)."""
        if self.replay is not None:
            return max(len(b) for b in self.replay.values()) // self.world_size
        return len(self.global_batches(0)) // self.world_size

    def batch_ids(self, epoch: int) -> list[list[str]]:
        return [[self.ids[r] for r in b] for _, b in self.global_batches(epoch)]


class DataOrderSampler(Sampler):
    """Batch sampler yielding this rank's micro-batches as ``(row, epoch, position)`` keys."""

    def __init__(self, order: DataOrder, rank: int = 0, on_epoch=None):
        self.order, self.rank, self.epoch, self.on_epoch = order, rank, 0, on_epoch

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)
        if self.on_epoch is not None:
            self.on_epoch(self.epoch, self.order.batch_ids(self.epoch))

    def __iter__(self):
        batches = self.order.global_batches(self.epoch)
        for k in range(self.rank, len(batches), self.order.world_size):
            pos, rows = batches[k]
            yield [(row, self.epoch, pos) for row in rows]

    def __len__(self) -> int:
        return self.order.batches_per_rank()


class OrderedDataLoader(torch.utils.data.DataLoader):
    """A ``DataLoader`` whose ``set_epoch`` reaches the data-order sampler."""

    def set_epoch(self, epoch: int) -> None:
        self.batch_sampler.set_epoch(epoch)


class KeyedDataset(TorchDataset):
    """Wraps a tokenized ``datasets.Dataset``: item ``(row, epoch, pos)`` is the row plus its place."""

    def __init__(self, dataset):
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitems__(self, keys):
        rows = self.dataset[[k[0] for k in keys]]
        names = list(rows)
        return [{**{n: rows[n][j] for n in names}, "_epoch": keys[j][1], "_pos": keys[j][2]} for j in range(len(keys))]

    def __getitem__(self, key):
        return self.__getitems__([key])[0]


class IdCarryingCollator:
    """Pads model inputs and carries the example ids (and their place in the order) aside.

    The ids never reach the model: they travel under ``batch["_order"]`` which the trainer
    removes before the forward pass. Every other non-model column is dropped.
    """

    def __init__(self, tokenizer, pad_to_multiple_of: int | None = None):
        self.pad = DataCollatorWithPadding(tokenizer, pad_to_multiple_of=pad_to_multiple_of)

    def __call__(self, features: list[dict]) -> dict:
        if features and "id" not in features[0]:
            raise KeyError(
                f"examples carry no 'id' column (keys: {sorted(features[0])}); load data with hf_unlearn.data"
            )
        ids = [f["id"] for f in features]
        batch = self.pad([{k: v for k, v in f.items() if k in MODEL_KEYS} for f in features])
        batch["_order"] = {"ids": ids, "epoch": features[0].get("_epoch"), "pos": features[0].get("_pos")}
        return batch
