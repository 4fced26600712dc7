"""The retrain noise floor: how close two valid retrains come to each other (``report["noise_floor"]``).

Every noise twin (``training/retrain_noise.py``: a retrain without the forget set under other seeds)
is scored against the retrain twin exactly as the unlearned model is: ToW, ToW-MIA and the gap of
each accuracy (forget / retain / test, in points). Over the K pairs the section gives, per figure,
the mean, the spread (``sd``: sample standard deviation, 0 for one pair; ``min``; ``max``) and,
beside it, the method's value against the same twin. ToW / ToW-MIA: Zhao, Triantafillou et al.,
"What makes unlearning hard and what to do about it" (NeurIPS 2024). The noise twins' own
figures (accuracies, MIA) are summarised the same way under ``metrics``: the shaded band of the
plots (``plot_style.noise_band``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

from .predict import compare

PAIR_FIGURES = ("tow", "tow_mia", "forget_acc_gap", "retain_acc_gap", "test_acc_gap")
MODEL_FIGURES = ("forget_acc", "retain_acc", "test_acc", "mia_efficacy", "mia_auc")


def spread(values: Sequence[float]) -> dict:
    """``{mean, sd, min, max, n}`` of ``values`` (``sd`` with n - 1 degrees of freedom; 0.0 for one value)."""
    vals = [float(v) for v in values]
    if not vals:
        raise ValueError("spread: no values")
    mean = sum(vals) / len(vals)
    sd = math.sqrt(sum((v - mean) ** 2 for v in vals) / (len(vals) - 1)) if len(vals) > 1 else 0.0
    return {"mean": mean, "sd": sd, "min": min(vals), "max": max(vals), "n": len(vals)}


def against_twin(model: Mapping, twin: Mapping) -> dict:
    """ToW, ToW-MIA and the accuracy gaps (model minus twin, points) of one model's figures against the twin's."""
    out = dict(compare(model, twin))
    for split in ("forget", "retain", "test"):
        out[f"{split}_acc_gap"] = float(model[f"{split}_acc"]) - float(twin[f"{split}_acc"])
    return out


def noise_floor_section(
    twin: Mapping, noise: Sequence[Mapping], method: Mapping | None = None, seeds: Sequence[int] | None = None
) -> dict:
    """The report's ``noise_floor``: ``noise`` (the K noise twins' :func:`evaluate_model` dicts) against
    ``twin``; ``method`` (the unlearned model's dict) is scored beside them. Raises without a noise twin."""
    if not noise:
        raise ValueError("noise_floor_section: no noise twins")
    pairs = [against_twin(m, twin) for m in noise]
    section = {
        "n_twins": len(noise),
        "pairs": [{k: p[k] for k in PAIR_FIGURES} for p in pairs],
        "against_twin": {k: spread([p[k] for p in pairs]) for k in PAIR_FIGURES},
        "metrics": {k: spread([m[k] for m in noise]) for k in MODEL_FIGURES if all(_num(m.get(k)) for m in noise)},
    }
    if seeds is not None:
        section["seeds"] = [int(s) for s in seeds]
    if method is not None:
        section["method"] = {k: v for k, v in against_twin(method, twin).items() if k in PAIR_FIGURES}
    return section


def noise_min(section: Mapping | None) -> dict | None:
    """The worst the noise twins score against the twin (None without a floor): ``tow``, ``tow_mia`` and the
    lowest ``retain_acc_gap`` / ``test_acc_gap`` (points; negative: a valid retrain below the twin)."""
    if not section:
        return None
    keys = ("tow", "tow_mia", "retain_acc_gap", "test_acc_gap")
    return {k: section["against_twin"][k]["min"] for k in keys if k in section["against_twin"]}


def _num(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
