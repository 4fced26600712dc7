"""Weight-change penalties of Thudi et al., "Unrolling SGD: Understanding Factors Influencing
Machine Unlearning" (EuroS&P 2022).

- SD-of-logits loss: ``L = CE + lambda * mean_i std_c(z_i)``, the unbiased standard deviation
  over classes of each example's logits ``z_i``, averaged over the batch.
- L2 to the initial weights: ``mu * ||w_t - w_0||_2^2`` over the trainable parameters.

Both shrink how far training moves the weights, which bounds the verification error of
approximate unlearning. They compose: ``L = CE + lambda * SD + mu * L2``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass
class LossTerms:
    """The total loss and its parts (each a scalar tensor; penalties already weighted)."""

    total: torch.Tensor
    ce: torch.Tensor
    sd: torch.Tensor
    l2: torch.Tensor


def logit_std(logits: torch.Tensor) -> torch.Tensor:
    """Per-example unbiased standard deviation of the logits over classes: shape ``[B]``."""
    return logits.float().std(dim=-1, unbiased=True)


def l2_to_initial(params: list[torch.Tensor], initial: list[torch.Tensor]) -> torch.Tensor:
    """``||w - w_0||_2^2`` summed over the given parameters."""
    if not params:
        return torch.zeros(())
    return sum(((p - p0.to(p.device, p.dtype)) ** 2).sum() for p, p0 in zip(params, initial))


def per_example_loss(logits: torch.Tensor, labels: torch.Tensor, sd_lambda: float = 0.0) -> torch.Tensor:
    """``l_i = CE_i + lambda * std_c(z_i)``: the part of the loss that belongs to each example."""
    loss = F.cross_entropy(logits.float(), labels.long(), reduction="none")
    if sd_lambda:
        loss = loss + sd_lambda * logit_std(logits)
    return loss


def unlearnable_loss(
    logits: torch.Tensor,
    labels: torch.Tensor,
    *,
    sd_lambda: float = 0.0,
    l2_init_mu: float = 0.0,
    params: list[torch.Tensor] | None = None,
    initial: list[torch.Tensor] | None = None,
) -> LossTerms:
    """``CE + lambda * mean_i std_c(z_i) + mu * ||w - w_0||^2`` with each part returned."""
    ce = F.cross_entropy(logits.float(), labels.long())
    zero = ce.new_zeros(())
    sd = sd_lambda * logit_std(logits).mean() if sd_lambda else zero
    if l2_init_mu:
        if params is None or initial is None:
            raise ValueError("the L2-to-initial penalty needs params and initial weights")
        l2 = l2_init_mu * l2_to_initial(params, initial)
    else:
        l2 = zero
    return LossTerms(total=ce + sd + l2, ce=ce.detach(), sd=sd.detach(), l2=l2.detach())
