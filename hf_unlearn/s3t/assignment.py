"""The recorded, deterministic map example id -> (shard, slice), balanced per label.

Stored as ``assignment.json`` in the system folder. It names training examples, so it is one of
the two private files (with ``ledger.sqlite``) that publishing leaves out.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..artifacts import S3T_ASSIGNMENT_FILE, atomic_write_json
from ..data import ForgetRequestError, check_ids_known

ASSIGNMENT_FILE = S3T_ASSIGNMENT_FILE


@dataclass
class Assignment:
    """Rows in the order of the training split: ``ids[i]`` lives in ``shard[i]``, ``slice[i]``.

    ``public_ids`` are the examples used to pretrain the base model (not deletable by S3T).
    """

    num_shards: int
    num_slices: int
    seed: int
    ids: list[str]
    shard: list[int]
    slice: list[int]
    label: list[int]
    public_ids: list[str] = field(default_factory=list)

    def __post_init__(self):
        self._row = {i: r for r, i in enumerate(self.ids)}
        self._public = set(self.public_ids)
        self._known = frozenset(self.ids)

    def __len__(self) -> int:
        return len(self.ids)

    def locate(self, example_id: str) -> tuple[int, int]:
        r = self._row[example_id]
        return self.shard[r], self.slice[r]

    def check_known(self, ids: Iterable[str]) -> list[str]:
        """Sorted unique ids; ``ForgetRequestError`` (nothing changed) for public or unknown ids."""
        ids = sorted({str(i) for i in ids})
        if not ids:
            raise ForgetRequestError("the request is empty: no ids given")
        public = [i for i in ids if i in self._public]
        if public:
            raise ForgetRequestError(
                f"{len(public)} id(s) belong to the public split that pretrained the base model, which S3T "
                f"cannot unlearn exactly: {', '.join(map(repr, public[:10]))}"
            )
        check_ids_known(ids, self._known, what="S3T assignment (the private training split)")
        return ids

    def members(self, shard: int, slices: Iterable[int]) -> list[str]:
        """Ids of ``shard`` in any of ``slices``, in training-split order."""
        slices = set(slices)
        return [i for i, j, s in zip(self.ids, self.shard, self.slice) if j == shard and s in slices]

    def rows(self, ids: Iterable[str]) -> list[int]:
        return [self._row[i] for i in ids]

    def sizes(self) -> np.ndarray:
        """Examples per (shard, slice), shape (m, L)."""
        out = np.zeros((self.num_shards, self.num_slices), dtype=np.int64)
        np.add.at(out, (np.asarray(self.shard), np.asarray(self.slice)), 1)
        return out

    def to_dict(self) -> dict:
        return {
            "format": 1,
            "num_shards": self.num_shards,
            "num_slices": self.num_slices,
            "seed": self.seed,
            "ids": self.ids,
            "shard": self.shard,
            "slice": self.slice,
            "label": self.label,
            "public_ids": self.public_ids,
        }

    def save(self, folder: str | Path) -> Path:
        return atomic_write_json(Path(folder) / ASSIGNMENT_FILE, self.to_dict(), indent=None, sort_keys=False)

    @classmethod
    def load(cls, folder: str | Path) -> Assignment:
        data = json.loads((Path(folder) / ASSIGNMENT_FILE).read_text())
        data.pop("format", None)
        return cls(**data)


def make_assignment(
    ids: list[str],
    labels: list[int],
    num_shards: int,
    num_slices: int,
    seed: int = 0,
    public_ids: Iterable[str] = (),
) -> Assignment:
    """Deal each label's examples (shuffled by ``seed``) round-robin over the m*L cells.

    One counter runs across labels, so cell sizes differ by at most one overall and per label;
    cell c is shard ``c % m``, slice ``c // m``.
    """
    if len(ids) < num_shards * num_slices:
        raise ValueError(f"{len(ids)} examples cannot fill m*L = {num_shards * num_slices} slices")
    if len(set(ids)) != len(ids):
        raise ValueError("example ids must be unique")
    rng = np.random.default_rng(seed)
    labels_arr = np.asarray(labels)
    shard = np.zeros(len(ids), dtype=np.int64)
    slc = np.zeros(len(ids), dtype=np.int64)
    cells, counter = num_shards * num_slices, 0
    for c in np.unique(labels_arr):
        rows = rng.permutation(np.flatnonzero(labels_arr == c))
        cell = (counter + np.arange(len(rows))) % cells
        shard[rows], slc[rows] = cell % num_shards, cell // num_shards
        counter += len(rows)
    return Assignment(
        num_shards=num_shards,
        num_slices=num_slices,
        seed=seed,
        ids=list(map(str, ids)),
        shard=shard.tolist(),
        slice=slc.tolist(),
        label=[int(y) for y in labels],
        public_ids=sorted(public_ids),
    )
