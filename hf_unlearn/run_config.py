"""Data and model arguments shared by the CLI commands, and the run folder's own record.

A training run folder holds the trained model + tokenizer, ``unlearning_log/`` and
``hf_unlearn_run.json`` (these arguments), so that later commands (``unlearn``,
``evaluate``, ``push``) rebuild the same data splits without being told again.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path

from .training.log_store import atomic_write_json

RUN_FILE = "hf_unlearn_run.json"


@dataclass
class DataArguments:
    """Which sentiment data to train on."""

    dataset: str = field(default="imdb", metadata={"help": "Hub data set name (imdb), a local parquet/csv/jsonl file or folder, or 'synthetic' (offline)."})
    text_column: str = field(default="text", metadata={"help": "Column holding the text."})
    label_column: str = field(default="label", metadata={"help": "Column holding the integer label."})
    id_column: str | None = field(default=None, metadata={"help": "Column holding a unique example id (default: 'id' if present, else split/row)."})
    max_train: int | None = field(default=None, metadata={"help": "Keep a label-balanced subset of this many training examples."})
    max_test: int | None = field(default=None, metadata={"help": "Keep a label-balanced subset of this many test examples."})
    max_length: int = field(default=128, metadata={"help": "Truncate texts to this many tokens."})
    synthetic_train: int = field(default=600, metadata={"help": "Synthetic data: training reviews."})
    synthetic_test: int = field(default=200, metadata={"help": "Synthetic data: test reviews."})
    synthetic_canaries: int = field(default=8, metadata={"help": "Synthetic data: canaries (random text, random label) in train."})
    data_seed_for_split: int = field(default=0, metadata={"help": "Seed of subsets, synthetic data and single-file splits."})

    def load(self):
        from .data import load_sentiment_dataset

        if self.dataset == "synthetic":
            return load_sentiment_dataset("synthetic", n_train=self.synthetic_train, n_test=self.synthetic_test,
                                          n_canaries=self.synthetic_canaries, seed=self.data_seed_for_split,
                                          max_train=self.max_train, max_test=self.max_test)
        return load_sentiment_dataset(self.dataset, text_column=self.text_column, label_column=self.label_column,
                                      id_column=self.id_column, max_train=self.max_train, max_test=self.max_test,
                                      seed=self.data_seed_for_split)


@dataclass
class ModelArguments:
    """Which model to fine-tune."""

    model: str = field(default="distilbert-base-uncased", metadata={"help": "Hub name or local path, or 'tiny-bert' (built offline from the training texts)."})
    num_labels: int = field(default=2, metadata={"help": "Number of classes."})
    attn_implementation: str | None = field(default=None, metadata={"help": "Attention kernel (eager, sdpa); default: the model's."})
    tiny_hidden_size: int = field(default=64, metadata={"help": "tiny-bert: hidden size."})
    tiny_layers: int = field(default=2, metadata={"help": "tiny-bert: transformer layers."})
    tiny_heads: int = field(default=2, metadata={"help": "tiny-bert: attention heads."})
    tiny_intermediate: int = field(default=128, metadata={"help": "tiny-bert: feed-forward size."})
    tiny_vocab: int = field(default=2000, metadata={"help": "tiny-bert: WordPiece vocabulary size."})

    def load(self, train_texts, max_length: int, seed: int):
        from .models import TinyBertSpec, load_model_and_tokenizer

        spec = TinyBertSpec(vocab_size=self.tiny_vocab, hidden_size=self.tiny_hidden_size, num_hidden_layers=self.tiny_layers,
                            num_attention_heads=self.tiny_heads, intermediate_size=self.tiny_intermediate, max_length=max_length)
        return load_model_and_tokenizer(self.model, num_labels=self.num_labels, train_texts=train_texts, spec=spec,
                                        seed=seed, attn_implementation=self.attn_implementation)


def write_run_file(run_dir: str | Path, data_args: DataArguments, model_args: ModelArguments, extra: dict | None = None) -> None:
    atomic_write_json(Path(run_dir) / RUN_FILE, {"data": dataclasses.asdict(data_args), "model": dataclasses.asdict(model_args),
                                                 **(extra or {})})


def read_run_file(run_dir: str | Path) -> tuple[DataArguments, ModelArguments, dict]:
    path = Path(run_dir) / RUN_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{run_dir} is not a training run of hf-unlearn (no {RUN_FILE}); train with `hf-unlearn train`")
    raw = json.loads(path.read_text())
    return DataArguments(**raw.pop("data")), ModelArguments(**raw.pop("model")), raw
