"""Offline test set-up: no Hub access, a private HF_HOME, tiny data and a tiny model."""

from __future__ import annotations

import os
import tempfile

_HOME = tempfile.mkdtemp(prefix="hf_unlearn_test_home_")
for key, value in {
    "HF_HUB_OFFLINE": "1",
    "HF_DATASETS_OFFLINE": "1",
    "HF_EVALUATE_OFFLINE": "1",
    "HF_HOME": _HOME,
    "TRANSFORMERS_NO_ADVISORY_WARNINGS": "1",
    "TOKENIZERS_PARALLELISM": "false",
    "HF_DATASETS_DISABLE_PROGRESS_BARS": "1",
}.items():
    os.environ.setdefault(key, value)

from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
IMDB = REPO.parent / "shared" / "data" / "imdb"
# a tiny `hf-unlearn train` on synthetic data, for CLI-level tests (add --output_dir)
TINY_SYNTHETIC_SIZES = ["--synthetic_train", "40", "--synthetic_test", "20", "--synthetic_canaries", "2"]
TINY_TRAIN_ARGS = [
    "--dataset_name",
    "synthetic",
    *TINY_SYNTHETIC_SIZES,
    "--model_name_or_path",
    "tiny-bert",
    "--num_train_epochs",
    "1",
    "--record_deltas",
    "--save_strategy",
    "no",
]


@pytest.fixture(scope="session")
def synthetic():
    from hf_unlearn.data import load_sentiment_dataset

    return load_sentiment_dataset("synthetic", n_train=96, n_test=32, n_canaries=4, seed=0)


@pytest.fixture(scope="session")
def tiny(synthetic):
    """(tokenizer, tokenized DatasetDict, model factory) for the tiny BERT."""
    import copy

    from hf_unlearn.models import build_tiny_bert, tokenize_dataset

    model, tokenizer = build_tiny_bert(synthetic["train"]["text"], seed=0)
    tokenized = tokenize_dataset(synthetic, tokenizer, max_length=32)
    return tokenizer, tokenized, lambda: copy.deepcopy(model)


def make_args(output_dir, **overrides):
    from hf_unlearn.training import UnlearnableTrainingArguments

    base = dict(
        output_dir=str(output_dir),
        num_train_epochs=2,
        per_device_train_batch_size=16,
        learning_rate=1e-3,
        save_strategy="no",
        logging_steps=1000,
        seed=7,
        disable_tqdm=True,
    )
    base.update(overrides)
    return UnlearnableTrainingArguments(**base)


def train_run(tiny, output_dir, **overrides):
    """Train the tiny model with UnlearnableTrainer; returns (model, trainer)."""
    from hf_unlearn.training import UnlearnableTrainer

    tokenizer, tokenized, fresh = tiny
    model = fresh()
    trainer = UnlearnableTrainer(
        model=model,
        args=make_args(output_dir, **overrides),
        train_dataset=tokenized["train"],
        processing_class=tokenizer,
    )
    trainer.train()
    return model, trainer
