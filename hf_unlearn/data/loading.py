"""One loader for sentiment data: the Hub, local files, or the synthetic generator.

Whatever the source, the result is a ``DatasetDict`` with ``train`` and ``test`` splits and
the columns ``id`` (unique, stable string), ``text`` (str) and ``label`` (int64). Extra
columns are dropped, except ``is_canary`` from the synthetic generator.
"""

from __future__ import annotations

import codecs
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


TEXT_KINDS = ("csv", "json")


def check_data_file(path: str | Path, kind: str, what: str = "data file") -> None:
    """A text data file (csv, json, jsonl) must be non-empty UTF-8 (a BOM is accepted); else one
    ``DatasetFormatError`` that names the file, the first bad byte and what to do."""
    path = Path(path)
    if path.stat().st_size == 0:
        raise DatasetFormatError(f"{what} {path} is empty; it needs a header and at least one example")
    if kind not in TEXT_KINDS:
        return
    if path.stat().st_size < 1 << 16 and len([ln for ln in path.read_bytes().splitlines() if ln.strip()]) < 2:
        raise DatasetFormatError(
            f"{what} {path} holds 0 examples" + (" (a header line only)" if kind == "csv" else "")
        )
    decoder = codecs.getincrementaldecoder("utf-8")()
    offset = 0
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            try:
                decoder.decode(chunk)
            except UnicodeDecodeError as exc:
                bad = offset + exc.start
                raise DatasetFormatError(
                    f"{what} {path} is not UTF-8 text (byte 0x{chunk[exc.start]:02x} at offset {bad}); "
                    "save it as UTF-8, e.g. `iconv -f latin1 -t utf-8 FILE > FILE.utf8`"
                ) from None
            offset += len(chunk)
    try:
        decoder.decode(b"", final=True)
    except UnicodeDecodeError:
        raise DatasetFormatError(f"{what} {path} ends in the middle of a UTF-8 character; save it as UTF-8") from None


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
    check_columns(ds, split, text_column, label_column)
    ds = ds.cast_column("label", Value("int64")).cast_column("id", Value("string"))
    ids = ds["id"]
    if len(set(ids)) != len(ids):
        seen, dup = set(), []
        for i in ids:
            if i in seen:
                dup.append(i)
            seen.add(i)
        raise DatasetFormatError(
            f"split {split!r}: column {id_column or 'id'!r} has {len(dup)} duplicate id(s), e.g. {dup[:5]}; "
            "ids must be unique (drop the duplicates, or leave out the id column to number the rows)"
        )
    return ds


def check_columns(ds: Dataset, split: str, text_column: str, label_column: str) -> None:
    """Rows exist, texts are strings, labels are whole numbers (``label_column`` names them in errors)."""
    if len(ds) == 0:
        raise DatasetFormatError(f"split {split!r} is empty: it needs at least one example")
    labels = ds["label"]
    if any(y is None for y in labels):
        row = next(k for k, y in enumerate(labels) if y is None)
        raise DatasetFormatError(
            f"split {split!r}: column {label_column!r} has an empty value (row {row}); every example needs a label"
        )
    bad = next((y for y in labels if isinstance(y, bool) or not _is_whole(y)), None)
    if bad is not None:
        raise DatasetFormatError(
            f"split {split!r}: column {label_column!r} holds {bad!r}, not an integer class id; "
            f"map the labels to 0..num_labels-1 (e.g. neg -> 0, pos -> 1) before training"
        )
    texts = ds["text"]
    row = next((k for k, t in enumerate(texts) if not isinstance(t, str)), None)
    if row is not None:
        raise DatasetFormatError(
            f"split {split!r}: column {text_column!r} has no text in row {row} ({texts[row]!r}); every example needs a text"
        )


def _is_whole(value) -> bool:
    if isinstance(value, (int, np.integer)):
        return True
    if isinstance(value, (float, np.floating)):
        return float(value).is_integer()
    if isinstance(value, str):
        return value.strip().lstrip("-").isdigit()
    return False


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
    exclude=None,
    **synthetic_kwargs,
) -> DatasetDict:
    """Load sentiment data as ``DatasetDict(train, test)`` with columns ``id``, ``text``, ``label``.

    ``source`` is ``"synthetic"`` (generated here, offline), a local parquet/csv/jsonl file or a
    folder holding ``train.*`` and ``test.*`` files, or a Hub data set name (``"imdb"``, any
    ``datasets`` name). Ids come from ``id_column`` (or an ``id`` column) when present, else
    ``"{split}/{row}"`` which is stable because Hub and file row order is fixed. A single local
    file is split into train/test by ``test_fraction`` with ``seed``.

    ``exclude``: ids, or a ``RequestLedger`` (its ``forgotten_ids()``), dropped from the train split
    (:func:`exclude_train_ids`); the test split is never touched. For the ledgers of run folders pass
    ``hf_unlearn.requests.forgotten_ids_of(RUN, ...)`` (``data`` does not read ledgers itself).
    """
    if source == "synthetic":
        dd = make_synthetic_reviews(seed=seed, **synthetic_kwargs)
    elif synthetic_kwargs:
        raise TypeError(f"unexpected arguments for source {source!r}: {sorted(synthetic_kwargs)}")
    elif os.path.exists(source):
        kind, files = _local_files(Path(source))
        for f in (f for split_files in files.values() for f in split_files):
            check_data_file(f, kind)
        dd = _read_files(source, kind, files)
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
    return exclude_train_ids(out, exclude)[0]


