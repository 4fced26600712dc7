"""Selective Synaptic Dampening: shrink the parameters the forget set needs far more than training did.

Foster, Schoepf and Brintrup, "Fast Machine Unlearning Without Retraining Through Selective
Synaptic Dampening" (AAAI 2024). The importance of parameter i to a data set is a diagonal
Fisher estimate, the mean over batches of B rows of the squared gradient of the batch's mean loss:

    []_X,i = mean_b (n_b / B) ( d CE_b(f_w) / d theta_i )^2     (eval mode, at the model's weights)

(``n_b = B`` for every full batch: SSD's own estimate; see "Scale" for a partial one)

with []_D for the training data and []_F for the forget set. The rule, on every trainable
parameter entry (LoRA: the adapters and the head; the frozen base is never touched)::

    theta_i <- beta_i * theta_i,   beta_i = min(lambda * []_D,i / []_F,i, 1)   if []_F,i > alpha * []_D,i
    theta_i unchanged                                                         otherwise

(alpha: selection weighting, paper default 10; lambda: dampening constant, paper default 1).
An entry no forget gradient reaches (``[]_F,i = 0``) is never selected.

Where []_D comes from (``importance_source``):

- ``"retain"`` (the default): the estimate above on a seeded sample of ``retain_samples`` rows of
  the retain set at the final weights.
- ``"adam"``: the training run's own Adam second moment
  ``v_T`` (``optimizer_final.safetensors``, written with ``record_deltas`` for Adam-type
  optimizers), bias-corrected: ``v_T / (1 - beta2^T)`` is a weighted mean over the training
  steps of the squared (clipped) batch-mean gradient, i.e. the same estimator as above over the
  training batches along the trajectory, at no cost. Measured on a tiny BERT (300 rows x 5 epochs,
  forgetting 6 canaries, alpha 10): ``v_T`` sits ~9x above the final weights' retain importance at
  the median entry (it remembers the large early gradients), so it selected 0.11% of the entries and
  left the forget accuracy at 100%, where ``"retain"`` selected 4.9% and brought it to 67% at no test
  cost: ``"adam"`` is kept as an option (with a calibrated ``alpha``), not as the default.

Scale. The batch size changes the estimate (a batch mean of n gradients has a squared value of
about ``mu^2 + sigma^2 / n``), so []_F and a computed []_D use the run's effective training
batch size B (per-device batch x accumulation x world size, from the log; ``importance_batch_size``
overrides it, 32 without a log), the batch size ``v_T`` was accumulated at. A last partial batch
of n < B rows (or a forget set smaller than B) is weighted by ``n / B``, which puts it on the scale
of a full batch when the per-example gradients are noise around a small mean (as at the end of
training); a forget set of B or more rows is exactly SSD's estimate. ``v_T`` still averages over the
trajectory (larger early gradients) while []_F is taken at the final weights: with
``normalize=True`` each importance is divided by its mean over all trainable entries first, so
the rule compares where each data set's importance sits rather than its overall level.
Because of that average, ``v_T`` is the larger of the two estimates of the training importance
(on the tiny synthetic run about 9x the retain-set estimate at the median entry): at the same
``alpha`` the ``adam`` source dampens fewer entries than ``retain`` does.

Optionally ``neggrad_plus_steps`` steps of NegGrad+ (``neggrad_plus.py``) follow the dampening.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import torch
import torch.nn.functional as F

from ..training.optimizer_record import FINAL_STATE
from .base import MethodContext, forward_logits
from .neggrad import require_rows
from .neggrad_plus import NegGradPlusConfig, neggrad_plus
from .registry import register_method

ADAM = ("Adam", "AdamW")
SOURCES = ("adam", "retain")


@dataclass
class SSDConfig:
    """SSD: dampen ``theta_i`` by ``min(lambda []_D,i / []_F,i, 1)`` where ``[]_F,i > alpha []_D,i``."""

    alpha: float = field(
        default=10.0,
        metadata={
            "help": "Selection weighting: dampen entries whose forget importance exceeds alpha x training importance."
        },
    )
    dampening: float = field(
        default=1.0,
        metadata={"help": "Dampening constant lambda: a selected entry is scaled by min(lambda x []_D / []_F, 1)."},
    )
    importance_source: Literal["adam", "retain"] | None = field(
        default=None,
        metadata={
            "help": "Training importance from the log's Adam second moment ('adam') or computed on the retain set "
            "('retain', the default: the log's v_T remembers early training and selects almost nothing)."
        },
    )
    importance_batch_size: int | None = field(
        default=None,
        metadata={
            "help": "Batch size of the computed importances (default: the run's effective training batch size)."
        },
    )
    retain_samples: int = field(
        default=256, metadata={"help": "Retain rows (seeded sample) for the 'retain' importance (0 = all)."}
    )
    normalize: bool = field(
        default=False,
        metadata={"help": "Divide each importance by its mean over all trainable entries before the rule."},
    )
    neggrad_plus_steps: int = field(
        default=0, metadata={"help": "NegGrad+ steps after the dampening (0 = none; needs the retain set)."}
    )
    neggrad_plus_alpha: float = field(
        default=0.99, metadata={"help": "NegGrad+ weight of the retain CE (1 - it on the forget CE ascent)."}
    )
    learning_rate: float | None = field(
        default=None,
        metadata={
            "help": "Learning rate of the NegGrad+ steps (default: the run's training rate from the log, else 5e-5)."
        },
    )
    batch_size: int = field(default=32, metadata={"help": "Examples per NegGrad+ batch."})
    seed: int = field(default=0, metadata={"help": "Seed of the retain sample and the NegGrad+ batch order."})

    def __post_init__(self):
        if not self.alpha > 0 or not self.dampening > 0:
            raise ValueError(f"SSDConfig: alpha and dampening must be > 0, got {self.alpha} and {self.dampening}")
        if self.importance_batch_size is not None and self.importance_batch_size < 1:
            raise ValueError(f"SSDConfig: importance_batch_size must be >= 1, got {self.importance_batch_size}")
        if self.retain_samples < 0 or self.neggrad_plus_steps < 0 or self.batch_size < 1:
            raise ValueError("SSDConfig: retain_samples and neggrad_plus_steps must be >= 0, batch_size >= 1")
        if self.learning_rate is not None and not self.learning_rate > 0:
            raise ValueError(f"SSDConfig: learning_rate must be > 0, got {self.learning_rate}")
        NegGradPlusConfig(alpha=self.neggrad_plus_alpha)  # its own range check


def trainable(model) -> list[tuple[str, torch.nn.Parameter]]:
    return [(n, p) for n, p in model.named_parameters() if p.requires_grad]


def diagonal_fisher(model, dataset, ctx: MethodContext, batch_size: int) -> dict[str, torch.Tensor]:
    """``{name: mean over batches of (n_b / B) * (grad of the batch-mean CE)^2}`` of the trainable parameters.

    Eval mode, in batches of ``B = batch_size`` in row order; a partial batch of ``n_b`` rows is
    weighted by ``n_b / B`` (module docstring: the scale of a full batch).
    """
    named = trainable(model)
    total = {n: torch.zeros_like(p, dtype=torch.float32) for n, p in named}
    was_training = model.training
    model.eval()
    batches = 0
    for batch in ctx.loader(dataset, batch_size, shuffle=False):
        batch = ctx.to_device(batch)
        model.zero_grad(set_to_none=True)
        F.cross_entropy(forward_logits(model, batch), batch["labels"]).backward()
        weight = len(batch["labels"]) / batch_size
        for n, p in named:
            if p.grad is not None:
                total[n].add_(p.grad.detach().float().square(), alpha=weight)
        batches += 1
    model.zero_grad(set_to_none=True)
    model.train(was_training)
    return {n: t.div_(max(batches, 1)) for n, t in total.items()}


def has_adam_state(log) -> bool:
    """Whether the log holds an Adam-type optimizer's final second moment."""
    info = (log.meta.get("optimizer") or {}) if log is not None else {}
    return info.get("class") in ADAM and bool(info.get("final_state")) and FINAL_STATE in log.files.listed


