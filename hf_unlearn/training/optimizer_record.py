"""What the unlearning log keeps about the optimizer, so a step can be recomputed later.

A logged delta ``delta_s = w_s - w_{s-1}`` is the optimizer's real update. To recompute step
``s`` without some examples (``methods/per_sample_replay.py``) the update rule must be known:

- ``meta.json["optimizer"]``: the optimizer class, ``max_grad_norm`` and, per parameter
  group, the hyperparameters (``weight_decay``, ``betas``, ``eps``, ``momentum`` ...) and the
  names of its parameters;
- ``optimizer_final.safetensors``: Adam's second-moment estimate ``v_T`` (``exp_avg_sq``) of
  every trainable parameter after the last step, and the step count. With ``beta1 = 0``,
  ``v_{s-1}`` follows backwards from ``v_T`` and the deltas (see the replay method);
- the transcript: each step's gradient norm BEFORE clipping (``grad_norm``), when clipping is on.
"""

from __future__ import annotations

from pathlib import Path

import torch

from .log_store import atomic_save_tensors

FINAL_STATE = "optimizer_final.safetensors"
_HYPER = (
    "weight_decay",
    "betas",
    "eps",
    "momentum",
    "dampening",
    "nesterov",
    "amsgrad",
    "maximize",
    "foreach",
    "fused",
)


def base_optimizer(optimizer):
    """The torch optimizer inside accelerate's ``AcceleratedOptimizer`` wrapper (if any)."""
    return getattr(optimizer, "optimizer", optimizer)


def describe_optimizer(optimizer, named: list[tuple[str, torch.Tensor]], max_grad_norm: float) -> dict:
    """Class, clipping norm and per-group hyperparameters with parameter names (JSON-ready)."""
    opt = base_optimizer(optimizer)
    names = {id(p): n for n, p in named}
    groups = []
    for group in opt.param_groups:
        hyper = {k: (list(v) if isinstance(v, tuple) else v) for k, v in group.items() if k in _HYPER}
        hyper["params"] = [names[id(p)] for p in group["params"] if id(p) in names]
        groups.append(hyper)
    return {
        "class": type(opt).__name__,
        "module": type(opt).__module__,
        "max_grad_norm": float(max_grad_norm or 0.0),
        "groups": groups,
    }


def save_final_state(path: Path, optimizer, named: list[tuple[str, torch.Tensor]]) -> bool:
    """Write ``exp_avg_sq`` and ``step`` of every trainable parameter (Adam-type optimizers only)."""
    opt = base_optimizer(optimizer)
    tensors, steps = {}, set()
    for name, p in named:
        state = opt.state.get(p, {})
        if "exp_avg_sq" not in state:
            return False
        tensors[name] = state["exp_avg_sq"].detach().float().cpu().contiguous()
        steps.add(int(state["step"]))
    if len(steps) != 1:
        return False
    atomic_save_tensors(path, tensors, metadata={"step": str(steps.pop())})
    return True


def grad_norm(params) -> float:
    """The 2-norm of all gradients (the quantity ``clip_grad_norm_`` clips)."""
    norms = [p.grad.detach().float().norm() for p in params if p.grad is not None]
    return float(torch.linalg.vector_norm(torch.stack(norms))) if norms else 0.0
