"""NegGrad: gradient ascent on the forget set, as in the SalUn and RUM code bases ("GA").

    min_w  -CE(f_w(x_f), y_f)        for ``epochs`` passes over the forget set

(the "NegGrad" baseline of Golatkar, Achille and Soatto, "Eternal Sunshine of the Spotless
Net: Selective Forgetting in Deep Networks", CVPR 2020; SalUn's ``unlearn/GA.py``). The loss is unbounded below, so the defaults are
a small learning rate (a tenth of the run's peak training learning rate, 2e-5 without a log) and
few steps: enough to push the forget loss up, not to wreck the model.
The number of ascent steps grows with the forget set (``epochs`` passes over it): lower
``learning_rate`` or ``epochs`` for large forget sets.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

import torch.nn.functional as F

from .base import MethodConfig, MethodContext, cycle, forward_logits, run_steps
from .registry import register_method


def require_rows(dataset, method: str, what: str) -> None:
    """Refuse a missing or empty forget/retain set with a clear error (shared by the approximate methods)."""
    if dataset is None or len(dataset) == 0:
        raise ValueError(f"{method} needs a non-empty {what} set")


@dataclass
class NegGradConfig(MethodConfig):
    """NegGrad: ``min -CE(forget)`` for ``epochs`` passes over the forget set."""

    LR_FACTOR: ClassVar[float] = 0.1  # the loss is unbounded: a tenth of the training learning rate
    FALLBACK_LEARNING_RATE: ClassVar[float] = 2e-5

    epochs: float = field(default=5.0, metadata={"help": "Passes over the forget set."})


DESCRIPTION = (
    'NegGrad (the baseline of Golatkar, Achille and Soatto, "Eternal Sunshine of the Spotless Net: '
    'Selective Forgetting in Deep Networks", CVPR 2020): gradient ascent on the forgotten examples.'
)


@register_method("neggrad", NegGradConfig, guarantee="approximate", description=DESCRIPTION)
def neggrad(model, forget, retain, config: NegGradConfig, log, ctx: MethodContext) -> dict:
    """Gradient ascent on the forget-set cross-entropy."""
    require_rows(forget, "neggrad", "forget")
    loader = ctx.loader(forget, config.batch_size, shuffle=True, seed=config.seed)
    batches = cycle(loader)

    def step_loss(_):
        batch = ctx.to_device(next(batches))
        return -F.cross_entropy(forward_logits(model, batch), batch["labels"])

    return {"optimizer_steps": run_steps(model, ctx, config, len(loader), step_loss)}
