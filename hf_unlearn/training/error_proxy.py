"""The unlearning-error proxy of Thudi et al., "Unrolling SGD: Understanding Factors
Influencing Machine Unlearning" (EuroS&P 2022)::

    e_t = (eta^2 / 2) * t * ||w_t - w_0||_2 * sigma,   sigma = sqrt(lambda_max(Hessian))

``t`` is the number of SGD steps so far and ``lambda_max`` the largest eigenvalue of the loss
Hessian on a fixed batch, taken in magnitude (the spectral norm: the smoothness constant the
paper's bound uses; early in training the dominant eigenvalue can be negative). The paper's
code uses PyHessian on 512 examples; here a few power iterations with Hessian-vector products
estimate it: by forward differences of ordinary gradients by default (no second graph, any
attention kernel), by central differences, or exactly by double back-propagation. A cold power
iteration starts from the batch gradient (after a short period of training the gradient lies mostly in
the span of the top Hessian eigenvectors: Gur-Ari, Roberts and Dyer, "Gradient Descent Happens in a Tiny Subspace",
2018), with a small random part so that no eigendirection is missed. The "rolling" variant
replaces sigma by the running mean of the sigmas measured so far.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel

TOLERANCE = 0.01  # the power iteration stops once its estimate moves by less than 1%
HVP_METHODS = ("forward_difference", "central_difference", "double_backward")
FD_STEP = 1e-3  # finite-difference step, relative to max(1, ||w||) of the trainable parameters
RANDOM_SHARE = 0.1  # the random part of a cold start vector (norm, relative to the gradient's unit vector)


def dominant_hessian_eigenvalue(
    model: torch.nn.Module,
    batch: dict,
    iters: int = 5,
    seed: int = 0,
    warm: dict | None = None,
    hvp: str = "forward_difference",
    tolerance: float = TOLERANCE,
) -> float:
    """Power iteration on the Hessian of the mean cross-entropy over ``batch`` w.r.t. the trainable params.

    Runs in eval mode (no dropout) and restores the previous mode and the weights; leaves ``.grad``
    untouched. ``g`` is the ordinary gradient of the batch loss, ``eps = FD_STEP * max(1, ||w||)`` and
    ``||v|| = 1``; ``hvp`` chooses the Hessian-vector products:

    - ``"forward_difference"`` (default): ``H v ~ (g(w + eps v) - g(w)) / eps``: one ordinary
      forward/backward pass per product (``g(w)`` once per call), on whatever attention kernel the model
      uses; the error is O(eps) times the third derivative (exact for a quadratic loss);
    - ``"central_difference"``: ``H v ~ (g(w + eps v) - g(w - eps v)) / (2 eps)``: two passes per
      product, error O(eps^2);
    - ``"double_backward"``: exact products by differentiating the gradient again (``create_graph``);
      about three times the cost of a pass, and the forward runs on the math attention kernel (the fused
      SDPA kernels have no double backward).

    The iteration stops once the estimate moves by less than ``tolerance`` (relative; 0 runs all ``iters``) between
    two consecutive products, at most ``iters`` products. A cold call starts from ``g(w) / ||g(w)||`` plus a
    random unit vector drawn from ``seed`` scaled by ``RANDOM_SHARE`` (the random vector alone when ``g = 0``).
    ``warm`` (optional, a dict the caller keeps between calls) carries the iteration over: a call starts from
    the vector the previous one ended on, and the previous call's estimate counts as the one before the first
    product; the call records in it ``products`` and ``gradients`` (ordinary forward/backward passes, the
    products' included). Measured on MiniLM + LoRA: 30 steps into a run a cold call needed 3 products from the
    gradient where a random vector needed 4; in a 200-step run the cold call at step 100 used all 5, the warm
    one at step 200 used 3.
    """
    if hvp not in HVP_METHODS:
        raise ValueError(f"hvp must be one of {HVP_METHODS}, got {hvp!r}")
    params = [p for p in model.parameters() if p.requires_grad]
    was_training = model.training
    model.eval()
    try:
        products = _Products(model, batch, params, hvp)
        v, prev = _start_vector(params, warm, seed, products)
        eig = 0.0
        for i in range(iters):
            hv = products.apply(v, last=i == iters - 1)
            eig = sum(float((h * x).sum()) for h, x in zip(hv, v))
            norm = math.sqrt(sum(float((h * h).sum()) for h in hv))
            if norm == 0.0:
                return 0.0
            v = [h / norm for h in hv]
            if prev is not None and abs(eig - prev) <= tolerance * abs(eig):
                break
            prev = eig
        if warm is not None:
            warm.update(v=[x.detach() for x in v], eig=eig, products=i + 1, gradients=products.passes)
        return eig
    finally:
        model.train(was_training)


def _unit(vectors: list[torch.Tensor]) -> list[torch.Tensor] | None:
    norm = math.sqrt(sum(float((x * x).sum()) for x in vectors))
    return None if norm == 0.0 or not math.isfinite(norm) else [x / norm for x in vectors]


def _start_vector(params: list[torch.Tensor], warm: dict | None, seed: int, products: _Products):
    """(unit start vector, the previous call's estimate or None)."""
    start = (warm or {}).get("v")
    if start is not None and [x.shape for x in start] == [p.shape for p in params]:
        return [x.to(p.device, p.dtype) for x, p in zip(start, params)], warm.get("eig")
    gen = torch.Generator().manual_seed(seed)
    noise = _unit([torch.randn(p.shape, generator=gen).to(p.device, p.dtype) for p in params])
    grad = _unit(products.gradient())
    if grad is None:
        return noise, None
    return _unit([g + RANDOM_SHARE * r for g, r in zip(grad, noise)]), None


def _batch_loss(model: torch.nn.Module, batch: dict) -> torch.Tensor:
    logits = model(**{k: v for k, v in batch.items() if k != "labels"}).logits
    logits = logits.to(torch.promote_types(logits.dtype, torch.float32))  # bf16/fp16 up, float64 kept
    return F.cross_entropy(logits, batch["labels"].long())


class _Products:
    """``v -> H v`` of one kind at the current weights, and ``g(w)`` (computed once, when asked);
    counts the ordinary forward/backward passes (``passes``). The weights are put back exactly after
    each finite-difference product."""

    def __init__(self, model: torch.nn.Module, batch: dict, params: list[torch.Tensor], kind: str):
        self.model, self.batch, self.params, self.kind = model, batch, params, kind
        self.passes, self._grad, self._graph = 0, None, None
        if kind == "double_backward":  # one graph, differentiated again per product; the weights never move
            with sdpa_kernel(SDPBackend.MATH):  # the fused SDPA kernels have no double backward
                loss = _batch_loss(model, batch)
            self._graph = torch.autograd.grad(loss, params, create_graph=True)
            self._grad, self.passes = [g.detach() for g in self._graph], 1
            return
        with torch.no_grad():
            self.saved = [p.detach().clone() for p in params]
            self.eps = FD_STEP * max(1.0, math.sqrt(sum(float((p.float() ** 2).sum()) for p in self.saved)))

    def gradient(self) -> list[torch.Tensor]:
        """``g(w)``: the batch gradient at the weights the call started from."""
        if self._grad is None:
            self._grad = self._gradient_at(None, 0.0)
        return self._grad

    def apply(self, v: list[torch.Tensor], last: bool) -> list[torch.Tensor]:
        if self.kind == "double_backward":
            return list(torch.autograd.grad(self._graph, self.params, grad_outputs=v, retain_graph=not last))
        if self.kind == "forward_difference":
            base = self.gradient()
            return [(a - b) / self.eps for a, b in zip(self._gradient_at(v, 1.0), base)]
        plus, minus = self._gradient_at(v, 1.0), self._gradient_at(v, -1.0)
        return [(a - b) / (2 * self.eps) for a, b in zip(plus, minus)]

    def _gradient_at(self, v: list[torch.Tensor] | None, sign: float) -> list[torch.Tensor]:
        """``g(w + sign * eps * v)`` (``g(w)`` when ``v`` is None); the weights are restored exactly."""
        try:
            if v is not None:
                with torch.no_grad():
                    for p, w, x in zip(self.params, self.saved, v):
                        p.copy_(w + sign * self.eps * x)
            self.passes += 1
            return list(torch.autograd.grad(_batch_loss(self.model, self.batch), self.params))
        finally:
            with torch.no_grad():
                for p, w in zip(self.params, self.saved):
                    p.copy_(w)


def error_proxy(lr: float, step: int, distance_from_init: float, sigma: float) -> float:
    """``(eta^2 / 2) * t * ||w_t - w_0|| * sigma``."""
    return 0.5 * lr * lr * step * distance_from_init * sigma


def distance_from_initial(params: list[torch.Tensor], initial: list[torch.Tensor]) -> float:
    with torch.no_grad():
        return math.sqrt(sum(float(((p - p0.to(p.device, p.dtype)) ** 2).sum()) for p, p0 in zip(params, initial)))
