"""SCRUB: a student that moves away from its teacher on the forget set and stays close on the rest.

Kurmanji, Triantafillou, Hayes and Triantafillou, "Towards Unbounded Machine Unlearning"
(NeurIPS 2023). The student starts as the original model, the teacher is a frozen copy of it.
With d(x) = T^2 * KL(softmax(t(x)/T) || softmax(s(x)/T)) (teacher first, as in the SCRUB code's
``DistillKL``), each of ``epochs`` epochs runs

    max-steps (first ``msteps`` epochs only), one pass over the forget set:   min  -d(x_f)
    min-steps, one pass over the retain set:          min  gamma * CE(s(x_r), y_r) + beta * d(x_r)

with one AdamW optimizer throughout. Defaults follow the SCRUB code (gamma 0.99, its KL weight
0.001 here called ``beta``, T = 4), with fewer epochs and a smaller Adam learning rate (a fifth of
the run's peak training learning rate; 5e-5 without a log).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import ClassVar

import torch
import torch.nn.functional as F

from .base import MethodConfig, MethodContext, cycle, forward_logits, loop_config, run_steps
from .neggrad import require_rows
from .registry import register_method


@dataclass
class ScrubConfig(MethodConfig):
    """SCRUB: alternate max-steps on forget (``-KL``) and min-steps on retain (``gamma * CE + beta * KL``)."""

    LR_FACTOR: ClassVar[float] = 0.2

    epochs: float = field(
        default=2.0,
        metadata={"help": "Epochs; each is a forget pass (first msteps only) then a retain pass. A whole number."},
    )
    msteps: int = field(
        default=1, metadata={"help": "Number of first epochs that start with a max-step pass over the forget set."}
    )
    temperature: float = field(default=4.0, metadata={"help": "Softmax temperature T of the distillation KL."})
    gamma: float = field(default=0.99, metadata={"help": "Weight of the retain cross-entropy in the min-steps."})
    beta: float = field(default=0.001, metadata={"help": "Weight of the retain KL to the teacher in the min-steps."})

    def __post_init__(self):
        if self.epochs != int(self.epochs):
            raise ValueError(f"ScrubConfig: epochs must be a whole number, got {self.epochs}")
        if not 0 <= self.msteps <= self.epochs:
            raise ValueError(f"ScrubConfig: msteps must be in [0, epochs={self.epochs:g}], got {self.msteps}")
        if self.temperature <= 0 or self.gamma < 0 or self.beta < 0:
            raise ValueError("ScrubConfig: temperature must be > 0, gamma and beta >= 0")
        super().__post_init__()


def frozen_teacher(model):
    """A frozen copy of ``model`` in eval mode."""
    return copy.deepcopy(model).eval().requires_grad_(False)


def distill_kl(student_logits, teacher_logits, temperature: float):
    """``T^2 * KL(softmax(t/T) || softmax(s/T))``, averaged over the batch."""
    t = temperature
    return (
        F.kl_div(F.log_softmax(student_logits / t, -1), F.softmax(teacher_logits / t, -1), reduction="batchmean")
        * t
        * t
    )


DESCRIPTION = (
    'SCRUB (Kurmanji, Triantafillou, Hayes and Triantafillou, "Towards Unbounded Machine '
    'Unlearning", NeurIPS 2023): a student copy of the model moves away from the original on the forgotten '
    "examples and stays close to it on the retained data."
)


@register_method("scrub", ScrubConfig, guarantee="approximate", description=DESCRIPTION)
def scrub(model, forget, retain, config: ScrubConfig, log, ctx: MethodContext) -> dict:
    """Teacher-student unlearning: diverge on the forget set, distil and fit on the retain set."""
    require_rows(forget, "scrub", "forget")
    require_rows(retain, "scrub", "retain")
    teacher = frozen_teacher(model)
    forget_loader = ctx.loader(forget, config.batch_size, shuffle=True, seed=config.seed + 1)
    retain_loader = ctx.loader(retain, config.batch_size, shuffle=True, seed=config.seed)
    loaders = {"max": cycle(forget_loader), "min": cycle(retain_loader)}
    schedule = []
    for epoch in range(int(config.epochs)):
        schedule += ["max"] * (len(forget_loader) if epoch < config.msteps else 0) + ["min"] * len(retain_loader)

    def step_loss(step):
        batch = ctx.to_device(next(loaders[schedule[step]]))
        logits = forward_logits(model, batch)
        with torch.no_grad():
            teacher_logits = forward_logits(teacher, batch)
        kl = distill_kl(logits, teacher_logits, config.temperature)
        if schedule[step] == "max":
            return -kl
        return config.gamma * F.cross_entropy(logits, batch["labels"]) + config.beta * kl

    loop = loop_config(config, epochs=1.0)
    steps = run_steps(model, ctx, loop, len(schedule), step_loss)
    return {
        "optimizer_steps": steps,
        "max_steps_taken": schedule[:steps].count("max"),
        "min_steps_taken": schedule[:steps].count("min"),
    }
