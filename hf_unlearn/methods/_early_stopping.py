"""Early stopping with "keep the best" for the step-based methods, on a signal that needs no twin.

A model that never trained on an example treats it like any other unseen example, so after
unlearning the forget set's mean loss should sit at the loss of examples the run never trained
on (held-out examples: the run's test split). Every ``eval_every`` optimizer steps (and before the
first one) the current model is scored::

    L_f = mean CE over the forget set,    L_ref = mean CE over the held-out reference,
    d   = |L_f - L_ref|                    (the distance to the reference: lower is better)

The steps stop when the forget loss REACHES the reference (``L_f - L_ref`` changed sign since the
first evaluation: an ascent from below, or a repair from above, crossed it)
or when ``d`` has not improved for ``patience`` evaluations in a row; the trainable weights of the
evaluation with the lowest ``d`` are kept and restored at the end (the model before any step is a
candidate too: a method that only moves away from the reference is undone and says so). The
reference is at most ``REFERENCE_MAX`` held-out rows drawn with the method's seed. Scoring
restores the CPU random state, so the steps themselves are those of a run without early stopping.
Asked for by users of open-unlearning (issues #187 and #94); the loss gap between training and
held-out examples is the signal of the loss-threshold membership attack (Yeom, Giacomelli,
Fredrikson and Jha, "Privacy Risk in Machine Learning: Analyzing the Connection to Overfitting",
CSF 2018), which this stopping rule drives to zero.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from ..training.loops import batched_logits

REFERENCE_MAX = 512


def mean_loss(model, dataset, tokenizer) -> float:
    """Mean cross-entropy of ``model`` over a tokenized dataset (eval mode, no gradients)."""
    logits = batched_logits(model, dataset, tokenizer)
    labels = torch.as_tensor(dataset.with_format(None)["label"], dtype=torch.long)
    return float(F.cross_entropy(logits, labels))


def reference_sample(holdout, seed: int):
    """At most ``REFERENCE_MAX`` rows of ``holdout``, drawn without replacement with ``seed``."""
    if len(holdout) <= REFERENCE_MAX:
        return holdout
    rows = np.random.default_rng(seed).choice(len(holdout), REFERENCE_MAX, replace=False)
    return holdout.select(sorted(int(r) for r in rows))


class EarlyStopping:
    """The signal, the best state so far and the stopping rule (see the module docstring).

    Call :meth:`start` before the first step, :meth:`after_step` after each (it evaluates every
    ``eval_every`` steps and returns True to stop), :meth:`finish` after the last (it evaluates
    the final state if it was not, restores the best one and returns the statistics).
    """

    def __init__(self, model, forget, holdout, tokenizer, *, eval_every: int, patience: int, seed: int = 0):
        self.model, self.forget, self.tokenizer = model, forget, tokenizer
        self.reference = reference_sample(holdout, seed)
        self.eval_every, self.patience = eval_every, patience
        self.params = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
        self.best: tuple[float, int, dict] | None = None  # (distance, step, weights)
        self.history: list[tuple[int, float, float]] = []  # (step, forget loss, reference loss)
        self.since_best, self.reason, self.last_step = 0, "planned steps done", 0
        self.side = 0.0  # sign of L_f - L_ref at the first evaluation

    def _evaluate(self, step: int) -> bool:
        """Score the current model; True when the forget loss reached the reference or patience ran out.
        The CPU random state is restored after scoring (a loader draws its base seed from it), so the
        steps take the same batches and dropout masks as without early stopping."""
        with torch.random.fork_rng(devices=[]):
            forget_loss = mean_loss(self.model, self.forget, self.tokenizer)
            reference_loss = mean_loss(self.model, self.reference, self.tokenizer)
        self.history.append((step, forget_loss, reference_loss))
        distance = abs(forget_loss - reference_loss)
        if self.best is None or distance < self.best[0]:
            weights = {n: p.detach().clone() for n, p in self.params}
            self.best, self.since_best = (distance, step, weights), 0
        else:
            self.since_best += 1
        if step == 0:
            self.side = np.sign(forget_loss - reference_loss)
        elif np.sign(forget_loss - reference_loss) != self.side:
            self.reason = "forget loss reached the reference"
            return True
        if self.patience and self.since_best >= self.patience:
            self.reason = f"no improvement in {self.patience} evaluations"
            return True
        return False

    def start(self) -> None:
        self._evaluate(0)

    def after_step(self, steps_taken: int) -> bool:
        self.last_step = steps_taken
        return steps_taken % self.eval_every == 0 and self._evaluate(steps_taken)

    def finish(self) -> dict:
        """Evaluate the last state (when not yet scored), restore the best one; the statistics."""
        if self.history[-1][0] != self.last_step:
            self._evaluate(self.last_step)
        distance, step, weights = self.best
        with torch.no_grad():
            for name, p in self.params:
                p.copy_(weights[name])
        first, kept = self.history[0], next(h for h in self.history if h[0] == step)
        return {
            "early_stopping_reason": self.reason,
            "early_stopping_steps_taken": self.last_step,
            "early_stopping_best_step": step,
            "early_stopping_evaluations": len(self.history),
            "early_stopping_forget_loss_start": first[1],
            "early_stopping_forget_loss_kept": kept[1],
            "early_stopping_reference_loss_kept": kept[2],
            "early_stopping_distance_kept": distance,
        }
