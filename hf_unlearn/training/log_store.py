"""The unlearning log: what a training run recorded so its data can be deleted later.

Layout under ``output_dir/unlearning_log/`` (safetensors for tensors, JSON/parquet indexes)::

    meta.json                      model fingerprint, recorders, dtype, p, seeds, versions; with
                                   deltas, the optimizer's class, groups and max_grad_norm
    optimizer_final.safetensors    with deltas and an Adam-type optimizer: exp_avg_sq after the last step
    initial_weights.safetensors    w_0 (every parameter), for rollback, the twin and single-gradient
    order/epoch_00000.json         the global micro-batches of each epoch, by id
    transcript/rank0-00000040.jsonl   one line per optimizer step: step, epoch, lr, micro-batches
                                   (and, with deltas and clipping, the pre-clip gradient norm)
    deltas/step_00000040.safetensors  w_after - w_before of the trainable parameters
    per_sample/index.safetensors   the parameter subset (flat indices per parameter)
    per_sample/step_00000040.rank0.safetensors   [examples in step, k] per-sample gradients
    events/rank0-00000040.parquet  learning events (id, step, true-class confidence, ...)
    error_proxy/rank0-00000040.jsonl   unlearning-error proxy series

Every file is written through ``artifacts.atomic_write`` (a unique temporary name, fsync, rename),
so a reader never sees half a file.
Part files are flushed before each checkpoint, so a resumed run truncates the log to the
checkpoint's step and continues without a gap or a duplicate.
"""

from __future__ import annotations

import hashlib
import re
import shutil
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file

# The log is written through the package's one atomic writer; the names stay importable from here.
from ..artifacts import LOG_DIRNAME, atomic_save_tensors, atomic_write_bytes, atomic_write_json  # noqa: F401

FORMAT_VERSION = 1
_PART = re.compile(r"rank(\d+)-(\d+)\.(jsonl|parquet)$")
_STEP = re.compile(r"step_(\d+)(?:\.rank(\d+))?\.safetensors$")


class LogError(ValueError):
    """The unlearning log is missing, damaged, or does not belong to the model at hand."""


def load_tensors(path: Path) -> dict[str, torch.Tensor]:
    """Load a safetensors file; a damaged or truncated one is a ``LogError`` naming it."""
    if not path.is_file():
        raise LogError(f"missing log file: {path}")
    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError) as exc:
        raise LogError(f"damaged log file {path} ({exc}); the log cannot be used for this step") from exc


def model_structure(named: list[tuple[str, torch.Tensor]]) -> list[list]:
    return [[n, list(t.shape), str(t.dtype).replace("torch.", "")] for n, t in named]


def weights_fingerprint(named: list[tuple[str, torch.Tensor]]) -> str:
    """sha256 over names, shapes, dtypes and bytes of the given tensors, in order."""
    h = hashlib.sha256()
    for name, t in named:
        t = t.detach().cpu().contiguous()
        h.update(f"{name}|{list(t.shape)}|{t.dtype}\n".encode())
        h.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def trainable_named(model: torch.nn.Module) -> list[tuple[str, torch.Tensor]]:
    return [(n, p) for n, p in model.named_parameters() if p.requires_grad]


def part_name(rank: int, end_step: int, ext: str) -> str:
    return f"rank{rank}-{end_step:08d}.{ext}"


def step_file(step: int, rank: int | None = None) -> str:
    return f"step_{step:08d}" + (f".rank{rank}" if rank is not None else "") + ".safetensors"


def truncate_log(root: Path, keep_until_step: int) -> int:
    """Remove every record after ``keep_until_step`` (a resumed run redoes those steps). Returns files removed."""
    removed = 0
    for sub in ("transcript", "events", "error_proxy"):
        for f in (root / sub).glob("rank*-*.*") if (root / sub).is_dir() else []:
            m = _PART.search(f.name)
            if m and int(m.group(2)) > keep_until_step:
                f.unlink(missing_ok=True)  # every rank truncates; another may have been first
                removed += 1
    for sub in ("deltas", "per_sample"):
        for f in (root / sub).glob("step_*.safetensors") if (root / sub).is_dir() else []:
            m = _STEP.search(f.name)
            if m and int(m.group(1)) > keep_until_step:
                f.unlink(missing_ok=True)  # every rank truncates; another may have been first
                removed += 1
    return removed


def reset_log(root: Path) -> None:
    if root.exists():
        shutil.rmtree(root)
    root.mkdir(parents=True)


def sorted_parts(folder: Path, ext: str) -> list[Path]:
    if not folder.is_dir():
        return []
    parts = [
        (int(m.group(2)), int(m.group(1)), f)
        for f in folder.iterdir()
        if (m := _PART.search(f.name)) and m.group(3) == ext
    ]
    return [f for _, _, f in sorted(parts)]


def step_files(folder: Path) -> dict[int, list[Path]]:
    out: dict[int, list[Path]] = {}
    if folder.is_dir():
        for f in sorted(folder.iterdir()):
            m = _STEP.search(f.name)
            if m:
                out.setdefault(int(m.group(1)), []).append(f)
    return out
