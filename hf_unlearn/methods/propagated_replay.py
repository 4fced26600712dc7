"""Propagated step replay (DeltaGrad): retrain along the logged trajectory, correcting every later step.

Wu, Dobriban and Davidson, "DeltaGrad: Rapid retraining of machine learning models" (ICML 2020).
``per_sample_replay`` recomputes each step that saw a forget example at the ORIGINAL ``w_{s-1}``
and adds up the differences; the later steps still start from the original weights. This method
walks FORWARD from the first step that saw a forget example and keeps the unlearned trajectory
``u_s`` (``u = w`` before it). At step ``s`` (batch ``B_s`` of ``N_s`` examples with weights
``c_i``, forget examples ``F_s``, learning rate ``lr_s``) the data gradient of the whole batch at
``u_{s-1}`` is approximated from the logged one at ``w_{s-1}``::

    D_s(u_{s-1}) ~= D_s(w_{s-1}) + B (u_{s-1} - w_{s-1})

``D_s(w_{s-1}) = g_s / clip_s - 2 mu (w_{s-1} - w_0)`` is recovered from the logged update as in
``per_sample_replay`` (backwards from ``w_T`` and, for Adam with ``beta1 = 0``, from ``v_T``);
``B v`` is the L-BFGS Hessian-vector product (compact form of Byrd, Nocedal and Schnabel) built
from the last ``history`` pairs ``(u - w, D(u) - D(w))`` collected at exact steps::

    B v = sigma v - [sigma S, Y] M^-1 [sigma S^T v; Y^T v],   M = [[sigma S^T S, L], [L^T, -D]],
    sigma = y_k^T s_k / s_k^T s_k,  L = strictly lower part of S^T Y,  D = diag(S^T Y).

The forget examples' own gradients at ``u_{s-1}`` are always computed exactly, and the gradient
of the retrained step is::

    g'_s = (D_s(u_{s-1}) - sum_{i in F_s} c_i grad l_i(u_{s-1})) * N_s / (N_s - |F_s|) + 2 mu (u_{s-1} - w_0)

(clipped at ``max_grad_norm`` as the run did; ``history = 0``: no ``B`` term). At the first ``burn_in``
steps of the walk, every ``exact_every``-th step after them, and whenever no usable pair is stored or
``|B s| > max_correction * |D_s(w_{s-1})|``, the retained examples' gradient is computed exactly at
``u_{s-1}`` (train mode, each micro-batch under the trainer's seed: the twin's own dropout masks);
exact steps without forget examples give a new pair, kept only if ``y^T s > 1e-8 |s| |y|``. Then the optimizer the run used makes
the step from the unlearned trajectory's own state: plain SGD ``u_s = u_{s-1} - lr (g'_s + wd u)``;
AdamW/Adam with ``beta1 = 0``: ``v'_s = b2 v'_{s-1} + (1 - b2) g'^2``,
``u_s = u_{s-1} - lr g' / (sqrt(v'_s / (1 - b2^s)) + eps) - lr wd u_{s-1}`` (``v'`` starts at the
recovered ``v_{s0 - 1}``). A step whose batch held only forget examples is skipped (as the twin skips it).

With ``exact_every = 1`` every step is exact: the method IS the retrain on the recorded order (up to
float rounding, dropout included). With a forget example only in the last step it equals ``per_sample_replay``. On a
quadratic loss whose batch Hessians equal ``B`` (e.g. ``c I``) it is exact at any ``exact_every``;
elsewhere it is DeltaGrad's approximation (proven for strongly convex losses; a heuristic on deep
nets). With several micro-batches per step the renormalisation is applied to the whole step.
Cost: two passes backwards over the deltas (the second in segments of ~sqrt(steps), from memory when
small), one forward/backward of the retained batch per exact step and one per forget example per step.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch

from .. import console
from ..training.log_store import LogError
from ..training.loops import MODEL_INPUTS, pad_batch
from ..training.penalties import per_example_loss
from ..training.trainer import batch_seed
from .amnesiac import AmnesiacConfig, repair
from .base import forward_logits
from .per_sample_replay import (
    _clip_coef,
    _final_second_moment,
    _Flat,
    _forget_rows,
    _recover_gradient,
    forget_gradient,
    update_rule,
)
from .registry import register_method

DELTA_CACHE_BYTES = 1 << 28  # the flat deltas of the walk stay in memory between the two passes up to this size


@dataclass
class PropagatedReplayConfig(AmnesiacConfig):
    """DeltaGrad replay of the steps from the first forget example on; then optional repair."""

    exact_every: int = field(
        default=10, metadata={"help": "T0: an exact retained-batch gradient every this many steps (1 = retrain)."}
    )
    burn_in: int = field(default=5, metadata={"help": "j0: exact steps at the start of the walk."})
    history: int = field(
        default=2, metadata={"help": "m: curvature pairs kept for the L-BFGS product (0 = no curvature term)."}
    )
    max_correction: float = field(
        default=1.0,
        metadata={"help": "Take an exact step when |B s| exceeds this multiple of the logged batch gradient's norm."},
    )
    dtype: str = field(default="float32", metadata={"help": "Precision of the walk (float32 or float64)."})
    dropout: bool = field(
        default=False,
        metadata={
            "help": "Compute the forget examples' gradients in train mode (fresh dropout) instead of eval mode."
        },
    )

    def __post_init__(self):
        if self.exact_every < 1 or self.burn_in < 0 or self.history < 0 or self.max_correction <= 0:
            raise ValueError(
                "PropagatedReplayConfig: exact_every must be >= 1, burn_in and history >= 0, max_correction > 0 "
                f"(got exact_every={self.exact_every}, burn_in={self.burn_in}, history={self.history}, "
                f"max_correction={self.max_correction})"
            )
        if self.dtype not in ("float64", "float32"):
            raise ValueError(f"PropagatedReplayConfig: dtype must be float64 or float32, got {self.dtype!r}")
        super().__post_init__()


class Curvature:
    """The L-BFGS Hessian approximation from the last ``m`` pairs ``(s, y)`` (compact form)."""

    def __init__(self, m: int):
        self.m, self.s, self.y = m, [], []
        self.kept = self.rejected = 0

    def add(self, s: torch.Tensor, y: torch.Tensor) -> bool:
        """Keep the pair if its curvature ``y^T s`` is clearly positive; returns whether it was kept."""
        sy, ns, ny = float(s @ y), float(s.norm()), float(y.norm())
        if not (ns > 0 and sy > 1e-8 * ns * ny and math.isfinite(sy)):
            self.rejected += 1
            return False
        self.s, self.y = [*self.s, s.clone()][-self.m :], [*self.y, y.clone()][-self.m :]
        S, Y = torch.stack(self.s), torch.stack(self.y)  # k x d
        self.sigma = float(self.y[-1] @ self.s[-1]) / float(self.s[-1] @ self.s[-1])
        sy_mat = S @ Y.T  # (i, j) = s_i^T y_j
        low = torch.tril(sy_mat, diagonal=-1)
        top = torch.cat([self.sigma * (S @ S.T), low], dim=1)
        bottom = torch.cat([low.T, -torch.diag(torch.diagonal(sy_mat))], dim=1)
        self.middle = torch.cat([top, bottom], dim=0)
        self.S, self.Y = S, Y
        self.kept += 1
        return True

    def product(self, v: torch.Tensor) -> torch.Tensor:
        """``B v``."""
        rhs = torch.cat([self.sigma * (self.S @ v), self.Y @ v])
        coef = torch.linalg.solve(self.middle, rhs)
        k = len(self.s)
        return self.sigma * v - self.sigma * (self.S.T @ coef[:k]) - self.Y.T @ coef[k:]


def original_steps(log, flat, rule, w_final, v_final, first: int, wd):
    """The logged trajectory from step ``first`` on, in forward order.

    Returns ``(v_{first-1}, iterator of (t, w_{t-1}, g_t))`` (``g_t`` None at a zero learning rate
    under SGD). The recovery runs backwards (from ``w_T``, ``v_T``); a first pass keeps
    ``(w_t, v_t)`` every ``k ~ sqrt(n)`` steps, a second one recovers each segment again and hands
    it out forwards.
    """
    total = len(log.steps())
    k = max(1, math.isqrt(total - first) + 1)
    d, g, buf = torch.empty_like(w_final), torch.empty_like(w_final), torch.empty_like(w_final)
    cache = {} if (total - first + 1) * w_final.numel() * w_final.element_size() <= DELTA_CACHE_BYTES else None

    def back(w, v, t):  # w_t, v_t -> w_{t-1}, v_{t-1}; g <- g_t (False at a zero learning rate)
        if cache is not None and t in cache:
            d.copy_(cache.pop(t))  # the second pass reads each delta once more, from memory
        else:
            flat.fill(d, log.delta(t))
            if cache is not None:
                cache[t] = d.clone()
        w.sub_(d)
        lr = log.steps()[t - 1].lr
        if lr <= 0:
            if rule.kind == "adam":
                raise LogError(f"step {t} ran at learning rate {lr}: its gradient cannot be recovered from its delta")
            return False
        _recover_gradient(rule, d, w, v, lr, t, wd, g, buf)
        return True

    checkpoints, w = {}, w_final.clone()
    v = v_final.clone() if v_final is not None else None
    for t in range(total, first - 1, -1):
        if (total - t) % k == 0:
            checkpoints[t] = (w.clone(), v.clone() if v is not None else None)
        back(w, v, t)

    def forward():
        for top in sorted(checkpoints):
            w, v = (x.clone() if x is not None else None for x in checkpoints[top])
            segment = []
            for t in range(top, max(first, top - k + 1) - 1, -1):
                recovered = back(w, v, t)
                segment.append((t, w.clone(), g.clone() if recovered else None))
            yield from reversed(segment)

    return v, forward()


@dataclass
class _Walk:
    """What every step of the walk needs besides the step itself."""

    model: torch.nn.Module
    flat: _Flat
    rule: object
    config: PropagatedReplayConfig
    wanted: set
    forget_rows: dict
    columns: dict
    index: dict
    ctx: object
    wd: torch.Tensor | None
    mu: float
    w0: torch.Tensor | None
    sd_lambda: float
    sd_decay: float
    seed: int
    curvature: Curvature
    stats: dict

    def l2(self, w):
        return 2.0 * self.mu * (w - self.w0) if self.mu else 0.0

    def batch(self, ids: list[str]) -> dict:
        """The retained examples ``ids`` (in this order) as one padded device batch (the trainer's collator)."""
        rows = [self.index[i] for i in ids]
        features = [{c: values[r] for c, values in self.columns.items()} for r in rows]
        return self.ctx.to_device(pad_batch(features, self.ctx.tokenizer))


def _flat_grad(model, flat) -> torch.Tensor:
    params = dict(model.named_parameters())
    parts = [params[n].grad if params[n].grad is not None else torch.zeros_like(params[n]) for n in flat.names]
    out = torch.cat([p.detach().reshape(-1).to(flat.dtype) for p in parts])
    model.zero_grad(set_to_none=True)
    return out


def _kept_gradient(walk: _Walk, rec, u, sd: float) -> torch.Tensor:
    """``sum_{i kept} c_i grad l_i(u)``, each micro-batch in train mode under the trainer's seed (as the twin)."""
    walk.flat.load(u)
    walk.model.train()
    walk.model.zero_grad(set_to_none=True)
    for mb in rec.micro_batches:
        keep = [i for i in mb["ids"] if i not in walk.wanted]
        if not keep:
            continue
        batch = walk.batch(keep)
        torch.manual_seed(batch_seed(walk.seed, mb["epoch"], mb["pos"]))
        loss = per_example_loss(forward_logits(walk.model, batch), batch["labels"], sd).sum() * mb["weight"]
        loss.backward()
        walk.stats["gradient_examples"] += len(keep)
    return _flat_grad(walk.model, walk.flat)


def _forget_part(walk: _Walk, rec, u, sd: float, t: int) -> torch.Tensor:
    """``sum_{i in F_s} c_i grad l_i(u)`` (eval mode unless ``dropout``), as ``per_sample_replay``."""
    weights = {}
    for mb in rec.micro_batches:
        for i in mb["ids"]:
            if i in walk.wanted:
                weights[i] = weights.get(i, 0.0) + mb["weight"]
    walk.flat.load(u)
    if walk.config.dropout:
        torch.manual_seed(t)
    grads = forget_gradient(walk.model, walk.flat.names, walk.forget_rows, weights, sd, train_mode=walk.config.dropout)
    walk.stats["gradient_examples"] += len(weights)
    return torch.cat([x.reshape(-1).to(walk.flat.dtype) for x in grads])


def _retained_gradient(walk: _Walk, rec, k: int, u, w_prev, g) -> torch.Tensor | None:
    """``g'_s``: the gradient the retrained run takes at ``u_{s-1}`` (None: the twin skips the step)."""
    n_all = sum(len(mb["ids"]) for mb in rec.micro_batches)
    n_keep = sum(1 for mb in rec.micro_batches for i in mb["ids"] if i not in walk.wanted)
    if n_keep == 0:
        return None
    max_norm = walk.rule.max_grad_norm
    if max_norm > 0 and rec.grad_norm is None:
        raise LogError(
            f"step {rec.step} has no recorded pre-clip gradient norm (clipping was on): retrain with this version"
        )
    sd = walk.sd_lambda / (walk.sd_decay ** (rec.epoch or 0))
    d_w = g / (_clip_coef(rec.grad_norm, max_norm) if max_norm > 0 else 1.0) - walk.l2(w_prev)
    s = u - w_prev
    touched = n_keep < n_all
    j0, t0 = walk.config.burn_in, walk.config.exact_every  # DeltaGrad's schedule over the walk's steps k = 1, 2, ...
    exact, correction = k <= j0 or (k - j0) % t0 == 0, None
    if not exact and bool(s.any()) and walk.config.history:  # history 0: no curvature term, no fallback
        if walk.curvature.s:
            try:
                correction = walk.curvature.product(s)
            except torch.linalg.LinAlgError:  # a singular middle matrix (near-parallel pairs): take an exact step
                correction = None
            if correction is not None and not correction.norm() <= walk.config.max_correction * d_w.norm():
                correction = None  # implausibly large (or not finite)
        if correction is None:
            exact = True
            walk.stats["fallback_steps"] += 1
    if exact:
        d_keep = _kept_gradient(walk, rec, u, sd)
        if walk.config.history and not touched and bool(s.any()):
            walk.curvature.add(s, d_keep - d_w)
        walk.stats["exact_steps"] += 1
    else:
        d_keep = d_w if correction is None else d_w + correction
        if touched:
            d_keep = d_keep - _forget_part(walk, rec, u, sd, rec.step)
    new = d_keep * (n_all / n_keep) + walk.l2(u)
    if max_norm > 0:
        new = new * _clip_coef(float(new.norm()), max_norm)
    return new


def _apply_update(rule, u, new, v, lr: float, t: int, wd) -> None:
    """The run's optimizer step from ``u`` (in place; Adam: ``v`` is the unlearned run's second moment)."""
    if rule.kind == "sgd":
        u.sub_(lr * (new + wd * u) if wd is not None else lr * new)
        return
    grad = new if (rule.decoupled or wd is None) else new + wd * u
    v.mul_(rule.beta2).addcmul_(grad, grad, value=1.0 - rule.beta2)
    denom = (v / (1.0 - rule.beta2**t)).sqrt_().add_(rule.eps)
    if rule.decoupled and wd is not None:
        u.sub_(lr * wd * u)
    u.addcdiv_(grad, denom, value=-lr)


def _retain_columns(retain, steps, wanted) -> tuple[dict[str, list], dict[str, int]]:
    """The retain set's label and model-input columns (plain lists) and the row of every retained example
    the walk may recompute; refuses a retain set that lacks one."""
    names = [c for c in ("id", "label", *MODEL_INPUTS) if retain is not None and c in retain.column_names]
    columns = retain.select_columns(names).to_dict() if names else {}
    index = {str(i): r for r, i in enumerate(columns.pop("id", []))}
    missing = {i for s in steps for i in s.ids if i not in wanted and i not in index}
    if missing:
        raise ValueError(
            f"propagated_replay recomputes the retained examples of the logged steps: {len(missing)} of them are "
            "not in the retain set; pass the whole training set minus the forget set as retain"
        )
    return columns, index


DESCRIPTION = (
    'Propagated step replay (Wu, Dobriban and Davidson, "DeltaGrad: Rapid retraining of machine learning '
    'models", ICML 2020): the logged training steps are replayed forwards from the first one that saw a '
    "forgotten example, without those examples; each step's gradient at the new weights is the logged gradient "
    "plus an L-BFGS Hessian-vector correction, with an exact gradient every few steps."
)


@register_method(
    "propagated_replay", PropagatedReplayConfig, guarantee="approximate", description=DESCRIPTION, needs_log=True
)
def propagated_replay(model, forget, retain, config: PropagatedReplayConfig, log, ctx) -> dict:
    """Walk the run forwards without the forget examples (DeltaGrad), then optional repair."""
    rule = update_rule(log, "propagated_replay")
    steps = log.steps()
    total = len(steps)
    if log.delta_steps() != list(range(1, total + 1)):
        raise LogError("propagated_replay needs a delta for every step of the transcript (the log is incomplete)")
    wanted = {str(i) for i in forget["id"]}
    touched = [s.step for s in steps if wanted.intersection(s.ids)]
    if not touched:
        return {"steps_replayed": 0, "optimizer_steps": repair(model, retain, config, ctx)}
    first = min(touched)
    columns, index = _retain_columns(retain, steps[first - 1 :], wanted)
    targs = log.meta.get("training_args", {})
    mu = float(targs.get("l2_init_mu") or 0.0)
    flat = _Flat(
        [(n, p) for n, p in model.named_parameters() if p.requires_grad],
        torch.float64 if config.dtype == "float64" else torch.float32,
    )
    wd = flat.per_entry({n: rule.weight_decay.get(n, 0.0) for n in flat.names})
    stats = dict(gradient_examples=0, exact_steps=0, fallback_steps=0)
    walk = _Walk(
        model, flat, rule, config, wanted, _forget_rows(forget, ctx),
        columns, index, ctx,
        wd if bool(wd.any()) else None, mu, flat.of(log.initial_state_dict()) if mu else None,
        float(targs.get("sd_lambda") or 0.0), float(targs.get("sd_lambda_decay") or 1.0),
        int(targs.get("seed") or 0), Curvature(config.history), stats,
    )  # fmt: skip
    v_final = _final_second_moment(log, flat, total) if rule.kind == "adam" else None
    v, trajectory = original_steps(log, flat, rule, flat.of_params(), v_final, first, walk.wd)
    if ctx.progress:
        trajectory = console.progress(trajectory, desc="replaying steps forwards", total=total - first + 1)
    u, skipped = None, 0
    for t, w_prev, g in trajectory:
        u = w_prev.clone() if u is None else u
        rec = steps[t - 1]
        if g is None:  # SGD at learning rate 0: no step
            continue
        new = _retained_gradient(walk, rec, t - first + 1, u, w_prev, g)
        if new is None:
            skipped += 1
            continue
        _apply_update(rule, u, new, v, rec.lr, t - skipped, walk.wd)
    flat.load(u)
    model.eval()
    return {
        "steps_replayed": len(touched),
        "steps_walked": total - first + 1,
        "total_steps": total,
        "approximate_steps": total - first + 1 - stats["exact_steps"] - skipped,
        "pairs_kept": walk.curvature.kept,
        "pairs_rejected": walk.curvature.rejected,
        "steps_skipped": skipped,
        **stats,
        "optimizer_steps": repair(model, retain, config, ctx),
        "rule": rule.kind,
    }