def resolve_source(config: SSDConfig, log) -> str:
    """``config.importance_source`` (default retain); refuses an ``adam`` the log cannot serve (before any work)."""
    if config.importance_source is None:
        return "retain"
    if config.importance_source == "adam" and not has_adam_state(log):
        where = "no log was given" if log is None else f"the log {log.root} has no Adam state ({FINAL_STATE})"
        raise ValueError(
            f"ssd: importance_source=adam needs the run's final Adam second moment, but {where}: train with an "
            "Adam-type optimizer and --record_deltas, or set importance_source=retain"
        )
    return config.importance_source


def adam_importance(log, model) -> dict[str, torch.Tensor]:
    """Bias-corrected Adam second moment ``v_T / (1 - beta2^T)`` of every trainable parameter."""
    state, step = log.optimizer_final_state()
    beta2 = {n: float(g["betas"][1]) for g in log.meta["optimizer"]["groups"] for n in g["params"]}
    out = {}
    for name, p in trainable(model):
        if name not in state or name not in beta2:
            raise ValueError(f"ssd: the log's Adam state has no entry for trainable parameter {name!r}")
        out[name] = state[name].to(p.device, torch.float32) / (1.0 - beta2[name] ** step)
    return out


def training_batch_size(log) -> int | None:
    """The run's effective batch size (per device x accumulation x world size), when the log says."""
    meta = log.meta if log is not None else {}
    per_device = meta.get("per_device_train_batch_size")
    if not per_device:
        return None
    return int(per_device) * int(meta.get("gradient_accumulation_steps") or 1) * int(meta.get("world_size") or 1)


