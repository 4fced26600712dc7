"""Holdout retraining, the memorization proxy that needs no log (Zhao & Triantafillou, "Scalability
of memorization-based machine unlearning", 2024, after the RUM code's ``heldout_retrain.py``).

A copy of the trained model is fine-tuned on held-out data (AdamW, early stopping after
``patience`` epochs without a lower epoch loss); every scored example gets

    s(x) = (KL(p(x) || p'(x)) + KL(p'(x) || p(x))) / 2

between the softmax outputs of the original ``p`` and of the fine-tuned copy ``p'`` (probabilities
clamped at 1e-10). Higher = more memorized: what only memorization held up moves when the model
keeps learning other data.
"""

from __future__ import annotations

import copy
import math
import time
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

KL_CLAMP = 1e-10


def class_probs(model, dataset, tokenizer, batch_size: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """Softmax probabilities ``[n, C]`` (float32, eval mode, row order) and labels ``[n]`` of a tokenized set."""
    from ..training.loops import batched_logits

    if "label" not in dataset.column_names:
        raise ValueError(f"dataset has no label column (columns: {dataset.column_names})")
    probs = torch.softmax(batched_logits(model, dataset, tokenizer, batch_size=batch_size), dim=-1)
    return probs.numpy().astype(np.float32), np.asarray(dataset.with_format(None)["label"], dtype=np.int64)


@dataclass
class HoldoutConfig:
    """Fine-tuning of the holdout-retraining proxy (AdamW, one pass = one epoch over the held-out set)."""

    learning_rate: float = field(
        default=1e-4, metadata={"help": "AdamW learning rate of the fine-tuning on held-out data."}
    )
    batch_size: int = field(default=32, metadata={"help": "Examples per fine-tuning batch."})
    max_epochs: int = field(default=20, metadata={"help": "Upper bound on fine-tuning epochs."})
    patience: int = field(default=4, metadata={"help": "Stop after this many epochs without a lower epoch loss."})
    weight_decay: float = field(default=0.0, metadata={"help": "AdamW weight decay."})
    seed: int = field(default=0, metadata={"help": "Seed of the batch order and dropout."})
    eval_batch_size: int = field(default=64, metadata={"help": "Batch size of the scoring forward passes."})

    def __post_init__(self):
        if self.learning_rate <= 0 or self.batch_size < 1 or self.max_epochs < 1 or self.patience < 1:
            raise ValueError("HoldoutConfig: learning_rate > 0, batch_size, max_epochs and patience >= 1")


def symmetric_kl(p: np.ndarray, q: np.ndarray, eps: float = KL_CLAMP) -> np.ndarray:
    """Per-row ``(KL(p||q) + KL(q||p)) / 2`` of two ``[n, C]`` probability arrays, clamped at ``eps``.

    The halving follows the RUM code (``calculate_kl`` in ``heldout_retrain.py``); it does not
    change any ranking.
    """
    p = np.maximum(np.asarray(p, dtype=np.float64), eps)
    q = np.maximum(np.asarray(q, dtype=np.float64), eps)
    if p.shape != q.shape or p.ndim != 2:
        raise ValueError(f"symmetric_kl needs two [n, C] arrays of one shape, got {p.shape} and {q.shape}")
    lp, lq = np.log(p), np.log(q)
    return 0.5 * ((p * (lp - lq)).sum(axis=1) + (q * (lq - lp)).sum(axis=1))


class EarlyStopping:
    """Stop after ``patience`` consecutive epochs whose loss is not below the best so far."""

    def __init__(self, patience: int = 4):
        if patience < 1:
            raise ValueError("patience must be >= 1")
        self.patience, self.best, self.bad_epochs = patience, math.inf, 0

    def step(self, loss: float) -> bool:
        """Record one epoch's loss; True when training should stop."""
        if loss < self.best:
            self.best, self.bad_epochs = loss, 0
        else:
            self.bad_epochs += 1
        return self.bad_epochs >= self.patience


class _Stop(Exception):
    """Raised by the step loss when early stopping ends the fine-tuning."""


def finetune_with_early_stopping(model, holdout, tokenizer, config: HoldoutConfig) -> dict:
    """Fine-tune ``model`` in place on ``holdout``; stop after ``patience`` epochs without a lower epoch loss.

    The monitored loss is the epoch's mean training loss on the held-out data, as in the RUM
    code's ``heldout_retrain.py`` (no separate validation split); ``max_epochs`` bounds the cost.
    The steps are ``training.loops.run_steps``' (one AdamW for the whole fine-tuning).
    """
    from ..training.loops import cycle, forward_logits, make_loader, run_steps, to_device

    device = next(model.parameters()).device
    loader = make_loader(holdout, tokenizer, config.batch_size, shuffle=True, seed=config.seed)
    per_epoch, batches = len(loader), cycle(loader)
    stopper, losses, epoch = EarlyStopping(config.patience), [], [0.0, 0]

    def end_epoch() -> bool:
        losses.append(epoch[0] / max(epoch[1], 1))
        epoch[:] = [0.0, 0]
        return stopper.step(losses[-1])

    def step_loss(step: int) -> torch.Tensor:
        if step and step % per_epoch == 0 and end_epoch():
            raise _Stop
        batch = to_device(next(batches), device)
        loss = F.cross_entropy(forward_logits(model, batch), batch["labels"])
        epoch[0] += loss.item() * len(batch["labels"])
        epoch[1] += len(batch["labels"])
        return loss

    with torch.random.fork_rng():
        try:
            run_steps(
                model,
                config.max_epochs * per_epoch,
                step_loss,
                learning_rate=config.learning_rate,
                weight_decay=config.weight_decay,
                seed=config.seed,
                desc="holdout fine-tuning",
            )
            stopped = end_epoch()
        except _Stop:
            stopped = True
    model.eval()
    return {"epochs": len(losses), "epoch_losses": losses, "stopped_early": stopped, "best_loss": stopper.best}


def holdout_retraining(
    model, score_on, holdout, tokenizer, config: HoldoutConfig | None = None, **overrides
) -> pd.Series:
    """Holdout-retraining memorization proxy: symmetric KL per id of ``score_on`` (high = HIGH memorization).

    A copy of ``model`` is fine-tuned on ``holdout`` (tokenized, labelled data the model never
    trained on) with early stopping (:func:`finetune_with_early_stopping`); every example of
    ``score_on`` (tokenized, with ``id``) is scored by :func:`symmetric_kl` between the original
    and the fine-tuned model's softmax outputs (eval mode). ``model`` is not modified. The
    returned Series carries ``attrs`` with the fine-tuning epochs, losses and timings.
    """
    config = config or HoldoutConfig()
    if overrides:
        config = HoldoutConfig(**{**config.__dict__, **overrides})
    if holdout is None or len(holdout) == 0:
        raise ValueError("holdout retraining needs a non-empty held-out data set (holdout=)")
    overlap = set(holdout["id"]).intersection(score_on["id"]) if "id" in holdout.column_names else set()
    if overlap:
        raise ValueError(
            f"{len(overlap)} held-out id(s) are also scored (e.g. {sorted(overlap)[:3]}): "
            "the held-out set must be data the model never trained on"
        )
    start = time.perf_counter()
    tuned = copy.deepcopy(model)
    info = finetune_with_early_stopping(tuned, holdout, tokenizer, config)
    tuned_s = time.perf_counter() - start
    start = time.perf_counter()
    p_orig, _ = class_probs(model, score_on, tokenizer, batch_size=config.eval_batch_size)
    p_tuned, _ = class_probs(tuned, score_on, tokenizer, batch_size=config.eval_batch_size)
    scores = pd.Series(
        symmetric_kl(p_orig, p_tuned), index=pd.Index(list(score_on["id"]), name="id"), name="holdout_retraining"
    )
    scores.attrs = {
        **info,
        "finetune_s": tuned_s,
        "score_s": time.perf_counter() - start,
        "holdout_examples": len(holdout),
        "config": dict(config.__dict__),
    }
    del tuned
    return scores
