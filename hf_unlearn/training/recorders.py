"""The records of the unlearning log: what is kept per micro-batch and per optimizer step, and how it
is written. When they are written is the log writer's business (``log_writer.py``).

- transcript: per optimizer step, epoch, learning rate and the ids of every micro-batch
  (all micro-batches of a gradient-accumulation step, every rank in its own file), with
  each example's weight in the step's gradient ``1 / (|micro-batch| * GA * world_size)``;
- batch deltas (Graves et al., "Amnesiac Machine Learning", AAAI 2021): the real update
  ``w_after - w_before`` of the trainable parameters. Stored compensated: each stored
  delta is ``w_after - (w_0 + sum of stored deltas so far)`` so rounding to a low-precision
  dtype never accumulates: ``w_0 + sum(deltas) = w_T`` up to one rounding;
- per-sample gradients on a fixed parameter subset (see ``per_sample.py``);
- learning events: per example per step, true-class confidence, max confidence, entropy,
  correctness (memorization proxies of Zhao et al., "What makes unlearning hard", NeurIPS 2024);
- the unlearning-error proxy series (see ``error_proxy.py``).

Every write goes through :meth:`Recorders.recording`, which keeps the file's sha256 (taken while
writing) in ``hashes`` for the log's manifest (``log_store.py``).

A new recorder is a buffer and an ``add_*`` method here, a flag in ``arguments.py`` and, if it
needs a training event, a line in ``log_writer.py``.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import pandas as pd
import torch

from .background_writes import BackgroundWrites
from .log_store import (
    atomic_save_tensors,
    atomic_write_bytes,
    atomic_write_json,
    part_name,
    recording_into,
    step_file,
)

DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


class Recorders:
    """Buffers a rank's records in memory and writes them under ``root``."""

    def __init__(self, root: Path, args, deletable_ids: set[str] | None = None):
        self.root, self.args = root, args
        self.rank, self.world_size = args.process_index, args.world_size
        self.is_main = args.process_index == 0
        self.delta_dtype = DTYPES[args.delta_dtype]
        self.deletable = deletable_ids
        self.transcript: list[dict] = []
        self.events: list[dict] = []
        self.proxy: list[dict] = []
        self.micro_batches: list[dict] = []
        self.per_sample_rows: list[torch.Tensor] = []
        self.reference: dict[str, torch.Tensor] | None = None
        self.grad_norm: float | None = None  # set by the trainer before clipping
        self.writes = BackgroundWrites()  # deltas and per-sample files, written while the next step runs
        self.hashes: dict[str, str] = {}  # relative path -> sha256 of what this process wrote

    def recording(self):
        """Context: the files written inside it have their sha256 kept in ``hashes``."""
        return recording_into(self.hashes, self.root)

    # ---- what the trainer reports for each micro-batch -------------------------------------
    def add_micro_batch(self, ids: list[str], epoch: int, pos: int, denominator: int) -> None:
        self.micro_batches.append({"pos": pos, "epoch": epoch, "ids": list(ids), "weight": 1.0 / denominator})

    def add_per_sample(self, grads: torch.Tensor) -> None:
        self.per_sample_rows.append(grads.detach().cpu())

    def add_events(self, ids: list[str], logits: torch.Tensor, labels: torch.Tensor, step: int, epoch: int) -> None:
        with torch.no_grad():
            probs = torch.softmax(logits.detach().float(), dim=-1)
            true = probs.gather(1, labels.view(-1, 1).long()).squeeze(1)
            maxp, pred = probs.max(dim=-1)
            entropy = -(probs * probs.clamp_min(1e-12).log()).sum(-1)
        for j, i in enumerate(ids):
            self.events.append(
                {
                    "id": i,
                    "step": step,
                    "epoch": epoch,
                    "confidence": float(true[j]),
                    "max_confidence": float(maxp[j]),
                    "entropy": float(entropy[j]),
                    "correct": bool(pred[j] == labels[j]),
                }
            )

    def add_error_proxy(self, record: dict) -> None:
        self.proxy.append(record)

    def record_order(self, epoch: int, batches: list[list[str]]) -> None:
        if self.is_main:
            with self.recording():
                atomic_write_json(
                    self.root / "order" / f"epoch_{epoch:05d}.json", {"epoch": epoch, "batches": batches}
                )

    # ---- per optimizer step ----------------------------------------------------------------------
    def take_reference(self, named: list[tuple[str, torch.Tensor]]) -> None:
        """Remember the trainable weights (the delta of the next recorded step is taken against them)."""
        self.reference = {n: p.detach().float().clone() for n, p in named}

    def step_touches_deletable(self) -> bool:
        return self.deletable is None or any(i in self.deletable for mb in self.micro_batches for i in mb["ids"])

    def end_step(self, step: int, lr: float, named: list[tuple[str, torch.Tensor]]) -> None:
        """The optimizer has taken step ``step``: record it (transcript, delta, per-sample gradients)."""
        epochs = {mb["epoch"] for mb in self.micro_batches}
        record = {
            "step": step,
            "epoch": min(epochs) if epochs else None,
            "lr": lr,
            "rank": self.rank,
            "micro_batches": self.micro_batches,
        }
        if self.grad_norm is not None:
            record["grad_norm"] = self.grad_norm
            self.grad_norm = None
        if self.args.record_transcript:
            self.transcript.append(record)
        if self.args.record_deltas and self.is_main:
            self._write_delta(step, named)
        if self.args.record_per_sample and self.per_sample_rows:
            grads = torch.cat(self.per_sample_rows)
            ids = [i for mb in self.micro_batches for i in mb["ids"]]
            path = self.root / "per_sample" / step_file(step, self.rank)
            meta = {"ids": json.dumps(ids), "lr": repr(lr)}
            self._write_tensors(path, {"grads": grads}, meta)
        self.micro_batches, self.per_sample_rows = [], []

    def _write_delta(self, step: int, named: list[tuple[str, torch.Tensor]]) -> None:
        if self.deletable is not None and not self.step_touches_deletable():
            return
        deltas = {}
        with torch.no_grad():
            for name, p in named:
                ref = self.reference[name]
                d = (p.detach().float() - ref).to(self.delta_dtype)
                deltas[name] = d
                if self.deletable is None:  # compensated: the reference follows the stored deltas
                    ref += d.float()
        self._write_tensors(self.root / "deltas" / step_file(step), deltas)

    def _write_tensors(self, path: Path, tensors: dict, metadata: dict | None = None) -> None:
        """One safetensors file of this step, hashed for the manifest, on the writer thread."""

        def write() -> Path:
            with self.recording():
                return atomic_save_tensors(path, tensors, metadata=metadata)

        self.writes.submit(write)

    # ---- writing ---------------------------------------------------------------------------------
    def flush(self, step: int) -> None:
        """Write buffered records as part files ending at ``step`` (before the checkpoint of ``step``),
        after every queued per-step file is on disk."""
        self.writes.drain()
        with self.recording():
            self._flush(step)

    def _flush(self, step: int) -> None:
        if self.transcript:
            text = "".join(json.dumps(r, sort_keys=True) + "\n" for r in self.transcript)
            atomic_write_bytes(self.root / "transcript" / part_name(self.rank, step, "jsonl"), text.encode())
            self.transcript = []
        if self.events:
            buf = io.BytesIO()
            pd.DataFrame(self.events).to_parquet(buf, index=False)
            atomic_write_bytes(self.root / "events" / part_name(self.rank, step, "parquet"), buf.getvalue())
            self.events = []
        if self.proxy:
            text = "".join(json.dumps(r, sort_keys=True) + "\n" for r in self.proxy)
            atomic_write_bytes(self.root / "error_proxy" / part_name(self.rank, step, "jsonl"), text.encode())
            self.proxy = []
