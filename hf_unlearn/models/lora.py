"""LoRA on a sequence classifier, and the frozen base model it adapts.

LoRA (Hu et al., "LoRA: Low-Rank Adaptation of Large Language Models", 2021) keeps each target
weight ``W_0`` frozen and learns ``W = W_0 + (alpha / r) * B A`` with ``A`` (r x k, random) and
``B`` (d x r, zeros at the start), so a run's trainable state (and its unlearning log) is the
adapters plus the classification head (PEFT's ``modules_to_save``), not the whole model.

A LoRA folder (a training run, an unlearned model) holds the adapter (``adapter_config.json``,
``adapter_model.safetensors``), the tokenizer and ``base_model.json`` (:data:`BASE_MODEL_FILE`):
where the base comes from (Hub name or local path, its Hub id for a card's ``base_model``) and the
sha256 fingerprint of every base weight the adapter does not carry. A base that cannot be loaded
again by name (``tiny-bert``, built from a seed) is saved beside the adapter in ``base_model/``.
Loading checks the fingerprint first, so an adapter is never put on another base.
"""

from __future__ import annotations

import contextlib
import copy
import json
import shutil
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from ..artifacts import (
    ADAPTER_CONFIG_FILE,
    ADAPTER_WEIGHTS_FILE,
    BASE_MODEL_DIRNAME,
    BASE_MODEL_FILE,
    LORA_HEAD_MODULES,
    atomic_save_tensors,
    atomic_write_json,
)
from .loading import ModelMismatchError, ModelNotFoundError, load_base_model, resolve_model_name, weights_digest


@dataclass
class LoraSettings:
    """TRL ``ModelConfig``'s LoRA fields (``lora_r`` ... ``lora_modules_to_save``) without the prefix."""

    r: int = 16
    alpha: int = 32
    dropout: float = 0.05
    target_modules: list[str] | None = None  # None: PEFT's default for the architecture (BERT: query, value)
    modules_to_save: list[str] | None = None  # trained in full and saved with the adapter (the head always is)

    def check(self) -> None:
        if self.r < 1:
            raise ValueError(f"--lora_r {self.r}: must be >= 1")
        if self.alpha <= 0:
            raise ValueError(f"--lora_alpha {self.alpha}: must be > 0")
        if not 0 <= self.dropout < 1:
            raise ValueError(f"--lora_dropout {self.dropout}: must be in [0, 1)")

    def saved_modules(self) -> list[str]:
        """Module names whose full weights live in the adapter: the user's plus the head."""
        return sorted({*(self.modules_to_save or ()), *LORA_HEAD_MODULES})


def apply_lora(model: torch.nn.Module, settings: LoraSettings, *, seed: int = 0):
    """``model`` wrapped by ``peft.get_peft_model`` (task SEQ_CLS); the adapters' ``A`` drawn from ``seed``.

    Only the adapters and ``settings.saved_modules()`` train; every other weight is frozen.
    """
    from peft import LoraConfig, TaskType, get_peft_model

    settings.check()
    config = LoraConfig(
        task_type=TaskType.SEQ_CLS,
        r=settings.r,
        lora_alpha=settings.alpha,
        lora_dropout=settings.dropout,
        target_modules=settings.target_modules,
        modules_to_save=settings.modules_to_save,
    )
    try:
        with torch.random.fork_rng(), _quiet_peft():
            torch.manual_seed(seed)
            return get_peft_model(model, config)
    except ValueError as exc:  # e.g. a target module that is not in the model
        raise ModelMismatchError(f"LoRA does not fit this model: {' '.join(str(exc).split())[:240]}") from None


def is_lora_folder(folder: str | Path) -> bool:
    return (Path(folder) / ADAPTER_CONFIG_FILE).is_file()


def is_lora_model(model) -> bool:
    return hasattr(model, "peft_config") and hasattr(model, "get_base_model")


def base_fingerprint(model: torch.nn.Module, saved_modules) -> str:
    """sha256 of the frozen base: names, shapes, dtypes and bytes of every weight of the plain (not yet
    wrapped) ``model`` except those of ``saved_modules``, whose trained copies the adapter carries."""
    skip = tuple(saved_modules)

    def carried(name: str) -> bool:
        return any(part in skip for part in name.split("."))

    return weights_digest([(n, t) for n, t in model.state_dict().items() if not carried(n)])


def frozen_base_state(model) -> dict[str, torch.Tensor]:
    """The frozen base weights of a wrapped model (names without ``lora_`` / ``modules_to_save``), copied:
    what no unlearning method may change."""
    return {
        n: t.detach().clone() for n, t in model.state_dict().items() if "lora_" not in n and "modules_to_save" not in n
    }


@dataclass
class BaseModelRecord:
    """``base_model.json``: the base a LoRA folder's adapter belongs to."""

    name_or_path: str
    fingerprint: str
    saved_modules: list[str]
    hub_id: str | None = None  # the card's ``base_model`` (None: a local or offline-built base)
    saved_in_folder: bool = False  # its weights are in ``base_model/`` beside the adapter
    init_seed: int = 0  # seeds weights the base checkpoint does not have (e.g. a new pre-classifier)
    lora: dict = field(default_factory=dict)

    @classmethod
    def read(cls, folder: str | Path) -> BaseModelRecord:
        path = Path(folder) / BASE_MODEL_FILE
        if not path.is_file():
            raise ModelNotFoundError(
                f"{folder} holds an adapter but no {BASE_MODEL_FILE}: it was not written by hf-unlearn"
            )
        values = json.loads(path.read_text(encoding="utf-8"))
        return cls(**{k: v for k, v in values.items() if k in cls.__dataclass_fields__})


