"""Memorization proxies: one score per training id, cheap stand-ins for Feldman's memorization.

Feldman's memorization ``mem(i) = P[f(x_i)=y_i | i in train] - P[f(x_i)=y_i | i not in train]``
needs hundreds of retrained models. Zhao & Triantafillou ("Scalability of memorization-based
machine unlearning", NeurIPS 2024 FITML workshop) show cheap proxies rank examples nearly as
well; RUM (Zhao et al., "What makes unlearning hard and what to do about it", NeurIPS 2024)
uses them to split a forget set. Two families:

* learning events, recorded by ``UnlearnableTrainer`` (``record_learning_events=True``) at
  every step an example is seen during the ONE original training run, so they cost no extra
  forward pass; averaged per example over the whole run:

  ==================  ==========================================  ==============================
  proxy               score                                       more memorized when
  ==================  ==========================================  ==============================
  ``confidence``      mean true-class probability ``p(y_i|x_i)``  lower
  ``max_confidence``  mean ``max_c p(c|x_i)``                     lower
  ``entropy``         mean ``-sum_c p log p``                     higher
  ``binary_accuracy`` mean ``1[argmax = y_i]``                    lower
  ==================  ==========================================  ==============================

* ``holdout_retraining``: fine-tune a copy of the trained model on held-out data (early
  stopping: 4 epochs without improvement of the epoch's loss, as in the RUM code's
  ``heldout_retrain.py``), then score each example by the symmetric KL divergence between the
  original and the fine-tuned softmax outputs (probabilities clamped at 1e-10). Higher = more
  memorized: what only memorization held up moves when the model keeps learning other data.

Without recorded learning events :func:`learning_events` raises :class:`MissingLearningEventsError`
(which names the recorder to switch on) unless an opt-in fallback is chosen, both labelled in
the scores' ``source``: ``"replay"`` retrains from w_0 in the recorded order with the recorder on
(the same events, at the cost of one training run), ``"final_model"`` runs one forward pass of the
final model (one "event" per example: a weaker, end-of-training proxy).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from ..training.log_store import LogDamagedError, LogError
from ..training.unlearning_log import UnlearningLog
from .holdout import HoldoutConfig, class_probs, holdout_retraining

EVENT_COLUMNS = {
    "confidence": "confidence",
    "max_confidence": "max_confidence",
    "entropy": "entropy",
    "binary_accuracy": "correct",
}
FALLBACKS = ("replay", "final_model")
SOURCES = {
    "recorded": "learning events recorded during training",
    "replay": "FALLBACK: learning events recomputed by replaying training from w_0 (one extra training run)",
    "final_model": "FALLBACK: one forward pass of the final model (end-of-training proxy, not the training trajectory)",
    "holdout": "holdout retraining (fine-tuned copy on held-out data, symmetric KL)",
    "given": "scores given by the caller",
}


class MissingLearningEventsError(LogError):
    """The run's log holds no learning events and no fallback was allowed."""


@dataclass(frozen=True)
class Proxy:
    """A memorization proxy: its name, direction and where its inputs come from."""

    name: str
    higher_is_more_memorized: bool
    needs: str  # "learning_events" or "holdout"
    summary: str


PROXIES: dict[str, Proxy] = {
    p.name: p
    for p in (
        Proxy(
            "confidence",
            False,
            "learning_events",
            "mean true-class probability over training (high = low memorization)",
        ),
        Proxy(
            "max_confidence",
            False,
            "learning_events",
            "mean top-class probability over training (high = low memorization)",
        ),
        Proxy("entropy", True, "learning_events", "mean predictive entropy over training (high = high memorization)"),
        Proxy(
            "binary_accuracy",
            False,
            "learning_events",
            "share of training steps classified correctly (high = low memorization)",
        ),
        Proxy(
            "holdout_retraining",
            True,
            "holdout",
            "symmetric KL after fine-tuning on held-out data (high = high memorization)",
        ),
    )
}
ALIASES = {
    "conf": "confidence",
    "max_conf": "max_confidence",
    "bi_acc": "binary_accuracy",
    "accuracy": "binary_accuracy",
    "holdout": "holdout_retraining",
    "heldout_retrain": "holdout_retraining",
}


def get_proxy(name: str) -> Proxy:
    """The proxy called ``name`` (or one of its aliases, e.g. ``holdout``, ``max_conf``, ``bi_acc``)."""
    key = ALIASES.get(name, name)
    if key not in PROXIES:
        raise KeyError(
            f"unknown memorization proxy {name!r}; available: {', '.join(PROXIES)} (aliases: {', '.join(ALIASES)})"
        )
    return PROXIES[key]


