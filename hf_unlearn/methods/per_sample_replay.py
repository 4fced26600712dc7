"""Per-sample step replay: recompute every step that saw a forget example, without it.

Amnesiac rollback (``amnesiac.py``) removes a whole logged update ``delta_s`` when its batch held
a forget example, so a 1% forget set at batch 32 throws away about a quarter of training. The
per-sample variant of Graves et al. ("Amnesiac Machine Learning", AAAI 2021; Marincione 2024)
removes only the forget example's own share of each step. This method does that on EVERY
parameter and for the optimizer that really ran, using only the log:

1. Walk the steps backwards from ``w_T``: ``w_{s-1} = w_s - delta_s``. For Adam-type
   optimizers with ``beta1 = 0`` (update ``-lr * g / (sqrt(v_hat) + eps)``, decoupled decay
   ``-lr * wd * w``), the step's (clipped) gradient and second moment follow from the logged
   delta and ``v_T`` (saved at the end of training)::

       u_s = -(delta_s / lr_s + wd * w_{s-1}),   g_s = u_s * (sqrt(v_s / (1 - b2^s)) + eps),
       v_{s-1} = (v_s - (1 - b2) * g_s^2) / b2

   For plain SGD, ``g_s = -delta_s / lr_s - wd * w_{s-1}`` and there is no state.
2. At each step ``s`` whose batch held forget examples F_s: load ``w_{s-1}``, compute their
   weighted gradient ``sum_{i in F_s} c_i * grad l_i(w_{s-1})`` (``c_i`` = the example's weight in
   the step, from the transcript; ``l_i`` = its CE + SD-of-logits term; eval mode), and the
   gradient the batch would have had without them (the batch mean renormalised over the
   examples that stay, the L2-to-w_0 term kept, clipping at ``max_grad_norm`` redone from
   the recorded pre-clip norm)::

       g'_s = (g_s/c_s - l2_s - sum_{i in F_s} c_i g_i) * N_s / (N_s - |F_s|) + l2_s,  then clipped

   and the update the optimizer would have made from the same state: ``delta'_s``.
3. ``w_u = w_T + sum_s (delta'_s - delta_s)``; optional repair fine-tune on the retain set.

Each replayed step is exact at ``w_{s-1}``: with a forget example only in the last step the
result IS the retrained model (up to float rounding and dropout, which the replay leaves out).
What it does not redo is how the later steps would have changed because ``w_{s-1}`` changed;
that is why it is still approximate. With several micro-batches per step the
renormalisation is applied to the whole step (exact for one micro-batch per step). Adam with
``beta1 > 0`` or SGD with momentum keep a first-moment state that cannot be recovered
backwards stably: they are refused (train with ``adam_beta1=0``, as the amnesiac recipes do).
Cost: one backward pass over the deltas (reads the whole delta log) and one forward/backward
pass per forget example per step that saw it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from .. import console
from ..training.log_store import LogError
from ..training.penalties import per_example_loss
from .amnesiac import AmnesiacConfig, repair
from .base import forward_logits
from .registry import register_method

ADAM = ("Adam", "AdamW")


@dataclass
class PerSampleReplayConfig(AmnesiacConfig):
    """Replay every step that saw a forget example without it; then optional repair."""

    dtype: str = field(default="float32", metadata={"help": "Precision of the backward walk (float32 or float64)."})
    correction_scale: float = field(
        default=1.0,
        metadata={
            "help": "Multiply the summed correction (1 = each step exactly replayed; > 1 also offsets part of what later steps built on the removed updates)."
        },
    )
    dropout: bool = field(
        default=False,
        metadata={
            "help": "Compute the forget examples' gradients in train mode (with fresh dropout masks) instead of eval mode."
        },
    )

    def __post_init__(self):
        if not 0.0 < self.correction_scale <= 10.0:
            raise ValueError(
                f"PerSampleReplayConfig: correction_scale must be in (0, 10], got {self.correction_scale}"
            )
        if self.dtype not in ("float64", "float32"):
            raise ValueError(f"PerSampleReplayConfig: dtype must be float64 or float32, got {self.dtype!r}")
        super().__post_init__()


@dataclass
class _Rule:
    """The update rule of the logged run, per trainable parameter."""

    kind: str  # "adam" or "sgd"
    decoupled: bool  # AdamW: decay applied to w, not added to g
    weight_decay: dict[str, float]
    beta2: float = 0.0
    eps: float = 0.0
    max_grad_norm: float = 0.0


def update_rule(log, method: str = "per_sample_replay") -> _Rule:
    """Read (and check) the optimizer the log recorded; refuse rules the replay cannot invert (``method``
    names the caller in the messages)."""
    info = log.meta.get("optimizer")
    if "deltas" not in log.meta.get("recorders", []) or log.meta.get("deletable_only"):
        raise ValueError(
            f"{method} needs the delta of every step: train with record_deltas=True and no deletable_ids_file"
        )
    if not info:
        raise ValueError(
            "this log does not describe its optimizer (recorded by UnlearnableTrainer with record_deltas at the end of training)"
        )
    cls, groups = info["class"], info["groups"]
    wd = {name: float(g.get("weight_decay") or 0.0) for g in groups for name in g["params"]}
    first = groups[0]
    for g in groups:
        if g.get("maximize") or g.get("amsgrad") or g.get("nesterov"):
            raise ValueError(f"{method}: {cls} with maximize/amsgrad/nesterov is not supported")
    if cls in ADAM:
        beta1, beta2 = first["betas"]
        if any(g["betas"][0] != 0.0 for g in groups):
            raise ValueError(
                f"{method} needs {cls} with beta1 = 0 (this run used adam_beta1={beta1}): Adam's first moment "
                "cannot be recovered from the log; train with adam_beta1=0 or use amnesiac/amnesiac_per_sample"
            )
        if not info.get("final_state"):
            raise ValueError("the log has no final optimizer state (optimizer_final.safetensors)")
        return _Rule(
            "adam",
            cls == "AdamW",
            wd,
            beta2=float(beta2),
            eps=float(first["eps"]),
            max_grad_norm=info["max_grad_norm"],
        )
    if cls == "SGD":
        if any(float(g.get("momentum") or 0.0) for g in groups):
            raise ValueError(
                f"{method} needs SGD without momentum: the momentum buffer cannot be recovered from the log"
            )
        return _Rule("sgd", False, wd, max_grad_norm=info["max_grad_norm"])
    raise ValueError(f"{method} supports AdamW/Adam (beta1 = 0) and plain SGD, not {cls}")


def _clip_coef(norm: float, max_norm: float) -> float:
    """``clip_grad_norm_``'s factor: ``min(1, max_norm / (norm + 1e-6))``."""
    return min(1.0, max_norm / (norm + 1e-6)) if max_norm > 0 else 1.0


