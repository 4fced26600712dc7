"""One loader for sentiment data: the Hub, local files, or the synthetic generator.

Whatever the source, the result is a ``DatasetDict`` with ``train`` and ``test`` splits and
the columns ``id`` (unique, stable string), ``text`` (str) and ``label`` (int64). Extra
columns are dropped, except ``is_canary`` from the synthetic generator.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np
from datasets import Dataset, DatasetDict, Value, load_dataset

from .synthetic import make_synthetic_reviews

HUB_ALIASES = {"imdb": "stanfordnlp/imdb"}
LOCAL_SUFFIXES = {".parquet": "parquet", ".csv": "csv", ".jsonl": "json", ".json": "json"}
KEEP_COLUMNS = ("id", "text", "label", "is_canary")


class DatasetFormatError(ValueError):
    """The data set lacks a required column or has ids that are not unique."""


def _local_files(path: Path) -> tuple[str, dict[str, list[str]]]:
    if path.is_file():
        kind = LOCAL_SUFFIXES.get(path.suffix)
        if kind is None:
            raise DatasetFormatError(
                f"{path}: unsupported file type {path.suffix!r}; use one of {sorted(LOCAL_SUFFIXES)}"
            )
        return kind, {"train": [str(path)]}
    files: dict[str, list[str]] = {}
    kinds = set()
    for f in sorted(path.iterdir()):
        if f.suffix in LOCAL_SUFFIXES and f.stem.split("-")[0] in ("train", "test"):
            files.setdefault(f.stem.split("-")[0], []).append(str(f))
            kinds.add(LOCAL_SUFFIXES[f.suffix])
    if "train" not in files:
        raise DatasetFormatError(
            f"{path}: a data folder must hold train.(parquet|csv|jsonl|json) (and test.*) files; "
            "for files named otherwise use --train_file FILE [--test_file FILE]"
        )
    if len(kinds) != 1:
        raise DatasetFormatError(f"{path}: mixed file types {sorted(kinds)}")
    return kinds.pop(), files


def _normalise(ds: Dataset, split: str, text_column: str, label_column: str, id_column: str | None) -> Dataset:
    missing = [c for c in (text_column, label_column) if c not in ds.column_names]
    if missing:
        raise DatasetFormatError(
            f"split {split!r} has no column(s) {missing}; its columns are {ds.column_names}. "
            "Name yours with text_column= / label_column= (CLI: --text_column, --label_column)."
        )
    renames = {text_column: "text", label_column: "label"}
    if id_column and id_column not in ds.column_names:
        raise DatasetFormatError(f"split {split!r} has no id column {id_column!r}; its columns are {ds.column_names}")
    if id_column is None and "id" in ds.column_names:
        id_column = "id"
    if id_column and id_column != "id":
        if "id" in ds.column_names:
            ds = ds.remove_columns("id")
        renames[id_column] = "id"
    ds = ds.rename_columns({k: v for k, v in renames.items() if k != v})
    if id_column is None:
        ds = ds.add_column("id", [f"{split}/{i}" for i in range(len(ds))])
    ds = ds.remove_columns([c for c in ds.column_names if c not in KEEP_COLUMNS])
    ds = ds.cast_column("label", Value("int64")).cast_column("id", Value("string"))
    ids = ds["id"]
    if len(set(ids)) != len(ids):
        seen, dup = set(), []
        for i in ids:
            if i in seen:
                dup.append(i)
            seen.add(i)
        raise DatasetFormatError(f"split {split!r}: {len(dup)} duplicate id(s), e.g. {dup[:5]}")
    return ds


def _load_hub(source: str) -> DatasetDict:
    """A Hub data set; a missing local path or an unreachable Hub is one clear ``DatasetFormatError``."""
    if source.startswith((".", "/", "~", os.sep)):
        raise DatasetFormatError(f"data file or folder not found: {source}")
    try:
        return load_dataset(HUB_ALIASES.get(source, source))
    except (ConnectionError, FileNotFoundError) as exc:
        offline = os.environ.get("HF_DATASETS_OFFLINE", os.environ.get("HF_HUB_OFFLINE", "")).lower()
        why = "the Hub is offline" if offline in ("1", "true", "yes", "on") else type(exc).__name__
        raise DatasetFormatError(
            f"cannot load data set {source!r} from the Hub ({why}) and it is not in the local cache; "
            "use --dataset_name synthetic (offline), a local file or folder, or --train_file FILE"
        ) from None


def balanced_subset(ds: Dataset, n: int, seed: int = 0) -> Dataset:
    """A label-balanced random subset of ``n`` rows (all rows when ``n >= len(ds)``), order by seed."""
    if n is None or n >= len(ds):
        return ds
    rng = np.random.default_rng(seed)
    labels = np.asarray(ds["label"])
    classes = np.unique(labels)
    per_class = [rng.permutation(np.flatnonzero(labels == c)) for c in classes]
    take, k = [], 0
    while len(take) < n:
        for rows in per_class:
            if k < len(rows) and len(take) < n:
                take.append(int(rows[k]))
        k += 1
    return ds.select(sorted(take))


def load_sentiment_dataset(
    source: str = "imdb",
    *,
    text_column: str = "text",
    label_column: str = "label",
    id_column: str | None = None,
    max_train: int | None = None,
    max_test: int | None = None,
    test_fraction: float = 0.2,
    seed: int = 0,
    **synthetic_kwargs,
) -> DatasetDict:
    """Load sentiment data as ``DatasetDict(train, test)`` with columns ``id``, ``text``, ``label``.

    ``source`` is ``"synthetic"`` (generated here, offline), a local parquet/csv/jsonl file or a
    folder holding ``train.*`` and ``test.*`` files, or a Hub data set name (``"imdb"``, any
    ``datasets`` name). Ids come from ``id_column`` (or an ``id`` column) when present, else
    ``"{split}/{row}"`` which is stable because Hub and file row order is fixed. A single local
    file is split into train/test by ``test_fraction`` with ``seed``.
    """
    if source == "synthetic":
        dd = make_synthetic_reviews(seed=seed, **synthetic_kwargs)
    elif synthetic_kwargs:
        raise TypeError(f"unexpected arguments for source {source!r}: {sorted(synthetic_kwargs)}")
    elif os.path.exists(source):
        kind, files = _local_files(Path(source))
        dd = load_dataset(kind, data_files=files)
        if "test" not in dd:
            parts = dd["train"].train_test_split(test_size=test_fraction, seed=seed, shuffle=True)
            dd = DatasetDict(train=parts["train"], test=parts["test"])
    else:
        dd = _load_hub(source)
    missing_splits = [s for s in ("train", "test") if s not in dd]
    if missing_splits:
        raise DatasetFormatError(f"{source}: no split(s) {missing_splits}; it has {list(dd)}")
    out = DatasetDict({s: _normalise(dd[s], s, text_column, label_column, id_column) for s in ("train", "test")})
    out["train"] = balanced_subset(out["train"], max_train, seed)
    out["test"] = balanced_subset(out["test"], max_test, seed + 1)
    return out


def _file_kind(path: str, flag: str) -> str:
    file = Path(path)
    if not file.is_file():
        raise DatasetFormatError(f"{flag}: no such file: {path}")
    kind = LOCAL_SUFFIXES.get(file.suffix.lower())
    if kind is None:
        raise DatasetFormatError(
            f"{flag} {path}: unsupported file type {file.suffix!r}; use one of {sorted(LOCAL_SUFFIXES)}"
        )
    return kind


def load_data_files(
    train_file: str,
    *,
    validation_file: str | None = None,
    test_file: str | None = None,
    text_column: str = "text",
    label_column: str = "label",
    id_column: str | None = None,
    max_train: int | None = None,
    max_test: int | None = None,
    test_fraction: float = 0.2,
    seed: int = 0,
) -> DatasetDict:
    """Sentiment data from files, as ``--train_file`` / ``--validation_file`` / ``--test_file`` in the
    transformers example scripts (csv, json, jsonl or parquet; the types may differ).

    The test split is ``test_file``, else ``validation_file``, else a ``test_fraction`` split of the
    training file drawn with ``seed``. With both, the validation file becomes a ``validation`` split.
    Columns, ids and subsets as in :func:`load_sentiment_dataset`.
    """
    given = {"train": (train_file, "--train_file"), "validation": (validation_file, "--validation_file")}
    given["test"] = (test_file, "--test_file")
    splits = {}
    for split, (path, flag) in given.items():
        if path:
            splits[split] = load_dataset(_file_kind(path, flag), data_files={"train": [str(path)]})["train"]
    if "test" not in splits and "validation" in splits:
        splits["test"] = splits.pop("validation")
    if "test" not in splits:
        parts = splits["train"].train_test_split(test_size=test_fraction, seed=seed, shuffle=True)
        splits.update(train=parts["train"], test=parts["test"])
    out = DatasetDict({s: _normalise(ds, s, text_column, label_column, id_column) for s, ds in splits.items()})
    out["train"] = balanced_subset(out["train"], max_train, seed)
    out["test"] = balanced_subset(out["test"], max_test, seed + 1)
    return out


def fingerprint_dataset(ds: Dataset) -> str:
    """sha256 over the ids and labels in row order (not the text): identifies a split without revealing it."""
    h = hashlib.sha256()
    for i, y in zip(ds["id"], ds["label"]):
        h.update(f"{i}\t{y}\n".encode())
    return h.hexdigest()
