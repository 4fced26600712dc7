"""L1-sparse unlearning: fine-tune on the retain set with a decaying L1 penalty on the weights.

Jia, Liu, Ram, Yao, Liu, Liu, Sharma and Liu, "Model Sparsity Can Simplify Machine Unlearning"
(NeurIPS 2023, "l1-sparse" in its code and in SalUn's):

    min_w  CE(f_w(x_r), y_r) + alpha_t * ||w||_1,      alpha_t = alpha * (1 - t / (n - 1))

over the trainable weights, for steps t = 0 .. n-1 (the coefficient decays linearly from
``alpha`` at the first step to 0 at the last; the paper's code decays it per epoch). The default
``alpha`` is that of the paper's scripts (1e-4); they use SGD, here AdamW, under which the
penalty shrinks every weight whose CE gradient is small against ``alpha`` by about
``learning_rate`` per step.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch.nn.functional as F

from .base import MethodConfig, MethodContext, cycle, forward_logits, run_steps
from .neggrad import require_rows
from .registry import register_method


@dataclass
class L1SparseConfig(MethodConfig):
    """L1-sparse: ``min CE(retain) + alpha_t ||w||_1``, alpha_t decaying linearly from ``alpha`` to 0."""

    alpha: float = field(
        default=1e-4, metadata={"help": "L1 coefficient at the first step; it decays linearly to 0 at the last step."}
    )

    def __post_init__(self):
        if self.alpha < 0:
            raise ValueError(f"L1SparseConfig: alpha must be >= 0, got {self.alpha}")
        super().__post_init__()


def planned_steps(config: MethodConfig, n_batches_per_epoch: int) -> int:
    """The number of steps ``run_steps`` will take for ``config`` and this epoch length."""
    total = max(1, math.ceil(config.epochs * n_batches_per_epoch))
    return min(total, config.max_steps) if config.max_steps else total


def l1_coefficient(alpha: float, step: int, total: int) -> float:
    """``alpha * (1 - step / (total - 1))``: alpha at step 0, 0 at the last step (alpha if there is one step)."""
    return alpha * (1.0 - step / (total - 1)) if total > 1 else alpha


DESCRIPTION = (
    'L1-sparse unlearning (Jia et al., "Model Sparsity Can Simplify Machine Unlearning", '
    "NeurIPS 2023): fine-tuning on the retained data with a decaying L1 penalty on the weights."
)


@register_method("l1_sparse", L1SparseConfig, guarantee="approximate", description=DESCRIPTION)
def l1_sparse(model, forget, retain, config: L1SparseConfig, log, ctx: MethodContext) -> dict:
    """Fine-tune on the retain set with a linearly decaying L1 penalty on the weights."""
    require_rows(retain, "l1_sparse", "retain")
    loader = ctx.loader(retain, config.batch_size, shuffle=True, seed=config.seed)
    batches = cycle(loader)
    params = [p for p in model.parameters() if p.requires_grad]
    total = planned_steps(config, len(loader))

    def step_loss(step):
        batch = ctx.to_device(next(batches))
        loss = F.cross_entropy(forward_logits(model, batch), batch["labels"])
        coef = l1_coefficient(config.alpha, step, total)
        return loss + coef * sum(p.abs().sum() for p in params) if coef else loss

    steps = run_steps(model, ctx, config, len(loader), step_loss, params=params)
    return {"optimizer_steps": steps, "l1_norm": float(sum(p.detach().abs().sum() for p in params))}