# ---- learning events ------------------------------------------------------------------------------
def learning_events(
    source,
    *,
    fallback: str | None = None,
    model=None,
    train=None,
    tokenizer=None,
    output_dir: str | Path | None = None,
) -> tuple[pd.DataFrame, str]:
    """The learning events of a run and where they came from (a key of ``SOURCES``).

    ``source`` is a DataFrame (as ``UnlearningLog.learning_events()`` returns), an
    ``UnlearningLog`` or a run directory. When the log holds none, ``fallback`` decides:
    ``None`` raises :class:`MissingLearningEventsError`; ``"replay"`` retrains the run from its
    initial weights in the recorded order with the recorder switched on (needs ``model`` for the
    architecture, the ORIGINAL tokenized ``train`` set and ``tokenizer``; costs one training run);
    ``"final_model"`` takes one forward pass of ``model`` (the trained model) over ``train``.
    """
    if fallback is not None and fallback not in FALLBACKS:
        raise ValueError(f"fallback must be None or one of {FALLBACKS}, got {fallback!r}")
    if isinstance(source, pd.DataFrame):
        return _check_events(source), "recorded"
    if source is None:
        log = None
    else:
        log = source if isinstance(source, UnlearningLog) else UnlearningLog(source)
        try:
            return _check_events(log.learning_events()), "recorded"
        except LogDamagedError:  # a damaged log is never replaced by a fallback
            raise
        except LogError:  # none recorded (or an empty table): fall through to the fallback or the error
            pass
    if fallback is None:
        where = f" ({log.root})" if log is not None else " (no unlearning log given)"
        raise MissingLearningEventsError(
            f"no learning events recorded for this run{where}: the confidence, max_confidence, entropy and "
            "binary_accuracy proxies read them from the log. Train with "
            "UnlearnableTrainingArguments(record_learning_events=True) (CLI: hf-unlearn train --record_learning_events), "
            "or opt in to a fallback that costs extra passes: fallback='replay' (retrain from w_0 with the recorder on) "
            "or fallback='final_model' (one forward pass of the final model, a weaker proxy) - for RUM: "
            "--set proxy_fallback=replay|final_model; or use proxy='holdout'."
        )
    if model is None or train is None or tokenizer is None:
        raise ValueError(f"fallback={fallback!r} needs model=, train= (the tokenized training set) and tokenizer=")
    if fallback == "final_model":
        return final_model_events(model, train, tokenizer), "final_model"
    if log is None:
        raise ValueError("fallback='replay' needs the run's unlearning log (its initial weights and data order)")
    return replay_learning_events(model, train, log, tokenizer, output_dir=output_dir), "replay"


def _check_events(events: pd.DataFrame) -> pd.DataFrame:
    missing = [c for c in ("id", *EVENT_COLUMNS.values()) if c not in events.columns]
    if missing:
        raise ValueError(f"learning events lack column(s) {missing}; columns: {list(events.columns)}")
    if events.empty:
        raise MissingLearningEventsError("the learning events table is empty")
    return events


def replay_learning_events(
    model, train, log: UnlearningLog, tokenizer, output_dir: str | Path | None = None
) -> pd.DataFrame:
    """FALLBACK (one extra training run): replay the recorded run from w_0 with ``record_learning_events=True``.

    Same initial weights, arguments, data order and per-batch dropout seeds as the original run
    (the retrain twin's machinery with nothing dropped), so the events are the ones the recorder
    would have written.
    """
    from ..training.replay import replayed

    with replayed(model, train, log, (), tokenizer=tokenizer, output_dir=output_dir, record_learning_events=True) as (
        _,
        trainer,
    ):
        return UnlearningLog(trainer.args.output_dir).learning_events()


def final_model_events(model, train, tokenizer, batch_size: int = 64) -> pd.DataFrame:
    """FALLBACK (one forward pass): a single pseudo-event per example from the final model in eval mode."""
    probs, labels = class_probs(model, train, tokenizer, batch_size=batch_size)
    p = probs.astype(np.float64)
    return pd.DataFrame(
        {
            "id": list(train["id"]),
            "step": -1,
            "epoch": -1,
            "confidence": p[np.arange(len(labels)), labels],
            "max_confidence": p.max(axis=1),
            "entropy": -(p * np.log(np.maximum(p, 1e-12))).sum(axis=1),
            "correct": p.argmax(axis=1) == labels,
        }
    )


