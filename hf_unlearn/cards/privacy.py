"""What may leave the machine: the allow-list of run-directory files and the report scrubber.

Two independent rules protect a deletion request:

1. Files are chosen by an ALLOW-list (model weights, configs, tokenizer, plots) and, as a
   second line of defence, anything whose path matches a known private name (forget ids,
   unlearning logs, checkpoints, optimizer state, ledgers, shard assignments, temporary files of
   a writer) is refused even if the allow-list matched it. The names of the private files the
   package itself creates come from ``hf_unlearn.artifacts``, where their writers take them too.
2. ``report.json`` is copied through :func:`strip_private`, which removes everything
   per-example: the ``per_example`` section, keys named like ids / texts / examples, lists
   whose items look like example ids or texts, and dicts keyed by ids. It also removes plain
   hashes of ids (``forget.sha256`` of a version-1 report, ``ids_sha256``, ``ids_digest``): anyone
   who can list candidate ids inverts them. The forget set is published only as its salted
   ``commitment`` (``hf_unlearn.artifacts.forget_set_commitment``).
"""

from __future__ import annotations

import fnmatch
import re
from pathlib import PurePosixPath
from typing import Any

from ..artifacts import CHECKPOINT_PREFIX, PRIVATE_DIRS, PRIVATE_FILES, TEMP_MARKER, TRAINING_ARGS_FILE

# Top-level files of a ``save_pretrained`` run that make a usable model.
WEIGHT_PATTERNS = ("*.safetensors", "model.safetensors.index.json")
CONFIG_FILES = ("config.json", "generation_config.json", "adapter_config.json")
TOKENIZER_FILES = (
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "added_tokens.json",
    "vocab.txt",
    "vocab.json",
    "merges.txt",
    "spiece.model",
    "sentencepiece.bpe.model",
    "tokenizer.model",
)
# Extra non-private files of an S3T / SISA system directory (kept with their subfolders).
SYSTEM_CONFIGS = ("s3t_config.json", "sisa_config.json")
SYSTEM_FILES = (*SYSTEM_CONFIGS, "active*.json")
PLOT_PATTERN = "plots/*.png"
SYSTEM_METHODS = ("s3t", "sisa")


def _stem(name: str) -> str:
    dot = "." if name.startswith(".") else ""  # a hidden file keeps its dot: ".hf_unlearn.lock" -> ".hf_unlearn"
    return dot + name[len(dot) :].split(".", 1)[0]


# The private files hf_unlearn writes (artifacts/names.py names them), with their journals, backups and
# renamed copies: ``ledger.sqlite-journal``, ``assignment.json.bak``, ``unlearning_log_old``.
OWN_PRIVATE_PATTERNS = (
    *(f"{_stem(name).lower()}*" for name in (*PRIVATE_DIRS, *PRIVATE_FILES, TRAINING_ARGS_FILE)),
    f"{CHECKPOINT_PREFIX}*",
    f"*{TEMP_MARKER}*",
)
# Never uploaded, whatever the allow-list says (matched against every path component, lower-cased).
PRIVATE_PATTERNS = (
    *OWN_PRIVATE_PATTERNS,
    "*forget*id*",
    "*forget*text*",
    "*_log",
    "logs",
    "optimizer.*",
    "scheduler.*",
    "rng_state*",
    "trainer_state.json",
    "*.sqlite",
    "*.sqlite3",
    "*.db",
    "*-journal",
    "*-wal",
    "*.pt",
    "*.pth",
    "*.bin",
    "*.pkl",
    "*.pickle",
    "*.npy",
    "*.npz",
    "*.parquet",
    "*.csv",
    "*.jsonl",
    "transcript*",
    "deltas",
    "per_sample*",
)


def _match(name: str, patterns) -> bool:
    name = name.lower()
    return any(fnmatch.fnmatchcase(name, p) for p in patterns)


def is_private_path(rel: str) -> bool:
    """True if any component of the relative path ``rel`` has a private-looking name."""
    return any(_match(part, PRIVATE_PATTERNS) for part in PurePosixPath(rel).parts)


def is_allowed_path(rel: str, system: bool = False) -> bool:
    """Whether run-dir file ``rel`` (posix, relative) belongs in the upload folder.

    Ordinary runs: top-level weights/config/tokenizer files and ``plots/*.png``. Exact-unlearning
    systems (``system=True``): the same file names at any depth plus the system's own config and
    ``active*.json`` files, keeping their subfolders. ``README.md`` and ``report.json`` are
    regenerated, never copied. Private names always lose.
    """
    if is_private_path(rel):
        return False
    path = PurePosixPath(rel)
    if fnmatch.fnmatchcase(rel, PLOT_PATTERN) and len(path.parts) == 2:
        return True
    if len(path.parts) > 1 and not system:
        return False
    name = path.name
    allowed = WEIGHT_PATTERNS + CONFIG_FILES + TOKENIZER_FILES + (SYSTEM_FILES if system else ())
    return any(fnmatch.fnmatchcase(name, p) for p in allowed)


# ------------------------------------------------------------------------------ report scrubbing