def forget_gradient(
    model, names, rows: dict[str, dict], weights: dict[str, float], sd_lambda: float, train_mode: bool = False
) -> list[torch.Tensor]:
    """``sum_i c_i * grad l_i`` at the model's current weights (eval mode by default), per trainable tensor."""
    params = dict(model.named_parameters())
    model.train(train_mode)
    model.zero_grad(set_to_none=True)
    for i, c in weights.items():
        batch = rows[i]
        loss = per_example_loss(forward_logits(model, batch), batch["labels"], sd_lambda).sum() * c
        loss.backward()
    grads = [
        params[n].grad.detach().clone() if params[n].grad is not None else torch.zeros_like(params[n]) for n in names
    ]
    model.zero_grad(set_to_none=True)
    return grads


def _forget_rows(forget, ctx) -> dict[str, dict]:
    """One device batch of size 1 per forget id."""
    loader = ctx.loader(forget, 1, shuffle=False)
    return {
        batch["_order"]["ids"][0] if "_order" in batch else str(fid): ctx.to_device(batch)
        for batch, fid in zip(loader, forget["id"])
    }


DESCRIPTION = (
    'Per-sample step replay (a per-example refinement of Graves, Nagisetty and Ganesh, "Amnesiac '
    'Machine Learning", AAAI 2021): every logged training step that saw a forgotten example is recomputed '
    "without it from the logged updates and optimizer state, and the difference is applied to the final weights."
)


