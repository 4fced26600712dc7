"""S3T with prefix-joint stages: stage k trains the adapters of layer blocks 0..k, not block k alone.

S3T (Chowdhury et al., "Towards Scalable Exact Machine Unlearning Using Parameter-Efficient
Fine-Tuning", 2024) trains layer block k on the order's slices 1..k+1 with the earlier blocks
frozen, so the model of a prefix of P slices is the first P blocks. Here stage k continues
training every block 0..k (block k from a fresh seeded LoRA init, blocks 0..k-1 from the stage
k-1 checkpoint) plus the head on the same union of slices; its checkpoint holds all k+1 blocks.

Exactness is unchanged: the checkpoint of stage k has seen only the slices order[0..k], so a
deletion in slice position p still serves (or retrains from) the stage p-1 checkpoint at once.
What changes: the served model of a prefix of P slices is the stage P-1 checkpoint alone (one
adapter over blocks 0..P-1), and storage per order grows from L blocks to L(L+1)/2.
"""

from __future__ import annotations

from ..training._compat import delete_adapter
from .checkpoints import derive_seed
from .layers import activate, adapter_state, inject_lora, load_adapter_state, load_param_state, set_trainable
from .staged import Layout, S3TScheme, UnitJob


def scheme_for(system_cls, config) -> S3TScheme:
    """The training scheme of a system: ``config.stage_training`` ("prefix" here), else the system's own."""
    return PrefixJointScheme() if config.stage_training == "prefix" else system_cls.scheme_class()


def prefix_modules(layout: Layout, stage: int) -> list[str]:
    """The modules of blocks 0..``stage`` (the modules a prefix-joint stage-``stage`` adapter covers)."""
    return sorted({m for k in range(stage + 1) for m in layout.stage_modules[k]})


class PrefixJointScheme(S3TScheme):
    """Stage k's adapter ``s{k}`` covers blocks 0..k and continues ``s{k-1}``; a prefix serves one checkpoint."""

    name = "s3t"

    def served_stages(self, prefix_len: int) -> list[int]:
        return [prefix_len - 1] if prefix_len > 0 else []

    def adapter_modules(self, layout: Layout, stage: int) -> list[str]:
        return prefix_modules(layout, stage)

    def begin_unit(self, model, layout, config, job: UnitJob) -> None:
        if job.prior:  # retrain from the last clean stage: its adapter already holds blocks 0..k
            last = job.prior[-1]
            k = last.key.stage
            inject_lora(
                model, f"s{k}", prefix_modules(layout, k), config.lora_r, config.lora_alpha, config.lora_dropout
            )
            load_adapter_state(model, f"s{k}", last.adapter)
            load_param_state(model, last.params)

    def begin_stage(self, model, layout, config, job: UnitJob, k: int) -> set[str]:
        seed = derive_seed(config.seed, "lora-init", job.shard, job.order_idx, k)
        modules = prefix_modules(layout, k)
        inject_lora(model, f"s{k}", modules, config.lora_r, config.lora_alpha, config.lora_dropout, seed)
        if k > 0:  # blocks 0..k-1 continue from stage k-1; block k keeps its fresh init
            state = adapter_state(model, f"s{k}")
            state.update(adapter_state(model, f"s{k - 1}"))
            load_adapter_state(model, f"s{k}", state)
            delete_adapter(model, f"s{k - 1}", prefix="lora_")
        activate(model, [f"s{k}"])
        intended = {n for n, _ in model.named_parameters() if f".s{k}." in n and "lora_" in n}
        intended |= set(layout.head_params)
        set_trainable(model, intended)
        return intended
