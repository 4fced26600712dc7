"""Single-gradient unlearning (Thudi et al., "Unrolling SGD: Understanding Factors Influencing
Machine Unlearning", EuroS&P 2022).

Unrolling SGD to first order, the forgotten examples' contribution to training is about
``-k * eta * grad L(w_0; x*)``; adding it back gives::

    w_u = w_T + k * eta * grad_w L(w_0; x*)

with the gradient taken at the INITIAL weights w_0 (from the log) on the forget set (mean
loss over the forget set scaled by its share of the training set per epoch, as the paper's
per-example sum over the batch-mean loss), ``k`` the number of epochs in which the forget
examples were seen and ``eta`` the learning rate (default: the mean logged learning rate).

That is the first-order unrolling of plain SGD. Under Adam each step moves a parameter by
``eta * m_t / (sqrt(v_hat_t) + eps)``, so a forgotten example's share of the training path is its
gradient divided by the same preconditioner. With ``precondition="adam"`` the correction uses the
run's own final second moment (logged in ``optimizer_final.safetensors`` with ``record_deltas``)::

    w_u = w_T + k * eta * grad_w L(w_0; x*) / (sqrt(v_T / (1 - beta2^T)) + eps)

(momentum spreads an example's share over later steps but, summed, leaves it unchanged to first
order). On an Adam-trained run the SGD formula is far too small to move a prediction when the
gradients are small: a from-scratch tiny BERT scored exactly doing nothing at scales 0.5-4. The default,
``precondition="auto"``, takes the Adam form when the log holds Adam state and the paper's formula otherwise.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import ClassVar

import torch
import torch.nn.functional as F

from .base import MethodConfig, forward_logits
from .registry import register_method
from .ssd import adam_importance, has_adam_state

PRECONDITIONERS = ("auto", "none", "adam")


@dataclass
class SingleGradientConfig(MethodConfig):
    """``w_T + k * eta * grad L(w_0; forget)``, divided by Adam's ``sqrt(v_T) + eps`` on an Adam-trained run."""

    USES_LEARNING_RATE: ClassVar[bool] = False  # eta is its step size; it takes no optimizer step

    eta: float = field(default=0.0, metadata={"help": "Step size eta (0 = mean learning rate recorded in the log)."})
    scale: float = field(
        default=1.0, metadata={"help": "Extra multiplier on the correction (1 = the paper's formula)."}
    )
    precondition: str = field(
        default="auto",
        metadata={
            "help": "'adam' (divide by the run's logged Adam sqrt(v_T) + eps; needs record_deltas), 'none' (the "
            "paper's SGD formula) or 'auto' (adam when the log holds Adam state, else none)."
        },
    )

    def __post_init__(self):
        super().__post_init__()
        if self.precondition not in PRECONDITIONERS:
            raise ValueError(
                f"single_gradient: precondition must be one of {PRECONDITIONERS}, got {self.precondition!r}"
            )


DESCRIPTION = (
    'Single-gradient unlearning (Thudi, Deza, Chandrasekaran and Papernot, "Unrolling SGD: '
    'Understanding Factors Influencing Machine Unlearning", EuroS&P 2022): one gradient of the loss on the '
    "forgotten examples, taken at the initial weights, is added back (divided by the run's own Adam "
    "preconditioner when it trained with Adam)."
)


@register_method(
    "single_gradient", SingleGradientConfig, guarantee="approximate", description=DESCRIPTION, needs_log=True
)
def single_gradient(model, forget, retain, config: SingleGradientConfig, log, ctx) -> dict:
    """Add k * eta * (gradient of the forget loss at w_0) to the trained weights, preconditioned as training was."""
    precondition = resolve_precondition(config, log)
    if precondition == "adam" and not has_adam_state(log):
        raise ValueError(
            f"single_gradient: precondition=adam needs the run's final Adam second moment, but the log {log.root} "
            "has none: train with an Adam-type optimizer and --record_deltas, or set precondition=none"
        )
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
    if precondition == "adam":
        _precondition(grads, log, model)
    with torch.no_grad():
        for n, p in model.named_parameters():
            if n in grads:
                p.add_(grads[n].to(p.device, p.dtype), alpha=config.scale * k * eta)
    del initial
    stats = {"epochs_seen": k, "eta": eta, "optimizer_steps": 0, "num_train_examples": n_train}
    return {**stats, "precondition": precondition}


def resolve_precondition(config: SingleGradientConfig, log) -> str:
    """``config.precondition``, with ``auto`` read as ``adam`` when the log holds Adam state, else ``none``."""
    if config.precondition != "auto":
        return config.precondition
    return "adam" if has_adam_state(log) else "none"


def _precondition(grads: dict[str, torch.Tensor], log, model) -> None:
    """``g <- g / (sqrt(v_T / (1 - beta2^T)) + eps)`` with each parameter group's own eps."""
    v_hat = adam_importance(log, model)
    eps = {n: float(g.get("eps", 1e-8)) for g in log.meta["optimizer"]["groups"] for n in g["params"]}
    for n, g in grads.items():
        g.div_(v_hat[n].to(g.device).sqrt_().add_(eps[n]))
