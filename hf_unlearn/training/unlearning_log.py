"""Reading the unlearning log (see ``log_store.py`` for the layout), verified before use.

What is verified when (a failure is a ``LogError``, an ``artifacts.IntegrityError``, naming the file):

- on open: ``manifest.json`` exists (else the log is incomplete: training did not finish) and is
  of kind ``unlearning_log``; the files on disk are exactly those it lists (no hashing);
  ``meta.json`` and every transcript part match their sha256; the transcript parts are exactly
  those ``meta.json`` records, and every rank's lines cover steps ``1..global_step`` exactly once;
- on first read: every other file (w_0, deltas, per-sample gradients and index, the optimizer's
  final state, the data order, learning events, the error proxy) is hashed the first time a request
  reads it, once per ``UnlearningLog`` (a request hashes only what it reads). Tensor files are
  hashed by a streamed pass and then memory-mapped (small files: the hashed bytes are the ones used).
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import torch

from ..models import weights_digest
from .log_store import (
    LOG_DIRNAME,
    MANIFEST_FILE,
    META_FILE,
    LogDamagedError,
    LogError,
    TranscriptCheck,
    VerifiedFiles,
    model_structure,
    safetensors_metadata,
    tensors_from_file,
    trainable_named,
)
from .log_store import PART_RE as _PART
from .log_store import STEP_RE as _STEP
from .optimizer_record import FINAL_STATE


def _refuse_old_format(root: Path) -> None:
    """A finished log of format 1 (hf_unlearn <= 0.2.0) has no manifest: say so, not "incomplete"."""
    try:
        meta = json.loads((root / META_FILE).read_text())
    except (OSError, ValueError):
        return
    if isinstance(meta, dict) and meta.get("format_version", 1) < 2 and meta.get("completed"):
        raise LogError(
            f"{root} is an unlearning log of format_version {meta.get('format_version', 1)} (hf_unlearn <= 0.2.0), "
            f"written without {MANIFEST_FILE}: it cannot be verified; train the run again"
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
        if (path / LOG_DIRNAME).is_dir():
            path = path / LOG_DIRNAME
        if not (path / META_FILE).is_file() and not (path / MANIFEST_FILE).is_file():
            raise LogError(
                f"no unlearning log at {path} (expected {LOG_DIRNAME}/{META_FILE}): train with UnlearnableTrainer"
            )
        self.root = path
        if not (path / MANIFEST_FILE).is_file():
            _refuse_old_format(path)
        self.files = VerifiedFiles(path)
        self.meta = self._read_meta()
        self.bytes_read = 0
        self._steps = self._read_transcript()

    def _read_meta(self) -> dict:
        """``meta.json``, verified; a manifest of another log is named as such."""
        manifest_id = (self.files.manifest.get("extra") or {}).get("log_id")
        try:
            meta_id = json.loads((self.root / META_FILE).read_bytes()).get("log_id")
        except (OSError, ValueError, AttributeError):
            meta_id = None
        hint = None
        if meta_id is not None and manifest_id != meta_id:
            hint = (
                f"{self.root / MANIFEST_FILE} belongs to another log (log id {manifest_id}, {META_FILE} says "
                f"{meta_id}): the log cannot be verified; restore its own manifest, or train again"
            )
        data = self.files.read(META_FILE, other_log_hint=hint)
        if hint:
            raise LogDamagedError(hint)
        try:
            return json.loads(data)
        except ValueError as exc:
            raise LogDamagedError(f"damaged {self.root / META_FILE}: {exc}") from exc

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
        if weights_digest(named) != self.meta[key]:
            raise LogError(
                f"the model's weights are not the {'trained (w_T)' if state == 'final' else 'initial (w_0)'} weights "
                "this log recorded: it belongs to another training run"
            )

    # ---- transcript ----------------------------------------------------------------------------
    def _read_transcript(self) -> list[StepRecord]:
        """The transcript parts, verified, checked to be exactly those ``meta.json`` records and to
        cover steps ``1..global_step`` once per rank; merged into one record per step."""
        check = TranscriptCheck(self.root, self.meta)
        check.parts(self.files.names("transcript"))
        merged: dict[int, StepRecord] = {}
        for rel in check.expected_parts:
            for r in check.lines(rel, self.files.read(rel)):
                rec = merged.setdefault(
                    r["step"], StepRecord(r["step"], r["epoch"], r["lr"], grad_norm=r.get("grad_norm"))
                )
                rec.micro_batches.extend({**mb, "rank": r["rank"]} for mb in r["micro_batches"])
        check.coverage()
        return [merged[s] for s in sorted(merged)]

    def steps(self) -> list[StepRecord]:
        """Every optimizer step, micro-batches of all ranks merged, in step order (verified on open)."""
        return self._steps

    def steps_seeing(self, ids: Iterable[str]) -> list[StepRecord]:
        wanted = set(ids)
        return [s for s in self.steps() if wanted.intersection(s.ids)]

    def train_ids(self) -> set[str]:
        return {i for s in self.steps() for i in s.ids}

    def recorded_order(self) -> dict[int, list[list[str]]]:
        """``{epoch: [[ids of each global micro-batch]]}`` as trained."""
        rels = [r for r in self.files.names("order") if r.endswith(".json")]
        if not rels:
            raise LogError(f"no recorded data order in {self.root / 'order'}")
        out = {}
        for rel in rels:
            data = self.files.read(rel)
            try:
                d = json.loads(data)
                out[int(d["epoch"])] = d["batches"]
            except (ValueError, KeyError, TypeError) as exc:
                raise LogDamagedError(f"damaged log file {self.root / rel} ({exc.__class__.__name__})") from exc
        return out

    # ---- tensors (each file verified against the manifest the first time it is read) -----------
    def _checked(self, rel: str) -> Path:
        path = self.files.check(rel)
        self.bytes_read += path.stat().st_size
        return path

    def _load(self, rel: str) -> dict[str, torch.Tensor]:
        return tensors_from_file(self._checked(rel))

    def initial_state_dict(self) -> dict[str, torch.Tensor]:
        return self._load("initial_weights.safetensors")

    def _step_files(self, folder: str) -> dict[int, list[str]]:
        out: dict[int, list[str]] = {}
        for rel in self.files.names(folder):
            m = _STEP.search(rel)
            if m:
                out.setdefault(int(m.group(1)), []).append(rel)
        return out

    def delta_steps(self) -> list[int]:
        return sorted(self._step_files("deltas"))

    def _delta_file(self, step: int) -> str:
        files = self._step_files("deltas").get(step)
        if not files:
            raise LogError(f"no delta recorded for step {step} (record_deltas off, or deletable-only logging)")
        return files[0]

    def delta(self, step: int) -> dict[str, torch.Tensor]:
        return self._load(self._delta_file(step))

    def deltas(self, steps: Iterable[int]) -> Iterator[tuple[int, dict[str, torch.Tensor]]]:
        """``(step, delta)`` for ``steps`` in order; the files are verified ahead, in parallel, while the
        caller uses the earlier ones (what a rollback of many steps spends on verification shrinks)."""
        steps = list(steps)
        paths = self.files.verified_in_order([self._delta_file(step) for step in steps])
        for step, path in zip(steps, paths):
            self.bytes_read += path.stat().st_size
            yield step, tensors_from_file(path)

    def optimizer_final_state(self) -> tuple[dict[str, torch.Tensor], int]:
        """Adam's ``exp_avg_sq`` per trainable parameter after the last step, and the step count."""
        if FINAL_STATE not in self.files.listed:
            raise LogError(
                f"no final optimizer state in {self.root} (recorded with record_deltas for Adam-type optimizers)"
            )
        path = self._checked(FINAL_STATE)
        try:
            step = int(safetensors_metadata(path)["step"])
        except (KeyError, ValueError) as exc:
            raise LogDamagedError(f"damaged log file {self.root / FINAL_STATE} (no step count)") from exc
        return tensors_from_file(path), step

    def per_sample_index(self) -> dict[str, torch.Tensor]:
        """Parameter name -> flat indices of the subset, in the column order of the per-sample gradients."""
        rel = "per_sample/index.safetensors"
        if rel not in self.files.listed:
            raise LogError(f"no per-sample subset in {self.root} (train with record_per_sample=True)")
        path = self._checked(rel)
        tensors = tensors_from_file(path)
        try:
            order = json.loads(safetensors_metadata(path)["order"])
            return {name: tensors[name] for name in order}
        except (KeyError, ValueError, TypeError) as exc:
            raise LogDamagedError(f"damaged log file {self.root / rel} (its parameter order)") from exc

    def per_sample(self, step: int) -> tuple[list[str], torch.Tensor]:
        """Ids and ``[n, k]`` per-sample subset gradients of a step (all ranks)."""
        files = self._step_files("per_sample").get(step)
        if not files:
            raise LogError(f"no per-sample gradients recorded for step {step}")
        ids, grads = [], []
        for rel in files:
            path = self._checked(rel)
            try:
                ids.extend(json.loads(safetensors_metadata(path)["ids"]))
            except (KeyError, ValueError, TypeError) as exc:
                raise LogDamagedError(f"damaged log file {self.root / rel} (its ids)") from exc
            grads.append(tensors_from_file(path)["grads"])
        return ids, torch.cat(grads)

    # ---- tables -------------------------------------------------------------------------------
    def _parts(self, folder: str, ext: str) -> list[str]:
        keyed = [(int(m.group(2)), int(m.group(1)), r) for r in self.files.names(folder) if (m := _PART.search(r))]
        return [r for _, _, r in sorted(keyed) if r.endswith("." + ext)]

    def learning_events(self) -> pd.DataFrame:
        parts = self._parts("events", "parquet")
        if not parts:
            raise LogError("no learning events in this log: train with record_learning_events=True")
        frames = []
        for rel in parts:
            data = self.files.read(rel)
            try:
                frames.append(pd.read_parquet(io.BytesIO(data)))
            except (OSError, ValueError) as exc:
                raise LogDamagedError(f"damaged log file {self.root / rel} ({exc.__class__.__name__})") from exc
        return pd.concat(frames, ignore_index=True)

    def error_proxy(self) -> list[dict]:
        out = []
        for rel in self._parts("error_proxy", "jsonl"):
            data = self.files.read(rel)
            try:
                out.extend(json.loads(line) for line in data.decode().splitlines())
            except ValueError as exc:
                raise LogDamagedError(f"damaged log file {self.root / rel} ({exc.__class__.__name__})") from exc
        return out

    def disk_bytes(self, sub: str | None = None) -> int:
        root = self.root / sub if sub else self.root
        return sum(f.stat().st_size for f in root.rglob("*") if f.is_file())
