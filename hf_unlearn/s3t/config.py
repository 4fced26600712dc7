"""Configuration of an S3T system (Chowdhury et al., "Towards Scalable Exact Machine Unlearning
Using Parameter-Efficient Fine-Tuning", 2024).

``S3TConfig`` is a plain dataclass in the TRL style (one ``field`` with ``help`` per option,
validation in ``__post_init__``), so ``HfArgumentParser`` reads it from YAML and flags. It is
deliberately not a ``TrainingArguments`` subclass: under ``accelerate launch`` every rank trains
its own (shard, order) units in a single process, and ``Trainer`` would wrap them in DDP and
split their data. The per-stage training options keep ``TrainingArguments``' names.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

ORDER_SELECTIONS = ("cyclic", "bms", "random")
BLOCK_ORDERS = ("top_down", "bottom_up")
ON_CUT = ("serve_prefix", "retrain")
ON_EMPTY_SHARD = ("retrain", "drop")
STAGE_TRAINING = ("block", "prefix")


def parse_blocks(blocks) -> list[list[int]] | None:
    """``"3,2;1,0"`` or ``[[3, 2], [1, 0]]`` -> ``[[3, 2], [1, 0]]`` (stage by stage, layer indices)."""
    if blocks is None or blocks == "":
        return None
    if isinstance(blocks, str):
        try:
            return [[int(x) for x in part.split(",") if x.strip()] for part in blocks.split(";")]
        except ValueError as err:
            raise ValueError(f"blocks={blocks!r}: expected layer indices like '3,2;1,0' ({err})") from None
    return [[int(x) for x in block] for block in blocks]


@dataclass
class S3TConfig:
    """Shards, slices, slice orders, LoRA and per-stage training options of an S3T system."""

    output_dir: str = field(
        default="s3t_output", metadata={"help": "Folder of the system: checkpoints, ledger, report."}
    )
    num_shards: int = field(default=4, metadata={"help": "m: number of disjoint shards (one model per shard)."})
    num_slices: int = field(default=4, metadata={"help": "L: slices per shard = training stages = layer blocks."})
    budget: int = field(default=2, metadata={"help": "B: number of slice orders trained per shard (1 <= B <= L!)."})
    order_selection: str = field(
        default="cyclic", metadata={"help": f"How the B slice orders are chosen: {', '.join(ORDER_SELECTIONS)}."}
    )
    deletion_prior: list[float] | None = field(
        default=None,
        metadata={"help": "bms: probability that each slice (0..L-1) receives a deletion; low-prior slices go first."},
    )
    block_order: str = field(
        default="top_down",
        metadata={"help": "Stage 1 trains the top layers (top_down, as the paper) or the bottom ones."},
    )
    blocks: str | None = field(
        default=None,
        metadata={"help": "Explicit layer blocks per stage, e.g. '3,2;1,0' (overrides block_order; L blocks)."},
    )
    stage_training: str = field(
        default="prefix",
        metadata={
            "help": "prefix: stage k trains the adapters of layer blocks 0..k on the order's first k+1 slices (a "
            "checkpoint holds k+1 blocks; as exact, closer to one model on all data); block: stage k trains block "
            "k only, earlier blocks frozen (the paper's scheme)."
        },
    )
    lora_r: int = field(default=8, metadata={"help": "LoRA rank."})
    lora_alpha: float = field(default=16, metadata={"help": "LoRA alpha (scaling = alpha / r)."})
    lora_dropout: float = field(default=0.05, metadata={"help": "Dropout on the LoRA input."})
    lora_target_modules: list[str] | None = field(
        default=None,
        metadata={"help": "Short names of the Linear layers to adapt (default: peft's choice for the model type)."},
    )
    head_modules: list[str] | None = field(
        default=None,
        metadata={"help": "Modules of the classification head, one copy per stage (default: classifier + pooler)."},
    )
    learning_rate: float = field(default=5e-4, metadata={"help": "AdamW learning rate of every stage."})
    num_train_epochs: int = field(default=2, metadata={"help": "Epochs of every stage over its cumulative slices."})
    per_device_train_batch_size: int = field(default=16, metadata={"help": "Training batch size."})
    per_device_eval_batch_size: int = field(default=64, metadata={"help": "Batch size of predict/evaluate."})
    weight_decay: float = field(default=0.0, metadata={"help": "AdamW weight decay."})
    warmup_ratio: float = field(default=0.0, metadata={"help": "Linear warm-up fraction of each stage's steps."})
    max_grad_norm: float = field(default=1.0, metadata={"help": "Gradient clipping (0 disables)."})
    max_length: int = field(default=128, metadata={"help": "Tokens kept per example."})
    on_cut: str = field(
        default="serve_prefix",
        metadata={
            "help": "After a deletion cuts an order: serve the surviving prefix (S3T) or retrain the cut stages."
        },
    )
    on_empty_shard: str = field(
        default="retrain",
        metadata={"help": "A shard with no surviving prefix is retrained on its remaining data or dropped."},
    )
    seed: int = field(default=0, metadata={"help": "Seeds the assignment, the orders and every stage."})
    overwrite_output_dir: bool = field(
        default=False, metadata={"help": "Replace a system already in output_dir (its files only)."}
    )

    method = "s3t"

    def __post_init__(self):
        for name in ("num_shards", "num_slices", "budget", "lora_r", "num_train_epochs"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        L, B = self.num_slices, self.budget
        if B > math.factorial(L):
            raise ValueError(f"budget B={B} exceeds the {math.factorial(L)} possible orders of L={L} slices (B <= L!)")
        if self.order_selection not in ORDER_SELECTIONS:
            raise ValueError(f"order_selection must be one of {ORDER_SELECTIONS}, got {self.order_selection!r}")
        if self.order_selection in ("cyclic", "bms") and B > L:
            raise ValueError(f"{self.order_selection} gives at most L={L} orders: budget B={B} > L; use random")
        if self.deletion_prior is not None:
            prior = [float(p) for p in self.deletion_prior]
            if len(prior) != L or not all(0.0 <= p <= 1.0 for p in prior):
                raise ValueError(f"deletion_prior needs L={L} probabilities in [0, 1], got {self.deletion_prior}")
            self.deletion_prior = prior
        if self.block_order not in BLOCK_ORDERS:
            raise ValueError(f"block_order must be one of {BLOCK_ORDERS}, got {self.block_order!r}")
        blocks = parse_blocks(self.blocks)
        if blocks is not None:
            flat = [i for b in blocks for i in b]
            if len(blocks) != L or any(not b for b in blocks):
                raise ValueError(f"blocks must list L={L} non-empty layer blocks, got {blocks}")
            if len(set(flat)) != len(flat) or min(flat) < 0:
                raise ValueError(f"blocks must be disjoint non-negative layer indices, got {blocks}")
            self.blocks = ";".join(",".join(str(i) for i in b) for b in blocks)
        if self.stage_training not in STAGE_TRAINING:
            raise ValueError(f"stage_training must be one of {STAGE_TRAINING}, got {self.stage_training!r}")
        if self.on_cut not in ON_CUT:
            raise ValueError(f"on_cut must be one of {ON_CUT}, got {self.on_cut!r}")
        if self.on_empty_shard not in ON_EMPTY_SHARD:
            raise ValueError(f"on_empty_shard must be one of {ON_EMPTY_SHARD}, got {self.on_empty_shard!r}")
        if not 0.0 <= self.lora_dropout < 1.0 or not 0.0 <= self.warmup_ratio < 1.0:
            raise ValueError("lora_dropout and warmup_ratio must be in [0, 1)")

    @property
    def block_layers(self) -> list[list[int]] | None:
        return parse_blocks(self.blocks)

    def to_dict(self) -> dict:
        return {"method": self.method, **asdict(self)}

    @classmethod
    def from_dict(cls, data: dict) -> S3TConfig:
        data = {k: v for k, v in data.items() if k != "method"}
        data.setdefault("stage_training", "block")  # systems saved before the option trained block by block
        return cls(**data)
