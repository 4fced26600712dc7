"""The artefact contract: how every file of hf_unlearn is written, named and described.

Everything that lands on disk goes through :func:`atomic_write` (or one of its typed wrappers):
the bytes go to a uniquely named temporary file in the destination folder, are flushed and
fsync'ed, then renamed over the destination, so a reader sees the old file or the new one,
never half of one, and two concurrent writers never share a temporary name.

Also here, because every layer needs them and none owns them:

- :func:`library_versions`: the versions recorded in logs, reports and cards;
- :func:`forget_set_commitment`: the one way a forget set is named without being revealed;
- the names of the files that must never leave the machine (``PRIVATE_*``), imported by the
  code that creates them and by ``cards/privacy.py``, which builds its rules from them.

This module sits at the bottom of the package: it imports nothing from ``hf_unlearn`` but the
version string.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import platform
import shutil
import tempfile
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import TypeVar

from . import __version__

T = TypeVar("T")

# ---- names of private files (created by training/, s3t/, runs/; never uploaded) ----------------------
LOG_DIRNAME = "unlearning_log"  # training/log_store.py: the unlearning log of a run
RUN_FILE = "hf_unlearn_run.json"  # runs/config.py: the arguments a run was trained with
TRAINING_ARGS_FILE = "training_args.json"  # training/trainer.py: TrainingArguments as JSON
S3T_ASSIGNMENT_FILE = "assignment.json"  # s3t/assignment.py: which id sits in which shard/slice
S3T_LEDGER_FILE = "ledger.sqlite"  # s3t/ledger.py: the deletion ledger (ids of every request)
CHECKPOINT_PREFIX = "checkpoint-"  # Trainer checkpoints: optimizer, scheduler, RNG state
S3T_CHECKPOINT_DIR = "checkpoints"  # s3t/checkpoints.py: per-stage adapters (public once deletions apply)
PRIVATE_DIRS = (LOG_DIRNAME,)
PRIVATE_FILES = (RUN_FILE, S3T_ASSIGNMENT_FILE, S3T_LEDGER_FILE)

# ---- names of public files ---------------------------------------------------------------------------
REPORT_FILE = "report.json"  # evaluation/report.py and s3t/report.py: the ForgettingReport (cards/schema.py)

TEMP_MARKER = ".hf_unlearn-tmp-"


# ---- the one atomic writer ---------------------------------------------------------------------------
def atomic_write(path: str | os.PathLike, write: Callable[[str], None], *, mode: int = 0o644) -> Path:
    """Write ``path`` atomically: ``write(tmp_path)`` fills a unique temporary file beside it, which is
    fsync'ed and renamed over ``path``. On any error the temporary file is removed and ``path`` is
    left as it was. Returns ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}{TEMP_MARKER}", dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.chmod(tmp, mode)  # mkstemp creates 0600
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    _fsync_dir(path.parent)
    return path


def _fsync_dir(folder: Path) -> None:
    with contextlib.suppress(OSError):  # not every file system lets a folder be opened for fsync
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    def write(tmp: str) -> None:
        with open(tmp, "wb") as f:
            f.write(data)

    return atomic_write(path, write)


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | os.PathLike, obj, *, indent: int = 1, sort_keys: bool = True) -> Path:
    """JSON with sorted keys (stable bytes for the same content); values JSON cannot hold are ``str()``-ed."""
    text = json.dumps(obj, indent=indent, sort_keys=sort_keys, default=str) + "\n"
    return atomic_write_text(path, text)


def atomic_save_tensors(path: str | os.PathLike, tensors: dict, metadata: dict[str, str] | None = None) -> Path:
    """A safetensors file (tensors are detached, made contiguous and moved to the CPU first)."""
    from safetensors.torch import save_file

    cpu = {k: v.detach().contiguous().cpu() for k, v in tensors.items()}
    return atomic_write(path, lambda tmp: save_file(cpu, tmp, metadata=metadata))


def atomic_write_folder(path: str | os.PathLike, fill: Callable[[Path], T]) -> T:
    """Build a folder atomically: ``fill(tmp_dir)`` writes it in a unique temporary folder beside
    ``path``, which then takes the place of ``path`` (a previous ``path`` is moved aside and removed).
    On any error ``path`` is left as it was. Returns what ``fill`` returned."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}{TEMP_MARKER}", dir=path.parent))
    old = tmp.with_name(tmp.name + "-old")
    try:
        result = fill(tmp)
        os.chmod(tmp, 0o755)  # mkdtemp creates 0700
        if path.exists():
            os.replace(path, old)
        try:
            os.replace(tmp, path)
        except BaseException:
            if old.exists():
                os.replace(old, path)
            raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.rmtree(old, ignore_errors=True)
    _fsync_dir(path.parent)
    return result


def is_temporary(path: str | os.PathLike) -> bool:
    """A temporary file of :func:`atomic_write` (left behind only by a killed writer)."""
    return TEMP_MARKER in Path(path).name


@contextlib.contextmanager
def private_temp_dir(parent: str | os.PathLike | None = None, prefix: str = "hf_unlearn-") -> Iterator[Path]:
    """A temporary folder removed on exit, also on error; inside ``parent`` when given (a run folder)."""
    if parent is not None:
        Path(parent).mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=prefix, dir=parent) as tmp:
        yield Path(tmp)


# ---- versions and commitments --------------------------------------------------------------------------
def library_versions() -> dict[str, str]:
    """The versions of hf_unlearn, Python and the libraries a result depends on."""
    import accelerate
    import datasets
    import peft
    import torch
    import transformers

    return {
        "hf_unlearn": __version__,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "datasets": datasets.__version__,
        "accelerate": accelerate.__version__,
        "peft": peft.__version__,
    }


def forget_set_commitment(ids: Iterable[str]) -> str:
    """sha256 of the sorted distinct ids joined by newlines: names a forget set without listing it.

    Whoever holds the ids can recompute it; it does not resist guessing among a small set of
    known ids (a salted commitment is the remedy).
    """
    return hashlib.sha256("\n".join(sorted(set(ids))).encode()).hexdigest()


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()
