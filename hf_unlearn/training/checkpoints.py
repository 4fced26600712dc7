"""Trainer checkpoints without pickles, each marked complete by a manifest, resumed without hand-picking.

The Trainer itself saves only the model (``save_only_model=True``: weights as safetensors,
``config.json``, ``trainer_state.json``, the tokenizer, ``training_args.json``). The
:class:`CheckpointState` callback adds, ``on_save``:

- ``optimizer.safetensors`` (every tensor of the optimizer's state) + ``optimizer.json`` (its
  param groups and non-tensor state), ``scheduler.json`` (the LR scheduler's state dict) and,
  with mixed precision, ``scaler.json``: rank 0 (DDP keeps them identical on every rank);
- ``rng_state.rank{R}.safetensors``: the torch CPU/CUDA generators of rank R, with Python's and
  NumPy's states as JSON metadata (every rank writes its own);
- ``manifest.json`` (kind ``"checkpoint"``, LAST, by rank 0 after every rank has written): sha256 of
  every file, and the step. A checkpoint folder without a valid manifest is half-written.

``on_train_begin`` of a resumed run restores the optimizer, scheduler, scaler and RNG states.
:func:`resolve_resume` turns ``latest``/``True`` into the newest COMPLETE checkpoint (half-written or
damaged ones are skipped with a one-line warning and removed: their steps are redone), and refuses
an explicitly named checkpoint that is incomplete, damaged or holds a pickle.
"""

from __future__ import annotations

import json
import random
import re
import shutil
from pathlib import Path

import numpy as np
import torch
from transformers import TrainerCallback

from .. import console
from ..artifacts import (
    CHECKPOINT_PREFIX,
    MANIFEST_FILE,
    IntegrityError,
    atomic_save_tensors,
    atomic_write_json,
    read_manifest,
    verify_folder,
    write_manifest,
)
from . import _compat
from .log_store import load_tensors

CHECKPOINT_KIND = "checkpoint"
OPTIMIZER_TENSORS, OPTIMIZER_JSON = "optimizer.safetensors", "optimizer.json"
SCHEDULER_JSON, SCALER_JSON = "scheduler.json", "scaler.json"
PICKLE_SUFFIXES = (".pt", ".pth", ".bin", ".pkl", ".pickle")
LATEST = ("latest", "true", "True")
_STEP = re.compile(rf"^{re.escape(CHECKPOINT_PREFIX)}(\d+)$")


class CheckpointError(ValueError):
    """A checkpoint cannot be resumed from (incomplete, damaged, pickled, or of other arguments)."""


def rng_file(rank: int) -> str:
    return f"rng_state.rank{rank}.safetensors"


# ---- optimizer / scheduler / RNG state as safetensors + JSON ------------------------------------------
def _json_checked(obj, what: str):
    """``obj`` if it survives JSON exactly (floats round-trip in Python's repr); else a CheckpointError."""
    try:
        return json.loads(json.dumps(obj, allow_nan=True))
    except TypeError as exc:
        raise CheckpointError(f"the {what} state holds a value JSON cannot store ({exc})") from exc


def optimizer_to_files(optimizer) -> tuple[dict[str, torch.Tensor], dict]:
    """``optimizer.state_dict()`` split into tensors (``state.{param}.{key}``) and a JSON body."""
    sd = optimizer.state_dict()
    tensors, plain = {}, {}
    for idx, entry in sd["state"].items():
        for key, value in entry.items():
            if torch.is_tensor(value):
                tensors[f"state.{idx}.{key}"] = value
            else:
                plain.setdefault(str(idx), {})[key] = value
    groups = _json_checked(sd["param_groups"], "optimizer's param groups")
    return tensors, {"param_groups": groups, "plain_state": _json_checked(plain, "optimizer")}