def excluded_ids(exclude) -> set[str]:
    """The ids ``exclude`` names: an iterable of ids, or an object with ``forgotten_ids()`` (a
    ``RequestLedger``). A single string or path is refused: it would read as its characters."""
    if exclude is None:
        return set()
    if hasattr(exclude, "forgotten_ids"):
        return {str(i) for i in exclude.forgotten_ids()}
    if isinstance(exclude, (str, bytes, os.PathLike)):
        raise TypeError(
            f"exclude={str(exclude)!r}: give ids (a list or set), a RequestLedger, or for run folders "
            "hf_unlearn.requests.forgotten_ids_of(RUN, ...)"
        )
    return {str(i) for i in exclude}


def exclude_train_ids(data: DatasetDict, exclude) -> tuple[DatasetDict, int]:
    """``(data without the ``exclude`` ids in its train split, how many rows were dropped)``.

    The rule of training that never re-learns what was forgotten: the listed ids leave the train
    split (row order kept) before anything else sees it; an id the split does not hold is fine
    (nothing to drop); every other split is untouched. A ``max_train`` subset is drawn BEFORE the
    exclusion, so a retrain trains on the same examples as the run it replaces, minus the forgotten.
    """
    drop = excluded_ids(exclude)
    if not drop:
        return data, 0
    train = data["train"]
    keep = [k for k, i in enumerate(train["id"]) if i not in drop]
    if len(keep) == len(train):
        return data, 0
    if not keep:
        raise DatasetFormatError(f"excluding {len(drop)} forgotten id(s) leaves the train split empty")
    out = DatasetDict(dict(data))
    out["train"] = train.select(keep)
    return out, len(train) - len(keep)


def _file_kind(path: str, flag: str) -> str:
    file = Path(path)
    if file.is_dir():
        raise DatasetFormatError(f"{flag} {path} is a folder; give a csv/json/jsonl/parquet file")
    if not file.is_file():
        raise DatasetFormatError(f"{flag}: no such file: {path}")
    kind = LOCAL_SUFFIXES.get(file.suffix.lower())
    if kind is None:
        raise DatasetFormatError(
            f"{flag} {path}: unsupported file type {file.suffix!r}; use one of {sorted(LOCAL_SUFFIXES)}"
        )
    check_data_file(file, kind, f"{flag}")
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
    exclude=None,
) -> DatasetDict:
    """Sentiment data from files, as ``--train_file`` / ``--validation_file`` / ``--test_file`` in the
    transformers example scripts (csv, json, jsonl or parquet; the types may differ).

    The test split is ``test_file``, else ``validation_file``, else a ``test_fraction`` split of the
    training file drawn with ``seed``. With both, the validation file becomes a ``validation`` split.
    Columns, ids, subsets and ``exclude`` as in :func:`load_sentiment_dataset`.
    """
    given = {"train": (train_file, "--train_file"), "validation": (validation_file, "--validation_file")}
    given["test"] = (test_file, "--test_file")
    kinds = {split: (path, _file_kind(path, flag)) for split, (path, flag) in given.items() if path}  # all first
    splits = {split: _read_file(path, kind) for split, (path, kind) in kinds.items()}
    names = {split: path for split, (path, _) in kinds.items()}
    if "test" not in splits and "validation" in splits:
        splits["test"], names["test"] = splits.pop("validation"), names.pop("validation")
    if "test" not in splits:
        if len(splits["train"]) < 2:
            raise DatasetFormatError(
                f"--train_file {train_file} holds {len(splits['train'])} example(s); it needs examples to train and test on"
            )
        parts = splits["train"].train_test_split(test_size=test_fraction, seed=seed, shuffle=True)
        splits.update(train=parts["train"], test=parts["test"])
        names["test"] = train_file
    out = {}
    for split, ds in splits.items():
        try:
            out[split] = _normalise(ds, split, text_column, label_column, id_column)
        except DatasetFormatError as exc:
            raise DatasetFormatError(f"{names[split]}: {exc}") from None
    out = DatasetDict(out)
    out["train"] = balanced_subset(out["train"], max_train, seed)
    out["test"] = balanced_subset(out["test"], max_test, seed + 1)
    return exclude_train_ids(out, exclude)[0]


def _read_file(path: str, kind: str) -> Dataset:
    """One local file as a ``Dataset`` (see :func:`_read_files`)."""
    return _read_files(path, kind, {"train": [str(path)]})["train"]


def _read_files(source: str, kind: str, files: dict) -> DatasetDict:
    """Local files as a ``DatasetDict``; a file the reader rejects is a ``DatasetFormatError`` naming it."""
    try:
        return load_dataset(kind, data_files=files)
    except Exception as exc:  # the readers raise many types (pandas, pyarrow, datasets); all mean a bad file
        cause = exc.__cause__ or exc
        why = " ".join(str(cause).split())[:200]
        raise DatasetFormatError(f"{source} cannot be read as {kind}: {type(cause).__name__}: {why}") from exc


def fingerprint_dataset(ds: Dataset) -> str:
    """sha256 over the ids and labels in row order (not the text): identifies a split without revealing it."""
    h = hashlib.sha256()
    for i, y in zip(ds["id"], ds["label"]):
        h.update(f"{i}\t{y}\n".encode())
    return h.hexdigest()
