"""Models and tokenizers: a Hub name or local path, or a tiny BERT built from a config.

``tiny-bert`` is the offline default: a small ``BertForSequenceClassification`` whose
WordPiece tokenizer is trained on the training texts with the ``tokenizers`` library. Real
use goes through the Hub (``distilbert-base-uncased``, ``bert-base-uncased``...).
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from datasets import Dataset, DatasetDict
from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors
from transformers import (
    AutoModelForSequenceClassification,
    AutoTokenizer,
    BertConfig,
    BertForSequenceClassification,
    PreTrainedModel,
    PreTrainedTokenizerFast,
)

TINY_BERT = "tiny-bert"
SPECIAL_TOKENS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


class ModelNotFoundError(FileNotFoundError):
    """The model cannot be loaded: a local folder that is missing or incomplete, or a Hub model that
    cannot be reached (offline, not cached). Its message is one line that says what to do."""


class ModelMismatchError(ValueError):
    """The model does not fit the tokenizer, the data or the options (vocabulary, positions, classes)."""


def looks_local(name_or_path: str) -> bool:
    """Whether ``name_or_path`` is meant as a folder: it starts with ``.``, ``/`` or ``~``, or (part of) it exists."""
    if name_or_path.startswith((".", "/", "~", os.sep)) or os.path.exists(name_or_path):
        return True
    first = Path(name_or_path).parts[0] if Path(name_or_path).parts else ""
    return len(Path(name_or_path).parts) > 2 or (bool(first) and os.path.isdir(first))


def _check_local(name_or_path: str) -> None:
    path = Path(name_or_path).expanduser()
    if not path.exists():
        raise ModelNotFoundError(f"model folder not found: {name_or_path}")
    if not path.is_dir() or not (path / "config.json").is_file():
        raise ModelNotFoundError(
            f"{name_or_path} is not a model folder (no config.json): give a folder written by "
            "save_pretrained / hf-unlearn train, a Hub name, or tiny-bert"
        )


def _hub_unreachable(name_or_path: str, exc: Exception) -> ModelNotFoundError:
    offline = os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on")
    why = "the Hub is offline (HF_HUB_OFFLINE=1)" if offline else f"it could not be loaded ({type(exc).__name__})"
    return ModelNotFoundError(
        f"cannot load model {name_or_path!r}: there is no such local folder, {why} and it is not in the local cache; "
        f"use --model_name_or_path {TINY_BERT} (built offline) or a local model folder"
    )


@dataclass
class TinyBertSpec:
    """Size of the offline model (defaults: hidden 64, 2 layers, 2 heads, intermediate 128)."""

    vocab_size: int = 2000
    hidden_size: int = 64
    num_hidden_layers: int = 2
    num_attention_heads: int = 2
    intermediate_size: int = 128
    max_length: int = 128
    dropout: float = 0.1


def train_wordpiece_tokenizer(
    texts: Iterable[str], vocab_size: int = 2000, max_length: int = 128
) -> PreTrainedTokenizerFast:
    """A lower-cased BERT-style WordPiece tokenizer fitted to ``texts``; adds [CLS] ... [SEP].

    Vocabulary: every character seen (as a word start and as a ``##`` continuation), then
    the most frequent whole words up to ``vocab_size``, ties broken alphabetically. Unlike the
    merge-based ``WordPieceTrainer`` (whose ties follow hash order), the same texts always give
    the same ids, so two builds with one seed are the same model.
    """
    normalizer = normalizers.BertNormalizer(lowercase=True)
    pre = pre_tokenizers.BertPreTokenizer()
    counts: Counter = Counter()
    for text in texts:
        counts.update(w for w, _ in pre.pre_tokenize_str(normalizer.normalize_str(text)))
    chars = sorted({c for w in counts for c in w})
    vocab_list = SPECIAL_TOKENS + chars + [f"##{c}" for c in chars]
    room = max(0, vocab_size - len(vocab_list))
    words = [w for w, _ in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])) if len(w) > 1][:room]
    vocab = {t: i for i, t in enumerate(vocab_list + words)}
    tok = Tokenizer(models.WordPiece(vocab=vocab, unk_token="[UNK]"))
    tok.normalizer = normalizer
    tok.pre_tokenizer = pre
    tok.decoder = decoders.WordPiece()
    cls_id, sep_id = vocab["[CLS]"], vocab["[SEP]"]
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", cls_id), ("[SEP]", sep_id)],
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        unk_token="[UNK]",
        pad_token="[PAD]",
        cls_token="[CLS]",
        sep_token="[SEP]",
        mask_token="[MASK]",
        model_max_length=max_length,
    )


def build_tiny_bert(
    train_texts: Iterable[str],
    *,
    num_labels: int = 2,
    spec: TinyBertSpec | None = None,
    seed: int = 0,
) -> tuple[PreTrainedModel, PreTrainedTokenizerFast]:
    """A randomly initialised tiny BERT classifier (eager attention) and its trained tokenizer."""
    spec = spec or TinyBertSpec()
    tokenizer = train_wordpiece_tokenizer(train_texts, spec.vocab_size, spec.max_length)
    config = BertConfig(
        vocab_size=len(tokenizer),
        hidden_size=spec.hidden_size,
        num_hidden_layers=spec.num_hidden_layers,
        num_attention_heads=spec.num_attention_heads,
        intermediate_size=spec.intermediate_size,
        max_position_embeddings=spec.max_length,
        hidden_dropout_prob=spec.dropout,
        attention_probs_dropout_prob=spec.dropout,
        num_labels=num_labels,
        pad_token_id=tokenizer.pad_token_id,
    )
    config._attn_implementation = "eager"
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        model = BertForSequenceClassification(config)
    model.config.hf_unlearn_tiny_spec = asdict(spec)
    return model, tokenizer


def load_model_and_tokenizer(
    name_or_path: str = TINY_BERT,
    *,
    num_labels: int = 2,
    train_texts: Iterable[str] | None = None,
    spec: TinyBertSpec | None = None,
    seed: int = 0,
    attn_implementation: str | None = None,
) -> tuple[PreTrainedModel, PreTrainedTokenizerFast]:
    """Model + tokenizer by Hub name or local path, or ``"tiny-bert"`` built offline from ``train_texts``.

    Remote code is never trusted (``trust_remote_code=False``). A classification head that is
    new for the base model is initialised from ``seed``. A missing local folder, or a Hub model that
    cannot be reached and is not cached, is a :class:`ModelNotFoundError` with a one-line message.
    """
    if name_or_path == TINY_BERT:
        if train_texts is None:
            raise ValueError("tiny-bert trains its tokenizer on the training texts: pass train_texts=")
        return build_tiny_bert(train_texts, num_labels=num_labels, spec=spec, seed=seed)
    if looks_local(name_or_path):
        _check_local(name_or_path)
        name_or_path = str(Path(name_or_path).expanduser())
    kwargs = {"attn_implementation": attn_implementation} if attn_implementation else {}
    try:
        tokenizer = AutoTokenizer.from_pretrained(name_or_path, trust_remote_code=False)
        with torch.random.fork_rng():
            torch.manual_seed(seed)
            model = AutoModelForSequenceClassification.from_pretrained(
                name_or_path, num_labels=num_labels, trust_remote_code=False, **kwargs
            )
    except (OSError, ValueError, RuntimeError) as exc:
        if os.path.isdir(name_or_path) or "mismatched_sizes" in str(exc):
            raise _unloadable(name_or_path, num_labels, exc) from None
        if isinstance(exc, RuntimeError):
            raise
        raise _hub_unreachable(name_or_path, exc) from None
    return model, tokenizer


def _unloadable(folder: str, num_labels: int, exc: Exception) -> Exception:
    why = " ".join(str(exc).split())
    if "size mismatch" in why or "mismatched_sizes" in why:
        return ModelMismatchError(
            f"the model in {folder} has another number of classes than --num_labels {num_labels}; "
            "give the model's number of classes, or start from a base model without a classification head"
        )
    return ModelNotFoundError(f"cannot load the model or tokenizer in {folder}: {type(exc).__name__}: {why[:200]}")


def check_model_fits(model, tokenizer, *, max_length: int, num_labels: int, name: str) -> None:
    """Before training: every token id of ``tokenizer`` has an embedding row, ``max_length`` fits the
    model's position embeddings and the classification head has ``num_labels`` outputs.

    A mismatch is a :class:`ModelMismatchError` naming both numbers and the model ``name``.
    """
    rows = model.get_input_embeddings().num_embeddings
    if len(tokenizer) > rows:
        raise ModelMismatchError(
            f"the tokenizer of {name} has {len(tokenizer)} tokens but the model has {rows} embedding rows: "
            "token ids above that would crash training; use the tokenizer saved with this model"
        )
    positions = getattr(model.config, "max_position_embeddings", None)
    if isinstance(positions, int) and max_length > positions:
        raise ModelMismatchError(
            f"--max_length {max_length} is more than the {positions} positions of {name}; use --max_length {positions} or less"
        )
    outputs = getattr(model.config, "num_labels", num_labels)
    if outputs != num_labels:
        raise ModelMismatchError(f"the model {name} has {outputs} output classes, but --num_labels is {num_labels}")


def tokenize_dataset(data: Dataset | DatasetDict, tokenizer, max_length: int = 128) -> Dataset | DatasetDict:
    """Tokenize ``text`` (truncated to ``max_length``, no padding: the collator pads per batch).

    Keeps ``id`` and ``label``; drops the text so it cannot travel further than needed.
    """

    def encode(batch):
        return tokenizer(batch["text"], truncation=True, max_length=max_length)

    def one(ds: Dataset) -> Dataset:
        drop = [c for c in ds.column_names if c not in ("id", "label")]
        return ds.map(encode, batched=True, remove_columns=drop, desc="tokenize")

    if isinstance(data, DatasetDict):
        return DatasetDict({k: one(v) for k, v in data.items()})
    return one(data)