def optimizer_from_files(tensors: dict[str, torch.Tensor], body: dict) -> dict:
    """The inverse of :func:`optimizer_to_files`: a state dict ``optimizer.load_state_dict`` takes."""
    state: dict[int, dict] = {}
    for name, value in tensors.items():
        _, idx, key = name.split(".", 2)
        state.setdefault(int(idx), {})[key] = value
    for idx, entry in body["plain_state"].items():
        state.setdefault(int(idx), {}).update(entry)
    return {"state": state, "param_groups": body["param_groups"]}


def rng_to_file(path: Path) -> None:
    """This process's torch (CPU and CUDA), NumPy and Python generator states."""
    tensors = {"cpu": torch.random.get_rng_state()}
    if torch.cuda.is_available():
        tensors.update({f"cuda.{i}": s for i, s in enumerate(torch.cuda.get_rng_state_all())})
    np_state = np.random.get_state()
    meta = {
        "python": json.dumps(random.getstate()),
        "numpy": json.dumps([np_state[0], np_state[1].tolist(), *np_state[2:]]),
    }
    atomic_save_tensors(path, tensors, metadata=meta)


def rng_from_file(path: Path) -> None:
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata()
    tensors = load_tensors(path)
    torch.random.set_rng_state(tensors["cpu"])
    cuda_keys = sorted((k for k in tensors if k.startswith("cuda.")), key=lambda k: int(k.split(".")[1]))
    cuda = [tensors[k] for k in cuda_keys]
    if cuda and torch.cuda.is_available() and len(cuda) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(cuda)
    version, state, gauss = json.loads(meta["python"])
    random.setstate((version, tuple(state), gauss))
    name, keys, pos, has_gauss, cached = json.loads(meta["numpy"])
    np.random.set_state((name, np.array(keys, dtype=np.uint32), pos, has_gauss, cached))


# ---- which checkpoint to resume from --------------------------------------------------------------
def checkpoint_step(path: Path) -> int | None:
    m = _STEP.match(path.name)
    return int(m.group(1)) if m and path.is_dir() else None


def checkpoint_dirs(output_dir: str | Path) -> list[Path]:
    """The ``checkpoint-N`` folders of ``output_dir``, newest (largest N) first."""
    root = Path(output_dir)
    found = [p for p in root.iterdir() if checkpoint_step(p) is not None] if root.is_dir() else []
    return sorted(found, key=checkpoint_step, reverse=True)


def verify_checkpoint(folder: str | Path) -> dict:
    """The checkpoint's manifest after checking every file; a :class:`CheckpointError` naming what is wrong."""
    folder = Path(folder)
    pickles = sorted(p.name for p in folder.iterdir() if p.suffix in PICKLE_SUFFIXES) if folder.is_dir() else []
    if pickles:
        raise CheckpointError(
            f"{folder / pickles[0]} is a pickle: hf_unlearn resumes only from its own safetensors + JSON checkpoints"
        )
    if not (folder / MANIFEST_FILE).is_file():
        raise CheckpointError(f"{folder} is half-written (no {MANIFEST_FILE}: training was killed while saving it)")
    try:
        manifest = verify_folder(folder, kind=CHECKPOINT_KIND)
    except (IntegrityError, OSError) as exc:  # OSError: removed meanwhile by rank 0 (a skipped one)
        raise CheckpointError(f"{folder} is damaged: {exc}") from exc
    step = (manifest.get("extra") or {}).get("step")
    if step != checkpoint_step(folder):
        raise CheckpointError(f"{folder / MANIFEST_FILE} describes step {step}, not {checkpoint_step(folder)}")
    return manifest