def base_record(name_or_path: str, base, settings: LoraSettings, *, hub_id: str | None, seed: int, save_base: bool):
    """The record of ``base`` (the plain model, before :func:`apply_lora`)."""
    saved = settings.saved_modules()
    return BaseModelRecord(
        name_or_path=name_or_path,
        fingerprint=base_fingerprint(base, saved),
        saved_modules=saved,
        hub_id=hub_id,
        saved_in_folder=save_base,
        init_seed=seed,
        lora=asdict(settings),
    )


def save_adapter(model, folder: str | Path, record: BaseModelRecord, *, base=None) -> None:
    """Write the adapter, ``base_model.json`` and (``record.saved_in_folder``) the base into ``folder``.

    The adapter is written from PEFT's state dict and config, not ``save_pretrained``, so no PEFT
    boilerplate card is left behind (the card comes from ``push``); the config names the base by its
    Hub id only (never a local path). ``base`` is the plain model before :func:`apply_lora`, or the
    ``base_model/`` folder of another LoRA folder to copy (an unlearned model of a run).
    """
    from peft import get_peft_model_state_dict

    if record.saved_in_folder and base is None:  # the wrapped model's base has the adapters injected
        raise ValueError("save_adapter: a base saved in the folder needs base= (the plain model before apply_lora)")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().cpu().contiguous() for k, v in get_peft_model_state_dict(model).items()}
    atomic_save_tensors(folder / ADAPTER_WEIGHTS_FILE, tensors, metadata={"format": "pt"})
    config = copy.deepcopy(model.peft_config["default"])
    config.base_model_name_or_path = record.hub_id
    atomic_write_json(folder / ADAPTER_CONFIG_FILE, json.loads(json.dumps(config.to_dict(), default=list)))
    atomic_write_json(folder / BASE_MODEL_FILE, asdict(record))
    if record.saved_in_folder:
        if isinstance(base, (str, Path)):  # the base/ folder of another LoRA folder (a run): copied as is
            shutil.copytree(base, folder / BASE_MODEL_DIRNAME)
        else:
            base.save_pretrained(folder / BASE_MODEL_DIRNAME, safe_serialization=True)


def load_lora_model(folder: str | Path, *, num_labels: int, attn_implementation: str | None = None):
    """The PEFT model saved in ``folder`` (trainable adapters), on its base, checked by fingerprint first.

    A base whose fingerprint differs from the recorded one (another checkpoint under the same name,
    another seed for a new layer) is a :class:`ModelMismatchError`: the adapter was not trained on it.
    """
    from peft import PeftModel

    folder = Path(folder)
    record = BaseModelRecord.read(folder)
    source = str(folder / BASE_MODEL_DIRNAME) if record.saved_in_folder else resolve_model_name(record.name_or_path)[0]
    base = load_base_model(
        source, num_labels=num_labels, seed=record.init_seed, attn_implementation=attn_implementation
    )
    found = base_fingerprint(base, record.saved_modules)
    if found != record.fingerprint:
        raise ModelMismatchError(
            f"the base model {record.name_or_path!r} is not the one the adapter in {folder} was trained on "
            f"(weights fingerprint {record.fingerprint[:12]}... recorded, {found[:12]}... now); "
            "give the run's own base model"
        )
    with _quiet_peft():
        return PeftModel.from_pretrained(base, str(folder), is_trainable=True)


@contextlib.contextmanager
def _quiet_peft():
    """Silences the FutureWarning peft triggers under transformers 5 by reading the deprecated
    ``is_gradient_checkpointing`` when it wraps a model (nothing a user can act on). Can go when peft
    reads ``is_activation_checkpointing``."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
        yield


def merged_model(model):
    """A plain ``transformers`` model with the adapters merged in (``W_0 + (alpha / r) B A``), on a copy."""
    return copy.deepcopy(model).merge_and_unload()


def load_classifier(folder: str | Path, *, num_labels: int | None = None, attn_implementation: str | None = None):
    """(model, is_lora): the classifier saved in ``folder``, the ONE loader of run and output folders.

    A LoRA folder (:func:`is_lora_folder`) loads through :func:`load_lora_model` (base checked by its
    fingerprint); any other through ``AutoModelForSequenceClassification`` (remote code never trusted).
    ``num_labels`` defaults to the folder's own (a LoRA base: the number of classes its head has).
    """
    from transformers import AutoModelForSequenceClassification

    if is_lora_folder(folder):
        labels = num_labels if num_labels is not None else _adapter_num_labels(folder)
        return load_lora_model(folder, num_labels=labels, attn_implementation=attn_implementation), True
    kwargs = {"attn_implementation": attn_implementation} if attn_implementation else {}
    if num_labels is not None:
        kwargs["num_labels"] = num_labels
    return AutoModelForSequenceClassification.from_pretrained(str(folder), trust_remote_code=False, **kwargs), False


def _adapter_num_labels(folder: str | Path) -> int:
    """The number of classes of the head saved in an adapter (its bias / weight rows)."""
    from safetensors import safe_open

    with safe_open(str(Path(folder) / ADAPTER_WEIGHTS_FILE), framework="pt") as f:
        heads = [k for k in f.keys() if any(h in k.split(".") for h in LORA_HEAD_MODULES)]
        last = sorted(k for k in heads if k.endswith("bias")) or sorted(heads)
        if not last:
            raise ModelNotFoundError(f"the adapter in {folder} carries no classification head: give --num_labels")
        return int(f.get_slice(last[-1]).get_shape()[0])
