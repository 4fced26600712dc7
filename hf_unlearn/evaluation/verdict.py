"""The one verdict rule, in words: did unlearning reach the retrain noise, do nothing, or do harm?

The demo, ``report.json`` (its ``verdict`` section) and the model card (which prints the report's
section) all use :func:`judge`. The figures are ToW and ToW-MIA against the retrain twin (Zhao,
Triantafillou et al., "What makes unlearning hard and what to do about it", NeurIPS 2024), for the
unlearned model and for the "do nothing" baseline (the original model scored against the same
twin), and the retrain noise floor (``noise_floor.py``: K noise twins, retrains without the
forget set under other seeds, scored against the twin). The rule, checked in this order:

1. "did harm": retain or test accuracy below the twin's by more than 1 point, more than one evaluated
   example (``100 / n`` points on ``n`` examples) AND more than any noise twin is (a drop that a valid
   retrain shows too is retrain noise, not harm), or ToW below the do-nothing ToW;
2. "no better than doing nothing": ToW not above the do-nothing ToW;
3. "within the retrain noise" (with at least one noise twin): :data:`NOISE_RULE`;
4. otherwise, by the sign of the forget-accuracy gap to the twin: "forgets less than retraining"
   (above the twin's), "forgets more than retraining" (below) or "forgets as much as retraining".
"""

from __future__ import annotations

from collections.abc import Mapping

DID_HARM = "did harm"
NO_BETTER = "no better than doing nothing"
WITHIN_NOISE = "within the retrain noise"
FORGETS_LESS = "forgets less than retraining"
FORGETS_MORE = "forgets more than retraining"
FORGETS_AS_MUCH = "forgets as much as retraining"
VERDICTS = (DID_HARM, NO_BETTER, WITHIN_NOISE, FORGETS_LESS, FORGETS_MORE, FORGETS_AS_MUCH)
HARM_POINTS = 1.0  # percentage points of retain / test accuracy below the twin's that count as harm
EPS = 1e-9  # ToW values closer than this are equal

NOISE_RULE = (
    "within the retrain noise: the method's ToW and ToW-MIA against the retrain twin are each at least the "
    "lowest (worst) ToW and ToW-MIA that the noise twins (retrains without the forget set under other data-order "
    "and dropout seeds) score against the same twin."
)
RULE = (
    f"did harm: retain or test accuracy more than {HARM_POINTS:.0f} point (and more than one evaluated example, "
    "and more than any noise twin) below the retrain twin's, or ToW below "
    "the do-nothing ToW (the original model scored against the twin); else no better than doing nothing: ToW not "
    f"above the do-nothing ToW; else {NOISE_RULE} Otherwise the sign of the forget-accuracy gap to the twin says "
    "whether the method forgets less or more than retraining."
)


def harm_threshold(n_examples: int | None) -> float:
    """Points of accuracy that count as harm on ``n_examples``: ``max(HARM_POINTS, 100 / n)`` (one example's
    worth: on 64 retain examples one example is 1.56 points, and a single flip is no evidence of harm)."""
    return max(HARM_POINTS, 100.0 / n_examples) if n_examples else HARM_POINTS


def _harm_reasons(unlearned, twin, tow: float, nothing_tow: float, sizes, noise_min) -> list[str]:
    out = []
    for split in ("retain", "test"):
        drop = twin[f"{split}_acc"] - unlearned[f"{split}_acc"]
        noise_drop = -(noise_min or {}).get(f"{split}_acc_gap", 0.0)  # the largest drop of a noise twin
        if drop > max(harm_threshold((sizes or {}).get(split)), noise_drop) + EPS:
            out.append(f"{split} accuracy {drop:.1f} points below the retrain twin's")
    if tow < nothing_tow - EPS:
        out.append(f"ToW {tow:.4f} below doing nothing's {nothing_tow:.4f}")
    return out


def judge(
    original: Mapping,
    unlearned: Mapping,
    twin: Mapping,
    *,
    tow: float,
    tow_mia: float,
    nothing_tow: float,
    nothing_tow_mia: float,
    noise_min: Mapping | None = None,
    sizes: Mapping | None = None,
) -> dict:
    """The verdict of an unlearned model (``report["verdict"]``).

    ``original`` / ``unlearned`` / ``twin``: :func:`~hf_unlearn.evaluation.predict.evaluate_model`
    dicts (accuracies in percent); ``tow`` / ``tow_mia``: the unlearned model against the twin;
    ``nothing_*``: the original against the twin; ``noise_min``: ``{"tow": .., "tow_mia": ..}``, the
    lowest the noise twins score against the twin, with their lowest ``retain_acc_gap`` / ``test_acc_gap``
    (the harm threshold; :func:`~.noise_floor.noise_min`; None without noise twins); ``sizes``: examples evaluated
    per split (``{"retain": n, "test": n}``; the harm threshold, :func:`harm_threshold`). Returns ``{"label"``
    (one of :data:`VERDICTS`), ``"says"`` (one sentence), ``"harm"``, ``"no_better_than_nothing"``,
    ``"within_noise"`` and ``"do_nothing_within_noise"`` (None without noise twins), ``"rule"``}.
    """
    harm = _harm_reasons(unlearned, twin, tow, nothing_tow, sizes, noise_min)
    no_better = tow <= nothing_tow + EPS
    within = _within(noise_min, tow, tow_mia)
    nothing_within = _within(noise_min, nothing_tow, nothing_tow_mia)
    gap = unlearned["forget_acc"] - twin["forget_acc"]
    if harm:
        label, says = DID_HARM, f"{DID_HARM}: " + "; ".join(harm) + "."
    elif no_better:
        label, says = NO_BETTER, f"{NO_BETTER}: ToW {tow:.4f}, doing nothing {nothing_tow:.4f}."
    elif within:
        label, says = WITHIN_NOISE, f"{WITHIN_NOISE}: ToW {tow:.4f} and ToW-MIA {tow_mia:.4f} (see the rule)."
    else:
        label = FORGETS_LESS if gap > EPS else FORGETS_MORE if gap < -EPS else FORGETS_AS_MUCH
        says = f"{label} (forget accuracy {gap:+.1f} points from the twin's), better than doing nothing"
        says += "." if within is None else ", outside the retrain noise."
    if nothing_within:
        says += " Doing nothing is itself within the retrain noise on this forget set."
    return {
        "label": label,
        "says": says,
        "harm": bool(harm),
        "no_better_than_nothing": bool(no_better),
        "within_noise": within,
        "do_nothing_within_noise": nothing_within,
        "rule": RULE,
    }


def _within(noise_min: Mapping | None, tow: float, tow_mia: float) -> bool | None:
    """:data:`NOISE_RULE` (None without a noise floor)."""
    if not noise_min:
        return None
    return bool(tow >= noise_min["tow"] - EPS and tow_mia >= noise_min["tow_mia"] - EPS)