def resolve_resume(output_dir: str | Path, requested, *, main: bool = True) -> str | None:
    """The checkpoint to resume from: ``latest``/``True`` -> the newest complete one (or None: start
    from step 0); a path -> that checkpoint, verified. Newer incomplete checkpoints are skipped
    with one warning line each and, by the main process, removed: their steps are redone."""
    if requested in (None, False, "", "false", "False"):
        return None
    if requested is True or str(requested) in LATEST:
        chosen = None
        for folder in checkpoint_dirs(output_dir):
            try:
                verify_checkpoint(folder)
            except CheckpointError as exc:
                if main:
                    console.warn(f"skipping {folder.name}, removed (its steps are redone): {exc}")
                    shutil.rmtree(folder, ignore_errors=True)
                continue
            chosen = folder
            break
        if chosen is None:
            if main:
                console.say(f"no complete checkpoint in {output_dir}: training from step 0")
            return None
        return str(chosen)
    folder = Path(str(requested))
    if not folder.is_dir():
        raise CheckpointError(f"--resume_from_checkpoint {folder}: no such checkpoint folder")
    verify_checkpoint(folder)
    return str(folder)


# ---- the callback -------------------------------------------------------------------------------------
class CheckpointState(TrainerCallback):
    """Writes (``on_save``) and restores (``on_train_begin``) what the Trainer's ``save_only_model``
    leaves out, then marks the checkpoint complete with its manifest. ``resume_from`` is set by
    ``UnlearnableTrainer.train`` to the checkpoint being resumed; ``extra`` goes into every manifest."""

    def __init__(self, trainer, extra: dict | None = None):
        self.trainer, self.extra = trainer, dict(extra or {})
        self.resume_from: str | None = None

    def on_save(self, args, state, control, optimizer=None, lr_scheduler=None, **kwargs):
        folder = Path(args.output_dir) / f"{CHECKPOINT_PREFIX}{state.global_step}"
        folder.mkdir(parents=True, exist_ok=True)
        rng_to_file(folder / rng_file(args.process_index))
        if args.should_save:
            tensors, body = optimizer_to_files(optimizer)
            atomic_save_tensors(folder / OPTIMIZER_TENSORS, tensors)
            atomic_write_json(folder / OPTIMIZER_JSON, {**body, "class": type(optimizer).__name__})
            if lr_scheduler is not None:
                atomic_write_json(folder / SCHEDULER_JSON, _json_checked(lr_scheduler.state_dict(), "scheduler"))
            scaler = _compat.grad_scaler(self.trainer)
            if scaler is not None:
                atomic_write_json(folder / SCALER_JSON, _json_checked(scaler.state_dict(), "scaler"))
        _compat.wait_for_every_rank()  # every rank's RNG file is on disk before the manifest lists it
        if args.should_save:
            extra = {**self.extra, "step": state.global_step, "world_size": args.world_size}
            write_manifest(folder, kind=CHECKPOINT_KIND, extra=extra)  # last: the checkpoint is complete
        _compat.wait_for_every_rank()

    def on_train_begin(self, args, state, control, optimizer=None, lr_scheduler=None, **kwargs):
        if self.resume_from is None:
            return
        folder = Path(self.resume_from)  # verified by resolve_resume
        written_by = (read_manifest(folder, kind=CHECKPOINT_KIND).get("extra") or {}).get("world_size")
        if written_by != args.world_size:
            raise CheckpointError(
                f"{folder} was written by {written_by} process(es), not {args.world_size}: "
                "resume with the same number of processes"
            )
        body = json.loads((folder / OPTIMIZER_JSON).read_text())
        optimizer.load_state_dict(optimizer_from_files(load_tensors(folder / OPTIMIZER_TENSORS), body))
        if lr_scheduler is not None and (folder / SCHEDULER_JSON).is_file():
            lr_scheduler.load_state_dict(json.loads((folder / SCHEDULER_JSON).read_text()))
        scaler = _compat.grad_scaler(self.trainer)
        if scaler is not None and (folder / SCALER_JSON).is_file():
            scaler.load_state_dict(json.loads((folder / SCALER_JSON).read_text()))
        # the data order and every batch's dropout are seeded (trainer.batch_seed), so nothing between
        # here and the first resumed step draws from these generators
        rng_from_file(folder / rng_file(args.process_index))
