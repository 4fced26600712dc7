"""Model inference for the evaluation: class probabilities, then the figures of ``metrics.py``.

:func:`evaluate_model` gives one model's figures on the forget / retain / test splits;
:func:`compare` turns an unlearned model's figures and its retrain twin's into ToW and ToW-MIA.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import numpy as np
import torch
from datasets import Dataset

from ..training.loops import batched_logits
from . import metrics as M

REQUIRED_SPLITS = ("forget", "retain", "test")
LOSS_CLAMP = 1e-12


def predict_probs(
    model: torch.nn.Module, dataset: Dataset, tokenizer, batch_size: int = 64
) -> tuple[np.ndarray, np.ndarray]:
    """Softmax class probabilities ``[n, C]`` (float32) and labels ``[n]`` (int64) for a tokenized dataset.

    The logits are :func:`training.loops.batched_logits` (eval mode, no gradients, the previous
    mode restored, only the model-input columns fed, row order kept).
    """
    if batch_size < 1:
        raise ValueError("batch_size must be >= 1")
    if "label" not in dataset.column_names:
        raise ValueError(f"dataset has no label column (columns: {dataset.column_names})")
    labels = np.asarray(dataset.with_format(None)["label"], dtype=np.int64)
    logits = batched_logits(model, dataset, tokenizer, batch_size=batch_size)
    probs = torch.softmax(logits, dim=-1).numpy().astype(np.float32, copy=False)
    if labels.size and (labels.min() < 0 or labels.max() >= probs.shape[1]):
        raise ValueError(f"labels outside [0, {probs.shape[1]}) for a {probs.shape[1]}-class model")
    return probs, labels


def true_class_confidence(probs: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """``p(y_i | x_i)`` for every row: ``probs[i, labels[i]]``."""
    probs, labels = np.asarray(probs), np.asarray(labels, dtype=np.int64)
    if probs.ndim != 2 or probs.shape[0] != labels.shape[0]:
        raise ValueError(f"probs {probs.shape} and labels {labels.shape} do not match")
    return probs[np.arange(labels.shape[0]), labels]


def per_example_loss(probs: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Cross-entropy of every row, ``-log max(p(y_i | x_i), 1e-12)`` (float64)."""
    p = true_class_confidence(probs, labels).astype(np.float64)
    return -np.log(np.maximum(p, LOSS_CLAMP))


def evaluate_model(
    model: torch.nn.Module,
    tokenizer,
    splits: Mapping[str, Dataset],
    canary_ids: Iterable[str] | None = None,
    batch_size: int = 64,
    seed: int = 0,
) -> dict:
    """One model's unlearning figures on ``splits["forget"]``, ``["retain"]`` and ``["test"]``.

    Returns plain numbers only (no per-example arrays):

    - ``forget_acc``, ``retain_acc``, ``test_acc``: accuracy in percent.
    - ``mia_efficacy``: :func:`metrics.svc_mia` trained on retain (members) vs test
      (non-members) true-class confidences, applied to the forget set (``seed`` picks the
      subsample that balances them); fraction of forget examples called non-members, in [0, 1].
    - ``mia_auc``: :func:`metrics.loss_threshold_mia_auc` with the FORGET set as members and the
      TEST set as non-members. This asks directly "can the forget set still be told apart from
      unseen data?": near 0.5 for a model that never saw it (the retrain twin), high for the
      original model. (The retain set is not used here: it would measure generalisation, not
      forgetting.)
    - ``canary_score``: :func:`metrics.canary_score` over the forget examples whose ``id`` is in
      ``canary_ids``; ``None`` when ``canary_ids`` is ``None`` or none of them is in the forget set.

    The datasets are tokenized (``id``, ``label``, ``input_ids``, ``attention_mask`` ...).
    """
    missing = [s for s in REQUIRED_SPLITS if s not in splits]
    if missing:
        raise KeyError(f"evaluate_model needs splits {list(REQUIRED_SPLITS)}; missing {missing}")
    probs, labels, conf = {}, {}, {}
    for s in REQUIRED_SPLITS:
        if len(splits[s]) == 0:
            raise ValueError(f"split {s!r} is empty")
        probs[s], labels[s] = predict_probs(model, splits[s], tokenizer, batch_size=batch_size)
        conf[s] = true_class_confidence(probs[s], labels[s])
    out = {f"{s}_acc": M.accuracy(probs[s].argmax(axis=1), labels[s]) for s in REQUIRED_SPLITS}
    out["mia_efficacy"] = M.svc_mia(conf["retain"], conf["test"], conf["forget"], seed=seed)
    out["mia_auc"] = M.loss_threshold_mia_auc(
        per_example_loss(probs["forget"], labels["forget"]), per_example_loss(probs["test"], labels["test"])
    )
    out["canary_score"] = None
    if canary_ids is not None:
        wanted = set(canary_ids)
        forget = splits["forget"]
        if wanted and "id" not in forget.column_names:
            raise ValueError("canary_ids given but the forget split has no id column")
        mask = np.array([i in wanted for i in forget["id"]], dtype=bool) if wanted else np.zeros(0, bool)
        if mask.any():
            out["canary_score"] = M.canary_score(conf["forget"][mask])
    return out


def compare(unlearned: Mapping[str, float], twin: Mapping[str, float]) -> dict[str, float]:
    """ToW and ToW-MIA of an unlearned model against its retrain twin, from two :func:`evaluate_model` dicts.

    ``tow`` uses ``forget_acc``, ``retain_acc``, ``test_acc``; ``tow_mia`` replaces the forget
    factor with the ``mia_efficacy`` gap (Zhao et al., NeurIPS 2024).
    """
    acc_u = {s: unlearned[f"{s}_acc"] for s in REQUIRED_SPLITS}
    acc_r = {s: twin[f"{s}_acc"] for s in REQUIRED_SPLITS}
    return {
        "tow": M.tow(acc_u, acc_r),
        "tow_mia": M.tow_mia(acc_u, acc_r, unlearned["mia_efficacy"], twin["mia_efficacy"]),
    }
