"""How big the output of a training run will be, before it starts: the free-space check of ``train``.

The estimate is an upper bound computed from the configuration alone (nothing is trained). With

    N  training examples, E = num_train_epochs, B = per_device_train_batch_size x world_size,
    G  gradient_accumulation_steps,
    S  optimizer steps = max_steps if max_steps > 0, else ceil(E x ceil(ceil(N / B) / G)),
    X  examples seen = S x B x G if max_steps > 0, else ceil(E x N),
    P  bytes of the model's weights (every parameter, in its own dtype),
    T  trainable parameters, d = bytes per element of delta_dtype (float32: 4, float16/bfloat16: 2),
    k  = ceil(per_sample_fraction x T) entries of the per-sample subset,
    C  checkpoints kept (save_strategy: no -> 0, epoch -> ceil(E), steps -> S / save_steps,
       capped by save_total_limit),

the run folder needs about

    model                P                      (the trained model, plus ~1 MB for tokenizer and run file)
    initial weights      P                      (w_0, always in the log)
    transcript           X x (id length + 8) + S x 256
    deltas               S x T x d + 4 x T      (record_deltas; + the optimizer's last exp_avg_sq)
    per-sample           X x k x 4 + 8 x k      (record_per_sample)
    learning events      X x 32                 (record_learning_events)
    checkpoints          C x (P + 8 x T + 1 MB) (weights + Adam's two moments + small state)

plus a 16 MB margin. ``deletable_ids_file`` records fewer deltas: the estimate stays the upper bound.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from ..artifacts import check_free_space

DTYPE_BYTES = {"float32": 4, "float16": 2, "bfloat16": 2}
MARGIN = 16 * 2**20
SMALL = 2**20  # tokenizer, run file, meta.json, trainer state: about a megabyte


@dataclass
class LogSize:
    """The parts of the estimate in bytes (:attr:`total` is their sum plus the margin)."""

    parts: dict[str, int] = field(default_factory=dict)

    @property
    def total(self) -> int:
        return sum(self.parts.values()) + MARGIN

    def describe(self) -> str:
        """The non-empty parts, e.g. ``"model 0.44 GB, deltas 12.30 GB"``."""
        return ", ".join(f"{name} {size / 1e9:.2f} GB" for name, size in self.parts.items() if size)


def optimizer_steps(args, num_examples: int) -> tuple[int, int]:
    """(S optimizer steps, X examples seen) for ``num_examples`` training examples (see the module doc)."""
    batch = max(1, args.per_device_train_batch_size) * max(1, int(getattr(args, "world_size", 1) or 1))
    accumulation = max(1, args.gradient_accumulation_steps)
    if args.max_steps and args.max_steps > 0:
        return args.max_steps, args.max_steps * batch * accumulation
    per_epoch = math.ceil(math.ceil(num_examples / batch) / accumulation)
    return math.ceil(args.num_train_epochs * per_epoch), math.ceil(args.num_train_epochs * num_examples)


def checkpoints_kept(args, steps: int) -> int:
    """C: the checkpoints the save strategy writes, capped by ``save_total_limit``."""
    strategy = str(getattr(args.save_strategy, "value", args.save_strategy))
    if strategy == "no":
        return 0
    if strategy == "epoch":
        count = math.ceil(args.num_train_epochs) if args.max_steps <= 0 else 1
    elif strategy == "best":
        count = 1
    else:
        every = args.save_steps if args.save_steps >= 1 else max(1, math.ceil(args.save_steps * steps))
        count = max(1, steps // int(every))
    limit = args.save_total_limit
    return min(count, limit) if limit else count


def estimate_run_bytes(args, model, num_examples: int, mean_id_length: float = 24.0) -> LogSize:
    """The bytes a training run with ``args`` writes for ``model`` and ``num_examples`` examples (upper bound)."""
    weights = sum(t.numel() * t.element_size() for t in model.state_dict().values())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    steps, seen = optimizer_steps(args, num_examples)
    size = LogSize()
    size.parts["model"] = weights + SMALL
    frozen = sum(p.numel() * p.element_size() for p in model.parameters() if not p.requires_grad)
    size.parts["initial weights"] = weights - frozen  # w_0 leaves frozen parameters out (a LoRA base)
    if args.record_transcript:
        size.parts["transcript"] = int(seen * (mean_id_length + 8) + steps * 256)
    if args.record_deltas:
        size.parts["deltas"] = steps * trainable * DTYPE_BYTES[args.delta_dtype] + 4 * trainable
    if args.record_per_sample:
        k = math.ceil(args.per_sample_fraction * trainable)
        size.parts["per-sample gradients"] = seen * k * 4 + 8 * k
    if args.record_learning_events:
        size.parts["learning events"] = seen * 32
    size.parts["checkpoints"] = checkpoints_kept(args, steps) * (weights + 8 * trainable + SMALL)
    return size


def check_disk_for_run(args, model, train_ids) -> LogSize:
    """Refuse (``artifacts.DiskSpaceError`` with both numbers) a run whose output would not fit on the disk."""
    ids = list(train_ids)
    mean_id = sum(map(len, ids)) / len(ids) if ids else 24.0
    size = estimate_run_bytes(args, model, len(ids), mean_id)
    check_free_space(args.output_dir, size.total, what=f"this training run ({size.describe()}, margin)")
    return size
