"""``hf-unlearn train``: fine-tune a classifier with UnlearnableTrainer and keep its unlearning log.

Every ``UnlearnableTrainingArguments`` field is a flag; ``--config recipe.yaml`` gives
defaults that flags override. Runs as is under ``accelerate launch -m hf_unlearn.cli train``.
"""

from __future__ import annotations

import json
import sys

from ..runs.config import TRAIN_RENAMES, DataArguments, ModelArguments
from ..runs.recipe import RecipeParser
from ..training import UnlearnableTrainingArguments


def make_parser() -> RecipeParser:
    return RecipeParser(
        (DataArguments, ModelArguments, UnlearnableTrainingArguments),
        renames=TRAIN_RENAMES,
        prog="hf-unlearn train",
        description="Fine-tune a text classifier that is prepared for deletion requests.",
    )


def parse(argv: list[str]) -> tuple[DataArguments, ModelArguments, UnlearnableTrainingArguments]:
    return make_parser().parse(argv)


def main(argv: list[str] | None = None) -> int:
    from ..runs.train import train

    data_args, model_args, args = parse(sys.argv[1:] if argv is None else argv)
    metrics = train(data_args, model_args, args)
    if args.process_index == 0:
        print(json.dumps({k: round(v, 4) if isinstance(v, float) else v for k, v in metrics.items()}))
    return 0
