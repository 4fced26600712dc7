"""Tokenized examples kept in memory, padded per batch by the tokenizer (training and inference share it)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from datasets import Dataset

from ..training.loops import pad_batch


@dataclass
class EncodedData:
    """Token ids per example (truncated, unpadded), labels (or -1), ids (or row numbers) and the
    tokenizer that pads them."""

    ids: list[str]
    input_ids: list[list[int]]
    labels: np.ndarray
    tokenizer: object

    @property
    def pad_id(self) -> int:
        return self.tokenizer.pad_token_id

    @classmethod
    def from_texts(cls, texts: Sequence[str], tokenizer, max_length: int, labels=None, ids=None) -> EncodedData:
        enc = tokenizer(list(texts), truncation=True, max_length=max_length)
        n = len(enc["input_ids"])
        labels = np.full(n, -1, dtype=np.int64) if labels is None else np.asarray(labels, dtype=np.int64)
        ids = [str(i) for i in range(n)] if ids is None else [str(i) for i in ids]
        return cls(ids=ids, input_ids=[list(x) for x in enc["input_ids"]], labels=labels, tokenizer=tokenizer)

    @classmethod
    def from_dataset(cls, data: Dataset, tokenizer, max_length: int) -> EncodedData:
        cols = data.column_names
        labels = data["label"] if "label" in cols else None
        ids = data["id"] if "id" in cols else None
        if "input_ids" in cols:
            n = len(data)
            return cls(
                ids=[str(i) for i in (ids if ids is not None else range(n))],
                input_ids=[list(x)[:max_length] for x in data["input_ids"]],
                labels=np.full(n, -1, dtype=np.int64) if labels is None else np.asarray(labels, dtype=np.int64),
                tokenizer=tokenizer,
            )
        if "text" not in cols:
            raise ValueError(f"need a 'text' (or 'input_ids') column; the data has {cols}")
        return cls.from_texts(data["text"], tokenizer, max_length, labels=labels, ids=ids)

    def __len__(self) -> int:
        return len(self.input_ids)

    def rows_of(self, ids: Iterable[str]) -> list[int]:
        index = getattr(self, "_index", None)
        if index is None:
            index = self._index = {i: r for r, i in enumerate(self.ids)}
        return [index[i] for i in ids]

    def collate(self, rows: Sequence[int]) -> dict[str, torch.Tensor]:
        """``input_ids`` and ``attention_mask`` of ``rows``, padded by the tokenizer to the longest."""
        return pad_batch([{"input_ids": self.input_ids[r]} for r in rows], self.tokenizer)

    def eval_batches(self, batch_size: int):
        """Row batches sorted by length (less padding); deterministic for given data."""
        order = sorted(range(len(self)), key=lambda r: (len(self.input_ids[r]), r))
        for i in range(0, len(order), batch_size):
            yield order[i : i + batch_size]
