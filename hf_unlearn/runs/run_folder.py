"""The run folder's manifest: written last by ``train``, verified by every command that reads a run.

``manifest.json`` (kind ``"run"``) lists the sha256 of every file of the run folder but those under
``unlearning_log/`` and ``checkpoint-*/``, which carry manifests of their own; it pins the log's
manifest by its sha256 (``extra.log_manifest_sha256``), so a log (or a log manifest) taken from
another run is refused. A run folder without it is incomplete: training was killed or failed.

Lifecycle of a train folder (``plan_train_folder``, decided before any work): empty -> being written
(``hf_unlearn_run_request.json`` first, then ``unlearning_log/`` and ``checkpoint-*/``) -> complete
(``manifest.json`` last). ``train`` writes only into an empty folder, resumes its own interrupted
run when asked (``--resume_from_checkpoint latest``, same arguments), and replaces anything else
only with ``--overwrite``.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

from ..artifacts import (
    CHECKPOINT_PREFIX,
    LOCK_FILE,
    LOG_DIRNAME,
    MANIFEST_FILE,
    RUN_FILE,
    IntegrityError,
    OutputFolderError,
    atomic_write_json,
    check_output_folder,
    is_temporary,
    read_manifest,
    sha256_file,
    verify_files,
    write_manifest,
)

RUN_MANIFEST_KIND = "run"
RUN_EXCLUDED = (f"{LOG_DIRNAME}/", CHECKPOINT_PREFIX)


def log_manifest_path(run_dir: str | Path) -> Path:
    return Path(run_dir) / LOG_DIRNAME / MANIFEST_FILE


def write_run_manifest(run_dir: str | Path) -> Path:
    """Write the run folder's manifest (LAST, after the model, tokenizer, run file and log)."""
    log_manifest = log_manifest_path(run_dir)
    extra = {"log_manifest_sha256": sha256_file(log_manifest) if log_manifest.is_file() else None}
    return write_manifest(run_dir, kind=RUN_MANIFEST_KIND, extra=extra, exclude=RUN_EXCLUDED)


def verify_run_files(run_dir: str | Path, rels) -> dict:
    """Check the run's manifest, the files in ``rels`` and the pinned log manifest; returns the manifest."""
    run_dir = Path(run_dir)
    if not any((run_dir / name).is_file() for name in (MANIFEST_FILE, RUN_FILE, RUN_REQUEST_FILE)):
        raise IntegrityError(
            f"{run_dir} is not a training run of hf-unlearn (no {MANIFEST_FILE}, no {RUN_FILE}); pass the "
            "--output_dir of `hf-unlearn train`"
        )
    if not (run_dir / MANIFEST_FILE).is_file():
        raise IntegrityError(
            f"{run_dir} has no {MANIFEST_FILE}: the run is incomplete (training was killed or failed); resume it "
            "with `hf-unlearn train ... --resume_from_checkpoint latest` or train again with --overwrite"
        )
    manifest = verify_files(run_dir, rels, read_manifest(run_dir, kind=RUN_MANIFEST_KIND))
    pinned = (manifest.get("extra") or {}).get("log_manifest_sha256")
    log_manifest = log_manifest_path(run_dir)
    if pinned is not None and (not log_manifest.is_file() or sha256_file(log_manifest) != pinned):
        raise IntegrityError(f"{log_manifest} is missing or is not the log manifest this run was written with")
    return manifest


# ---- the train folder's lifecycle: empty -> being written (resumable) -> complete (manifest) ---------
# What an interrupted run was started with, written first; private by its name (``hf_unlearn_run*``).
RUN_REQUEST_FILE = "hf_unlearn_run_request.json"
RESUME_RULE = "run the same command with --resume_from_checkpoint latest"
# Training arguments that do not change the trained weights: a resumed run may change them.
_FREE_PREFIXES = ("output_dir", "logging_", "log_", "save_", "hub_", "push_to_hub", "report_to", "run_name")
_FREE = {"resume_from_checkpoint", "overwrite", "disable_tqdm", "dataloader_num_workers", "local_rank"}
_FREE |= {"dataloader_pin_memory", "dataloader_persistent_workers", "dataloader_prefetch_factor", "ddp_timeout"}


class TrainFolderError(OutputFolderError):
    """``train`` cannot write into its ``--output_dir`` as asked (user error, exit 2, nothing written)."""


