"""The retrain twin: the naive retrain that unlearning is measured against.

Thudi et al. ("Unrolling SGD", EuroS&P 2022) define the verification error against the model
retrained from the SAME initial weights w_0, with the same seed, hyperparameters and data
order, the forgotten examples removed. ``retrain_twin`` does exactly that from a run's
unlearning log: it reloads w_0, rebuilds the training arguments, and replays the recorded
micro-batches without the forget ids (batch boundaries kept, empty batches skipped; dropout
is seeded per micro-batch so it does not shift). With an empty forget set it reproduces the
original weights; with a forget set, its own transcript proves it never saw those ids.
"""

from __future__ import annotations

import copy
import dataclasses
import tempfile
from pathlib import Path
from typing import Iterable

import torch

from ..data.forget import check_ids_known
from ..training.arguments import UnlearnableTrainingArguments
from ..training.trainer import UnlearnableTrainer
from ..training.unlearning_log import UnlearningLog

# Settings of the original run that the twin must not inherit (outputs, recorders, hub, logging).
_OVERRIDE = {
    "record_transcript": True, "record_deltas": False, "record_per_sample": False,
    "record_learning_events": False, "record_error_proxy": False, "deletable_ids_file": None,
    "push_to_hub": False, "hub_model_id": None, "report_to": "none", "save_strategy": "no",
    "eval_strategy": "no", "load_best_model_at_end": False, "resume_from_checkpoint": None,
    "logging_strategy": "no",
}


def twin_arguments(log: UnlearningLog, output_dir: str | Path, **overrides) -> UnlearnableTrainingArguments:
    """The original run's training arguments (from the log), pointed at ``output_dir``."""
    recorded = log.meta["training_args"]
    names = {f.name for f in dataclasses.fields(UnlearnableTrainingArguments) if f.init}
    kwargs = {k: v for k, v in recorded.items() if k in names}
    kwargs.update(_OVERRIDE)
    kwargs.update(output_dir=str(output_dir), **overrides)
    kwargs = {k: v for k, v in kwargs.items() if k in names}
    return UnlearnableTrainingArguments(**kwargs)


def retrain_twin(
    model: torch.nn.Module,
    train_dataset,
    log: UnlearningLog | str | Path,
    forget_ids: Iterable[str] = (),
    *,
    tokenizer=None,
    output_dir: str | Path | None = None,
    data_collator=None,
) -> tuple[torch.nn.Module, UnlearnableTrainer]:
    """Retrain from w_0 on the recorded order of ``log`` without ``forget_ids``.

    ``model`` gives the architecture (any model of the run, e.g. the trained one: it is
    copied and reset to w_0); ``train_dataset`` is the ORIGINAL tokenized training set (with
    ``id``). Returns the twin model and its trainer (whose log holds the twin's transcript).
    """
    log = log if isinstance(log, UnlearningLog) else UnlearningLog(log)
    forget_ids = sorted(set(forget_ids))
    log.check_model(model, state="any")
    if forget_ids:
        check_ids_known(forget_ids, log.train_ids(), what="training data recorded in the log")
    twin = copy.deepcopy(model)
    missing, unexpected = twin.load_state_dict(log.initial_state_dict(), strict=False)
    if unexpected or [m for m in missing if m in dict(twin.named_parameters())]:
        raise ValueError(f"initial weights do not fit the model (missing {missing[:5]}, unexpected {unexpected[:5]})")
    out = Path(output_dir) if output_dir else Path(tempfile.mkdtemp(prefix="hf_unlearn_twin_"))
    args = twin_arguments(log, out)
    if args.world_size != log.meta["world_size"]:
        raise ValueError(f"the run was trained on {log.meta['world_size']} rank(s), this process group has "
                         f"{args.world_size}: launch the twin with the same world size")
    trainer = UnlearnableTrainer(
        model=twin, args=args, train_dataset=train_dataset, processing_class=tokenizer,
        data_collator=data_collator, replay_order=log.recorded_order(), drop_ids=forget_ids,
    )
    trainer.train()
    twin.eval()
    return twin, trainer