def _as_events(source) -> pd.DataFrame:
    return learning_events(source)[0]


def _mean_by_id(source, column: str, name: str) -> pd.Series:
    events = _as_events(source)
    scores = events.groupby("id", sort=True)[column].mean().astype(np.float64)
    scores.name = name
    return scores


def confidence(source) -> pd.Series:
    """Mean true-class probability per id over every recorded step (high = LOW memorization)."""
    return _mean_by_id(source, "confidence", "confidence")


def max_confidence(source) -> pd.Series:
    """Mean top-class probability per id over every recorded step (high = LOW memorization)."""
    return _mean_by_id(source, "max_confidence", "max_confidence")


def entropy(source) -> pd.Series:
    """Mean predictive entropy (nats) per id over every recorded step (high = HIGH memorization)."""
    return _mean_by_id(source, "entropy", "entropy")


def binary_accuracy(source) -> pd.Series:
    """Share of recorded steps where the id was classified correctly (high = LOW memorization)."""
    return _mean_by_id(source, "correct", "binary_accuracy")


def event_proxies(source) -> pd.DataFrame:
    """All four learning-event proxies at once: one row per id, one column per proxy."""
    events = _as_events(source)
    table = events.groupby("id", sort=True)[list(EVENT_COLUMNS.values())].mean().astype(np.float64)
    return table.rename(columns={v: k for k, v in EVENT_COLUMNS.items()})


# ---- one entry point ------------------------------------------------------------------------------
@dataclass
class ProxyScores:
    """Raw proxy scores per id (``scores``), the proxy's direction, their source and cost."""

    proxy: Proxy
    scores: pd.Series
    source: str
    seconds: float = 0.0
    details: dict = field(default_factory=dict)

    def memorization(self) -> pd.Series:
        """Scores oriented so that higher always means MORE memorized (``-score`` for confidence-like proxies)."""
        return self.scores if self.proxy.higher_is_more_memorized else -self.scores

    def summary(self) -> dict:
        """Scalars for reports: proxy, direction, source, cost, how many ids."""
        return {
            "proxy": self.proxy.name,
            "higher_is_more_memorized": self.proxy.higher_is_more_memorized,
            "source": self.source,
            "source_description": SOURCES.get(self.source, self.source),
            "seconds": self.seconds,
            "ids": int(self.scores.size),
        }


def given_scores(proxy: str, scores: Mapping[str, float] | pd.Series) -> ProxyScores:
    """Wrap precomputed scores (id -> raw proxy value) of proxy ``proxy``."""
    series = scores.copy() if isinstance(scores, pd.Series) else pd.Series(dict(scores), dtype=np.float64)
    series.index = series.index.astype(str)
    return ProxyScores(get_proxy(proxy), series.astype(np.float64), "given")


def compute_proxy(
    name: str,
    *,
    log=None,
    events: pd.DataFrame | None = None,
    model=None,
    tokenizer=None,
    train=None,
    holdout=None,
    score_on=None,
    fallback: str | None = None,
    holdout_config: HoldoutConfig | None = None,
) -> ProxyScores:
    """Scores of proxy ``name`` for every training id (or, for holdout retraining, every id of ``score_on``).

    Learning-event proxies read ``events`` or ``log`` (see :func:`learning_events` for
    ``fallback``); ``holdout_retraining`` fine-tunes a copy of ``model`` on ``holdout`` and scores
    ``score_on`` (default ``train``).
    """
    proxy = get_proxy(name)
    start = time.perf_counter()
    if proxy.needs == "holdout":
        target = score_on if score_on is not None else train
        if model is None or tokenizer is None or target is None:
            raise ValueError("holdout retraining needs model=, tokenizer=, holdout= and score_on= (or train=)")
        scores = holdout_retraining(model, target, holdout, tokenizer, holdout_config)
        details = dict(scores.attrs)
        scores.attrs = {}
        return ProxyScores(proxy, scores, "holdout", time.perf_counter() - start, details)
    table, source = learning_events(
        events if events is not None else log, fallback=fallback, model=model, train=train, tokenizer=tokenizer
    )
    scores = _mean_by_id(table, EVENT_COLUMNS[proxy.name], proxy.name)
    return ProxyScores(
        proxy,
        scores,
        source,
        time.perf_counter() - start,
        {"events": int(len(table)), "steps": int(table["step"].nunique()) if "step" in table else None},
    )
