"""``hf-unlearn train``: fine-tune a classifier with UnlearnableTrainer and keep its unlearning log.

Every ``UnlearnableTrainingArguments`` field is a flag; ``--config recipe.yaml`` gives
defaults that flags override. Runs as is under ``accelerate launch -m hf_unlearn.cli train``.
"""

from __future__ import annotations

import json
import sys

import yaml
from transformers import HfArgumentParser

from ..run_config import DataArguments, ModelArguments, write_run_file
from ..training import UnlearnableTrainingArguments


def make_parser() -> HfArgumentParser:
    parser = HfArgumentParser((DataArguments, ModelArguments, UnlearnableTrainingArguments), prog="hf-unlearn train",
                              description="Fine-tune a text classifier that is prepared for deletion requests.")
    parser.add_argument("--config", default=None, help="YAML recipe; its keys are the flags below, flags override it.")
    return parser


def parse(argv: list[str]):
    parser = make_parser()
    pre, _ = parser.parse_known_args(argv)
    if pre.config:
        with open(pre.config) as f:
            recipe = yaml.safe_load(f) or {}
        known = {a.dest for a in parser._actions}
        unknown = sorted(set(recipe) - known)
        if unknown:
            parser.error(f"unknown key(s) in {pre.config}: {unknown}")
        parser.set_defaults(**recipe)
    *dataclasses, rest = parser.parse_args_into_dataclasses(args=argv, return_remaining_strings=True)
    if rest:
        parser.error(f"unrecognised arguments: {' '.join(rest)}")
    return dataclasses[:3]


def run(data_args: DataArguments, model_args: ModelArguments, args: UnlearnableTrainingArguments) -> dict:
    from ..models import tokenize_dataset
    from ..training import UnlearnableTrainer

    data = data_args.load()
    model, tokenizer = model_args.load(data["train"]["text"], data_args.max_length, args.seed)
    tokenized = tokenize_dataset(data, tokenizer, data_args.max_length)
    trainer = UnlearnableTrainer(model=model, args=args, train_dataset=tokenized["train"], eval_dataset=tokenized["test"],
                                 processing_class=tokenizer, compute_metrics=_accuracy)
    trainer.train(resume_from_checkpoint=args.resume_from_checkpoint)
    metrics = trainer.evaluate()
    trainer.save_model(args.output_dir)
    if args.should_save:
        tokenizer.save_pretrained(args.output_dir)
        write_run_file(args.output_dir, data_args, model_args, {"metrics": metrics})
    return metrics


def _accuracy(pred) -> dict:
    import numpy as np

    return {"accuracy": float((np.argmax(pred.predictions, axis=-1) == pred.label_ids).mean())}


def main(argv: list[str] | None = None) -> int:
    data_args, model_args, args = parse(sys.argv[1:] if argv is None else argv)
    metrics = run(data_args, model_args, args)
    if args.process_index == 0:
        print(json.dumps({k: round(v, 4) if isinstance(v, float) else v for k, v in metrics.items()}))
    return 0
