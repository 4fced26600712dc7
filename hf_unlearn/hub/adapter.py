"""A LoRA folder on the Hub: the adapter with its base named, or the merged model (``--merge_adapter``).

A LoRA folder (``hf_unlearn.models.lora``) holds ``adapter_config.json``, ``adapter_model.safetensors``,
the tokenizer, and the private ``base_model.json`` (local path and fingerprint of the base) with, for
a base that has no Hub name (``tiny-bert``), the base itself in ``base_model/``. Neither private part
is uploaded. Two ways to publish it:

- **adapter** (default): the adapter files as PEFT reads them, ``adapter_config.json``'s
  ``base_model_name_or_path`` set to the base's Hub id, and a card whose metadata says
  ``base_model: <hub id>``, ``base_model_relation: adapter``, ``library_name: peft`` (what the Hub
  shows as "Adapters" of the base). The Hub id is ``base_model.json``'s ``hub_id`` or ``--base_model``;
  a base without one (a local folder, ``tiny-bert``) needs ``--base_model`` or ``--merge_adapter``.
- **merged**: ``W = W_0 + (alpha / r) B A`` folded into the base (LoRA: Hu et al., "LoRA: Low-Rank
  Adaptation of Large Language Models", 2021) and written with ``save_pretrained``: ``config.json`` +
  ``model.safetensors`` that load with ``AutoModelForSequenceClassification`` alone. The card names
  the base, when it has a Hub id, with ``base_model_relation: finetune`` (the weights are the base's,
  fine-tuned; the Hub's ``merge`` is for several models merged into one).

This module imports torch (through ``hf_unlearn.models``) only to merge.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from ..artifacts import (
    ADAPTER_CONFIG_FILE,
    ADAPTER_WEIGHTS_FILE,
    BASE_MODEL_DIRNAME,
    BASE_MODEL_FILE,
    atomic_write_json,
)
from ..cards.privacy import redact_local_paths
from .errors import RunDirError

ADAPTER_FILES = (ADAPTER_CONFIG_FILE, ADAPTER_WEIGHTS_FILE)
BASE_FILES = (BASE_MODEL_FILE, BASE_MODEL_DIRNAME + "/")  # read (and so verified) to publish, never uploaded


@dataclass
class LoraUpload:
    """How a LoRA folder is published: ``merge`` or the adapter; ``base_model``: the card's Hub id (or None)."""

    merge: bool
    base_model: str | None

    @property
    def kind(self) -> str:
        """What the card calls it (``cards.card.render_card``'s ``lora``)."""
        return "merged" if self.merge else "adapter"


def is_lora_folder(folder: Path) -> bool:
    return (Path(folder) / ADAPTER_CONFIG_FILE).is_file()


def _recorded_hub_id(run_dir: Path) -> str | None:
    path = run_dir / BASE_MODEL_FILE
    if not path.is_file():
        raise RunDirError(
            f"{run_dir} holds an adapter but no {BASE_MODEL_FILE}: publish a LoRA folder written by hf-unlearn"
        )
    try:
        return json.loads(path.read_text(encoding="utf-8")).get("hub_id")
    except (OSError, ValueError, AttributeError) as e:
        raise RunDirError(f"{path} is not a valid base-model record: {e}") from None


def plan_lora_upload(run_dir: Path, *, base_model: str | None, merge: bool) -> LoraUpload:
    """The :class:`LoraUpload` of ``run_dir``, or a one-line :class:`RunDirError` (before any work) when
    the adapter is to be published and its base has no Hub id and ``base_model`` (``--base_model``) is not given."""
    if base_model:
        from huggingface_hub.utils import validate_repo_id

        try:
            validate_repo_id(base_model)
        except ValueError:
            raise RunDirError(f"--base_model {base_model!r} is not a Hub repo id (user/name or name)") from None
    hub_id = base_model or _recorded_hub_id(run_dir)
    if not merge and not hub_id:
        raise RunDirError(
            f"the base model of the adapter in {run_dir} has no Hub id (a local folder or tiny-bert), so the "
            "card's base_model cannot name it: give --base_model REPO_ID (the base's repo on the Hub), or "
            "publish the merged model with --merge_adapter"
        )
    return LoraUpload(merge=merge, base_model=hub_id)


def check_adapter_files(run_dir: Path, chosen: list[str]) -> None:
    missing = [f for f in ADAPTER_FILES if f not in chosen]
    if missing:
        raise RunDirError(f"{run_dir} is a LoRA folder without {', '.join(missing)}: write it again with hf-unlearn")


def write_adapter_config(run_dir: Path, folder: Path, hub_id: str) -> None:
    """``adapter_config.json`` as PEFT reads it, its base named by ``hub_id`` (never a local path)."""
    config = json.loads((run_dir / ADAPTER_CONFIG_FILE).read_text(encoding="utf-8"))
    config["base_model_name_or_path"] = hub_id
    config, _ = redact_local_paths(config)
    atomic_write_json(folder / ADAPTER_CONFIG_FILE, config, indent=2)


def write_merged_model(run_dir: Path, folder: Path) -> None:
    """The adapter merged into its base (checked against its fingerprint first), saved as ``config.json`` +
    ``model.safetensors`` with local paths removed from the config."""
    from ..models import load_classifier, merged_model

    model = merged_model(load_classifier(run_dir)[0])
    model.save_pretrained(folder, safe_serialization=True)
    config_path = folder / "config.json"
    config, changed = redact_local_paths(json.loads(config_path.read_text(encoding="utf-8")))
    if changed:
        atomic_write_json(config_path, config, indent=2)
