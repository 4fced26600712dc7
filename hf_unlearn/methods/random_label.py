"""Random-label unlearning: relabel the forget set at random and train on it with the retain set.

    min_w  CE(f_w(x), y~)   over  {(x_f, y~_f)} u {(x_r, y_r)},   y~_f ~ U({0..C-1} \\ {y_f})

for ``epochs`` passes over the union (the "RL" baseline of the code base of Fan et al., "SalUn:
Empowering Machine Unlearning via Gradient-based Weight Saliency", ICLR 2024; first used by
Golatkar, Achille and Soatto, "Eternal Sunshine of the Spotless Net: Selective Forgetting in Deep
Networks", CVPR 2020, and Graves, Nagisetty and Ganesh, "Amnesiac Machine Learning", AAAI 2021). Unlike
the SalUn code, which draws from all C classes, the new label is never the true one, so every
forget example is pushed away from its label. Draws are seeded by ``seed``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from datasets import concatenate_datasets

from .base import MethodConfig, MethodContext
from .finetune import finetune_on
from .neggrad import require_rows
from .registry import register_method


def num_labels_of(model) -> int:
    n = getattr(getattr(model, "config", None), "num_labels", None)
    if not n or n < 2:
        raise ValueError(f"random relabelling needs a classifier with >= 2 labels (model.config.num_labels = {n})")
    return int(n)


def random_other_labels(labels, num_labels: int, seed: int) -> list[int]:
    """A label drawn uniformly from the ``num_labels - 1`` classes other than each true label."""
    labels = np.asarray(labels, dtype=np.int64)
    if labels.size and (labels.min() < 0 or labels.max() >= num_labels):
        raise ValueError(f"labels must lie in [0, {num_labels}), got {labels.min()}..{labels.max()}")
    shift = np.random.default_rng(seed).integers(1, num_labels, size=labels.size)
    return ((labels + shift) % num_labels).tolist()


def forget_repeats(n_forget: int, n_retain: int, share: float | None) -> int:
    """How many copies of the forget set make it at least ``share`` of the union (1 when ``share`` is None).

    ``r`` is the least integer with ``r * n_f / (r * n_f + n_r) >= share``.
    """
    if share is None or n_forget == 0:
        return 1
    if not 0.0 < share < 1.0:
        raise ValueError(f"forget_share must be in (0, 1), got {share}")
    return max(1, math.ceil(share * n_retain / ((1.0 - share) * n_forget) - 1e-9))


def relabelled_union(forget, retain, num_labels: int, seed: int, forget_share: float | None = None):
    """The forget set with random wrong labels followed by the retain set (common columns only).

    With ``forget_share`` the relabelled forget rows are repeated (same new labels) until they
    make up at least that share of the union; by default each appears once.
    """
    cols = [c for c in retain.column_names if c in forget.column_names]
    new = random_other_labels(list(forget["label"]), num_labels, seed)
    relabelled = forget.remove_columns("label").add_column("label", new).select_columns(cols)
    retain = retain.select_columns(cols)
    if relabelled.features != retain.features:
        relabelled = relabelled.cast(retain.features)
    copies = forget_repeats(len(relabelled), len(retain), forget_share)
    return concatenate_datasets([relabelled] * copies + [retain])


@dataclass
class RandomLabelConfig(MethodConfig):
    """Random label: ``min CE`` on forget (random wrong labels) + retain for ``epochs`` passes."""


DESCRIPTION = (
    'Random-label unlearning (the "RL" baseline of Fan et al., "SalUn: Empowering Machine '
    'Unlearning via Gradient-based Weight Saliency", ICLR 2024): the forgotten examples get random wrong labels '
    "and are trained on with the retained data."
)


@register_method("random_label", RandomLabelConfig, guarantee="approximate", description=DESCRIPTION)
def random_label(model, forget, retain, config: RandomLabelConfig, log, ctx: MethodContext) -> dict:
    """Train on the forget set relabelled at random (never the true label) plus the retain set."""
    require_rows(forget, "random_label", "forget")
    require_rows(retain, "random_label", "retain")
    data = relabelled_union(forget, retain, num_labels_of(model), config.seed)
    return {"optimizer_steps": finetune_on(model, data, config, ctx)}
