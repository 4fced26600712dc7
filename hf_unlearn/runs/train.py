"""Train a classifier with ``UnlearnableTrainer`` into a run folder (the engine of ``hf-unlearn train``).

The run folder receives the model + tokenizer, ``unlearning_log/`` and the run file
(``hf_unlearn_run.json``: the data and model arguments, the final metrics and the fingerprints of
the train and test splits, which ``unlearn`` and ``evaluate`` check before they use the data).
Each phase (loading, training, evaluation, saving) prints one timed line (``console.phase``);
training shows one bar labelled "training" instead of the Trainer's per-step log lines.
"""

from __future__ import annotations

import dataclasses

from .. import console
from ..data import fingerprint_dataset
from ..training import UnlearnableTrainingArguments
from .config import TINY_NUM_LAYERS_DEFAULT, DataArguments, ModelArguments, write_run_file
from .run_folder import write_run_manifest
from .validation import check_training_inputs


def train(data_args: DataArguments, model_args: ModelArguments, args: UnlearnableTrainingArguments) -> dict:
    """Fine-tune, evaluate on the test split, save; returns the evaluation metrics."""
    from ..models import tokenize_dataset
    from ..training import UnlearnableTrainer
    from ..training.progress import label_progress

    console.ensure_configured()
    if model_args.tiny_num_layers is None:
        model_args = dataclasses.replace(model_args, tiny_num_layers=TINY_NUM_LAYERS_DEFAULT["train"])
    with console.phase("loading the data and the model") as step:
        data = data_args.load()
        model, tokenizer = model_args.load(data["train"]["text"], data_args.max_length, args.seed)
        check_training_inputs(data, model, tokenizer, data_args, model_args, args)  # before any write
        tokenized = tokenize_dataset(data, tokenizer, data_args.max_length)
        step.summary = f"{len(data['train'])} training and {len(data['test'])} test examples"
    trainer = UnlearnableTrainer(
        model=model,
        args=args,
        train_dataset=tokenized["train"],
        eval_dataset=tokenized["test"],
        processing_class=tokenizer,
        compute_metrics=accuracy,
    )
    label_progress(trainer, "training")
    with console.phase("training") as step:
        out = trainer.train(resume_from_checkpoint=args.resume_from_checkpoint)
        step.summary = f"{out.global_step} steps, training loss {out.training_loss:.4f}"
    with console.phase("evaluating on the test split") as step:
        metrics = trainer.evaluate()
        if "eval_accuracy" in metrics:
            step.summary = f"accuracy {100 * metrics['eval_accuracy']:.1f} %"
    with console.phase(f"saving the run to {args.output_dir}"):
        trainer.save_model(args.output_dir)
        if args.should_save:
            tokenizer.save_pretrained(args.output_dir)
            fingerprints = {split: fingerprint_dataset(data[split]) for split in ("train", "test")}
            write_run_file(args.output_dir, data_args, model_args, {"metrics": metrics, "fingerprints": fingerprints})
            write_run_manifest(args.output_dir)  # last: a run folder with a manifest is complete
    return metrics


def accuracy(pred) -> dict:
    import numpy as np

    return {"accuracy": float((np.argmax(pred.predictions, axis=-1) == pred.label_ids).mean())}
