"""The run folder's manifest: written last by ``train``, verified by every command that reads a run.

``manifest.json`` (kind ``"run"``) lists the sha256 of every file of the run folder but those under
``unlearning_log/`` and ``checkpoint-*/``, which carry manifests of their own; it pins the log's
manifest by its sha256 (``extra.log_manifest_sha256``), so a log (or a log manifest) taken from
another run is refused. A run folder without it is incomplete: training was killed or failed.
"""

from __future__ import annotations

from pathlib import Path

from ..artifacts import (
    CHECKPOINT_PREFIX,
    LOG_DIRNAME,
    MANIFEST_FILE,
    IntegrityError,
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