@register_method(
    "per_sample_replay", PerSampleReplayConfig, guarantee="approximate", description=DESCRIPTION, needs_log=True
)
def per_sample_replay(model, forget, retain, config: PerSampleReplayConfig, log, ctx) -> dict:
    """Swap each forget-touched step's logged update for the update without the forget examples."""
    rule = update_rule(log)
    steps = log.steps()
    total = len(steps)
    if log.delta_steps() != list(range(1, total + 1)):
        raise LogError("per_sample_replay needs a delta for every step of the transcript (the log is incomplete)")
    wanted = {str(i) for i in forget["id"]}
    touched = {s.step: s for s in steps if wanted.intersection(s.ids)}
    if not touched:
        return {"steps_replayed": 0, "optimizer_steps": repair(model, retain, config, ctx)}
    targs = log.meta.get("training_args", {})
    sd_lambda, sd_decay = float(targs.get("sd_lambda") or 0.0), float(targs.get("sd_lambda_decay") or 1.0)
    mu = float(targs.get("l2_init_mu") or 0.0)
    flat = _Flat(
        [(n, p) for n, p in model.named_parameters() if p.requires_grad],
        torch.float64 if config.dtype == "float64" else torch.float32,
    )
    w = flat.of_params()
    w_final = w.clone()
    wd = flat.per_entry({n: rule.weight_decay.get(n, 0.0) for n in flat.names})
    w0 = flat.of(log.initial_state_dict()) if mu else None
    v = _final_second_moment(log, flat, total) if rule.kind == "adam" else None
    rows = _forget_rows(forget, ctx)
    correction = torch.zeros_like(w)
    first = min(touched)
    grad_examples = 0
    has_wd = bool(wd.any())
    d, g, scale_buf = torch.empty_like(w), torch.empty_like(w), torch.empty_like(w)  # reused every step
    walk = range(total, first - 1, -1)
    for t in console.progress(walk, desc="replaying steps", total=len(walk)) if ctx.progress else walk:
        rec = steps[t - 1]
        flat.fill(d, log.delta(t))
        w.sub_(d)  # now w_{t-1}
        lr = rec.lr
        if lr <= 0:
            if t in touched or rule.kind == "adam":
                raise LogError(f"step {t} ran at learning rate {lr}: its gradient cannot be recovered from its delta")
            continue
        _recover_gradient(rule, d, w, v, lr, t, wd if has_wd else None, g, scale_buf)
        if t in touched:
            sd = sd_lambda / (sd_decay ** (rec.epoch or 0))
            args = (rec, wanted, w, g, v, lr, t, rule, wd, sd, mu, w0, config.dropout)
            new_d = _replayed_delta(model, flat, rows, *args)
            correction.add_(new_d).sub_(d)
            grad_examples += sum(1 for i in rec.ids if i in wanted)
    flat.load(w_final + config.correction_scale * correction)
    repair_steps = repair(model, retain, config, ctx)
    return {
        "steps_replayed": len(touched),
        "steps_walked": total - first + 1,
        "total_steps": total,
        "gradient_examples": grad_examples,
        "optimizer_steps": repair_steps,
        "rule": rule.kind,
    }


def _final_second_moment(log, flat, total: int) -> torch.Tensor:
    """Adam's second moment ``v_T`` saved at the end of training, flattened."""
    state, last = log.optimizer_final_state()
    if last != total:
        raise LogError(f"the optimizer state is at step {last} but the transcript has {total} steps")
    return flat.of(state)