_PRIVATE_KEY = re.compile(
    r"(^|_)(per_example|ids?|texts?|examples?|sentences?|reviews?|canaries|secrets?|forget_set)$"
)
# plain (unsalted) hashes of ids: guessable, never published (the salted "commitment" is)
_PLAIN_ID_HASH = re.compile(r"^(sha256|sha1|md5|(\w+_)?ids?_(sha256|sha1|md5|digest|hash))$")
_ID_TAIL = re.compile(r"[A-Za-z].*[-_/:#]\d+$")
_DIGIT_RUN = re.compile(r"\d{3,}")
_MAX_SCALAR_LIST = 64


def looks_like_id(value: Any) -> bool:
    """``"synthetic-train-00012"``, ``"train/3"``, ``"canary-0001"``, ``"12345"``: an example id."""
    if not isinstance(value, str) or not 0 < len(value) <= 128 or any(c.isspace() for c in value):
        return False
    return value.isdigit() or bool(_ID_TAIL.search(value)) or bool(_DIGIT_RUN.search(value))


def looks_like_text(value: Any) -> bool:
    """A string of three or more words: possibly an example's text."""
    return isinstance(value, str) and len(value.split()) >= 3


def _is_number(value: Any) -> bool:
    return value is None or isinstance(value, (int, float))


def _private_reason(key: str, value: Any) -> str | None:
    k = str(key).lower()
    if k == "per_example" or k.endswith("_per_example"):
        return "per-example section"
    if _PRIVATE_KEY.search(k) and not _is_number(value):
        return "key named like ids/texts/examples"
    return None


def _plain_hash(key: str, value: Any) -> bool:
    """A report field holding an unsalted hash of ids (``forget.sha256`` of a version-1 report)."""
    return isinstance(value, str) and bool(_PLAIN_ID_HASH.match(str(key).lower()))


def strip_private(obj: Any, path: str = "") -> tuple[Any, list[str]]:
    """Return ``(clean_copy, removed)``: ``obj`` without anything per-example.

    ``removed`` lists the JSON paths that were dropped (``"per_example"``, ``"config.forget.ids"``),
    never their contents. Counts (``"forget": {"count": 250}``), dataset fingerprints and the salted
    ``commitment`` are kept; plain hashes of ids (``sha256``, ``ids_sha256``, ...) are removed.
    """
    removed: list[str] = []

    def walk(value: Any, where: str) -> tuple[bool, Any]:
        if isinstance(value, dict):
            keys = list(value)
            if len(keys) >= 2 and all(looks_like_id(str(k)) for k in keys):
                removed.append(where or "<root>")
                return False, None
            out = {}
            for k, v in value.items():
                sub = f"{where}.{k}" if where else str(k)
                if _private_reason(k, v) or _plain_hash(k, v):
                    removed.append(sub)
                    continue
                keep, clean = walk(v, sub)
                if keep:
                    out[k] = clean
            return True, out
        if isinstance(value, (list, tuple)):
            if any(looks_like_id(x) or looks_like_text(x) for x in value):
                removed.append(where)
                return False, None
            if len(value) > _MAX_SCALAR_LIST and all(isinstance(x, (str, int, float)) for x in value):
                removed.append(where)
                return False, None
            out_list = []
            for i, v in enumerate(value):
                keep, clean = walk(v, f"{where}[{i}]")
                if keep:
                    out_list.append(clean)
            return True, out_list
        return True, value

    _, clean = walk(obj, path)
    return clean, removed


def private_keys(obj: Any) -> list[str]:
    """JSON paths of ``obj`` whose KEY names a per-example field (used to refuse S3T system files)."""
    found: list[str] = []

    def walk(value: Any, where: str) -> None:
        if isinstance(value, dict):
            for k, v in value.items():
                sub = f"{where}.{k}" if where else str(k)
                if _private_reason(k, v):
                    found.append(sub)
                else:
                    walk(v, sub)
        elif isinstance(value, list):
            for i, v in enumerate(value):
                walk(v, f"{where}[{i}]")

    walk(obj, "")
    return found


_LOCAL_PATH = re.compile(r"^(/|~|\.{1,2}/|[A-Za-z]:[\\/])")


def redact_local_paths(obj: Any) -> tuple[Any, int]:
    """Replace every string that is a local file-system path (absolute, ``~``, ``./`` or ``../``)
    by ``<local>/<last component>``: a published config must not reveal the machine's folders.
    Hub names (``imdb``, ``distilbert-base-uncased``) are left alone. Returns the copy and the count."""
    if isinstance(obj, str):
        if _LOCAL_PATH.match(obj):
            return "<local>/" + obj.rstrip("/\\").replace("\\", "/").rsplit("/", 1)[-1], 1
        return obj, 0
    if isinstance(obj, dict):
        out, n = {}, 0
        for k, v in obj.items():
            out[k], c = redact_local_paths(v)
            n += c
        return out, n
    if isinstance(obj, list):
        items = [redact_local_paths(v) for v in obj]
        return [v for v, _ in items], sum(c for _, c in items)
    return obj, 0
