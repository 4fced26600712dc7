"""NegGrad+: descend on the retain set while ascending on the forget set.

    L = alpha * CE(f_w(x_r), y_r) - (1 - alpha) * CE(f_w(x_f), y_f)

one retain batch and one forget batch per step, ``epochs`` passes over the retain set (the
forget set is cycled). Introduced by Kurmanji, Triantafillou, Hayes and Triantafillou,
"Towards Unbounded Machine Unlearning" (NeurIPS 2023, the SCRUB paper); RUM (Zhao,
Triantafillou et al., "What makes unlearning hard and what to do about it", NeurIPS 2024) runs
it with alpha 0.99 / 0.97. ``alpha = 1`` is fine-tuning on the retain set
(the forget batch is then not even computed); ``alpha = 0`` is NegGrad.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch.nn.functional as F

from .base import MethodConfig, MethodContext, cycle, forward_logits, run_steps
from .neggrad import require_rows
from .registry import register_method


@dataclass
class NegGradPlusConfig(MethodConfig):
    """NegGrad+: ``alpha * CE(retain) - (1 - alpha) * CE(forget)`` per step."""

    alpha: float = field(
        default=0.99, metadata={"help": "Weight of the retain CE; the forget CE is ascended with weight 1 - alpha."}
    )

    def __post_init__(self):
        if not 0.0 <= self.alpha <= 1.0:
            raise ValueError(f"NegGradPlusConfig: alpha must be in [0, 1], got {self.alpha}")
        super().__post_init__()


DESCRIPTION = (
    'NegGrad+ (Kurmanji, Triantafillou, Hayes and Triantafillou, "Towards Unbounded Machine '
    'Unlearning", NeurIPS 2023): descent on retained data and ascent on forgotten examples, '
    "alpha * CE(retain) - (1 - alpha) * CE(forget)."
)


@register_method("neggrad_plus", NegGradPlusConfig, guarantee="approximate", description=DESCRIPTION)
def neggrad_plus(model, forget, retain, config: NegGradPlusConfig, log, ctx: MethodContext) -> dict:
    """Retain descent plus forget ascent, weighted by alpha."""
    require_rows(forget, "neggrad_plus", "forget")
    require_rows(retain, "neggrad_plus", "retain")
    retain_loader = ctx.loader(retain, config.batch_size, shuffle=True, seed=config.seed)
    retain_batches = cycle(retain_loader)
    forget_batches = cycle(ctx.loader(forget, config.batch_size, shuffle=True, seed=config.seed + 1))

    def ce(batch):
        batch = ctx.to_device(batch)
        return F.cross_entropy(forward_logits(model, batch), batch["labels"])

    def step_loss(_):
        loss = config.alpha * ce(next(retain_batches))
        if config.alpha < 1.0:
            loss = loss - (1.0 - config.alpha) * ce(next(forget_batches))
        return loss

    return {"optimizer_steps": run_steps(model, ctx, config, len(retain_loader), step_loss)}