def _recover_gradient(rule, d, w, v, lr: float, t: int, wd, g, scale_buf) -> None:
    """``g`` <- the gradient step ``t`` used, from its delta ``d`` at ``w = w_{t-1}``; Adam: ``v`` <- ``v_{t-1}``.

    ``wd`` is the per-entry weight decay, or None when there is none.
    """
    torch.div(d, -lr, out=g)  # u_t (+ the decoupled decay term below)
    if wd is not None and (rule.kind == "sgd" or rule.decoupled):  # (coupled Adam's L2 term is inside what it saw)
        g.addcmul_(wd, w, value=-1.0)
    if rule.kind == "adam":
        bc2 = 1.0 - rule.beta2**t
        torch.sqrt(v, out=scale_buf).mul_(bc2**-0.5).add_(rule.eps)
        g.mul_(scale_buf)  # the gradient Adam saw (with its L2 term for coupled Adam)
        v.addcmul_(g, g, value=-(1.0 - rule.beta2)).div_(rule.beta2).clamp_min_(0.0)  # now v_{t-1}
        if wd is not None and not rule.decoupled:
            g.addcmul_(wd, w, value=-1.0)


class _Flat:
    """The trainable parameters as one flat vector (fewer, larger tensor operations)."""

    def __init__(self, named, dtype):
        self.named, self.dtype = named, dtype
        self.names = [n for n, _ in named]
        self.device = named[0][1].device if named else torch.device("cpu")  # logged tensors are read on the CPU

    def of(self, tensors: dict[str, torch.Tensor]) -> torch.Tensor:
        return torch.cat([tensors[n].reshape(-1).to(self.device, self.dtype) for n in self.names])

    def fill(self, out: torch.Tensor, tensors: dict[str, torch.Tensor]) -> torch.Tensor:
        """Copy ``tensors`` (by name) into the flat buffer ``out``."""
        offset = 0
        for name, p in self.named:
            n = p.numel()
            out[offset : offset + n].copy_(tensors[name].reshape(-1))
            offset += n
        return out

    def of_params(self) -> torch.Tensor:
        return self.of({n: p.detach() for n, p in self.named})

    def per_entry(self, values: dict[str, float]) -> torch.Tensor:
        return torch.cat(
            [torch.full((p.numel(),), values[n], dtype=self.dtype, device=self.device) for n, p in self.named]
        )

    def load(self, vector: torch.Tensor) -> None:
        with torch.no_grad():
            for (_, p), part in zip(self.named, vector.split([p.numel() for _, p in self.named])):
                p.copy_(part.view_as(p).to(p.dtype))


def _replayed_delta(
    model, flat, rows, rec, wanted, w_prev, g, v_prev, lr, t, rule, wd, sd_lambda, mu, w0, dropout
) -> torch.Tensor:
    """The update step ``t`` would have made at ``w_{t-1}`` without the forget examples."""
    weights = {}
    for mb in rec.micro_batches:
        for i in mb["ids"]:
            if i in wanted:
                weights[i] = weights.get(i, 0.0) + mb["weight"]
    n_all = sum(len(mb["ids"]) for mb in rec.micro_batches)
    n_keep = sum(1 for mb in rec.micro_batches for i in mb["ids"] if i not in wanted)
    if n_keep == 0:  # the retrained run skips this step: no update at all
        return torch.zeros_like(w_prev)
    flat.load(w_prev)
    if dropout:
        torch.manual_seed(t)
    gf = forget_gradient(model, flat.names, rows, weights, sd_lambda, train_mode=dropout)
    gf = torch.cat([x.reshape(-1).to(flat.dtype) for x in gf])
    coef = 1.0
    if rule.max_grad_norm > 0:
        if rec.grad_norm is None:
            raise LogError(
                f"step {t} has no recorded pre-clip gradient norm (clipping was on): retrain with this version"
            )
        coef = _clip_coef(rec.grad_norm, rule.max_grad_norm)
    l2 = 2.0 * mu * (w_prev - w0) if mu else 0.0
    new = (g / coef - l2 - gf) * (n_all / n_keep) + l2
    if rule.max_grad_norm > 0:
        new = new * _clip_coef(float(new.norm()), rule.max_grad_norm)
    if rule.kind == "adam":
        grad = new if rule.decoupled else new + wd * w_prev
        v_new = rule.beta2 * v_prev + (1.0 - rule.beta2) * grad.square()
        step = -lr * grad / ((v_new / (1.0 - rule.beta2**t)).sqrt_() + rule.eps)
        return step - lr * wd * w_prev if rule.decoupled else step
    return -lr * (new + wd * w_prev)
