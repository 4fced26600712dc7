"""Fine-tune on the retain set: the simplest approximate baseline.

    min_w  CE(f_w(x_r), y_r)        for ``epochs`` passes over the retain set

The forget set fades by catastrophic forgetting (the "FT" baseline of Fan, Liu, Zhang, Wong, Wei
and Liu, "SalUn: Empowering Machine Unlearning via Gradient-based Weight Saliency", ICLR 2024, and
of the RUM code base). Also the repair step after rollback (``amnesiac.py``).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch.nn.functional as F

from .base import MethodConfig, MethodContext, cycle, forward_logits, run_steps
from .registry import register_method


@dataclass
class FinetuneConfig(MethodConfig):
    """Fine-tune: ``min CE(retain)`` for ``epochs`` passes over the retain set."""


def finetune_on(model, dataset, config: MethodConfig, ctx: MethodContext) -> int:
    """Minimise the cross-entropy on ``dataset``; returns optimizer steps."""
    loader = ctx.loader(dataset, config.batch_size, shuffle=True, seed=config.seed)
    batches = cycle(loader)

    def step_loss(_):
        batch = ctx.to_device(next(batches))
        return F.cross_entropy(forward_logits(model, batch), batch["labels"])

    return run_steps(model, ctx, config, len(loader), step_loss)


DESCRIPTION = (
    'Fine-tuning on the retained data only (the "FT" baseline of Fan et al., "SalUn: Empowering '
    'Machine Unlearning via Gradient-based Weight Saliency", ICLR 2024): the forgotten examples fade by '
    "catastrophic forgetting."
)


@register_method("finetune", FinetuneConfig, guarantee="approximate", description=DESCRIPTION)
def finetune(model, forget, retain, config: FinetuneConfig, log, ctx: MethodContext) -> dict:
    """Fine-tune on the retain set only."""
    if retain is None or len(retain) == 0:
        raise ValueError("finetune needs a non-empty retain set")
    return {"optimizer_steps": finetune_on(model, retain, config, ctx)}
