"""The unlearning-error proxy of Thudi et al., "Unrolling SGD: Understanding Factors
Influencing Machine Unlearning" (EuroS&P 2022)::

    e_t = (eta^2 / 2) * t * ||w_t - w_0||_2 * sigma,   sigma = sqrt(lambda_max(Hessian))

``t`` is the number of SGD steps so far and ``lambda_max`` the largest eigenvalue of the loss
Hessian on a fixed batch, taken in magnitude (the spectral norm: the smoothness constant the
paper's bound uses; early in training the dominant eigenvalue can be negative). The paper's
code uses PyHessian on 512 examples; here a few power iterations with Hessian-vector products
estimate it: by central differences of two ordinary gradients by default (no second graph, any
attention kernel), or exactly by double back-propagation. The "rolling" variant replaces sigma by the running mean
of the sigmas measured so far.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel

TOLERANCE = 0.01  # the power iteration stops once its estimate moves by less than 1%
HVP_METHODS = ("finite_difference", "double_backward")
FD_STEP = 1e-3  # central-difference step, relative to max(1, ||w||) of the trainable parameters


def dominant_hessian_eigenvalue(
    model: torch.nn.Module,
    batch: dict,
    iters: int = 5,
    seed: int = 0,
    warm: dict | None = None,
    hvp: str = "finite_difference",
    tolerance: float = TOLERANCE,
) -> float:
    """Power iteration on the Hessian of the mean cross-entropy over ``batch`` w.r.t. the trainable params.

    Runs in eval mode (no dropout) and restores the previous mode and the weights; leaves ``.grad``
    untouched. ``hvp`` chooses the Hessian-vector products:

    - ``"finite_difference"`` (default): ``H v ~ (g(w + eps v) - g(w - eps v)) / (2 eps)`` with ``g``
      the ordinary gradient of the batch loss and ``eps = FD_STEP * max(1, ||w||)`` (``||v|| = 1``):
      two ordinary forward/backward passes per product, on whatever attention kernel the model uses
      (the error is O(eps^2) times the third derivative; exact for a quadratic loss);
    - ``"double_backward"``: exact products by differentiating the gradient again (``create_graph``);
      about three times the cost, and the forward runs on the math attention kernel (the fused SDPA
      kernels have no double backward).

    The iteration stops once the estimate moves by less than ``tolerance`` (relative; 0 runs all ``iters``) between
    two consecutive products, at most ``iters`` products. ``warm`` (optional, a dict the caller keeps
    between calls) carries the iteration over: a call starts from the vector the previous one ended
    on instead of a random one, and the previous call's estimate counts as the one before the first
    product. The Hessian of a training run changes slowly, so a warm call needs 1-2 products; a cold
    one 3-4 on a pretrained encoder (measured on MiniLM + LoRA).
    """
    if hvp not in HVP_METHODS:
        raise ValueError(f"hvp must be one of {HVP_METHODS}, got {hvp!r}")
    params = [p for p in model.parameters() if p.requires_grad]
    was_training = model.training
    model.eval()
    try:
        product = (
            _fd_products(model, batch, params) if hvp == "finite_difference" else _exact_products(model, batch, params)
        )
        v, prev = _start_vector(params, warm, seed)
        eig = 0.0
        for i in range(iters):
            hv = product(v, last=i == iters - 1)
            eig = sum(float((h * x).sum()) for h, x in zip(hv, v))
            norm = math.sqrt(sum(float((h * h).sum()) for h in hv))
            if norm == 0.0:
                return 0.0
            v = [h / norm for h in hv]
            if prev is not None and abs(eig - prev) <= tolerance * abs(eig):
                break
            prev = eig
        if warm is not None:
            warm.update(v=[x.detach() for x in v], eig=eig, products=i + 1)
        return eig
    finally:
        model.train(was_training)


def _start_vector(params: list[torch.Tensor], warm: dict | None, seed: int):
    """(unit start vector, the previous call's estimate or None)."""
    start = (warm or {}).get("v")
    if start is not None and [x.shape for x in start] == [p.shape for p in params]:
        return [x.to(p.device, p.dtype) for x, p in zip(start, params)], warm.get("eig")
    gen = torch.Generator().manual_seed(seed)
    v = [torch.randn(p.shape, generator=gen).to(p.device, p.dtype) for p in params]
    norm = math.sqrt(sum(float((x * x).sum()) for x in v))
    return [x / norm for x in v], None


def _batch_loss(model: torch.nn.Module, batch: dict) -> torch.Tensor:
    logits = model(**{k: v for k, v in batch.items() if k != "labels"}).logits
    logits = logits.to(torch.promote_types(logits.dtype, torch.float32))  # bf16/fp16 up, float64 kept
    return F.cross_entropy(logits, batch["labels"].long())


def _exact_products(model: torch.nn.Module, batch: dict, params: list[torch.Tensor]):
    """``v -> H v`` by double back-propagation through one graph (kept until the last product)."""
    with sdpa_kernel(SDPBackend.MATH):  # the fused SDPA kernels have no double backward
        loss = _batch_loss(model, batch)
    grads = torch.autograd.grad(loss, params, create_graph=True)

    def product(v, last):
        return torch.autograd.grad(grads, params, grad_outputs=v, retain_graph=not last)

    return product


def _fd_products(model: torch.nn.Module, batch: dict, params: list[torch.Tensor]):
    """``v -> (g(w + eps v) - g(w - eps v)) / (2 eps)``; the weights are put back exactly after each."""
    with torch.no_grad():
        saved = [p.detach().clone() for p in params]
        eps = FD_STEP * max(1.0, math.sqrt(sum(float((p.float() ** 2).sum()) for p in saved)))

    def gradient_at(v, sign):
        with torch.no_grad():
            for p, w, x in zip(params, saved, v):
                p.copy_(w + sign * eps * x)
        return torch.autograd.grad(_batch_loss(model, batch), params)

    def product(v, last):
        try:
            plus, minus = gradient_at(v, 1.0), gradient_at(v, -1.0)
        finally:
            with torch.no_grad():
                for p, w in zip(params, saved):
                    p.copy_(w)
        return [(a - b) / (2 * eps) for a, b in zip(plus, minus)]

    return product


def error_proxy(lr: float, step: int, distance_from_init: float, sigma: float) -> float:
    """``(eta^2 / 2) * t * ||w_t - w_0|| * sigma``."""
    return 0.5 * lr * lr * step * distance_from_init * sigma


def distance_from_initial(params: list[torch.Tensor], initial: list[torch.Tensor]) -> float:
    with torch.no_grad():
        return math.sqrt(sum(float(((p - p0.to(p.device, p.dtype)) ** 2).sum()) for p, p0 in zip(params, initial)))
