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
from torch.nn.attention import SDPBackend, sdpa_kernel

WARM_TOLERANCE = 0.01  # a warm-started power iteration stops once its estimate moves by less than 1%


def dominant_hessian_eigenvalue(
    model: torch.nn.Module, batch: dict, iters: int = 5, seed: int = 0, warm: dict | None = None
) -> float:
    """Power iteration on the Hessian of the mean cross-entropy over ``batch`` w.r.t. the trainable params.

    Runs in eval mode (no dropout) and restores the previous mode; leaves ``.grad`` untouched.
    ``warm`` (optional, a dict the caller keeps between calls) carries the iteration over: a call
    starts from the vector the previous one ended on instead of a random one, and stops once the
    estimate moves by less than ``WARM_TOLERANCE`` (relative) between two consecutive estimates
    (the previous call's counts), at most ``iters`` Hessian-vector products. The Hessian of a training
    run changes slowly, so a warm call needs 1-2 products instead of ``iters``: each costs about two
    training steps on the batch.
    """
    params = [p for p in model.parameters() if p.requires_grad]
    was_training = model.training
    model.eval()
    try:
        inputs = {k: v for k, v in batch.items() if k != "labels"}
        with sdpa_kernel(
            SDPBackend.MATH
        ):  # the fused SDPA kernels have no double backward (pretrained models use SDPA)
            logits = model(**inputs).logits
        loss = F.cross_entropy(logits.float(), batch["labels"].long())
        grads = torch.autograd.grad(loss, params, create_graph=True)
        start = (warm or {}).get("v")
        if start is not None and [x.shape for x in start] == [p.shape for p in params]:
            v = [x.to(p.device, p.dtype) for x, p in zip(start, params)]
            prev = warm.get("eig")
        else:
            gen = torch.Generator().manual_seed(seed)
            v = [torch.randn(p.shape, generator=gen).to(p.device, p.dtype) for p in params]
            norm = math.sqrt(sum(float((x * x).sum()) for x in v))
            v, start, prev = [x / norm for x in v], None, None
        eig = 0.0
        for i in range(iters):
            hv = torch.autograd.grad(grads, params, grad_outputs=v, retain_graph=i < iters - 1)
            eig = sum(float((h * x).sum()) for h, x in zip(hv, v))
            norm = math.sqrt(sum(float((h * h).sum()) for h in hv))
            if norm == 0.0:
                return 0.0
            v = [h / norm for h in hv]
            if start is not None and prev is not None and abs(eig - prev) <= WARM_TOLERANCE * abs(eig):
                break
            prev = eig
        if warm is not None:
            warm.update(v=[x.detach() for x in v], eig=eig)
        return eig
    finally:
        model.train(was_training)


def error_proxy(lr: float, step: int, distance_from_init: float, sigma: float) -> float:
    """``(eta^2 / 2) * t * ||w_t - w_0|| * sigma``."""
    return 0.5 * lr * lr * step * distance_from_init * sigma


def distance_from_initial(params: list[torch.Tensor], initial: list[torch.Tensor]) -> float:
    with torch.no_grad():
        return math.sqrt(sum(float(((p - p0.to(p.device, p.dtype)) ** 2).sum()) for p, p0 in zip(params, initial)))
