"""Per-sample amnesiac rollback on a parameter subset.

The per-example variant (after Marincione 2024) of Graves, Nagisetty and Ganesh, "Amnesiac
Machine Learning" (AAAI 2021), which rolls back whole logged updates (``amnesiac.py``).

Training logged, for a fixed random subset J of the parameters, each example's gradient
``g_i,J`` at every step that saw it, and its weight in that step's gradient
``c_i = 1 / (|micro-batch| * GA * world_size)``. Rollback adds back each forget example's
contribution to the update it took part in::

    w_J += lr_s * c_i * g_i,J      for every step s that saw forget example i

This undoes example i's share of step s EXACTLY for plain SGD without momentum or weight
decay; with Adam (or momentum) the real update was a non-linear function of the gradients,
so the correction is only a first-order approximation. Parameters outside J are untouched:
follow with repair fine-tuning on the retain set when the subset is small.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .amnesiac import AmnesiacConfig, repair
from .registry import register_method


@dataclass
class PerSampleConfig(AmnesiacConfig):
    """Per-sample rollback on the logged subset, then optional repair."""


def per_sample_correction(log, forget_ids) -> tuple[torch.Tensor, int]:
    """``sum over steps s and forget ids i in s of lr_s * c_i * g_i,J``: a [k] vector; and the steps used."""
    forget = set(forget_ids)
    correction, steps = None, 0
    for rec in log.steps_seeing(forget):
        ids, grads = log.per_sample(rec.step)
        rows = [j for j, i in enumerate(ids) if i in forget]
        coef = torch.tensor([rec.lr * rec.weight_of(ids[j]) / max(1, ids.count(ids[j])) for j in rows])
        part = (coef[:, None] * grads[rows].double()).sum(0)
        correction = part if correction is None else correction + part
        steps += 1
    return correction, steps


DESCRIPTION = (
    "Per-sample amnesiac rollback (the per-example variant, after Marincione 2024, of Graves, "
    'Nagisetty and Ganesh, "Amnesiac Machine Learning", AAAI 2021): each example\'s gradient on a fixed random '
    "subset of the parameters was logged during training; the forgotten examples' contributions are subtracted "
    "from those parameters."
)


@register_method(
    "amnesiac_per_sample", PerSampleConfig, guarantee="approximate", description=DESCRIPTION, needs_log=True
)
def amnesiac_per_sample(model, forget, retain, config: PerSampleConfig, log, ctx) -> dict:
    """Add back each forget example's logged per-sample update on the parameter subset; optional repair."""
    from ..training.per_sample import add_to_subset_

    if "per_sample" not in log.meta.get("recorders", []):
        raise ValueError("this log has no per-sample gradients: train with record_per_sample=True")
    correction, steps = per_sample_correction(log, forget["id"])
    index = log.per_sample_index()
    add_to_subset_(model, index, correction.float())
    repair_steps = repair(model, retain, config, ctx)
    return {"steps_rolled_back": steps, "subset_entries": int(correction.numel()), "optimizer_steps": repair_steps}
