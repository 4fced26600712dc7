"""A per-example membership test with the noise twins as reference models (``report["membership"]``).

After Carlini, Chien, Nasr, Song, Terzis and Tramer, "Membership Inference Attacks From First
Principles" (IEEE S&P 2022, LiRA): a model's confidence on an example is turned into the
logit-scaled confidence ``phi = log(p / (1 - p))`` of the true label (p clipped to
``[1e-7, 1 - 1e-7]``), which is close to Gaussian over retrains. The K noise twins never saw the
forgotten examples (nor the test examples): their ``phi`` on example i gives the "out"
distribution ``N(mu_i, sigma^2)``, ``mu_i`` the mean over the twins and ``sigma^2`` ONE variance
pooled over the examples (the paper's "fixed variance" variant, which it recommends with few
reference models). A model's ``z_i = (phi_i - mu_i) / sigma`` and one-sided p-value
``P(N(0, 1) >= z_i)`` say how much MORE confident it is on example i than models that never saw
it. Reported per model (original / unlearned / retrain twin): the fraction of forget examples
flagged (p < 0.05: about 5% for a model that never saw them) and the AUC of ``z`` separating the
forget examples (positives) from an equal number of test examples never trained on (negatives),
scored the same way (0.5: the forget set looks like unseen data).
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np

ALPHA = 0.05
CLIP = 1e-7
MIN_REFERENCE_MODELS = 2
SD_FLOOR = 1e-3  # logit units: twins that agree exactly would otherwise divide by zero
ABSENT_WHY = (
    f"the per-example membership test needs at least {MIN_REFERENCE_MODELS} noise twins as reference models "
    f"(--noise_twins {MIN_REFERENCE_MODELS} or more): one cannot give a spread"
)


def logit_confidence(p) -> np.ndarray:
    """``phi = log(p / (1 - p))`` of true-label probabilities ``p``, clipped to ``[1e-7, 1 - 1e-7]``."""
    p = np.clip(np.asarray(p, dtype=np.float64), CLIP, 1.0 - CLIP)
    return np.log(p) - np.log1p(-p)


def reference_fit(reference_phi) -> tuple[np.ndarray, float]:
    """``(mu [n], sigma)`` from ``reference_phi`` ``[K, n]`` (K >= 2 reference models): per-example
    means and one standard deviation pooled over the examples (ddof 1 per example), floored."""
    ref = np.asarray(reference_phi, dtype=np.float64)
    if ref.ndim != 2 or ref.shape[0] < MIN_REFERENCE_MODELS:
        raise ValueError(f"reference_fit needs [K >= {MIN_REFERENCE_MODELS}, n] values, got shape {ref.shape}")
    sigma = float(np.sqrt(np.mean(np.var(ref, axis=0, ddof=1))))
    return ref.mean(axis=0), max(sigma, SD_FLOOR)


def z_scores(target_phi, reference_phi) -> np.ndarray:
    """Per-example ``z = (phi - mu) / sigma`` of a target model against the reference models."""
    mu, sigma = reference_fit(reference_phi)
    target = np.asarray(target_phi, dtype=np.float64)
    if target.shape != mu.shape:
        raise ValueError(f"target {target.shape} and reference {mu.shape} examples differ")
    return (target - mu) / sigma


def p_values(z) -> np.ndarray:
    """One-sided ``P(N(0, 1) >= z)``: small when the target is more confident than the references."""
    return np.array([0.5 * math.erfc(float(v) / math.sqrt(2.0)) for v in np.asarray(z).reshape(-1)])


def membership_figures(forget_p, forget_ref_p, test_p, test_ref_p, alpha: float = ALPHA) -> dict:
    """``{flagged_fraction, auc, mean_z}`` of one target model.

    ``forget_p`` ``[n]`` / ``test_p`` ``[m]``: its true-label probabilities on the forget and test
    examples; ``*_ref_p`` ``[K, n]`` / ``[K, m]``: the reference models' on the same examples.
    """
    from sklearn.metrics import roc_auc_score

    z_forget = z_scores(logit_confidence(forget_p), logit_confidence(forget_ref_p))
    z_test = z_scores(logit_confidence(test_p), logit_confidence(test_ref_p))
    labels = np.concatenate([np.ones(z_forget.size), np.zeros(z_test.size)])
    return {
        "flagged_fraction": float(np.mean(p_values(z_forget) < alpha)),
        "auc": float(roc_auc_score(labels, np.concatenate([z_forget, z_test]))),
        "mean_z": float(z_forget.mean()),
    }


def membership_section(targets: Mapping[str, tuple], references: tuple, alpha: float = ALPHA) -> dict:
    """The report's ``membership``: ``targets`` name -> ``(forget_p, test_p)``; ``references``
    ``(forget_ref_p [K, n], test_ref_p [K, m])`` from the noise twins."""
    forget_ref, test_ref = (np.asarray(r, dtype=np.float64) for r in references)
    return {
        "test": "LiRA-style, noise twins as reference models (Carlini et al. 2022), fixed variance",
        "reference_models": int(forget_ref.shape[0]),
        "alpha": alpha,
        "forget_count": int(forget_ref.shape[1]),
        "test_count": int(test_ref.shape[1]),
        "models": {name: membership_figures(f, forget_ref, t, test_ref, alpha) for name, (f, t) in targets.items()},
    }


def absent_section(n_twins: int) -> dict:
    """The ``membership`` section of a report with fewer than two noise twins: why the test is absent."""
    return {"absent": ABSENT_WHY, "reference_models": int(n_twins)}
