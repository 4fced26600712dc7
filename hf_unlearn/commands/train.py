"""``hf-unlearn train``: fine-tune a classifier with UnlearnableTrainer and keep its unlearning log.

Every ``UnlearnableTrainingArguments`` field is a flag; ``--config recipe.yaml`` gives
defaults that flags override. Runs as is under ``accelerate launch -m hf_unlearn.cli train``.
``--help`` lists the data, model and unlearning-log options first, transformers'
``TrainingArguments`` last.

A non-empty ``--output_dir`` is refused (one line, exit 2, before any work) unless ``--overwrite``
is given or it is this command's own interrupted run and ``--resume_from_checkpoint latest`` is
given. After a kill, the documented command is the same command plus
``--resume_from_checkpoint latest``: it continues from the newest complete checkpoint, or from
step 0 when none was completed.
"""

from __future__ import annotations

import json
import sys

from ..runs.config import TRAIN_RENAMES, ModelArguments, TrainDataArguments
from ..runs.recipe import RecipeParser
from ..training import UnlearnableTrainingArguments
from . import fail, start, user_errors

PROG = "hf-unlearn train"
EXAMPLE = (
    "hf-unlearn train --dataset_name synthetic --model_name_or_path tiny-bert "
    "--num_train_epochs 1 --record_deltas --output_dir runs/tiny\n"
    "  hf-unlearn train --train_file train.csv --test_file test.csv --model_name_or_path tiny-bert "
    "--output_dir runs/mine\n"
    "  hf-unlearn train --model_name_or_path distilbert-base-uncased --use_peft --lora_r 8 "
    "--lora_target_modules q_lin v_lin --lora_modules_to_save pre_classifier --record_deltas --output_dir runs/lora\n"
    "  hf-unlearn train ... --resume_from_checkpoint latest   # after an interruption: the same command plus this\n"
    "  hf-unlearn train ... --exclude_ledger runs/tiny --output_dir runs/tiny-2   # never re-learn what was forgotten"
)


def make_parser() -> RecipeParser:
    return RecipeParser(
        (TrainDataArguments, ModelArguments, UnlearnableTrainingArguments),
        renames=TRAIN_RENAMES,
        prog=PROG,
        description="Fine-tune a text classifier that is prepared for deletion requests.",
        example=EXAMPLE,
    )


def parse(argv: list[str]) -> tuple[TrainDataArguments, ModelArguments, UnlearnableTrainingArguments]:
    return make_parser().parse(argv)


def main(argv: list[str] | None = None) -> int:
    parser = make_parser()
    data_args, model_args, args = parser.parse(sys.argv[1:] if argv is None else argv)
    start(parser.output)
    from ..artifacts import IntegrityError, OutputFolderError
    from ..console import result
    from ..runs.train import train
    from ..training._compat import end_process_group
    from ..training.checkpoints import CheckpointError

    ok = False
    try:
        metrics = train(data_args, model_args, args)
        ok = True
    except (*user_errors(), OutputFolderError, IntegrityError, CheckpointError) as exc:
        return fail(PROG, str(exc))
    finally:  # every rank ends its process group, also on an error (the DDP teardown)
        end_process_group(synchronize=ok)
    if args.process_index == 0:
        result(json.dumps({k: round(v, 4) if isinstance(v, float) else v for k, v in metrics.items()}))
    return 0
