"""SISA baseline (Bourtoule et al., "Machine Unlearning", IEEE S&P 2021) under the S3T API.

Same shards and slices; one model per shard trained slice by slice (stage k continues from
stage k-1 on the union of the first k+1 slices), a full snapshot checkpointed after each slice.
A deletion in slice position p retrains that shard from snapshot p-1 (the last clean one); the
clean snapshot is served meanwhile. ``finetune="full"`` trains every weight, ``"lora"`` trains
LoRA adapters on all layers plus the head.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .checkpoints import derive_seed
from .config import S3TConfig
from .layers import (
    activate,
    adapter_state,
    default_target_modules,
    head_param_names,
    inject_lora,
    linear_module_names,
    load_adapter_state,
    load_param_state,
    num_layers,
    param_state,
    set_trainable,
    target_module_names,
)
from .staged import Layout, S3TScheme
from .system import S3TModel

ADAPTER = "sisa"


@dataclass
class SISAConfig(S3TConfig):
    """S3TConfig with SISA's defaults: one order per shard, retrain from the last clean slice."""

    budget: int = field(default=1, metadata={"help": "SISA trains one slice order per shard."})
    on_cut: str = field(default="retrain", metadata={"help": "SISA retrains from the last clean slice checkpoint."})
    finetune: str = field(default="full", metadata={"help": "full (every weight) or lora (all layers + head)."})
    stage_training: str = field(default="block", metadata={"help": "SISA: every stage trains the same parameters."})

    method = "sisa"

    def __post_init__(self):
        super().__post_init__()
        if self.budget != 1:
            raise ValueError(f"SISA trains one slice order per shard: budget must be 1, got {self.budget}")
        if self.stage_training != "block":
            raise ValueError(
                f"SISA trains every stage on the same parameters: stage_training must be 'block', got {self.stage_training!r}"
            )
        if self.finetune not in ("full", "lora"):
            raise ValueError(f"finetune must be 'full' or 'lora', got {self.finetune!r}")


class SISAScheme(S3TScheme):
    """Every stage trains the same parameters; a checkpoint is a full snapshot, served alone."""

    name = "sisa"

    def layout(self, model, config) -> Layout:
        n = num_layers(model)
        mods: list[str] = []
        if config.finetune == "lora":
            targets = config.lora_target_modules or default_target_modules(model)
            mods = target_module_names(linear_module_names(model), range(n), targets)
        head = head_param_names(model, config.head_modules)
        return Layout(n, [list(range(n))] * config.num_slices, [mods] * config.num_slices, head)

    def served_stages(self, prefix_len: int) -> list[int]:
        return [prefix_len - 1] if prefix_len > 0 else []

    def _lora(self, config) -> bool:
        return config.finetune == "lora"

    def begin_unit(self, model, layout, config, job) -> None:
        if self._lora(config):
            seed = derive_seed(config.seed, "lora-init", job.shard, job.order_idx, 0)
            inject_lora(
                model, ADAPTER, layout.stage_modules[0], config.lora_r, config.lora_alpha, config.lora_dropout, seed
            )
        if job.prior:  # retrain from the last clean snapshot
            snapshot = job.prior[-1]
            if snapshot.adapter:
                load_adapter_state(model, ADAPTER, snapshot.adapter)
            load_param_state(model, snapshot.params)

    def begin_stage(self, model, layout, config, job, k: int) -> set[str]:
        if self._lora(config):
            activate(model, [ADAPTER])
            intended = {n for n, _ in model.named_parameters() if f".{ADAPTER}." in n and "lora_" in n}
            intended |= set(layout.head_params)
        else:
            intended = {n for n, _ in model.named_parameters()}
        set_trainable(model, intended)
        return intended

    def stage_checkpoint(self, model, layout, k: int) -> tuple[dict, dict]:
        trainable = [n for n, p in model.named_parameters() if p.requires_grad and "lora_" not in n]
        adapter = adapter_state(model, ADAPTER) if any("lora_" in n for n, _ in model.named_parameters()) else {}
        return adapter, param_state(model, trainable)


class SISAModel(S3TModel):
    config_class = SISAConfig
    scheme_class = SISAScheme
    method = "sisa"
    preload_all = False  # full snapshots are large: load the served ones only
