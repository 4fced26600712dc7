"""The Trainer's progress as one labelled bar: "training", "retraining the twin", ...

``transformers`` gives every ``Trainer`` an unlabelled ``ProgressCallback`` that also writes each
log dict (``{'loss': ...}``) under its bar. :func:`label_progress` swaps it (or the
``PrinterCallback`` of ``disable_tqdm``) for :class:`LabelledProgress`: one bar labelled with the
phase, through :mod:`hf_unlearn.console` (off when quiet or with ``disable_tqdm``); the log dicts
are written under the bar only when the output is verbose, and the last training loss is kept
for the phase's summary line. Only the public callback API is used.
"""

from __future__ import annotations

import sys

from transformers import TrainerCallback
from transformers.trainer_callback import PrinterCallback, ProgressCallback

from .. import console


class LabelledProgress(TrainerCallback):
    """A training bar labelled ``desc`` (and an evaluation bar labelled ``"<desc>: evaluation"``)."""

    def __init__(self, desc: str):
        self.desc = desc
        self.training_bar = None
        self.prediction_bar = None
        self.last_loss: float | None = None
        self._step = 0

    def _shown(self, args, state) -> bool:
        return state.is_world_process_zero and not args.disable_tqdm

    def on_train_begin(self, args, state, control, **kwargs):
        self._step = state.global_step
        if self._shown(args, state):
            self.training_bar = console.progress(desc=self.desc, total=state.max_steps)
            self.training_bar.update(state.global_step)

    def on_step_end(self, args, state, control, **kwargs):
        if self.training_bar is not None:
            self.training_bar.update(state.global_step - self._step)
        self._step = state.global_step

    def on_prediction_step(self, args, state, control, eval_dataloader=None, **kwargs):
        if not self._shown(args, state):
            return
        if self.prediction_bar is None:
            total = len(eval_dataloader) if hasattr(eval_dataloader, "__len__") else None
            during_training = self.training_bar is not None
            label = f"{self.desc}: evaluation" if during_training else "evaluation"
            self.prediction_bar = console.progress(desc=label, total=total, leave=not during_training)
        self.prediction_bar.update(1)

    def _close_prediction(self):
        if self.prediction_bar is not None:
            self.prediction_bar.close()
        self.prediction_bar = None

    def on_evaluate(self, args, state, control, **kwargs):
        self._close_prediction()

    def on_predict(self, args, state, control, **kwargs):
        self._close_prediction()

    def on_log(self, args, state, control, logs=None, **kwargs):
        logs = dict(logs or {})
        if "loss" in logs:
            self.last_loss = float(logs["loss"])
        if console.is_verbose() and state.is_world_process_zero:
            logs.pop("total_flos", None)
            shown = {k: f"{v:.4g}" if isinstance(v, float) else v for k, v in logs.items()}
            bar = self.training_bar or self.prediction_bar
            if bar is not None:
                bar.write(str(shown), file=sys.stderr)
            else:
                print(str(shown), file=sys.stderr)

    def on_train_end(self, args, state, control, **kwargs):
        if self.training_bar is not None:
            self.training_bar.close()
        self.training_bar = None


def label_progress(trainer, desc: str) -> LabelledProgress:
    """Replace ``trainer``'s own progress/printer callback with a :class:`LabelledProgress` labelled ``desc``."""
    for callback in list(trainer.callback_handler.callbacks):
        if isinstance(callback, (ProgressCallback, PrinterCallback, LabelledProgress)):
            trainer.remove_callback(callback)
    labelled = LabelledProgress(desc)
    trainer.add_callback(labelled)
    return labelled