def run_request(data_args, model_args, args, exclusion=None) -> dict:
    """What decides a run's weights: the data and model arguments, the training arguments (but
    outputs, logging, saving and Hub settings), the number of processes and, with ``--exclude_ledger``,
    the digest of the ids the ledgers name (a request made on one of them since changes the data)."""
    training = {k: v for k, v in args.to_dict().items() if k not in _FREE and not k.startswith(_FREE_PREFIXES)}
    body = {
        "data": dataclasses.asdict(data_args),
        "model": dataclasses.asdict(model_args),
        "training": training,
        "world_size": args.world_size,
    }
    if exclusion is not None and exclusion.ledgers:
        body["excluded_ids_sha256"] = exclusion.record()["sha256"]
    return json.loads(json.dumps(body, default=str))


def _differences(saved: dict, current: dict) -> list[str]:
    out = []
    for group in ("data", "model", "training"):
        old, new = saved.get(group) or {}, current.get(group) or {}
        out += [
            f"--{k} (was {old.get(k)!r}, now {new.get(k)!r})"
            for k in sorted(old.keys() | new.keys())
            if old.get(k) != new.get(k)
        ]
    if saved.get("world_size") != current.get("world_size"):
        out.append(f"the number of processes (was {saved.get('world_size')}, now {current.get('world_size')})")
    if saved.get("excluded_ids_sha256") != current.get("excluded_ids_sha256"):
        out.append("the ids the --exclude_ledger ledgers name (requests were made on them since)")
    return out


def _contents(folder: Path) -> list[Path]:
    return [p for p in folder.iterdir() if not is_temporary(p) and p.name != LOCK_FILE] if folder.is_dir() else []


def folder_state(folder: str | Path) -> str:
    """``"empty"``, ``"complete"`` (a run manifest), ``"interrupted"`` (a run being written: its
    request file, no manifest) or ``"other"`` (anything else)."""
    folder = Path(folder)
    if not _contents(folder):
        return "empty"
    if (folder / MANIFEST_FILE).is_file():
        return "complete"
    return "interrupted" if (folder / RUN_REQUEST_FILE).is_file() else "other"


def plan_train_folder(output_dir: str | Path, request: dict, *, overwrite: bool, resume: bool) -> str:
    """Decide, before any work, what ``train`` does with ``output_dir``: ``"fresh"`` (empty, or
    ``overwrite``: its old contents go), ``"resume"`` (its own interrupted run, same arguments,
    ``resume`` asked) or a :class:`TrainFolderError` naming the way out. Writes nothing."""
    folder = Path(output_dir)
    check_output_folder(folder, overwrite=True, what="--output_dir")  # a file, an unwritable parent
    state = folder_state(folder)
    if state == "empty":
        return "fresh"
    if state == "interrupted" and resume:
        saved = json.loads((folder / RUN_REQUEST_FILE).read_text(encoding="utf-8"))
        changed = _differences(saved, request)
        if not changed:
            return "resume"
        if not overwrite:
            raise TrainFolderError(
                f"cannot resume {folder}: it was started with other arguments: {'; '.join(changed[:3])}; "
                "resume with the arguments it was started with, or pass --overwrite to start over"
            )
    elif not overwrite:
        raise TrainFolderError(_refusal(folder, state))
    return "fresh"


def _refusal(folder: Path, state: str) -> str:
    if state == "complete":
        return f"--output_dir {folder} holds a completed training run; pass --overwrite to replace it"
    if state == "interrupted":
        return (
            f"--output_dir {folder} holds an interrupted training run: to continue it, {RESUME_RULE}; "
            "to start over, pass --overwrite"
        )
    return f"--output_dir {folder} is not empty and holds no hf-unlearn training run; pass --overwrite to replace it"


def clear_folder(folder: str | Path, keep: tuple[str, ...] = ()) -> int:
    """Remove everything inside ``folder`` (kept itself: it may be a mount point) but the entries named
    in ``keep`` (an overwritten run's request ledger, replaced later in one rename). Returns entries removed."""
    removed = 0
    for entry in Path(folder).iterdir() if Path(folder).is_dir() else []:
        if entry.name in keep:
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        else:
            entry.unlink()
        removed += 1
    return removed


def write_run_request(output_dir: str | Path, request: dict) -> Path:
    """Record what this run is started with (FIRST, before any other file of the run)."""
    return atomic_write_json(Path(output_dir) / RUN_REQUEST_FILE, request)
