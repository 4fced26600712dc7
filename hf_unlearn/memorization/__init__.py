"""Memorization-aware unlearning (RUM): proxies, refinement of a forget set, per-group evidence.

- ``proxies``: one score per training id. From the learning events ``UnlearnableTrainer``
  records (``record_learning_events=True``): confidence, max-confidence, entropy, binary
  accuracy; and holdout retraining (symmetric KL after fine-tuning on held-out data).
- ``refine``: split a forget set into K groups (low / mid / high memorization) by a proxy,
  respecting its direction.
- ``holdout``: the holdout-retraining proxy (fine-tuning with early stopping, symmetric KL).

The RUM meta-method itself is the registered unlearning method ``"rum"``
(``hf_unlearn/methods/rum.py``); its per-group report section (ToW / ToW-MIA per group against
the retrain twin, and plots) is ``hf_unlearn/evaluation/rum_report.py``. After Zhao,
Triantafillou et al., "What makes unlearning hard and what to do about it" (NeurIPS 2024) and
Zhao & Triantafillou, "Scalability of memorization-based machine unlearning" (2024).
"""

from .holdout import EarlyStopping, HoldoutConfig, holdout_retraining, symmetric_kl
from .proxies import (
    PROXIES,
    MissingLearningEventsError,
    Proxy,
    ProxyScores,
    binary_accuracy,
    compute_proxy,
    confidence,
    entropy,
    event_proxies,
    get_proxy,
    learning_events,
    max_confidence,
)
from .refine import MemorizationGroup, Refinement, group_names, refine

__all__ = [
    "PROXIES",
    "EarlyStopping",
    "HoldoutConfig",
    "MemorizationGroup",
    "MissingLearningEventsError",
    "Proxy",
    "ProxyScores",
    "Refinement",
    "binary_accuracy",
    "compute_proxy",
    "confidence",
    "entropy",
    "event_proxies",
    "get_proxy",
    "group_names",
    "holdout_retraining",
    "learning_events",
    "max_confidence",
    "refine",
    "symmetric_kl",
]
