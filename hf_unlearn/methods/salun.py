"""SalUn: random-label unlearning restricted to the salient weights.

Fan, Liu, Zhang, Wong, Wei and Liu, "SalUn: Empowering Machine Unlearning via Gradient-based
Weight Saliency" (ICLR 2024). Once, on the original model (eval mode), over the forget set:

    g = | d CE(f_w(x_f), y_f) / dw |,      m = 1[g among the top ``mask_ratio`` of all entries]

(one global ranking over every trainable parameter, as in SalUn's ``generate_mask.py``; entries
with an exactly zero gradient are never salient). Then random-label training (forget set with
random wrong labels + retain set) where every gradient is multiplied by ``m`` before the
optimizer step, so the weights outside the mask keep their values (up to weight decay).

In the union each forget row appears once (SalUn's ``ConcatDataset``), so a small forget set is
a small share of every batch: ``forget_share`` repeats the relabelled forget rows until they
make up at least that share (used by the RUM ``salun`` preset for its small high group).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from .base import MethodConfig, MethodContext, cycle, forward_logits, run_steps
from .neggrad import require_rows
from .random_label import num_labels_of, relabelled_union
from .registry import register_method


@dataclass
class SalUnConfig(MethodConfig):
    """SalUn: random-label training with gradients masked to the top ``mask_ratio`` of |grad CE(forget)|."""

    mask_ratio: float = field(
        default=0.5,
        metadata={"help": "Fraction of all trainable weights (largest forget-gradient magnitude) that may change."},
    )
    forget_share: float | None = field(
        default=None,
        metadata={
            "help": "Repeat the relabelled forget rows until they are at least this share of the union (default: each once)."
        },
    )

    def __post_init__(self):
        if self.forget_share is not None and not 0.0 < self.forget_share < 1.0:
            raise ValueError(f"SalUnConfig: forget_share must be in (0, 1), got {self.forget_share}")
        if not 0.0 < self.mask_ratio <= 1.0:
            raise ValueError(f"SalUnConfig: mask_ratio must be in (0, 1], got {self.mask_ratio}")
        super().__post_init__()


def saliency_mask(model, forget, ctx: MethodContext, ratio: float, batch_size: int) -> dict[str, torch.Tensor]:
    """``{param name: bool mask}`` of the top ``ratio`` of |gradient of the forget CE| (summed over the forget set)."""
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    model.eval()
    model.zero_grad(set_to_none=True)
    for batch in ctx.loader(forget, batch_size, shuffle=False):
        batch = ctx.to_device(batch)
        F.cross_entropy(forward_logits(model, batch), batch["labels"], reduction="sum").backward()
    grads = torch.cat([(p.grad if p.grad is not None else torch.zeros_like(p)).abs().flatten() for _, p in named])
    model.zero_grad(set_to_none=True)
    keep = max(1, int(ratio * grads.numel()))
    threshold = torch.kthvalue(grads, grads.numel() - keep + 1).values  # the keep-th largest
    flat = (grads >= threshold) & (grads > 0)
    return dict(zip([n for n, _ in named], flat.split([p.numel() for _, p in named])))


DESCRIPTION = (
    'SalUn (Fan, Liu, Zhang, Wong, Wei and Liu, "SalUn: Empowering Machine Unlearning via '
    'Gradient-based Weight Saliency", ICLR 2024): random-label training restricted to the parameters most '
    "salient for the loss on the forgotten examples."
)


@register_method("salun", SalUnConfig, guarantee="approximate", description=DESCRIPTION)
def salun(model, forget, retain, config: SalUnConfig, log, ctx: MethodContext) -> dict:
    """Random-label training with gradients masked to the forget-salient weights."""
    require_rows(forget, "salun", "forget")
    require_rows(retain, "salun", "retain")
    masks = saliency_mask(model, forget, ctx, config.mask_ratio, config.batch_size)
    masked = [(p, masks[n].view_as(p).to(p.dtype)) for n, p in model.named_parameters() if p.requires_grad]
    loader = ctx.loader(
        relabelled_union(forget, retain, num_labels_of(model), config.seed, config.forget_share),
        config.batch_size,
        shuffle=True,
        seed=config.seed,
    )
    batches = cycle(loader)

    def step_loss(_):
        batch = ctx.to_device(next(batches))
        return F.cross_entropy(forward_logits(model, batch), batch["labels"])

    def mask_grads():
        for p, m in masked:
            if p.grad is not None:
                p.grad.mul_(m)

    steps = run_steps(model, ctx, config, len(loader), step_loss, grad_hook=mask_grads)
    kept = sum(int(m.sum()) for m in masks.values())
    return {"optimizer_steps": steps, "mask_fraction": kept / sum(m.numel() for m in masks.values())}
