"""Stage checkpoints as safetensors (no pickle) and the per-stage seeds.

A checkpoint is what one stage of one (shard, order) produced: the LoRA tensors of its adapter
(``adapter.*``, keyed without the adapter name) and parameter overrides (``param.*``: the stage's
head for S3T, the whole trainable state for SISA). Its JSON metadata says what it was trained
on: the slices, the number of examples and the sha256 of their ids (never the ids).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors import safe_open

from ..artifacts import S3T_CHECKPOINT_DIR, atomic_save_tensors

CHECKPOINT_DIR = S3T_CHECKPOINT_DIR
META_KEY = "hf_unlearn_s3t"


def derive_seed(seed: int, *parts) -> int:
    """A seed for (kind, shard, order, stage): independent of the process, the rank and the generation,
    so a retrain without the deleted ids equals training from scratch without them."""
    digest = hashlib.sha256("/".join(map(str, (seed, *parts))).encode()).hexdigest()
    return int(digest[:15], 16)


@dataclass(frozen=True, order=True)
class CheckpointKey:
    shard: int
    order: int
    stage: int
    generation: int

    @property
    def adapter_name(self) -> str:
        return f"j{self.shard}b{self.order}k{self.stage}g{self.generation}"

    @property
    def relpath(self) -> str:
        return (
            f"{CHECKPOINT_DIR}/shard{self.shard:03d}/order{self.order:02d}/"
            f"stage{self.stage:02d}-gen{self.generation:03d}.safetensors"
        )


@dataclass
class Checkpoint:
    key: CheckpointKey
    adapter: dict[str, torch.Tensor] = field(default_factory=dict)
    params: dict[str, torch.Tensor] = field(default_factory=dict)
    meta: dict = field(default_factory=dict)

    def tensors(self) -> dict[str, torch.Tensor]:
        out = {f"adapter.{k}": v.contiguous() for k, v in self.adapter.items()}
        out.update({f"param.{k}": v.contiguous() for k, v in self.params.items()})
        return out


def save_checkpoint(root: str | Path, ckpt: Checkpoint) -> Path:
    return atomic_save_tensors(
        Path(root) / ckpt.key.relpath, ckpt.tensors(), metadata={META_KEY: json.dumps(ckpt.meta, sort_keys=True)}
    )


def load_checkpoint(root: str | Path, key: CheckpointKey) -> Checkpoint:
    path = Path(root) / key.relpath
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {key} missing: {path}")
    adapter, params = {}, {}
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = json.loads((f.metadata() or {}).get(META_KEY, "{}"))
            for name in f.keys():
                kind, _, rest = name.partition(".")
                (adapter if kind == "adapter" else params)[rest] = f.get_tensor(name)
    except Exception:
        if not path.is_file():  # removed meanwhile by a concurrent deletion: the caller re-reads the ledger
            raise FileNotFoundError(f"checkpoint {key} missing: {path}") from None
        raise
    return Checkpoint(key=key, adapter=adapter, params=params, meta=meta)


def list_checkpoint_files(root: str | Path) -> list[Path]:
    return sorted((Path(root) / CHECKPOINT_DIR).rglob("*.safetensors"))


def read_checkpoint_meta(path: str | Path) -> dict:
    with safe_open(str(path), framework="pt") as f:
        return json.loads((f.metadata() or {}).get(META_KEY, "{}"))
