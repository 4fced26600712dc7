"""Canary exposure: how far a model ranks a planted canary above canaries it never saw.

From Carlini, Liu, Erlingsson, Kos and Song, "The Secret Sharer: Evaluating and Testing Unintended
Memorization in Neural Networks" (USENIX Security 2019), for a classifier. A canary ``c`` is a
random text ``x_c`` with a random label ``y_c`` (``data/canaries.py``); its score under a model is
its label log-likelihood ``s(c) = log p(y_c | x_c)``. Among ``R`` reference canaries drawn by the
same recipe and never trained on,

    rank(c)     = 1 + #{r : s(r) >= s(c)}          (1 = most likely; ties count against c)
    exposure(c) = log2 R - log2 rank(c)

so a canary ranked first has exposure ``log2 R`` (the most the test can show) and one the model
treats like any reference sits at a uniformly random rank, exposure about 1 (exactly 1 at the median
rank ``R / 2``; ``1 / ln 2 = 1.44`` in expectation). Ranking by the log-likelihood computed from the
logits in float64 orders the canaries as ``p(y | x)`` does, without the ties of saturated float32
probabilities.

:func:`exposure_section` gives, per model (original / unlearned / retrain twin), the mean exposure of
the planted canaries in the forget set (``forgotten``) and of those still trained on (``kept``), and
``exposure_gap = |exposure(unlearned) - exposure(twin)| / exposure(twin)`` over the forgotten ones:
0 when the unlearned model ranks the forgotten canaries as a model that never saw them does.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping

import numpy as np
import torch

from ..models import tokenize_dataset
from ..training.loops import batched_logits


def label_log_likelihood(logits, labels) -> np.ndarray:
    """``log p(y_i | x_i)`` of every row from ``[n, C]`` logits, in float64:
    ``-log(1 + sum_{k != y} exp(z_k - z_y))``, exact also where ``p`` rounds to 1 in float32."""
    z = np.asarray(logits.detach().cpu() if isinstance(logits, torch.Tensor) else logits, dtype=np.float64)
    y = np.asarray(labels, dtype=np.int64)
    if z.ndim != 2 or z.shape[0] != y.shape[0]:
        raise ValueError(f"logits {z.shape} and labels {y.shape} do not match")
    diff = z - z[np.arange(len(y)), y][:, None]
    diff[np.arange(len(y)), y] = -np.inf  # the true class itself is not an alternative
    others = np.logaddexp.reduce(diff, axis=1)  # log sum_{k != y} exp(z_k - z_y)
    return -np.logaddexp(0.0, others)


def canary_exposure(canary_scores, reference_scores) -> np.ndarray:
    """``log2 R - log2 rank`` of each canary score among the ``R`` reference scores (higher = more likely;
    ``rank = 1 + #{references scoring >= it}``: a tie ranks the canary below the reference)."""
    refs = np.sort(np.asarray(reference_scores, dtype=np.float64))
    if refs.size < 2:
        raise ValueError(f"canary exposure needs at least 2 reference canaries, got {refs.size}")
    scores = np.asarray(canary_scores, dtype=np.float64)
    if np.isnan(scores).any() or np.isnan(refs).any():
        raise ValueError("canary exposure: a score is NaN")
    above_or_tied = refs.size - np.searchsorted(refs, scores, side="left")
    return math.log2(refs.size) - np.log2(1 + above_or_tied)


def canary_scores(model, tokenizer, dataset, max_length: int = 128, batch_size: int = 64) -> np.ndarray:
    """``log p(y | x)`` of every row of an untokenized ``dataset`` (``text``, ``label``) under ``model``."""
    tokenized = tokenize_dataset(dataset, tokenizer, max_length)
    logits = batched_logits(model, tokenized, tokenizer, batch_size=batch_size)
    return label_log_likelihood(logits, dataset["label"])


def exposure_gap(unlearned: float | None, twin: float | None) -> float | None:
    """``|unlearned - twin| / twin``; ``None`` when either is missing or the twin's exposure is not > 0."""
    if unlearned is None or twin is None or twin <= 0:
        return None
    return abs(unlearned - twin) / twin


def _mean(values: np.ndarray) -> float | None:
    return float(values.mean()) if values.size else None


def exposure_section(models: Mapping[str, object], tokenizer, probe, forget_ids: Iterable[str]) -> dict | None:
    """The report's ``exposure`` section, or ``None`` when ``probe`` (``data.canaries.CanaryProbe``) is
    ``None`` or no planted canary is in the forget set.

    ``{references, max_exposure, forgotten_canaries, kept_canaries, models: {name: {forgotten, kept}},
    exposure_gap}``: counts, and mean exposures in bits (``kept`` is ``None`` when every planted canary
    was forgotten); ``exposure_gap`` compares ``unlearned`` with ``retrain_twin`` (``None`` without both)."""
    if probe is None or len(probe.planted) == 0:
        return None
    forget = set(forget_ids)
    forgotten = np.array([i in forget for i in probe.planted["id"]], dtype=bool)
    if not forgotten.any():
        return None
    per_model = {}
    for name, model in models.items():
        refs = canary_scores(model, tokenizer, probe.references, probe.max_length)
        exp = canary_exposure(canary_scores(model, tokenizer, probe.planted, probe.max_length), refs)
        per_model[name] = {"forgotten": _mean(exp[forgotten]), "kept": _mean(exp[~forgotten])}
    pick = lambda name: (per_model.get(name) or {}).get("forgotten")  # noqa: E731
    return {
        "references": len(probe.references),
        "max_exposure": math.log2(len(probe.references)),
        "forgotten_canaries": int(forgotten.sum()),
        "kept_canaries": int((~forgotten).sum()),
        "models": per_model,
        "exposure_gap": exposure_gap(pick("unlearned"), pick("retrain_twin")),
    }


def with_canary_exposure(metrics: Mapping[str, dict], section: dict | None) -> dict:
    """``metrics`` (model -> figures) with each model's ``canary_exposure``: the mean exposure of the
    forgotten canaries from ``section`` (:func:`exposure_section`); unchanged without a section."""
    models = (section or {}).get("models") or {}
    return {
        name: {**m, **({"canary_exposure": models[name]["forgotten"]} if name in models else {})}
        for name, m in metrics.items()
    }
