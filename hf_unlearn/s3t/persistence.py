"""Files of a system folder, the base model, and copying a system.

    s3t_config.json      {"method", "config": the S3TConfig / SISAConfig, "system": the structure
                         (layer blocks, adapted modules, head, slice orders, data source, fingerprints)}
    active_prefixes.json active prefixes and shard status (a copy of the ledger's, without ids)
    report.json        method, guarantee, forget count + sha256, metrics, config, versions
    base/              base model + tokenizer (save_pretrained, safetensors)
    checkpoints/       one safetensors file per active stage checkpoint
    assignment.json    PRIVATE: id -> (shard, slice)
    ledger.sqlite      PRIVATE: requests, deleted ids, checkpoint records, active prefixes, fingerprint
    commitment_salt.json PRIVATE: the salt of the report's forget-set commitment
    .hf_unlearn.lock   the system lock (one mutation at a time)

The publisher (``hf_unlearn.hub``) uploads the allowed files only: ``*.safetensors``, configs and
tokenizer files at any depth, ``s3t_config.json`` and ``active*.json`` (the names above are chosen
to match); never the private files (see ``publishable_files``). Such a copy loads read-only.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path

from ..artifacts import COMMITMENT_SALT_FILE, REPORT_FILE, S3T_ASSIGNMENT_FILE, S3T_LEDGER_FILE, atomic_write_json
from ..cards.privacy import is_private_path

ASSIGNMENT_FILE = S3T_ASSIGNMENT_FILE
LEDGER_FILE = S3T_LEDGER_FILE
CONFIG_FILE = "s3t_config.json"
SERVED_FILE = "active_prefixes.json"
BASE_DIR = "base"
# The private files of a system (the rules that keep them, their journals and temporary copies on
# this machine are hf_unlearn.cards.privacy's).
PRIVATE_FILES = (ASSIGNMENT_FILE, LEDGER_FILE)


def write_json(path: str | Path, data) -> None:
    atomic_write_json(path, data, indent=2, sort_keys=False)


def read_json(path: str | Path):
    return json.loads(Path(path).read_text())


def is_private(path: str | Path, root: str | Path | None = None) -> bool:
    """Whether a file of a system folder must stay on this machine (``cards.privacy``'s rules: also
    the ledger's journal and a writer's temporary files). ``root``: the system folder, so that only
    the path inside it is judged (else the file name alone)."""
    rel = Path(path).relative_to(root) if root is not None else Path(Path(path).name)
    return is_private_path(rel.as_posix())


def publishable_files(system_dir: str | Path) -> list[Path]:
    """Files of the system that may be published: all but the ones naming training examples."""
    root = Path(system_dir)
    return sorted(p for p in root.rglob("*") if p.is_file() and not is_private(p, root))


def write_system_config(root: str | Path, config, info: dict) -> None:
    write_json(
        Path(root) / CONFIG_FILE, {"format": 1, "method": info["method"], "config": config.to_dict(), "system": info}
    )


def read_system_config(root: str | Path) -> tuple[dict, dict]:
    """(config fields, system structure) of the system in ``root``."""
    path = Path(root) / CONFIG_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{root} holds no S3T system ({CONFIG_FILE} missing)")
    data = read_json(path)
    return data["config"], data["system"]


def save_base(model, tokenizer, folder: str | Path) -> None:
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)


def load_base(folder: str | Path):
    """The base model (eval mode) and tokenizer saved in ``folder``; never remote code."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True, trust_remote_code=False)
    model = AutoModelForSequenceClassification.from_pretrained(folder, local_files_only=True, trust_remote_code=False)
    return model.eval(), tokenizer


def copy_system(src: str | Path, dst: str | Path, checkpoint_relpaths, include_private: bool) -> Path:
    """Copy a system folder with only the given checkpoints; the ledger through SQLite's backup API."""
    src, dst = Path(src), Path(dst)
    if dst.exists() and any(dst.iterdir()):
        raise FileExistsError(f"{dst} is not empty")
    dst.mkdir(parents=True, exist_ok=True)
    shutil.copytree(src / BASE_DIR, dst / BASE_DIR)
    for name in (CONFIG_FILE, SERVED_FILE, REPORT_FILE):
        if (src / name).is_file():
            shutil.copy2(src / name, dst / name)
    for rel in checkpoint_relpaths:
        (dst / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src / rel, dst / rel)
    if include_private:
        for name in (ASSIGNMENT_FILE, COMMITMENT_SALT_FILE):
            if (src / name).is_file():
                shutil.copy2(src / name, dst / name)
        if (src / LEDGER_FILE).is_file():
            a, b = sqlite3.connect(str(src / LEDGER_FILE)), sqlite3.connect(str(dst / LEDGER_FILE))
            try:
                a.backup(b)
            finally:
                a.close()
                b.close()
    return dst
