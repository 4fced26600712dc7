"""The unlearning-error proxy of Thudi et al., "Unrolling SGD: Understanding Factors
Influencing Machine Unlearning" (EuroS&P 2022)::

    e_t = (eta^2 / 2) * t * ||w_t - w_0||_2 * sigma,   sigma = sqrt(lambda_max(Hessian))

``t`` is the number of SGD steps so far and ``lambda_max`` the largest eigenvalue of the loss
Hessian on a fixed batch, taken in magnitude (the spectral norm: the smoothness constant the
paper's bound uses; early in training the dominant eigenvalue can be negative). The paper's
code uses PyHessian on 512 examples; here a few power iterations with Hessian-vector products
(double back-propagation) estimate it. The "rolling" variant replaces sigma by the running mean
of the sigmas measured so far.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def dominant_hessian_eigenvalue(model: torch.nn.Module, batch: dict, iters: int = 5, seed: int = 0) -> float:
    """Power iteration on the Hessian of the mean cross-entropy over ``batch`` w.r.t. the trainable params.

    Runs in eval mode (no dropout) and restores the previous mode; leaves ``.grad`` untouched.
    """
    params = [p for p in model.parameters() if p.requires_grad]
    was_training = model.training
    model.eval()
    try:
        inputs = {k: v for k, v in batch.items() if k != "labels"}
        logits = model(**inputs).logits
        loss = F.cross_entropy(logits.float(), batch["labels"].long())
        grads = torch.autograd.grad(loss, params, create_graph=True)
        gen = torch.Generator().manual_seed(seed)
        v = [torch.randn(p.shape, generator=gen).to(p.device, p.dtype) for p in params]
        norm = math.sqrt(sum(float((x * x).sum()) for x in v))
        v = [x / norm for x in v]
        eig = 0.0
        for i in range(iters):
            hv = torch.autograd.grad(grads, params, grad_outputs=v, retain_graph=i < iters - 1)
            eig = sum(float((h * x).sum()) for h, x in zip(hv, v))
            norm = math.sqrt(sum(float((h * h).sum()) for h in hv))
            if norm == 0.0:
                return 0.0
            v = [h / norm for h in hv]
        return eig
    finally:
        model.train(was_training)


def error_proxy(lr: float, step: int, distance_from_init: float, sigma: float) -> float:
    """``(eta^2 / 2) * t * ||w_t - w_0|| * sigma``."""
    return 0.5 * lr * lr * step * distance_from_init * sigma


def distance_from_initial(params: list[torch.Tensor], initial: list[torch.Tensor]) -> float:
    with torch.no_grad():
        return math.sqrt(sum(float(((p - p0.to(p.device, p.dtype)) ** 2).sum()) for p, p0 in zip(params, initial)))
