"""Offline test set-up: no Hub access, a private HF_HOME, tiny data and a tiny model."""

from __future__ import annotations

import contextlib
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


def train_on(data, output_dir, batch_size=16, **overrides):
    """A tiny BERT built on ``data``'s texts, trained with UnlearnableTrainer (seed 0, max 32 tokens).

    Returns (model in eval mode, tokenizer, tokenized data, trainer)."""
    from hf_unlearn.models import build_tiny_bert, tokenize_dataset
    from hf_unlearn.training import UnlearnableTrainer

    model, tokenizer = build_tiny_bert(data["train"]["text"], seed=0)
    tokenized = tokenize_dataset(data, tokenizer, max_length=32)
    args = make_args(output_dir, per_device_train_batch_size=batch_size, seed=0, report_to=[], **overrides)
    trainer = UnlearnableTrainer(model=model, args=args, train_dataset=tokenized["train"], processing_class=tokenizer)
    trainer.train()
    model.eval()
    return model, tokenizer, tokenized, trainer


def adam_second_moment(trainer, model) -> dict:
    """The trainer's own bias-corrected Adam second moment ``v_T / (1 - beta2^T)`` by parameter name."""
    from hf_unlearn.training.optimizer_record import base_optimizer

    opt = base_optimizer(trainer.optimizer)
    names = {id(p): n for n, p in model.named_parameters()}
    v_hat = {}
    for group in opt.param_groups:
        for p in group["params"]:
            state = opt.state[p]
            v_hat[names[id(p)]] = state["exp_avg_sq"].detach().float() / (1 - group["betas"][1] ** int(state["step"]))
    return v_hat


@contextlib.contextmanager
def benchmark_module(filename: str):
    """``benchmarks/<filename>`` imported as module ``bench_<stem>``, the benchmarks folder on ``sys.path``
    (its sibling modules import each other) until the block ends."""
    import importlib.util
    import sys

    bench_dir = Path(__file__).resolve().parent.parent / "benchmarks"
    name = f"bench_{Path(filename).stem}"
    sys.path.insert(0, str(bench_dir))
    try:
        spec = importlib.util.spec_from_file_location(name, bench_dir / filename)
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module  # dataclasses look their module up
        spec.loader.exec_module(module)
        yield module
    finally:
        sys.modules.pop(name, None)
        sys.path.remove(str(bench_dir))
