"""The one family of arguments shared by ``train``, ``unlearn``, ``evaluate`` and ``s3t``, and the run file.

Names follow TRL's scripts: ``model_name_or_path``, ``dataset_name``, ``max_train_samples`` ...
``dataset_seed`` seeds what is drawn from the data (label-balanced subsets, synthetic reviews,
the split of a single local file, S3T's public split); ``data_seed`` keeps the meaning it has in
``TrainingArguments`` (the seed of the training sampler's shuffle).

A training run folder holds the trained model + tokenizer, ``unlearning_log/`` and
``hf_unlearn_run.json`` (these arguments and the fingerprints of the splits), so that later
commands (``unlearn``, ``evaluate``, ``push``) rebuild the same data without being told again.
Run files written before the renames still load: their keys are mapped (:data:`RUN_FILE_KEYS`).
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path

from ..artifacts import RUN_FILE, atomic_write_json

# tiny-bert's number of layers when nothing says otherwise: S3T splits the layers into L blocks
# (4 layers serve L = 1, 2 or 4), plain training keeps the smaller model.
TINY_NUM_LAYERS_DEFAULT = {"train": 2, "s3t": 4}
DEFAULT_DATASET = "imdb"
CANARY_MINIMA = {"synthetic_canaries": 0, "canaries": 0, "canary_references": 2, "canary_length": 1}


@dataclass
class DataArguments:
    """Which sentiment data to use, and how much of it."""

    dataset_name: str = field(
        default=DEFAULT_DATASET,
        metadata={
            "help": "Hub data set name (imdb), a local parquet/csv/jsonl file or a folder holding train.* and "
            "test.* files, or 'synthetic' (offline). With --train_file: that file."
        },
    )
    train_file: str | None = field(
        default=None,
        metadata={"help": "A csv/json/jsonl/parquet file of training examples (instead of --dataset_name)."},
    )
    validation_file: str | None = field(
        default=None,
        metadata={"help": "A csv/json/jsonl/parquet file of evaluation examples (the test split if no --test_file)."},
    )
    test_file: str | None = field(
        default=None,
        metadata={
            "help": "A csv/json/jsonl/parquet file of test examples (default: the validation file, else a "
            "fifth of the training file drawn with --dataset_seed)."
        },
    )
    text_column: str = field(default="text", metadata={"help": "Column holding the text."})
    label_column: str = field(default="label", metadata={"help": "Column holding the integer label."})
    id_column: str | None = field(
        default=None,
        metadata={"help": "Column holding a unique example id (default: 'id' if present, else split/row)."},
    )
    max_train_samples: int | None = field(
        default=None,
        metadata={
            "help": "Keep a label-balanced subset of this many training examples (s3t with synthetic data: the number of reviews generated)."
        },
    )
    max_test_samples: int | None = field(
        default=None,
        metadata={
            "help": "Keep a label-balanced subset of this many test examples (s3t with synthetic data: the number generated)."
        },
    )
    max_length: int = field(default=128, metadata={"help": "Truncate texts to this many tokens."})
    synthetic_train: int | None = field(
        default=None,
        metadata={"help": "Synthetic data: training reviews (default 600; s3t: max_train_samples or 400)."},
    )
    synthetic_test: int | None = field(
        default=None, metadata={"help": "Synthetic data: test reviews (default 200; s3t: max_test_samples or 200)."}
    )
    synthetic_canaries: int = field(
        default=8, metadata={"help": "Synthetic data: canaries (random text, random label) in train."}
    )
    dataset_seed: int = field(
        default=0,
        metadata={
            "help": "Seed of subsets, synthetic data, canaries, single-file splits and S3T's public split (not TrainingArguments' data_seed)."
        },
    )
    canaries: int = field(
        default=0,
        metadata={
            "help": "Plant this many canaries (random words of the data set, random label; ids canary-planted-000 ...) "
            "in the train split, to measure their exposure after unlearning (0 = none)."
        },
    )
    canary_references: int = field(
        default=256, metadata={"help": "Reference canaries (never trained on) each canary is ranked among."}
    )
    canary_length: int = field(default=8, metadata={"help": "Words per canary."})

    def __post_init__(self):
        # recorded in the run file: absolute, so that unlearn/evaluate find them from any folder
        for name in ("train_file", "validation_file", "test_file"):
            value = getattr(self, name)
            if value:
                setattr(self, name, str(Path(value).expanduser().resolve()))
        if (self.validation_file or self.test_file) and not self.train_file:
            raise ValueError("--validation_file / --test_file need --train_file")
        if self.train_file and self.dataset_name not in (DEFAULT_DATASET, self.train_file):
            raise ValueError("give --dataset_name or --train_file, not both")
        if self.train_file:  # what reports, cards and messages name as the data source
            self.dataset_name = self.train_file
        check_positive(
            self, ("max_length", "max_train_samples", "max_test_samples", "synthetic_train", "synthetic_test")
        )
        for name, least in CANARY_MINIMA.items():
            if getattr(self, name) < least:
                raise ValueError(f"--{name} {getattr(self, name)}: must be >= {least}")

    def canary_recipe(self):
        """The ``CanaryRecipe`` of ``--canaries`` (seeded with ``dataset_seed``), or ``None`` without canaries."""
        from ..data.canaries import CanaryRecipe

        if not self.canaries:
            return None
        return CanaryRecipe(self.canaries, self.canary_references, self.canary_length, self.dataset_seed)

    def load(self):
        """``DatasetDict(train, test)`` with ``id``, ``text``, ``label`` (``max_*_samples`` subsets; the
        ``--canaries`` planted in train, ``data.canaries``)."""
        from ..data.canaries import plant_canaries

        return plant_canaries(self._load_source(), self.canary_recipe())

    def _load_source(self):
        from ..data import load_data_files, load_sentiment_dataset

        subsets = {"max_train": self.max_train_samples, "max_test": self.max_test_samples, "seed": self.dataset_seed}
        if self.dataset_name == "synthetic" and not self.train_file:
            return load_sentiment_dataset(
                "synthetic",
                n_train=self.synthetic_train or 600,
                n_test=self.synthetic_test or 200,
                n_canaries=self.synthetic_canaries,
                **subsets,
            )
        columns = {"text_column": self.text_column, "label_column": self.label_column, "id_column": self.id_column}
        if self.train_file:
            return load_data_files(
                self.train_file, validation_file=self.validation_file, test_file=self.test_file, **columns, **subsets
            )
        return load_sentiment_dataset(self.dataset_name, **columns, **subsets)


@dataclass
class TrainDataArguments(DataArguments):
    """Which sentiment data to train on, and the run ledgers whose forgotten ids it never trains on.

    ``DataArguments`` plus ``exclude_ledger`` (``train`` only: the run file records it, later commands
    read the run's data back as ``DataArguments`` and restrict it to what the log trained on)."""

    exclude_ledger: list[str] | None = field(
        default=None,
        metadata={
            "help": "Run folders whose request ledgers' forgotten ids are dropped from the train split before "
            "training (the new run's ledger carries their requests over). Needed to train into a folder whose "
            "ledger holds deletion requests (--overwrite or a resume): name that folder."
        },
    )

    def __post_init__(self):
        super().__post_init__()
        if isinstance(self.exclude_ledger, (str, Path)):
            self.exclude_ledger = [self.exclude_ledger]
        if self.exclude_ledger:  # absolute, so that the run file and the ledger name them from any folder
            self.exclude_ledger = list(dict.fromkeys(str(Path(p).expanduser().resolve()) for p in self.exclude_ledger))


@dataclass
class ModelArguments:
    """Which model to start from (the tiny_* fields size the offline tiny-bert)."""

    model_name_or_path: str = field(
        default="distilbert-base-uncased",
        metadata={"help": "Hub name or local path, or 'tiny-bert' (built offline from the training texts)."},
    )
    num_labels: int = field(default=2, metadata={"help": "Number of classes."})
    attn_implementation: str | None = field(
        default=None, metadata={"help": "Attention kernel (eager, sdpa); default: the model's."}
    )
    tiny_hidden_size: int = field(default=64, metadata={"help": "tiny-bert: hidden size."})
    tiny_num_layers: int | None = field(
        default=None, metadata={"help": "tiny-bert: transformer layers (default: 2 for train, 4 for s3t)."}
    )
    tiny_num_heads: int = field(default=2, metadata={"help": "tiny-bert: attention heads."})
    tiny_intermediate_size: int = field(default=128, metadata={"help": "tiny-bert: feed-forward size."})
    tiny_vocab_size: int = field(default=2000, metadata={"help": "tiny-bert: WordPiece vocabulary size."})
    # LoRA, with TRL ModelConfig's names
    use_peft: bool = field(
        default=False,
        metadata={"help": "Train LoRA adapters (and the head) on a frozen base instead of every weight."},
    )
    lora_r: int = field(default=16, metadata={"help": "LoRA rank r."})
    lora_alpha: int = field(default=32, metadata={"help": "LoRA alpha (the update is scaled by alpha / r)."})
    lora_dropout: float = field(default=0.05, metadata={"help": "Dropout on the LoRA branch."})
    lora_target_modules: list[str] | None = field(
        default=None,
        metadata={"help": "Modules that get adapters (default: PEFT's for the architecture, e.g. query value)."},
    )
    lora_modules_to_save: list[str] | None = field(
        default=None,
        metadata={
            "help": "Modules trained in full and saved with the adapter besides the head (DistilBERT: pre_classifier)."
        },
    )

    def __post_init__(self):
        self.lora_target_modules = module_names(self.lora_target_modules)
        self.lora_modules_to_save = module_names(self.lora_modules_to_save)
        if self.use_peft:
            self.lora_settings().check()
        if self.num_labels < 2:
            raise ValueError(f"--num_labels {self.num_labels}: a classifier needs at least 2 classes")
        sizes = ("tiny_hidden_size", "tiny_num_layers", "tiny_num_heads", "tiny_intermediate_size", "tiny_vocab_size")
        check_positive(self, sizes)
        if self.tiny_hidden_size % self.tiny_num_heads:
            raise ValueError(
                f"--tiny_hidden_size {self.tiny_hidden_size} must be a multiple of --tiny_num_heads {self.tiny_num_heads}"
            )

    def lora_settings(self):
        from ..models import LoraSettings

        return LoraSettings(
            r=self.lora_r,
            alpha=self.lora_alpha,
            dropout=self.lora_dropout,
            target_modules=list(self.lora_target_modules) if self.lora_target_modules else None,
            modules_to_save=list(self.lora_modules_to_save) if self.lora_modules_to_save else None,
        )

    def tiny_spec(self, max_length: int, command: str = "train"):
        from ..models import TinyBertSpec

        layers = self.tiny_num_layers or TINY_NUM_LAYERS_DEFAULT[command]
        return TinyBertSpec(
            vocab_size=self.tiny_vocab_size,
            hidden_size=self.tiny_hidden_size,
            num_hidden_layers=layers,
            num_attention_heads=self.tiny_num_heads,
            intermediate_size=self.tiny_intermediate_size,
            max_length=max_length,
        )

    def load(self, train_texts, max_length: int, seed: int, command: str = "train"):
        """(model, tokenizer): from the Hub or a folder, or tiny-bert trained on ``train_texts``."""
        from ..models import load_model_and_tokenizer

        return load_model_and_tokenizer(
            self.model_name_or_path,
            num_labels=self.num_labels,
            train_texts=train_texts,
            spec=self.tiny_spec(max_length, command),
            seed=seed,
            attn_implementation=self.attn_implementation,
        )


@dataclass
class S3TArguments:
    """What ``s3t train`` adds to the data and model arguments (the system itself is ``S3TConfig``)."""

    method: str = field(default="s3t", metadata={"help": "s3t or sisa (the baseline)."})
    n_public: int = field(
        default=0,
        metadata={
            "help": "Training examples held out as a 'public' split that fully fine-tunes the base before "
            "S3T (needed for a randomly initialised base such as tiny-bert); not deletable."
        },
    )
    pretrain_epochs: int = field(default=3, metadata={"help": "Full fine-tuning epochs on the public split."})
    pretrain_learning_rate: float = field(default=5e-4, metadata={"help": "Learning rate on the public split."})
    pretrain_batch_size: int = field(default=32, metadata={"help": "Batch size on the public split."})


def module_names(value) -> list[str] | None:
    """Module names as given on the command line or in YAML, as a list: ``--lora_target_modules q_lin v_lin``,
    ``q_lin,v_lin`` and a YAML list or string all give ``["q_lin", "v_lin"]``; nothing given stays ``None``."""
    if value is None:
        return None
    items = [value] if isinstance(value, str) else list(value)
    names = [name.strip() for item in items for name in str(item).split(",") if name.strip()]
    return names or None


def check_positive(args, names) -> None:
    """``ValueError`` naming the first of ``names`` that is set (not None) but not >= 1."""
    for name in names:
        value = getattr(args, name)
        if value is not None and value < 1:
            raise ValueError(f"--{name} {value}: must be >= 1")


# ---- deprecated names (one release): old -> new, as flags and as YAML keys --------------------------
_DATA_RENAMES = {"dataset": "dataset_name", "max_train": "max_train_samples", "max_test": "max_test_samples"}
_TINY_RENAMES = {
    "tiny_layers": "tiny_num_layers",
    "tiny_heads": "tiny_num_heads",
    "tiny_intermediate": "tiny_intermediate_size",
    "tiny_vocab": "tiny_vocab_size",
}
# train: --data_seed stays TrainingArguments' shuffle seed, so only data_seed_for_split is renamed.
TRAIN_RENAMES = {
    **_DATA_RENAMES,
    **_TINY_RENAMES,
    "model": "model_name_or_path",
    "data_seed_for_split": "dataset_seed",
}
# s3t: its data_seed was the split seed (S3T has no TrainingArguments).
S3T_RENAMES = {**_DATA_RENAMES, "data_seed": "dataset_seed"}
# keys of run files / S3T system records written before the renames (read silently: the user cannot edit them)
RUN_FILE_KEYS = {
    **_DATA_RENAMES,
    **_TINY_RENAMES,
    "model": "model_name_or_path",
    "data_seed_for_split": "dataset_seed",
    "data_seed": "dataset_seed",
}


def upgrade_keys(values: dict, renames: dict) -> dict:
    """``values`` with every old key renamed; a key given under both names keeps the new name's value."""
    out = {}
    for key, value in values.items():
        new = renames.get(key, key)
        if new != key and new in values:
            continue
        out[new] = value
    return out


def known_fields(cls) -> set[str]:
    return {f.name for f in dataclasses.fields(cls) if f.init}


def from_record(cls, values: dict):
    """A dataclass of ``cls`` from a stored record (old key names mapped, unknown keys ignored)."""
    values = upgrade_keys(values or {}, RUN_FILE_KEYS)
    return cls(**{k: v for k, v in values.items() if k in known_fields(cls)})


# ---- the run file -----------------------------------------------------------------------------------
def write_run_file(
    run_dir: str | Path, data_args: DataArguments, model_args: ModelArguments, extra: dict | None = None
) -> None:
    atomic_write_json(
        Path(run_dir) / RUN_FILE,
        {"data": dataclasses.asdict(data_args), "model": dataclasses.asdict(model_args), **(extra or {})},
    )


def read_run_file(run_dir: str | Path) -> tuple[DataArguments, ModelArguments, dict]:
    """(data arguments, model arguments, the rest: metrics, fingerprints) of a training run folder."""
    path = Path(run_dir) / RUN_FILE
    if not Path(run_dir).is_dir():
        raise FileNotFoundError(f"run folder not found: {run_dir}; give a folder written by `hf-unlearn train`")
    if not path.is_file():
        raise FileNotFoundError(
            f"{run_dir} is not a training run of hf-unlearn (no {RUN_FILE}); train with `hf-unlearn train`"
        )
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        raw["data"], raw["model"]  # noqa: B018 (both sections must be there)
    except (ValueError, KeyError, TypeError) as exc:
        raise FileNotFoundError(f"{path} is damaged ({type(exc).__name__}); train the run again") from None
    data_args, model_args = from_record(DataArguments, raw.pop("data")), from_record(ModelArguments, raw.pop("model"))
    if model_args.tiny_num_layers is None:
        model_args.tiny_num_layers = TINY_NUM_LAYERS_DEFAULT["train"]
    return data_args, model_args, raw
