"""Noise twins: retrains without the forget set under other seeds, the retrain noise floor.

The retrain twin (:func:`hf_unlearn.training.replay.retrain_twin`) is ONE valid retrain: same w_0,
seed and recorded data order, minus the forget ids. A different data order or dropout draw gives
another, equally valid retrain, and the two differ. Noise twin ``k`` (k = 1..K) is such a retrain:
the same w_0 and hyperparameters, the same retained examples (the ids the run trained on minus the
forget ids), but a fresh data order and dropout drawn from ``seed + k`` (and ``data_seed + k``
when the run set one). How far the noise twins score from the retrain twin is how far any method
can be expected to score from it: the "retrain noise floor" (the NeurIPS 2023 machine-unlearning
challenge judged unlearned models against a distribution of retrains for the same reason).

Each noise twin writes its own transcript: it trains on the retained rows only (the forget rows
are removed from the data set it is given, not skipped), so its log proves it never saw the forget
ids. Without ``output_dir`` every log lives in a private temporary folder removed before returning.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import torch

from ..artifacts import private_temp_dir
from ..data.forget import check_ids_known
from .progress import label_progress
from .replay import check_world_size, initial_model, twin_arguments
from .trainer import UnlearnableTrainer
from .unlearning_log import UnlearningLog

NOISE_TWIN_PREFIX = "noise_twin_"  # noise twin k's folder / model name: noise_twin_1, noise_twin_2, ...


@dataclass
class NoiseTwin:
    """One noise twin: its model (eval mode), its 1-based index, the seeds it trained with, its steps."""

    model: torch.nn.Module
    index: int
    seed: int
    data_seed: int | None
    steps: int

    @property
    def name(self) -> str:
        return f"{NOISE_TWIN_PREFIX}{self.index}"


def noise_twin_seeds(log: UnlearningLog, index: int) -> tuple[int, int | None]:
    """``(seed, data_seed)`` of noise twin ``index`` (1-based): the run's seeds plus ``index``."""
    if index < 1:
        raise ValueError(f"noise twins are numbered from 1, got {index}")
    recorded = log.meta["training_args"]
    seed = int(recorded.get("seed") or 0) + index
    data_seed = recorded.get("data_seed")
    return seed, (None if data_seed is None else int(data_seed) + index)


def retained_rows(train_dataset, log: UnlearningLog, forget_ids: Iterable[str]):
    """The rows of ``train_dataset`` the run trained on (the log's transcript), minus ``forget_ids``."""
    forget, trained = set(forget_ids), log.train_ids()
    keep = [k for k, i in enumerate(train_dataset["id"]) if i in trained and i not in forget]
    return train_dataset.select(keep)


def noise_twin(
    model: torch.nn.Module,
    train_dataset,
    log: UnlearningLog | str | Path,
    forget_ids: Iterable[str],
    index: int,
    *,
    tokenizer=None,
    output_dir: str | Path | None = None,
    data_collator=None,
    desc: str | None = None,
) -> NoiseTwin:
    """Noise twin ``index`` (1-based): w_0 of ``log``, trained on the retained rows of ``train_dataset``
    (the ORIGINAL tokenized training set, with ``id``) in a fresh order from :func:`noise_twin_seeds`.

    With ``output_dir`` its log (its transcript: the proof it never saw ``forget_ids``) stays there.
    """
    log = log if isinstance(log, UnlearningLog) else UnlearningLog(log)
    forget_ids = sorted(set(forget_ids))
    if forget_ids:
        check_ids_known(forget_ids, log.train_ids(), what="training data recorded in the log")
    seed, data_seed = noise_twin_seeds(log, index)
    replica = initial_model(model, log)
    retained = retained_rows(train_dataset, log, forget_ids)
    with contextlib.ExitStack() as stack:
        out = Path(output_dir) if output_dir else stack.enter_context(private_temp_dir(prefix="hf_unlearn-noise-"))
        args = twin_arguments(log, out, seed=seed, data_seed=data_seed)
        check_world_size(args, log, "the noise twins")
        trainer = UnlearnableTrainer(
            model=replica,
            args=args,
            train_dataset=retained,
            processing_class=tokenizer,
            data_collator=data_collator,
        )
        label_progress(trainer, desc or f"noise twin {index}")
        trainer.train()
    replica.eval()
    return NoiseTwin(replica, index, seed, data_seed, trainer.state.global_step)


def noise_twins(
    model: torch.nn.Module,
    train_dataset,
    log: UnlearningLog | str | Path,
    forget_ids: Iterable[str],
    k: int,
    *,
    tokenizer=None,
    output_dir: str | Path | None = None,
    data_collator=None,
    indices: Iterable[int] | None = None,
) -> list[NoiseTwin]:
    """``k`` noise twins (:func:`noise_twin`, seeds ``seed + 1`` .. ``seed + k``), or those of ``indices``.

    With ``output_dir`` twin ``i``'s log is kept in ``output_dir/noise_twin_<i>``.
    """
    if k < 0:
        raise ValueError(f"the number of noise twins must be >= 0, got {k}")
    log = log if isinstance(log, UnlearningLog) else UnlearningLog(log)
    wanted = list(indices) if indices is not None else list(range(1, k + 1))
    return [
        noise_twin(
            model,
            train_dataset,
            log,
            forget_ids,
            i,
            tokenizer=tokenizer,
            output_dir=Path(output_dir) / f"{NOISE_TWIN_PREFIX}{i}" if output_dir else None,
            data_collator=data_collator,
            desc=f"noise twin {n}/{len(wanted)}",
        )
        for n, i in enumerate(wanted, start=1)
    ]
