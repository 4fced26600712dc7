"""Build the folder that is uploaded: exactly the files that will reach the Hub, nothing else.

The folder published must be complete and intact: an unlearn output's ``manifest.json`` must list
every file that is uploaded (and ``report.json``) with its sha256 (``artifacts.verify_folder``), so a
folder a killed ``unlearn`` left half-written, or one changed after it was written, is refused
(:class:`~hf_unlearn.artifacts.IntegrityError` naming the file). The upload folder is checked before
any work (``artifacts.check_output_folder``: never inside the folder published; a non-empty folder
that is not a previous upload folder needs ``overwrite``) and is staged: assembled beside its
destination and renamed into place whole with its own ``manifest.json`` (kind ``"upload"``, kept
local: it is not uploaded).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from ..artifacts import (
    ADAPTER_WEIGHTS_FILE,
    MANIFEST_FILE,
    REPORT_FILE,
    S3T_LEDGER_FILE,
    IntegrityError,
    atomic_write_json,
    atomic_write_text,
    check_output_folder,
    read_manifest,
    staged_folder,
    verify_folder,
)
from ..cards.card import render_card
from ..cards.privacy import (
    CONFIG_FILES,
    SYSTEM_CONFIGS,
    SYSTEM_METHODS,
    TOKENIZER_FILES,
    is_allowed_path,
    is_private_path,
    private_keys,
    redact_local_paths,
    strip_private,
)
from .adapter import (
    ADAPTER_CONFIG_FILE,
    ADAPTER_FILES,
    BASE_FILES,
    LoraUpload,
    check_adapter_files,
    is_lora_folder,
    plan_lora_upload,
    write_adapter_config,
    write_merged_model,
)
from .errors import LeakError, RunDirError

DEFAULT_SUFFIX = "-hub_upload"  # the default upload folder: a sibling RUN_DIR-hub_upload
UPLOAD_KIND = "upload"  # the manifest kind of an upload folder
SUMMARY_FIGURE = "plots/summary.png"  # written by evaluation.plots.plot_report, embedded in the card
GENERATED = ("README.md", REPORT_FILE)
_TEXT_SUFFIXES = (".json", ".md", ".txt", ".model")
# Standard Hugging Face files, copied as they are; any other JSON (S3T system files) is checked.
STANDARD_JSON = CONFIG_FILES + TOKENIZER_FILES + ("model.safetensors.index.json",)


@dataclass
class UploadFolder:
    """What :func:`build_upload_folder` wrote.

    ``files``: relative paths of the files uploaded (all of the folder's but its own ``manifest.json``, sorted). ``left_behind``: run-dir paths
    that are not uploaded (private or not needed). ``stripped``: JSON paths removed from
    ``report.json`` because they were per-example.
    """

    path: Path
    run_dir: Path
    files: list[str]
    left_behind: list[str] = field(default_factory=list)
    stripped: list[str] = field(default_factory=list)
    method: str | None = None
    system: bool = False

    @property
    def total_bytes(self) -> int:
        return sum((self.path / f).stat().st_size for f in self.files)


def _read_report(run_dir: Path) -> dict:
    path = run_dir / REPORT_FILE
    if not path.is_file():
        raise RunDirError(
            f"{run_dir} has no report.json, so there is nothing to say about what was forgotten. "
            "Publish the output of `hf-unlearn unlearn` (or `hf-unlearn s3t delete`), which writes "
            "report.json next to the model. A model that was only trained gets its card from the trainer "
            "(push_to_hub=True)."
        )
    try:
        report = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise RunDirError(f"{path} is not valid JSON: {e}") from e
    if not isinstance(report, dict):
        raise RunDirError(f"{path} must hold a JSON object, not {type(report).__name__}")
    return report


def _select(run_dir: Path, system: bool, skip: list[Path]) -> tuple[list[str], list[str]]:
    """(files to upload, paths left behind), relative posix paths. Private dirs are not entered."""
    chosen, left = [], []
    for root, dirs, files in os.walk(run_dir):
        root_p = Path(root)
        rel_root = root_p.relative_to(run_dir)
        keep_dirs = []
        for d in sorted(dirs):
            full = root_p / d
            rel = (rel_root / d).as_posix()
            if any(full == s or d.startswith(f".{s.name}.") for s in skip):
                continue
            if full.is_symlink() or is_private_path(rel) or (not system and rel != "plots"):
                left.append(rel + "/")
                continue
            keep_dirs.append(d)
        dirs[:] = keep_dirs
        for name in sorted(files):
            rel = (rel_root / name).as_posix()
            if rel in GENERATED or rel == MANIFEST_FILE:
                continue
            (chosen if is_allowed_path(rel, system) else left).append(rel)
    return chosen, left


def _check_model(run_dir: Path, chosen: list[str], system: bool) -> None:
    weights = [f for f in chosen if f.endswith(".safetensors")]
    if not weights:
        raise RunDirError(f"{run_dir} holds no *.safetensors weights: save the model with save_pretrained().")
    if not system and "config.json" not in chosen:
        raise RunDirError(f"{run_dir} has weights but no config.json: save the model with save_pretrained().")


def _known_forget_ids(run_dir: Path) -> list[str]:
    """Ids found in private forget-id files of the run dir (used only to check for leaks)."""
    ids: set[str] = set()
    for path in run_dir.glob("*forget*id*"):
        if path.is_file() and path.stat().st_size < 50_000_000:
            text = path.read_text(encoding="utf-8", errors="replace")
            try:
                data = json.loads(text)
                items = data if isinstance(data, list) else data.get("ids", []) if isinstance(data, dict) else []
            except ValueError:
                items = text.splitlines()
            ids.update(s for x in items if len(s := str(x).strip()) >= 6 and not s.startswith("#"))
    return sorted(ids)


def _assert_no_leak(folder: Path, files: list[str], ids: list[str]) -> None:
    if not ids:
        return
    needles = [i.encode() for i in ids]
    for rel in files:
        if not rel.endswith(_TEXT_SUFFIXES):
            continue
        data = (folder / rel).read_bytes()
        if any(n in data for n in needles):
            raise LeakError(f"a forgotten id appears in {rel}: refusing to build the upload folder")


def _layout(files: list[str]) -> list[str]:
    tops: dict[str, int] = {}
    for f in files:
        top = f.split("/", 1)[0] + ("/" if "/" in f else "")
        tops[top] = tops.get(top, 0) + 1
    return [f"`{t}`: {n} file{'s' if n > 1 else ''}" if t.endswith("/") else f"`{t}`" for t, n in sorted(tops.items())]


def default_upload_folder(run_dir: str | os.PathLike) -> Path:
    """``RUN_DIR-hub_upload`` beside the folder published (never inside it: that folder is only read)."""
    run_dir = Path(run_dir).resolve()
    return run_dir.with_name(run_dir.name + DEFAULT_SUFFIX)


def is_upload_folder(folder: Path) -> bool:
    """A folder written by :func:`build_upload_folder` (its manifest says so): rebuilt without ``overwrite``."""
    try:
        return folder.is_dir() and read_manifest(folder).get("kind") == UPLOAD_KIND
    except IntegrityError:
        return False


def check_upload_dest(run_dir: str | os.PathLike, dest=None, *, overwrite: bool = False) -> Path:
    """The upload folder for ``run_dir`` (default :func:`default_upload_folder`), checked before any work:
    an ``OutputFolderError`` when it overlaps ``run_dir``, its parent is not writable, or it is a non-empty
    folder other than a previous upload folder and ``overwrite`` is not given."""
    dest = Path(dest).expanduser().resolve() if dest is not None else default_upload_folder(run_dir)
    return check_output_folder(
        dest, overwrite=overwrite or is_upload_folder(dest), reads_from=[run_dir], what="upload folder"
    )


def verify_publishable(run_dir: Path, report: dict, left_behind: list[str]) -> None:
    """An unlearn output must be complete and intact: its manifest lists every file that is published (and
    ``report.json``) with the sha256 it has now. Files that are not published (private, left behind) are
    not checked. An S3T/SISA system folder is made consistent with its ledger first (``_consistent_system``)."""
    if str(report.get("method")).lower() in SYSTEM_METHODS:
        return
    try:
        verify_folder(run_dir, ignore=left_behind)  # a left-behind folder ends with "/": a prefix
    except IntegrityError as exc:
        raise IntegrityError(f"{exc}; refusing to publish it: write it again with `hf-unlearn unlearn`") from None


def build_upload_folder(
    run_dir: str | os.PathLike,
    dest: str | os.PathLike | None = None,
    *,
    repo_id: str | None = None,
    license: str | None = None,
    overwrite: bool = False,
    base_model: str | None = None,
    merge_adapter: bool = False,
) -> UploadFolder:
    """Write the upload folder for ``run_dir`` and return what it holds.

    ``run_dir`` must hold a complete, intact manifest (:func:`verify_publishable`; an
    :class:`~hf_unlearn.artifacts.IntegrityError` otherwise). The folder (default ``RUN_DIR-hub_upload``
    beside it, replaced if it is a previous upload folder or with ``overwrite``) gets:
    the model weights (``*.safetensors``), config and tokenizer files, ``plots/*.png``, a
    ``README.md`` model card rendered from the report (embedding ``plots/summary.png`` when the run has it) and ``report.json`` without anything
    per-example. Everything is chosen by allow-list; private files (forget ids, unlearning logs,
    checkpoints, optimizer state, S3T assignment and ledger) never qualify. For an S3T/SISA
    system (``report["method"]`` in ``("s3t", "sisa")``) the allowed files keep their subfolders.
    As a last check, ids listed in the run dir's ``forget_ids*`` files must appear in no text file
    of the folder (:class:`LeakError` otherwise).

    A LoRA folder (``adapter_config.json``; ``hub/adapter.py``) is published as its adapter, the card's
    ``base_model`` being ``base_model`` (``--base_model``) or the Hub id its ``base_model.json`` records
    (a :class:`RunDirError` when there is neither), or with ``merge_adapter`` as the merged model
    (``config.json`` + ``model.safetensors``). Its private base record and ``base_model/`` are
    verified against the manifest (they are read), never uploaded.
    """
    run_dir = Path(run_dir).resolve()
    if not run_dir.is_dir():
        raise RunDirError(f"run directory not found: {run_dir}")
    if (base_model or merge_adapter) and not is_lora_folder(run_dir):
        flag = "--merge_adapter" if merge_adapter else "--base_model"
        raise RunDirError(f"{flag} applies to a LoRA folder, and {run_dir} holds no {ADAPTER_CONFIG_FILE}")
    dest = check_upload_dest(run_dir, dest, overwrite=overwrite)  # before any work
    with _consistent_system(run_dir):
        return _build(run_dir, dest, repo_id=repo_id, license=license, base_model=base_model, merge=merge_adapter)


@contextlib.contextmanager
def _consistent_system(run_dir: Path):
    """For an S3T/SISA system folder: hold its lock while it is read, and first make its public files
    agree with its committed ledger (``s3t.reconcile``): no checkpoint cut by a committed deletion, no
    stale ``active_prefixes.json`` or report is ever published. Other folders: nothing to do."""
    if not any((run_dir / name).is_file() for name in SYSTEM_CONFIGS):
        yield
        return
    from ..s3t import reconcile, system_lock

    if not (run_dir / S3T_LEDGER_FILE).is_file():  # a published copy: checked, not repaired
        reconcile(run_dir)
        yield
        return
    with system_lock(run_dir):
        reconcile(run_dir)
        yield


def _build(run_dir: Path, dest: Path, *, repo_id, license, base_model=None, merge=False) -> UploadFolder:
    report = _read_report(run_dir)
    method = report.get("method")
    system = str(method).lower() in SYSTEM_METHODS
    chosen, left = _select(run_dir, system, skip=[dest])
    lora = is_lora_folder(run_dir) and not system
    verify_publishable(run_dir, report, [x for x in left if x not in BASE_FILES] if lora else left)
    lora = plan_lora_upload(run_dir, base_model=base_model, merge=merge) if lora else None
    if lora is not None:
        check_adapter_files(run_dir, chosen)
        if lora.merge:  # the merged model replaces the adapter files
            left += [f for f in ADAPTER_FILES if f in chosen]
        chosen = [f for f in chosen if f not in ADAPTER_FILES]
    else:
        _check_model(run_dir, chosen, system)
    _check_system_files(run_dir, chosen)
    _, stripped = strip_private(report)

    def fill(tmp: Path) -> list[str]:
        _copy_chosen(run_dir, tmp, chosen)
        if lora is not None:
            _write_lora_model(run_dir, tmp, lora)
        _write_report_and_card(
            tmp,
            report,
            repo_id=repo_id,
            license=license,
            layout=_layout(chosen) if system else None,
            summary_figure=SUMMARY_FIGURE if SUMMARY_FIGURE in chosen else None,
            lora=lora,
        )
        files = sorted(p.relative_to(tmp).as_posix() for p in tmp.rglob("*") if p.is_file())
        _assert_no_leak(tmp, files, _known_forget_ids(run_dir))
        return files

    with staged_folder(dest, kind=UPLOAD_KIND) as tmp:
        files = fill(tmp)
    return UploadFolder(
        path=dest, run_dir=run_dir, files=files, left_behind=left, stripped=stripped, method=method, system=system
    )


def _check_system_files(run_dir: Path, chosen: list[str]) -> None:
    """Any JSON besides the standard Hugging Face files (S3T system files) must have no per-example field."""
    for rel in chosen:
        if rel.endswith(".json") and Path(rel).name not in STANDARD_JSON:
            found = private_keys(json.loads((run_dir / rel).read_text(encoding="utf-8")))
            if found:
                raise LeakError(f"{rel} has per-example fields ({', '.join(found[:5])}): refusing to upload it")


def _copy_chosen(run_dir: Path, folder: Path, chosen: list[str]) -> None:
    for rel in chosen:
        (folder / rel).parent.mkdir(parents=True, exist_ok=True)
        if Path(rel).name in SYSTEM_CONFIGS:  # local data / output paths stay on this machine
            config, _ = redact_local_paths(json.loads((run_dir / rel).read_text(encoding="utf-8")))
            (folder / rel).write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
        else:
            shutil.copyfile(run_dir / rel, folder / rel)


def _write_lora_model(run_dir: Path, folder: Path, lora: LoraUpload) -> None:
    """The merged model, or the adapter (its weights as they are, its config naming the base by Hub id)."""
    if lora.merge:
        write_merged_model(run_dir, folder)
        return
    shutil.copyfile(run_dir / ADAPTER_WEIGHTS_FILE, folder / ADAPTER_WEIGHTS_FILE)
    write_adapter_config(run_dir, folder, lora.base_model)


def _write_report_and_card(
    folder: Path, report: dict, *, repo_id, license, layout, summary_figure=None, lora: LoraUpload | None = None
) -> None:
    """``report.json`` without per-example data or local paths, and the card rendered from the report
    (embedding ``summary_figure`` when the folder holds it; for a LoRA folder naming its base as ``lora`` says)."""
    clean_report, _ = redact_local_paths(strip_private(report)[0])
    atomic_write_json(folder / REPORT_FILE, clean_report, indent=2, sort_keys=False)
    card = render_card(
        redact_local_paths(report)[0],
        repo_id=repo_id,
        license=license,
        layout=layout,
        summary_figure=summary_figure,
        base_model=lora.base_model if lora else None,
        lora=lora.kind if lora else None,
    )
    atomic_write_text(folder / "README.md", str(card))


def write_dry_run_folder(run_dir: str | os.PathLike, dest: str | os.PathLike, *, overwrite: bool = False) -> Path:
    """Write the upload folder of ``run_dir`` at ``dest`` (e.g. ``DIR / "hub"``) and return ``dest``.

    Nothing is sent anywhere; the folder holds exactly what ``hf-unlearn push`` would upload.
    """
    return build_upload_folder(run_dir, dest, overwrite=overwrite).path
