"""Manifests: the sha256 of every file of a folder, written last, verified before use.

``manifest.json`` lists ``{relative path: sha256}`` of every file of a folder (an unlearning log,
an output folder, a Trainer checkpoint). It is written LAST and atomically, so a folder with a
manifest was complete when written, and one without was not (a killed writer). Readers verify
what they read before they use it: :func:`verify_files` hashes only the files a request reads;
:func:`verify_folder` checks everything (and that nothing unlisted was added), for ``push``.
A damaged, missing or unlisted file is an :class:`IntegrityError` naming it.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
from collections.abc import Iterable
from pathlib import Path

from .names import LOCK_FILE, MANIFEST_FILE, REQUEST_LEDGER_FILE, TEMP_MARKER
from .writing import atomic_write_json, sha256_file

MANIFEST_VERSION = 1


class IntegrityError(ValueError):
    """A file is missing, damaged, unlisted, or the folder has no (complete) manifest."""


def _skipped(rel: str) -> bool:
    """The manifest itself, temporaries and a folder's live state (its lock; a run's request ledger, which
    changes under the lock with every request, and SQLite's journal beside it) are never listed."""
    name = rel.rsplit("/", 1)[-1]
    live = name == LOCK_FILE or rel == REQUEST_LEDGER_FILE or rel.startswith(REQUEST_LEDGER_FILE + "-")
    return rel == MANIFEST_FILE or live or TEMP_MARKER in rel


def folder_files(folder: str | os.PathLike, exclude: Iterable[str] = ()) -> list[str]:
    """Every file under ``folder`` (relative POSIX paths), but the manifest, locks, temporaries and
    paths starting with one of the ``exclude`` prefixes."""
    root, exclude = Path(folder), tuple(exclude)
    rels = (p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file() or p.is_symlink())
    return sorted(r for r in rels if not _skipped(r) and not (exclude and r.startswith(exclude)))


def write_manifest(
    folder: str | os.PathLike,
    files: dict[str, str] | None = None,
    *,
    kind: str,
    extra: dict | None = None,
    exclude: Iterable[str] = (),
) -> Path:
    """Write ``folder/manifest.json``. ``files`` are hashes recorded while writing
    (``writing.recording_hashes``); a file present but not recorded is hashed now. Paths under an
    ``exclude`` prefix (sub-folders with manifests of their own) are left out and recorded as such."""
    root = Path(folder)
    recorded = dict(files or {})
    listed = {}
    for rel in folder_files(root, exclude):
        listed[rel] = recorded.get(rel) or sha256_file(root / rel)
    body = {
        "manifest_version": MANIFEST_VERSION,
        "kind": kind,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "files": listed,
        **({"excluded": sorted(exclude)} if exclude else {}),
        **({"extra": extra} if extra else {}),
    }
    return atomic_write_json(root / MANIFEST_FILE, body)


def read_manifest(folder: str | os.PathLike, *, kind: str | None = None) -> dict:
    """The manifest of ``folder``; an :class:`IntegrityError` when it is absent, unreadable or of another kind."""
    path = Path(folder) / MANIFEST_FILE
    if not path.is_file():
        raise IntegrityError(
            f"{folder} has no {MANIFEST_FILE}: it is incomplete (a killed or failed writer) or was not written by "
            "hf_unlearn"
        )
    try:
        body = json.loads(path.read_text(encoding="utf-8"))
        files = body["files"]
        assert isinstance(files, dict)
    except (ValueError, KeyError, AssertionError, UnicodeDecodeError) as exc:
        raise IntegrityError(f"{path} is damaged ({exc.__class__.__name__})") from exc
    if kind is not None and body.get("kind") != kind:
        raise IntegrityError(f"{path} describes a {body.get('kind')!r} folder, not a {kind!r} one")
    return body


def verify_files(folder: str | os.PathLike, rels: Iterable[str], manifest: dict | None = None) -> dict:
    """Hash just ``rels`` and compare them with the manifest. Returns the manifest."""
    root = Path(folder)
    manifest = manifest if manifest is not None else read_manifest(root)
    listed = manifest["files"]
    for rel in rels:
        rel = Path(rel).as_posix()
        if rel not in listed:
            raise IntegrityError(f"{root / rel} is not listed in {root / MANIFEST_FILE} (added after it was written)")
        if not (root / rel).is_file():
            raise IntegrityError(f"{root / rel} is missing (listed in {root / MANIFEST_FILE})")
        if sha256_file(root / rel) != listed[rel]:
            raise IntegrityError(f"{root / rel} is damaged: its sha256 differs from {root / MANIFEST_FILE}")
    return manifest


def verify_folder(folder: str | os.PathLike, *, kind: str | None = None, ignore: Iterable[str] = ()) -> dict:
    """Every listed file present and intact, and no unlisted file (but ``ignore`` prefixes). Returns the manifest."""
    root = Path(folder)
    manifest = read_manifest(root, kind=kind)
    ignore = (*ignore, *manifest.get("excluded", ()))
    extra = [r for r in folder_files(root, ignore) if r not in manifest["files"]]
    if extra:
        raise IntegrityError(f"{root / extra[0]} is not listed in {root / MANIFEST_FILE} (added after it was written)")
    verify_files(root, [r for r in manifest["files"] if not (ignore and r.startswith(ignore))], manifest)
    return manifest
