"""Staged training of one (shard, slice order) unit.

S3T stage k (0-based) trains the LoRA adapters of layer block k plus a head, on the union of
the order's first k+1 slices, with the adapters of earlier blocks active and frozen; a
checkpoint (block-k adapters + stage-k head) is written after every stage. Before each stage
the trainable parameters are compared with the intended set (peft's ``set_adapter`` silently
re-enables gradients of every active adapter).

Every stage is seeded from (seed, shard, order, stage) only: a unit trains the same in any
process, and a retrain without the deleted ids equals training from scratch without them.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import torch
from torch import nn

from .. import console
from ..artifacts import forget_set_commitment, load_or_create_salt
from ..training.loops import run_steps
from .checkpoints import Checkpoint, CheckpointKey, derive_seed, save_checkpoint
from .encoding import EncodedData
from .layers import (
    activate,
    adapter_state,
    assert_trainable,
    default_target_modules,
    head_param_names,
    inject_lora,
    linear_module_names,
    load_adapter_state,
    load_param_state,
    make_blocks,
    num_layers,
    param_state,
    set_trainable,
    target_module_names,
)


@dataclass
class Layout:
    """Where the adapters and heads live in the model (saved in ``s3t_config.json``)."""

    n_layers: int
    blocks: list[list[int]]
    stage_modules: list[list[str]]
    head_params: list[str]

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class UnitJob:
    """Train stages ``from_stage..L-1`` of (shard, order); ``stage_ids[k]`` = ids stage k trains on."""

    shard: int
    order_idx: int
    order: tuple[int, ...]
    generation: int
    stage_ids: list[list[str]]
    from_stage: int = 0
    excluded_through_seq: int = 0
    prior: list[Checkpoint] = field(default_factory=list)

    def key(self, stage: int) -> CheckpointKey:
        return CheckpointKey(self.shard, self.order_idx, stage, self.generation)


class S3TScheme:
    """Stage k trains block k's adapters and the head; the served model of prefix P stacks stages 0..P-1."""

    name = "s3t"

    def layout(self, model: nn.Module, config) -> Layout:
        blocks = make_blocks(num_layers(model), config.num_slices, config.block_order, config.block_layers)
        targets = config.lora_target_modules or default_target_modules(model)
        linear = linear_module_names(model)
        stage_modules = [target_module_names(linear, block, targets) for block in blocks]
        for k, mods in enumerate(stage_modules):
            if not mods:
                raise ValueError(f"stage {k}: no module named {targets} in layers {blocks[k]}")
        return Layout(num_layers(model), blocks, stage_modules, head_param_names(model, config.head_modules))

    def served_stages(self, prefix_len: int) -> list[int]:
        return list(range(prefix_len))

    def adapter_modules(self, layout: Layout, stage: int) -> list[str]:
        return layout.stage_modules[stage]

    def begin_unit(self, model, layout, config, job: UnitJob) -> None:
        for ckpt in job.prior:  # retrain from a clean prefix: earlier stages as they were
            k = ckpt.key.stage
            inject_lora(model, f"s{k}", layout.stage_modules[k], config.lora_r, config.lora_alpha, config.lora_dropout)
            load_adapter_state(model, f"s{k}", ckpt.adapter)
        if job.prior:
            load_param_state(model, job.prior[-1].params)

    def begin_stage(self, model, layout, config, job: UnitJob, k: int) -> set[str]:
        seed = derive_seed(config.seed, "lora-init", job.shard, job.order_idx, k)
        inject_lora(
            model, f"s{k}", layout.stage_modules[k], config.lora_r, config.lora_alpha, config.lora_dropout, seed
        )
        activate(model, [f"s{i}" for i in range(k + 1)])  # flips requires_grad of s0..sk to True
        intended = {n for n, _ in model.named_parameters() if f".s{k}." in n and "lora_" in n}
        intended |= set(layout.head_params)
        set_trainable(model, intended)
        return intended

    def stage_checkpoint(self, model, layout, k: int) -> tuple[dict, dict]:
        return adapter_state(model, f"s{k}"), param_state(model, layout.head_params)


