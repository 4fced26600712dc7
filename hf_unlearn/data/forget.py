"""Deletion requests: which training examples must be forgotten.

A ``ForgetRequest`` is built from ids (a list or a file with one id per line), a label, or a
filter over the training split, and is validated against that split before anything uses it.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from datasets import Dataset

from ..artifacts import ids_digest


class ForgetRequestError(ValueError):
    """A deletion request that cannot be served as given; nothing has been changed."""


def forget_ids_sha256(ids: Iterable[str]) -> str:
    """Deprecated: use :func:`hf_unlearn.artifacts.ids_digest` (the same value)."""
    warnings.warn(
        "hf_unlearn.data.forget_ids_sha256 is deprecated: use hf_unlearn.artifacts.ids_digest",
        DeprecationWarning,
        stacklevel=2,
    )
    return ids_digest(ids)


def read_text_utf8(path: Path, what: str, error: type[Exception]) -> str:
    """The text of ``path`` decoded as UTF-8 (a BOM is dropped; CRLF is left to ``splitlines``).

    Anything else is ``error`` with one line naming the file, the first bad byte and what to do.
    """
    if path.is_dir():
        raise error(f"{what} {path} is a folder, not a file; give the file itself")
    if not path.is_file():
        raise error(f"{what} not found: {path}")
    data = path.read_bytes()
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise error(
            f"{what} {path} is not UTF-8 text (byte 0x{data[exc.start]:02x} at offset {exc.start}); "
            "save it as UTF-8, e.g. `iconv -f latin1 -t utf-8 FILE > FILE.utf8`"
        ) from None


def read_id_file(path: str | Path) -> list[str]:
    """One id per line; blank lines and lines starting with ``#`` are ignored.

    The file must be UTF-8 (with or without a BOM; LF or CRLF line ends) and hold at least one id;
    otherwise ``ForgetRequestError`` names the file and what to do.
    """
    path = Path(path)
    text = read_text_utf8(path, "forget-id file", ForgetRequestError)
    ids = [s for line in text.splitlines() if (s := line.strip()) and not s.startswith("#")]
    if not ids:
        raise ForgetRequestError(
            f"forget-id file {path} holds no id (only blank lines or # comments); one id per line"
        )
    return ids


def check_ids_known(ids: Iterable[str], known: Iterable[str], what: str = "training split") -> None:
    """Raise ``ForgetRequestError`` naming up to 10 unknown ids and their count."""
    known = known if isinstance(known, (set, frozenset)) else set(known)
    unknown = sorted(i for i in set(ids) if i not in known)
    if unknown:
        shown = ", ".join(repr(i) for i in unknown[:10])
        more = f" (and {len(unknown) - 10} more)" if len(unknown) > 10 else ""
        raise ForgetRequestError(f"{len(unknown)} id(s) not in the {what}: {shown}{more}")


@dataclass
class ForgetRequest:
    """What to forget. Exactly one of ``ids``, ``label`` or ``where`` selects the examples.

    ``resolve(train)`` validates the request against the training split and returns the
    sorted, de-duplicated ids. Unknown ids raise an error that names up to 10 of them and
    their count; an empty selection is an error; duplicates are dropped with a warning.
    """

    ids: list[str] | None = None
    label: int | None = None
    where: Callable[[dict], bool] | None = field(default=None, repr=False)
    description: str = ""

    @classmethod
    def from_ids(cls, ids: Iterable[str]) -> ForgetRequest:
        return cls(ids=[str(i) for i in ids], description="ids")

    @classmethod
    def from_file(cls, path: str | Path) -> ForgetRequest:
        return cls(ids=read_id_file(path), description=f"ids from {Path(path).name}")

    @classmethod
    def from_label(cls, label: int) -> ForgetRequest:
        return cls(label=int(label), description=f"every example with label {label}")

    @classmethod
    def from_filter(cls, where: Callable[[dict], bool], description: str = "filter") -> ForgetRequest:
        return cls(where=where, description=description)

    def resolve(self, train: Dataset) -> list[str]:
        chosen = [x is not None for x in (self.ids, self.label, self.where)]
        if sum(chosen) != 1:
            raise ForgetRequestError("a ForgetRequest needs exactly one of ids, label or where")
        if "id" not in train.column_names:
            raise ForgetRequestError(f"the training split has no 'id' column (columns: {train.column_names})")
        if self.ids is not None:
            ids = list(self.ids)
            if not ids:
                raise ForgetRequestError("the forget request is empty: no ids given")
            unique = sorted(set(ids))
            if len(unique) != len(ids):
                warnings.warn(f"forget request: {len(ids) - len(unique)} duplicate id(s) removed", stacklevel=2)
            check_ids_known(unique, train["id"])
            return unique
        if self.label is not None:
            if "label" not in train.column_names:
                raise ForgetRequestError("the training split has no 'label' column")
            ids = [i for i, y in zip(train["id"], train["label"]) if y == self.label]
        else:
            ids = [row["id"] for row in train if self.where(row)]
        if not ids:
            raise ForgetRequestError(f"the forget request ({self.description}) selects no training example")
        return sorted(set(ids))
