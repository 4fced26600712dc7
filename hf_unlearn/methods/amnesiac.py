"""Amnesiac unlearning (Graves, Nagisetty, Ganesh, "Amnesiac Machine Learning", AAAI 2021).

Training is ``w_T = w_0 + sum_s delta_s`` with ``delta_s`` the logged update of step ``s``.
Rollback subtracts the updates of every step whose batch held a forget example::

    w' = w_T - sum_{s : B_s ∩ forget ≠ ∅} delta_s

Rollback is not retraining (later steps depended on the removed ones), so an optional short
repair fine-tune on the retain set follows. The paper reports membership-inference recall on
the forgotten data falling from 0.975 to 0.0 right after rollback.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from .base import MethodConfig, loop_config
from .finetune import finetune_on
from .registry import register_method


@dataclass
class AmnesiacConfig(MethodConfig):
    """Rollback of logged batch updates, then ``repair_epochs`` (or ``repair_steps``) of fine-tuning on retain."""

    repair_epochs: float = field(
        default=0.0, metadata={"help": "Passes of repair fine-tuning on the retain set after rollback (0 = none)."}
    )
    repair_steps: int = field(default=0, metadata={"help": "Cap on repair optimizer steps (0 = no cap)."})

    def __post_init__(self):
        if self.repair_epochs < 0 or self.repair_steps < 0:
            raise ValueError("repair_epochs and repair_steps must be >= 0")
        super().__post_init__()


def rollback_steps(model: torch.nn.Module, log, steps: list[int]) -> None:
    """``w -= sum of the logged deltas of ``steps`` (in float32, cast back to each parameter's dtype)."""
    params = dict(model.named_parameters())
    total = {}
    for _, step_delta in log.deltas(steps):  # each file verified (ahead, in parallel) before it is used
        for name, delta in step_delta.items():
            if name not in params:
                raise KeyError(f"logged delta for unknown parameter {name!r}")
            acc = total.get(name)
            total[name] = delta.float() if acc is None else acc.add_(delta.float())
    with torch.no_grad():
        for name, d in total.items():
            p = params[name]
            p.copy_((p.float() - d.to(p.device)).to(p.dtype))


def repair(model, retain, config: AmnesiacConfig, ctx) -> int:
    if not config.repair_epochs and not config.repair_steps:
        return 0
    if retain is None or len(retain) == 0:
        raise ValueError("repair needs a non-empty retain set")
    steps_cfg = loop_config(
        config, epochs=config.repair_epochs or 1.0, max_steps=config.repair_steps, weight_decay=0.0
    )
    return finetune_on(model, retain, steps_cfg, ctx)


DESCRIPTION = (
    'Amnesiac unlearning (Graves, Nagisetty and Ganesh, "Amnesiac Machine Learning", AAAI 2021): the '
    "parameter update of every training step that saw a forgotten example was logged during training and is "
    "subtracted from the final weights, optionally followed by a short repair fine-tune on the retained data."
)


@register_method("amnesiac", AmnesiacConfig, guarantee="approximate", description=DESCRIPTION, needs_log=True)
def amnesiac(model, forget, retain, config: AmnesiacConfig, log, ctx) -> dict:
    """Subtract the logged updates of every step that saw a forget example; optional repair."""
    touched = [s.step for s in log.steps_seeing(forget["id"])]
    available = set(log.delta_steps())
    missing = [s for s in touched if s not in available]
    if missing:
        raise ValueError(
            f"{len(missing)} step(s) that saw forget ids have no logged delta (e.g. step {missing[0]}): "
            "train with record_deltas=True (and list these ids in deletable_ids_file if you log deletable steps only)"
        )
    rollback_steps(model, log, touched)
    repair_steps = repair(model, retain, config, ctx)
    return {"steps_rolled_back": len(touched), "total_steps": len(log.steps()), "optimizer_steps": repair_steps}
