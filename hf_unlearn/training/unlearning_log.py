"""Reading the unlearning log (see ``log_store.py`` for the layout)."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import torch
from safetensors import safe_open

from .log_store import (
    LOG_DIRNAME,
    LogError,
    load_tensors,
    model_structure,
    sorted_parts,
    step_files,
    trainable_named,
    weights_fingerprint,
)


@dataclass
class StepRecord:
    """One optimizer step: its epoch, learning rate and micro-batches (of every rank)."""

    step: int
    epoch: int
    lr: float
    micro_batches: list[dict] = field(default_factory=list)
    grad_norm: float | None = None  # before clipping; recorded with deltas when clipping is on

    @property
    def ids(self) -> list[str]:
        return [i for mb in self.micro_batches for i in mb["ids"]]

    def weight_of(self, example_id: str) -> float:
        """The example's coefficient in the step's gradient, ``1 / (|micro-batch| * GA * world_size)``."""
        return sum(mb["weight"] for mb in self.micro_batches for i in mb["ids"] if i == example_id)


class UnlearningLog:
    """A training run's unlearning log. ``UnlearningLog(run_dir)`` or ``UnlearningLog(run_dir / "unlearning_log")``.

    ``bytes_read`` counts the bytes of tensor files read, for the methods' statistics.
    """

    def __init__(self, path: str | Path):
        path = Path(path)
        if (path / LOG_DIRNAME / "meta.json").is_file():
            path = path / LOG_DIRNAME
        if not (path / "meta.json").is_file():
            raise LogError(
                f"no unlearning log at {path} (expected {LOG_DIRNAME}/meta.json): train with UnlearnableTrainer"
            )
        self.root = path
        try:
            self.meta = json.loads((path / "meta.json").read_text())
        except json.JSONDecodeError as exc:
            raise LogError(f"damaged {path / 'meta.json'}: {exc}") from exc
        self.bytes_read = 0
        self._steps: list[StepRecord] | None = None
        self._deltas: dict[int, list[Path]] | None = None

    # ---- belonging ---------------------------------------------------------------------------
    def check_model(self, model: torch.nn.Module, state: str = "final") -> None:
        """Raise ``LogError`` unless ``model`` is the model this log recorded.

        The trainable parameters' names and shapes must match; with ``state="final"`` (or
        ``"initial"``) their values must also hash to the fingerprint of w_T (or w_0);
        ``"any"`` checks the structure only.
        """
        named = trainable_named(model)
        structure = model_structure(named)
        expected = self.meta["structure"]
        if structure != expected:
            ours = {n: s for n, s, _ in structure}
            theirs = {n: s for n, s, _ in expected}
            diff = sorted(set(ours) ^ set(theirs)) or [n for n in ours if ours[n] != theirs.get(n)]
            raise LogError(
                f"this log belongs to another model ({self.meta['model_class']}, {len(expected)} trainable tensors; "
                f"the model has {len(structure)}); first differences: {diff[:5]}"
            )
        if state == "any":
            return
        key = "final_fingerprint" if state == "final" else "fingerprint"
        if self.meta.get(key) is None:
            raise LogError(f"the log has no {key} (was training interrupted before it ended?)")
        if weights_fingerprint(named) != self.meta[key]:
            raise LogError(
                f"the model's weights are not the {'trained (w_T)' if state == 'final' else 'initial (w_0)'} weights "
                "this log recorded: it belongs to another training run"
            )

    # ---- transcript ----------------------------------------------------------------------------
    def steps(self) -> list[StepRecord]:
        """Every optimizer step, micro-batches of all ranks merged, in step order."""
        if self._steps is None:
            merged: dict[int, StepRecord] = {}
            for part in sorted_parts(self.root / "transcript", "jsonl"):
                for line in part.read_text().splitlines():
                    r = json.loads(line)
                    rec = merged.setdefault(
                        r["step"], StepRecord(r["step"], r["epoch"], r["lr"], grad_norm=r.get("grad_norm"))
                    )
                    rec.micro_batches.extend({**mb, "rank": r["rank"]} for mb in r["micro_batches"])
            self._steps = [merged[s] for s in sorted(merged)]
            expected = list(range(1, len(self._steps) + 1))
            if [s.step for s in self._steps] != expected:
                raise LogError("the transcript has missing or repeated steps: the log is incomplete")
        return self._steps

    def steps_seeing(self, ids: Iterable[str]) -> list[StepRecord]:
        wanted = set(ids)
        return [s for s in self.steps() if wanted.intersection(s.ids)]

    def train_ids(self) -> set[str]:
        return {i for s in self.steps() for i in s.ids}

    def recorded_order(self) -> dict[int, list[list[str]]]:
        """``{epoch: [[ids of each global micro-batch]]}`` as trained."""
        folder = self.root / "order"
        files = sorted(folder.glob("epoch_*.json")) if folder.is_dir() else []
        if not files:
            raise LogError(f"no recorded data order in {folder}")
        return {int(d["epoch"]): d["batches"] for d in (json.loads(f.read_text()) for f in files)}

    # ---- tensors ------------------------------------------------------------------------------
    def _load(self, path: Path) -> dict[str, torch.Tensor]:
        tensors = load_tensors(path)
        self.bytes_read += path.stat().st_size
        return tensors

    def initial_state_dict(self) -> dict[str, torch.Tensor]:
        return self._load(self.root / "initial_weights.safetensors")

    def _delta_files(self) -> dict[int, list[Path]]:
        if self._deltas is None:
            self._deltas = step_files(self.root / "deltas")
        return self._deltas

    def delta_steps(self) -> list[int]:
        return sorted(self._delta_files())

    def delta(self, step: int) -> dict[str, torch.Tensor]:
        files = self._delta_files().get(step)
        if not files:
            raise LogError(f"no delta recorded for step {step} (record_deltas off, or deletable-only logging)")
        return self._load(files[0])

    def optimizer_final_state(self) -> tuple[dict[str, torch.Tensor], int]:
        """Adam's ``exp_avg_sq`` per trainable parameter after the last step, and the step count."""
        from .optimizer_record import FINAL_STATE

        path = self.root / FINAL_STATE
        if not path.is_file():
            raise LogError(
                f"no final optimizer state in {self.root} (recorded with record_deltas for Adam-type optimizers)"
            )
        with safe_open(str(path), "pt") as handle:
            step = int(handle.metadata()["step"])
        return self._load(path), step

    def per_sample_index(self) -> dict[str, torch.Tensor]:
        """Parameter name -> flat indices of the subset, in the column order of the per-sample gradients."""
        path = self.root / "per_sample" / "index.safetensors"
        tensors = self._load(path)
        with safe_open(str(path), "pt") as handle:
            order = json.loads(handle.metadata()["order"])
        return {name: tensors[name] for name in order}

    def per_sample(self, step: int) -> tuple[list[str], torch.Tensor]:
        """Ids and ``[n, k]`` per-sample subset gradients of a step (all ranks)."""
        files = step_files(self.root / "per_sample").get(step)
        if not files:
            raise LogError(f"no per-sample gradients recorded for step {step}")
        ids, grads = [], []
        for f in files:
            try:
                with safe_open(str(f), "pt") as handle:
                    ids.extend(json.loads(handle.metadata()["ids"]))
            except Exception as exc:  # noqa: BLE001 - any failure here means a damaged file
                raise LogError(f"damaged log file {f}: {exc}") from exc
            grads.append(self._load(f)["grads"])
        return ids, torch.cat(grads)

    # ---- tables -------------------------------------------------------------------------------
    def learning_events(self) -> pd.DataFrame:
        parts = sorted_parts(self.root / "events", "parquet")
        if not parts:
            raise LogError("no learning events in this log: train with record_learning_events=True")
        return pd.concat([pd.read_parquet(p) for p in parts], ignore_index=True)

    def error_proxy(self) -> list[dict]:
        return [
            json.loads(line)
            for p in sorted_parts(self.root / "error_proxy", "jsonl")
            for line in p.read_text().splitlines()
        ]

    def disk_bytes(self, sub: str | None = None) -> int:
        root = self.root / sub if sub else self.root
        return sum(f.stat().st_size for f in root.rglob("*") if f.is_file())