def fit(
    model: nn.Module,
    data: EncodedData,
    rows: list[int],
    config,
    seed: int,
    desc: str = "fine-tuning",
    leave: bool = True,
) -> dict:
    """AdamW + linear schedule over the trainable parameters; batches and dropout seeded by ``seed``.

    Each epoch shuffles ``rows`` with a generator seeded by ``seed``; the steps are
    :func:`training.loops.run_steps` (gradient norm clipped at ``config.max_grad_norm``), under a
    progress bar labelled ``desc`` (cleared at the end unless ``leave``).
    """
    params = [p for p in model.parameters() if p.requires_grad]
    bs, epochs = config.per_device_train_batch_size, int(config.num_train_epochs)
    gen = torch.Generator().manual_seed(seed)
    rows_t = torch.tensor(rows, dtype=torch.long)
    batches = [
        perm[i : i + bs].tolist()
        for perm in (rows_t[torch.randperm(len(rows), generator=gen)] for _ in range(epochs))
        for i in range(0, len(perm), bs)
    ]
    stats = {"examples": len(rows), "steps": len(batches), "loss": None}
    if not batches:
        return stats
    labels = torch.as_tensor(data.labels, dtype=torch.long)
    losses = []

    def step_loss(step: int) -> torch.Tensor:
        loss = model(**data.collate(batches[step]), labels=labels[batches[step]]).loss
        losses.append(loss.detach().item())
        return loss

    run_steps(
        model,
        len(batches),
        step_loss,
        learning_rate=config.learning_rate,
        params=params,
        weight_decay=config.weight_decay,
        seed=seed,
        max_grad_norm=config.max_grad_norm,
        warmup_steps=int(config.warmup_ratio * len(batches)),
        desc=desc,
        leave=leave,
    )
    stats["loss"] = sum(losses) / len(batches)
    return stats


def train_unit(
    base_model: nn.Module,
    data: EncodedData,
    job: UnitJob,
    layout: Layout,
    config,
    scheme,
    root: str | Path | None,
    on_stage: Callable[[UnitJob, int, list[str]], None] | None = None,
) -> list[Checkpoint]:
    """Train ``job`` on a copy of ``base_model``; write each stage's checkpoint under ``root``."""
    model = copy.deepcopy(base_model)
    scheme.begin_unit(model, layout, config, job)
    out = []
    for k in range(job.from_stage, len(job.order)):
        start = time.perf_counter()
        intended = scheme.begin_stage(model, layout, config, job, k)
        assert_trainable(model, intended, what=f"shard {job.shard} order {job.order_idx} stage {k}")
        if on_stage is not None:
            on_stage(job, k, sorted(intended))
        stats = fit(
            model,
            data,
            data.rows_of(job.stage_ids[k]),
            config,
            derive_seed(config.seed, "train", job.shard, job.order_idx, k),
            desc=_stage_label(job, k),
            leave=False,
        )
        adapter, params = scheme.stage_checkpoint(model, layout, k)
        meta = {
            "method": scheme.name,
            "shard": job.shard,
            "order": job.order_idx,
            "stage": k,
            "generation": job.generation,
            "slices": list(job.order[: k + 1]),
            "n_train": len(job.stage_ids[k]),
            "train_ids_commitment": _training_set_commitment(job.stage_ids[k], root),
            "excluded_through_seq": job.excluded_through_seq,
            "loss": stats["loss"],
            "steps": stats["steps"],
            "seconds": round(time.perf_counter() - start, 3),
            "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        }
        ckpt = Checkpoint(job.key(k), adapter, params, meta)
        if root is not None:
            save_checkpoint(root, ckpt)
        out.append(ckpt)
        loss = "" if stats["loss"] is None else f", loss {stats['loss']:.4f}"
        console.say(f"{_stage_label(job, k)}: done in {meta['seconds']:.1f} s, {stats['steps']} steps{loss}")
    return out


def _training_set_commitment(ids, root) -> str | None:
    """The salted commitment of a stage's training ids (public checkpoint metadata: a plain hash of
    ``all ids - deleted ids`` would give the deleted ids back to whoever can enumerate them)."""
    return None if root is None else forget_set_commitment(ids, load_or_create_salt(root))


def _stage_label(job: UnitJob, k: int) -> str:
    """``"shard 0, order 1, stage 2/3"``: a stage's label for its bar and its line (no ids)."""
    return f"shard {job.shard}, order {job.order_idx}, stage {k + 1}/{len(job.order)}"
