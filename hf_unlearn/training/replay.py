"""Replays of a recorded run: the retrain twin and every other re-run from w_0.

Thudi et al. ("Unrolling SGD: Understanding Factors Influencing Machine Unlearning", EuroS&P
2022) define the verification error against the model retrained from the SAME initial weights
w_0, with the same seed, hyperparameters and data order, the forgotten examples removed.
:func:`retrain_twin` does exactly that from a run's unlearning log: it reloads w_0, rebuilds the
training arguments, and replays the recorded micro-batches without the forget ids (batch
boundaries kept, empty batches skipped; dropout is seeded per micro-batch so it does not shift).
With an empty forget set it reproduces the original weights; with a forget set, its own
transcript proves it never saw those ids.

A replay writes its own log (w_0, the transcript of the replay, every retained id). Without an
``output_dir`` it trains inside a private temporary folder that is removed when the replay ends,
also on error: nothing is left in the system's temporary folder.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
from collections.abc import Iterable, Iterator
from pathlib import Path

import torch

from ..artifacts import private_temp_dir
from ..data.forget import check_ids_known
from .arguments import UnlearnableTrainingArguments
from .progress import label_progress
from .trainer import UnlearnableTrainer
from .unlearning_log import UnlearningLog

# Settings of the original run that a replay must not inherit (outputs, recorders, hub, logging).
_OVERRIDE = {
    "record_transcript": True,
    "record_deltas": False,
    "record_per_sample": False,
    "record_learning_events": False,
    "record_error_proxy": False,
    "error_proxy_hvp": "forward_difference",  # unused without the proxy; a log may name a retired kind
    "deletable_ids_file": None,
    # the recorded order never names an excluded id (the original run dropped them before drawing it), so
    # a replay re-adds none of them whatever the data set holds; the files need not exist any more
    "exclude_ids_files": None,
    "push_to_hub": False,
    "hub_model_id": None,
    "report_to": "none",
    "save_strategy": "no",
    "eval_strategy": "no",
    "load_best_model_at_end": False,
    "resume_from_checkpoint": None,
    "save_only_model": True,  # a log written before checkpoints were pickle-free records False
    "logging_strategy": "no",
}


def twin_arguments(log: UnlearningLog, output_dir: str | Path, **overrides) -> UnlearnableTrainingArguments:
    """The original run's training arguments (from the log), pointed at ``output_dir``.

    Outputs, recorders other than the transcript, Hub and logging are switched off; ``overrides``
    (e.g. ``record_learning_events=True``) win over both.
    """
    recorded = log.meta["training_args"]
    names = {f.name for f in dataclasses.fields(UnlearnableTrainingArguments) if f.init}
    kwargs = {k: v for k, v in recorded.items() if k in names}
    kwargs.update(_OVERRIDE)
    kwargs.update(output_dir=str(output_dir), **overrides)
    kwargs = {k: v for k, v in kwargs.items() if k in names}
    return UnlearnableTrainingArguments(**kwargs)


def check_world_size(args: UnlearnableTrainingArguments, log: UnlearningLog, what: str) -> None:
    """A re-run from w_0 must use the run's number of ranks (the recorded order is split across them)."""
    if args.world_size != log.meta["world_size"]:
        raise ValueError(
            f"the run was trained on {log.meta['world_size']} rank(s), this process group has "
            f"{args.world_size}: launch {what} with the same world size"
        )


def initial_model(model: torch.nn.Module, log: UnlearningLog) -> torch.nn.Module:
    """A copy of ``model`` (any model of the run) reset to the log's w_0 (the log holds the trainable
    weights; frozen ones, e.g. a LoRA model's base, are the same in every model of the run)."""
    log.check_model(model, state="any")
    replica = copy.deepcopy(model)
    missing, unexpected = replica.load_state_dict(log.initial_state_dict(), strict=False)
    trainable = {n for n, p in replica.named_parameters() if p.requires_grad}  # a LoRA model: adapters + head
    if unexpected or [m for m in missing if m in trainable]:
        raise ValueError(f"initial weights do not fit the model (missing {missing[:5]}, unexpected {unexpected[:5]})")
    return replica


@contextlib.contextmanager
def replayed(
    model: torch.nn.Module,
    train_dataset,
    log: UnlearningLog | str | Path,
    forget_ids: Iterable[str] = (),
    *,
    tokenizer=None,
    output_dir: str | Path | None = None,
    data_collator=None,
    desc: str = "replaying the run",
    callbacks: list | None = None,
    **overrides,
) -> Iterator[tuple[torch.nn.Module, UnlearnableTrainer]]:
    """Replay ``log`` from w_0 without ``forget_ids``; yields ``(model, trainer)`` once trained.

    Inside the ``with`` block the replay's own log is readable at ``trainer.log_root``; without
    ``output_dir`` it lives in a private temporary folder removed when the block exits (also on
    error). ``overrides`` change the replay's training arguments (:func:`twin_arguments`).
    ``desc`` labels the replay's progress bar; ``callbacks`` (``TrainerCallback``s) are added to its trainer.
    """
    log = log if isinstance(log, UnlearningLog) else UnlearningLog(log)
    forget_ids = sorted(set(forget_ids))
    replica = initial_model(model, log)
    if forget_ids:
        check_ids_known(forget_ids, log.train_ids(), what="training data recorded in the log")
    with contextlib.ExitStack() as stack:
        out = Path(output_dir) if output_dir else stack.enter_context(private_temp_dir(prefix="hf_unlearn-replay-"))
        args = twin_arguments(log, out, **overrides)
        check_world_size(args, log, "the replay")
        trainer = UnlearnableTrainer(
            model=replica,
            args=args,
            train_dataset=train_dataset,
            processing_class=tokenizer,
            data_collator=data_collator,
            replay_order=log.recorded_order(),
            drop_ids=forget_ids,
            callbacks=callbacks,
        )
        label_progress(trainer, desc)
        trainer.train()
        replica.eval()
        yield replica, trainer


def retrain_twin(
    model: torch.nn.Module,
    train_dataset,
    log: UnlearningLog | str | Path,
    forget_ids: Iterable[str] = (),
    *,
    tokenizer=None,
    output_dir: str | Path | None = None,
    data_collator=None,
    desc: str = "retraining the twin",
) -> tuple[torch.nn.Module, UnlearnableTrainer]:
    """Retrain from w_0 on the recorded order of ``log`` without ``forget_ids``.

    ``model`` gives the architecture (any model of the run, e.g. the trained one: it is copied
    and reset to w_0); ``train_dataset`` is the ORIGINAL tokenized training set (with ``id``).
    Returns the twin model and its trainer. With ``output_dir`` the twin's log (its transcript,
    the proof it never saw the forget ids) stays there; without, it is removed before returning.
    Its progress bar is labelled ``desc``. Retrains under other seeds: :mod:`.retrain_noise`.
    """
    with replayed(
        model,
        train_dataset,
        log,
        forget_ids,
        tokenizer=tokenizer,
        output_dir=output_dir,
        data_collator=data_collator,
        desc=desc,
    ) as (twin, trainer):
        return twin, trainer
