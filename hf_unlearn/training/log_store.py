"""The unlearning log: what a training run recorded so its data can be deleted later.

Layout under ``output_dir/unlearning_log/`` (safetensors for tensors, JSON/parquet indexes)::

    meta.json                      model fingerprint, recorders, dtype, p, seeds, versions; with
                                   deltas, the optimizer's class, groups and max_grad_norm
    optimizer_final.safetensors    with deltas and an Adam-type optimizer: exp_avg_sq after the last step
    initial_weights.safetensors    w_0 (every weight but frozen parameters, e.g. a LoRA model's base), for
                                   rollback, the twin and single-gradient
    order/epoch_00000.json         the global micro-batches of each epoch, by id
    transcript/rank0-00000040.jsonl   one line per optimizer step: step, epoch, lr, micro-batches
                                   (and, with deltas and clipping, the pre-clip gradient norm)
    deltas/step_00000040.safetensors  w_after - w_before of the trainable parameters
    per_sample/index.safetensors   the parameter subset (flat indices per parameter)
    per_sample/step_00000040.rank0.safetensors   [examples in step, k] per-sample gradients
    events/rank0-00000040.parquet  learning events (id, step, true-class confidence, ...)
    error_proxy/rank0-00000040.jsonl   unlearning-error proxy series

    manifest.json                  written LAST (kind "unlearning_log"): the sha256 of every file
                                   above, recorded while writing; a log without it is incomplete

Every file is written through ``artifacts.atomic_write`` (a unique temporary name, fsync, rename),
so a reader never sees half a file. ``manifest.json`` is written at the end of training, after the
footer of ``meta.json`` (which records ``global_step`` and the transcript parts the transcript must
be made of) and after every rank has flushed; a resume removes it first. ``UnlearningLog`` refuses
a log without it, verifies ``meta.json`` and the transcript on open and every other file the first
time a request reads it (``VerifiedFiles``), naming the damaged, missing or unlisted file.
Part files are flushed before each checkpoint, so a resumed run truncates the log to the
checkpoint's step and continues without a gap or a duplicate.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import struct
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file

# The log is written through the package's one atomic writer; the names stay importable from here.
from ..artifacts import (  # noqa: F401
    LOG_DIRNAME,
    MANIFEST_FILE,
    IntegrityError,
    atomic_save_tensors,
    atomic_write_bytes,
    atomic_write_json,
    folder_files,
    read_manifest,
    recording_hashes,
    sha256_file,
)

FORMAT_VERSION = 2  # 2: manifest.json; meta.json records log_id, global_step and transcript_parts
LOG_MANIFEST_KIND = "unlearning_log"
META_FILE = "meta.json"
_PART = re.compile(r"rank(\d+)-(\d+)\.(jsonl|parquet)$")
_STEP = re.compile(r"step_(\d+)(?:\.rank(\d+))?\.safetensors$")
PART_RE, STEP_RE = _PART, _STEP


class LogError(IntegrityError):
    """The unlearning log is missing, incomplete, damaged, or does not belong to the model at hand
    (an ``artifacts.IntegrityError``, hence a ``ValueError``: a user error, exit status 2)."""


class LogDamagedError(LogError):
    """A log file is damaged, missing, unlisted or foreign (not: a recorder that was off). Callers that
    fall back when a record is absent (``memorization/proxies.py``) must re-raise this one."""


def tensors_from_file(path: Path) -> dict[str, torch.Tensor]:
    """Tensors of a safetensors file (memory-mapped); a damaged file is a ``LogError`` naming it."""
    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError) as exc:
        raise LogDamagedError(f"damaged log file {path} ({exc}); the log cannot be used for this step") from exc


def safetensors_metadata(path: Path) -> dict[str, str]:
    """The ``__metadata__`` of a safetensors file (header: 8-byte length, then JSON), read alone."""
    try:
        with open(path, "rb") as f:
            (size,) = struct.unpack("<Q", f.read(8))
            return json.loads(f.read(size)).get("__metadata__") or {}
    except (OSError, struct.error, ValueError, AttributeError) as exc:
        raise LogDamagedError(f"damaged log file {path} (unreadable safetensors header)") from exc


def load_tensors(path: Path) -> dict[str, torch.Tensor]:
    """Load a safetensors file (not verified: the writer's own files); a damaged one is a ``LogError``."""
    if not path.is_file():
        raise LogError(f"missing log file: {path}")
    return tensors_from_file(path)


def model_structure(named: list[tuple[str, torch.Tensor]]) -> list[list]:
    return [[n, list(t.shape), str(t.dtype).replace("torch.", "")] for n, t in named]


def trainable_named(model: torch.nn.Module) -> list[tuple[str, torch.Tensor]]:
    return [(n, p) for n, p in model.named_parameters() if p.requires_grad]


def initial_weights(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """What the log keeps as w_0: the state dict without the frozen parameters (``requires_grad`` off),
    which no step changes (a LoRA model's base: only the adapters and the head are kept)."""
    frozen = {n for n, p in model.named_parameters() if not p.requires_grad}
    return {k: v.detach().clone() for k, v in model.state_dict().items() if k not in frozen}


def part_name(rank: int, end_step: int, ext: str) -> str:
    return f"rank{rank}-{end_step:08d}.{ext}"


def step_file(step: int, rank: int | None = None) -> str:
    return f"step_{step:08d}" + (f".rank{rank}" if rank is not None else "") + ".safetensors"


def truncate_log(root: Path, keep_until_step: int, hashes: dict[str, str] | None = None) -> int:
    """Remove the manifest (first: the log is incomplete again) and every record after
    ``keep_until_step`` (a resumed run redoes those steps); their recorded ``hashes`` go too, so
    the manifest written at the end lists no removed file. Safe on every rank at once. Returns
    the number of files removed."""
    (root / MANIFEST_FILE).unlink(missing_ok=True)
    removed = 0
    for sub, pattern, regex, group in (
        ("transcript", "rank*-*.*", _PART, 2),
        ("events", "rank*-*.*", _PART, 2),
        ("error_proxy", "rank*-*.*", _PART, 2),
        ("deltas", "step_*.safetensors", _STEP, 1),
        ("per_sample", "step_*.safetensors", _STEP, 1),
    ):
        for f in (root / sub).glob(pattern) if (root / sub).is_dir() else []:
            m = regex.search(f.name)
            if m and int(m.group(group)) > keep_until_step:
                f.unlink(missing_ok=True)
                removed += 1
                if hashes is not None:
                    hashes.pop(f"{sub}/{f.name}", None)
    return removed


@contextlib.contextmanager
def recording_into(hashes: dict[str, str], root: Path) -> Iterator[None]:
    """Hash every file written under ``root`` inside the block into ``hashes`` (for the manifest)."""
    with recording_hashes(root) as recorded:
        yield
    hashes.update(recorded)


def reset_log(root: Path, hashes: dict[str, str] | None = None) -> None:
    if hashes is not None:
        hashes.clear()
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


# ---- reading with verification ------------------------------------------------------------------------
class VerifiedFiles:
    """The files of a log, read only after their sha256 matched the manifest (each hashed once).

    On construction: the manifest must exist and be of kind ``unlearning_log``, and the files on
    disk must be exactly the ones it lists (a directory walk, no hashing). :meth:`read` returns a
    file's bytes after checking their hash (the bytes hashed are the bytes used).
    """

    def __init__(self, root: Path):
        self.root = root
        if not (root / MANIFEST_FILE).is_file():
            raise LogDamagedError(
                f"{root / MANIFEST_FILE} is missing: the unlearning log is incomplete (training did not finish); "
                "resume training with --resume_from_checkpoint latest, or train again"
            )
        try:
            self.manifest = read_manifest(root, kind=LOG_MANIFEST_KIND)
        except IntegrityError as exc:
            raise LogDamagedError(str(exc)) from exc
        self.listed: dict[str, str] = self.manifest["files"]
        self.verified: set[str] = set()
        on_disk = set(folder_files(root))
        extra = sorted(on_disk - set(self.listed))
        if extra:
            raise LogDamagedError(
                f"{root / extra[0]} is not listed in {root / MANIFEST_FILE} (added after training ended)"
            )
        missing = sorted(set(self.listed) - on_disk)
        if missing:
            raise LogDamagedError(f"{root / missing[0]} is missing (listed in {root / MANIFEST_FILE})")

    def names(self, folder: str) -> list[str]:
        """The listed files under ``folder/`` (relative paths, sorted)."""
        return sorted(r for r in self.listed if r.startswith(folder + "/"))

    def read(self, rel: str, *, other_log_hint: str | None = None) -> bytes:
        path = self.root / rel
        if rel not in self.listed:
            raise LogDamagedError(f"{path} is not in this log (not listed in {self.root / MANIFEST_FILE})")
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise LogDamagedError(f"{path} cannot be read ({exc.__class__.__name__})") from exc
        if rel not in self.verified:
            if hashlib.sha256(data).hexdigest() != self.listed[rel]:
                raise LogDamagedError(
                    other_log_hint
                    or f"{path} is damaged: its sha256 differs from {self.root / MANIFEST_FILE}; the log cannot "
                    "be used (restore the file, or train again)"
                )
            self.verified.add(rel)
        return data

    def check(self, rel: str) -> Path:
        """Hash file ``rel`` (streamed, once per log) against the manifest; returns its path. For big
        files read right after by path (memory-mapped tensors: no second copy of the bytes)."""
        path = self.root / rel
        if rel not in self.listed:
            raise LogDamagedError(f"{path} is not in this log (not listed in {self.root / MANIFEST_FILE})")
        if rel in self.verified:
            return path
        try:
            with open(path, "rb") as f:
                digest = hashlib.file_digest(f, "sha256").hexdigest()
        except OSError as exc:
            raise LogDamagedError(f"{path} cannot be read ({exc.__class__.__name__})") from exc
        if digest != self.listed[rel]:
            raise LogDamagedError(
                f"{path} is damaged: its sha256 differs from {self.root / MANIFEST_FILE}; the log cannot be used "
                "(restore the file, or train again)"
            )
        self.verified.add(rel)
        return path

    def verify(self, rels: Iterable[str]) -> None:
        """Hash ``rels`` (those not verified yet), several files at a time."""
        for _ in self.verified_in_order(rels):
            pass

    def verified_in_order(self, rels: Iterable[str], workers: int | None = None) -> Iterator[Path]:
        """The paths of ``rels`` in order, each yielded once it is verified; the files are hashed ahead by
        ``workers`` threads (hashlib releases the GIL), so the caller's use of a file overlaps the hashing
        of the next ones. A damaged file raises when its turn comes: nothing after it is yielded."""
        rels = list(rels)
        workers = workers or min(len(rels), os.cpu_count() or 1, 8)
        if workers <= 1:
            yield from (self.check(rel) for rel in rels)
            return
        pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="hf_unlearn-verify")
        try:
            futures = [pool.submit(self.check, rel) for rel in rels]
            for future in futures:
                yield future.result()
        finally:
            pool.shutdown(wait=True, cancel_futures=True)


class TranscriptCheck:
    """The transcript must be exactly what ``meta.json`` records: the part files it lists, and for
    every rank each step ``1..global_step`` once, in order. Errors name the part at fault."""

    def __init__(self, root: Path, meta: dict):
        self.root, self.meta = root, meta
        if meta.get("format_version", 1) < FORMAT_VERSION or "transcript_parts" not in meta:
            raise LogDamagedError(
                f"{root / META_FILE} does not record the transcript's extent (format_version "
                f"{meta.get('format_version')}, an older or unfinished log); train again"
            )
        self.global_step = int(meta["global_step"])
        self.world_size = int(meta.get("world_size") or 1)
        self.expected_parts = sorted(meta["transcript_parts"], key=self._part_key)
        self.last = dict.fromkeys(range(self.world_size), 0)

    @staticmethod
    def _part_key(rel: str) -> tuple[int, int]:
        m = _PART.search(rel)
        return (int(m.group(2)), int(m.group(1))) if m else (-1, -1)

    def parts(self, listed: list[str]) -> None:
        """The parts in the manifest are exactly the ones ``meta.json`` records."""
        missing = sorted(set(self.expected_parts) - set(listed))
        if missing:
            raise LogDamagedError(f"{self.root / missing[0]} is missing: {META_FILE} records it as a transcript part")
        extra = sorted(set(listed) - set(self.expected_parts))
        if extra:
            raise LogDamagedError(
                f"{self.root / extra[0]} is an extra transcript part: {META_FILE} does not record it"
            )
        if self.expected_parts and "transcript" not in self.meta.get("recorders", ["transcript"]):
            raise LogDamagedError(
                f"{self.root / self.expected_parts[0]}: a transcript part in a log recorded without one"
            )

    def lines(self, rel: str, data: bytes) -> list[dict]:
        """The records of part ``rel``, checked to continue its rank's steps without gap or repeat."""
        path, m = self.root / rel, _PART.search(rel)
        if not m or int(m.group(1)) >= self.world_size:
            raise LogDamagedError(f"{path} is not a transcript part of this log ({self.world_size} rank(s))")
        rank, end = int(m.group(1)), int(m.group(2))
        try:
            records = [json.loads(line) for line in data.decode("utf-8").splitlines()]
            steps = [(int(r["step"]), int(r["rank"])) for r in records]
        except (ValueError, KeyError, TypeError) as exc:
            raise LogDamagedError(f"damaged transcript part {path} ({exc.__class__.__name__})") from exc
        for step, line_rank in steps:
            if line_rank != rank:
                raise LogDamagedError(f"{path} holds a step of rank {line_rank}: the part was renamed or moved")
            if step <= self.last[rank]:
                raise LogDamagedError(f"{path} repeats step {step} (rank {rank}): the transcript has a duplicate")
            if step != self.last[rank] + 1:
                raise LogDamagedError(
                    f"{path} starts again at step {step} after step {self.last[rank]} (rank {rank}): steps are missing"
                )
            self.last[rank] = step
        if self.last[rank] != end:
            raise LogDamagedError(f"{path} ends at step {self.last[rank]}, not at the step its name records ({end})")
        return records

    def coverage(self) -> None:
        """After every part: each rank reached ``global_step`` (when the transcript was recorded)."""
        if "transcript" not in self.meta.get("recorders", ["transcript"]):
            return
        for rank, last in self.last.items():
            if last != self.global_step:
                raise LogDamagedError(
                    f"the transcript of rank {rank} in {self.root / 'transcript'} ends at step {last} but "
                    f"{META_FILE} records {self.global_step} steps: a transcript part is missing"
                )