def training_learning_rate(log) -> float | None:
    """The run's training learning rate, when the log says."""
    args = (log.meta.get("training_args") or {}) if log is not None else {}
    return float(args["learning_rate"]) if args.get("learning_rate") else None


def mean_normalized(imp: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """``imp`` divided by its mean over all entries (unchanged when that is 0)."""
    mean = sum(float(t.sum()) for t in imp.values()) / max(1, sum(t.numel() for t in imp.values()))
    return {n: t / mean for n, t in imp.items()} if mean > 0 else imp


@torch.no_grad()
def dampen(model, train_imp, forget_imp, alpha: float, dampening: float) -> dict:
    """Apply the SSD rule in place; returns how many entries were dampened and their mean factor."""
    selected, total, factor_sum = 0, 0, 0.0
    for name, p in trainable(model):
        d, f = train_imp[name], forget_imp[name]
        mask = f > alpha * d
        total += p.numel()
        if not mask.any():
            continue
        beta = torch.where(mask, (dampening * d / f.clamp_min(torch.finfo(f.dtype).tiny)).clamp(max=1.0), 1.0)
        p.mul_(beta.to(p.dtype))
        selected += int(mask.sum())
        factor_sum += float(beta[mask].sum())
    return {
        "dampened_entries": selected,
        "dampened_fraction": selected / max(total, 1),
        "mean_dampening_factor": factor_sum / selected if selected else 1.0,
    }


def _retain_sample(retain, n: int, seed: int):
    if n == 0 or len(retain) <= n:
        return retain
    return retain.shuffle(seed=seed).select(range(n))


DESCRIPTION = (
    'Selective Synaptic Dampening (Foster, Schoepf and Brintrup, "Fast Machine Unlearning Without Retraining '
    'Through Selective Synaptic Dampening", AAAI 2024): the parameters far more important (diagonal Fisher) to the '
    "forgotten examples than to the training data are scaled down; the training importance is read from the run's "
    "Adam second moment when logged."
)


@register_method("ssd", SSDConfig, guarantee="approximate", description=DESCRIPTION)
def ssd(model, forget, retain, config: SSDConfig, log, ctx: MethodContext) -> dict:
    """Dampen the parameters the forget set needs far more than the training data did."""
    require_rows(forget, "ssd", "forget")
    source = resolve_source(config, log)
    if source == "retain" or config.neggrad_plus_steps:
        require_rows(retain, "ssd", "retain")
    batch = config.importance_batch_size or training_batch_size(log) or 32
    train_imp = (
        adam_importance(log, model)
        if source == "adam"
        else diagonal_fisher(model, _retain_sample(retain, config.retain_samples, config.seed), ctx, batch)
    )
    forget_imp = diagonal_fisher(model, forget, ctx, batch)
    if config.normalize:
        train_imp, forget_imp = mean_normalized(train_imp), mean_normalized(forget_imp)
    stats = {"importance_source": source, "importance_batch_size": batch}
    stats.update(dampen(model, train_imp, forget_imp, config.alpha, config.dampening))
    if config.neggrad_plus_steps:
        lr = config.learning_rate or training_learning_rate(log) or 5e-5
        follow = NegGradPlusConfig(
            alpha=config.neggrad_plus_alpha,
            learning_rate=lr,
            epochs=float(config.neggrad_plus_steps),
            max_steps=config.neggrad_plus_steps,
            batch_size=config.batch_size,
            seed=config.seed,
        )
        stats["learning_rate"] = lr
        stats["optimizer_steps"] = neggrad_plus(model, forget, retain, follow, log, ctx)["optimizer_steps"]
    return {"optimizer_steps": 0, **stats}
