"""Single-gradient unlearning (Thudi et al., "Unrolling SGD: Understanding Factors Influencing
Machine Unlearning", EuroS&P 2022).

Unrolling SGD to first order, the forgotten examples' contribution to training is about
``-k * eta * grad L(w_0; x*)``; adding it back gives::

    w_u = w_T + k * eta * grad_w L(w_0; x*)

with the gradient taken at the INITIAL weights w_0 (from the log) on the forget set (mean
loss over the forget set scaled by its share of the training set per epoch, as the paper's
per-example sum over the batch-mean loss), ``k`` the number of epochs in which the forget
examples were seen and ``eta`` the learning rate (default: the mean logged learning rate).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import ClassVar

import torch
import torch.nn.functional as F

from .base import MethodConfig, forward_logits
from .registry import register_method


@dataclass
class SingleGradientConfig(MethodConfig):
    """``w_T + k * eta * grad L(w_0; forget)``."""

    USES_LEARNING_RATE: ClassVar[bool] = False  # eta is its step size; it takes no optimizer step

    eta: float = field(default=0.0, metadata={"help": "Step size eta (0 = mean learning rate recorded in the log)."})
    scale: float = field(
        default=1.0, metadata={"help": "Extra multiplier on the correction (1 = the paper's formula)."}
    )


DESCRIPTION = (
    'Single-gradient unlearning (Thudi, Deza, Chandrasekaran and Papernot, "Unrolling SGD: '
    'Understanding Factors Influencing Machine Unlearning", EuroS&P 2022): one gradient of the loss on the '
    "forgotten examples, taken at the initial weights, is added back."
)


@register_method(
    "single_gradient", SingleGradientConfig, guarantee="approximate", description=DESCRIPTION, needs_log=True
)
def single_gradient(model, forget, retain, config: SingleGradientConfig, log, ctx) -> dict:
    """Add k * eta * (gradient of the forget loss at w_0) to the trained weights."""
    steps = log.steps()
    forget_ids = set(forget["id"])
    k = len({s.epoch for s in steps if forget_ids.intersection(s.ids)})
    eta = config.eta or sum(s.lr for s in steps) / len(steps)
    n_train = log.meta["num_train_examples"]
    batch = log.meta["per_device_train_batch_size"] * log.meta["gradient_accumulation_steps"] * log.meta["world_size"]
    initial = copy.deepcopy(model)
    initial.load_state_dict(log.initial_state_dict(), strict=False)  # w_0 leaves frozen weights (a LoRA base) out
    initial.train(False)
    params = dict(initial.named_parameters())
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    grads = {n: torch.zeros_like(params[n]) for n in trainable}
    loader = ctx.loader(forget, config.batch_size, shuffle=False)
    for b in loader:
        b = ctx.to_device(b)
        # Each forget example entered one step per epoch with weight 1/|B|: sum of per-example grads / |B|.
        loss = F.cross_entropy(forward_logits(initial, b), b["labels"], reduction="sum") / batch
        for n, g in zip(trainable, torch.autograd.grad(loss, [params[n] for n in trainable])):
            grads[n] += g
    with torch.no_grad():
        for n, p in model.named_parameters():
            if n in grads:
                p.add_(grads[n].to(p.dtype), alpha=config.scale * k * eta)
    del initial
    return {"epochs_seen": k, "eta": eta, "optimizer_steps": 0, "num_train_examples": n_train}
