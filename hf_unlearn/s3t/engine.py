"""Serving: one base model holding every active checkpoint's adapter; per shard, activate its
served chain, override its head, run; the system's logits are the mean over the served shards.

A deletion only changes which chains are served: nothing is reloaded. Checkpoints that were cut
are forgotten at once and their adapters removed from the model before the next forward.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable

import torch
from torch import nn
from torch.func import functional_call

from ..training._compat import delete_adapter
from .checkpoints import Checkpoint, CheckpointKey
from .encoding import EncodedData
from .layers import activate, inject_lora, load_adapter_state


class Ensemble:
    def __init__(self, base_model: nn.Module, layout, config, scheme, loader: Callable[[CheckpointKey], Checkpoint]):
        self.model = base_model.eval()
        for p in self.model.parameters():
            p.requires_grad_(False)
        self.layout, self.config, self.scheme, self.loader = layout, config, scheme, loader
        self.checkpoints: dict[CheckpointKey, Checkpoint] = {}
        self._injected: set[CheckpointKey] = set()
        self._stale: set[CheckpointKey] = set()

    def add(self, ckpt: Checkpoint) -> None:
        """Keep ``ckpt`` in memory (adapter injected lazily, before the forward that needs it)."""
        self.checkpoints[ckpt.key] = ckpt
        self._stale.discard(ckpt.key)

    def ensure(self, keys) -> None:
        for key in keys:
            if key not in self.checkpoints:
                self.add(self.loader(key))
            if key not in self._injected and self.checkpoints[key].adapter:
                ckpt = self.checkpoints[key]
                modules = self.scheme.adapter_modules(self.layout, key.stage)
                c = self.config
                inject_lora(self.model, key.adapter_name, modules, c.lora_r, c.lora_alpha, c.lora_dropout)
                load_adapter_state(self.model, key.adapter_name, ckpt.adapter)
                self._injected.add(key)
        self.model.eval()  # peft creates the new LoRA dropout modules in training mode

    def forget(self, keys) -> None:
        """Drop checkpoints (cut by a deletion) from memory now, their adapters at the next forward."""
        for key in keys:
            self.checkpoints.pop(key, None)
            if key in self._injected:
                self._stale.add(key)

    def _flush_stale(self) -> None:
        for key in sorted(self._stale):
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", message=".*was active which is now deleted.*")
                delete_adapter(self.model, key.adapter_name, prefix="lora_")
            self._injected.discard(key)
        self._stale.clear()

    @torch.inference_mode()
    def shard_logits(self, chain: list[CheckpointKey], batch: dict[str, torch.Tensor]) -> torch.Tensor:
        activate(self.model, [k.adapter_name for k in chain if self.checkpoints[k].adapter])
        overrides = self.checkpoints[chain[-1]].params
        return functional_call(self.model, overrides, args=(), kwargs=batch).logits.float()

    @torch.inference_mode()
    def logits(self, chains: dict[int, list[CheckpointKey]], data: EncodedData, batch_size: int) -> torch.Tensor:
        """Mean over shards (in shard order) of each served chain's logits, rows in ``data`` order."""
        if not chains:
            raise RuntimeError("no shard is served: every shard was dropped or awaits retraining")
        self._flush_stale()
        self.ensure([k for chain in chains.values() for k in chain])
        out = None
        for rows in data.eval_batches(batch_size):
            batch = data.collate(rows)
            per_shard = torch.stack([self.shard_logits(chains[j], batch) for j in sorted(chains)])
            mean = per_shard.mean(dim=0)
            if out is None:
                out = torch.empty((len(data), mean.shape[-1]), dtype=mean.dtype)
            out[torch.tensor(rows)] = mean
        if out is None:
            raise ValueError("no examples to predict")
        return out
