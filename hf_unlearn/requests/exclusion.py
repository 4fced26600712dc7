"""Training that never re-learns what was forgotten: the ledgers a retrain excludes.

``hf-unlearn train --exclude_ledger RUN [RUN ...]`` reads the request ledger of every ``RUN``
read-only, before any write (:func:`read_exclusion`), drops every id any of them names (THE UNION:
accepted, served or failed, all forgotten for good) from the train split before the data order is
drawn, records each ledger's state (counts and digest, never ids) in the new run's log and run
file, and gives the new run a ledger that carries every excluded request over
(:func:`write_carried_ledger`), so a later ``--exclude_ledger NEW_RUN`` still excludes them: the
chain of retrains never loses a request.

A folder that already holds a ledger with requests is only trained into again (``--overwrite`` or a
resume) when the retrain excludes every id its ledger names (:func:`uncovered_requests`): its old
ledger then stays in place until the new one, which carries its requests, replaces it in one rename.
"""

from __future__ import annotations

import shutil
import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from ..artifacts import REQUEST_LEDGER_FILE, TEMP_MARKER, atomic_write, ids_digest, private_temp_dir
from ..data.forget import ForgetRequestError
from .ledger import RequestLedger


class LedgerExclusionError(ForgetRequestError):
    """A ledger named to be excluded cannot be read, or its requests cannot be carried over as given."""


@dataclass
class ExcludedLedger:
    """One ledger a retrain excludes, as read before any write: its folder, state and request rows."""

    path: Path
    state: dict
    rows: list[dict] = field(repr=False)  # the requests with their ids: never printed or logged

    def record(self) -> dict:
        """What the new run's log and run file say about it: the folder and the ledger's state, no ids."""
        return {"path": str(self.path), **self.state}


@dataclass
class Exclusion:
    """Every ledger a retrain excludes and the union of the ids they name."""

    ledgers: list[ExcludedLedger] = field(default_factory=list)
    # the ledger of the folder trained into again, when the named ledgers cover it without naming it:
    # its requests are carried over too (not one is lost), but it is not one of the excluded ledgers
    kept: ExcludedLedger | None = None

    @property
    def ids(self) -> set[str]:
        return {i for ledger in self.ledgers for row in ledger.rows for i in row["ids"]}

    def record(self, dropped: int | None = None) -> dict:
        """``{"ledgers": [{path, counts, digest, last_seq}], "listed": n, "sha256": digest[, "count": dropped]}``."""
        ids = self.ids
        out = {"ledgers": [ledger.record() for ledger in self.ledgers], "listed": len(ids), "sha256": ids_digest(ids)}
        return out if dropped is None else {**out, "count": dropped}

    def names(self, folder: str | Path) -> bool:
        return Path(folder).resolve() in {ledger.path for ledger in self.ledgers}


def read_exclusion(folders: Iterable[str | Path] | None) -> Exclusion:
    """Read the ledger of every folder read-only (nothing is written anywhere). A folder without a
    ledger, a ledger that cannot be read, and one request id that two ledgers give with other ids
    (carrying both over would lose one) are each one :class:`LedgerExclusionError`."""
    exclusion = Exclusion()
    for folder in folders or ():
        path = Path(folder).expanduser().resolve()
        if path in {ledger.path for ledger in exclusion.ledgers}:
            continue
        exclusion.ledgers.append(_read_one(path))
    _check_request_ids(exclusion)
    return exclusion


def _read_one(path: Path) -> ExcludedLedger:
    try:
        ledger = RequestLedger.open(path, readonly=True)
    except sqlite3.Error as err:
        raise LedgerExclusionError(
            f"--exclude_ledger {path}: its {REQUEST_LEDGER_FILE} cannot be read ({err})"
        ) from None
    if ledger is None:
        what = "no such folder" if not path.is_dir() else f"no request ledger ({REQUEST_LEDGER_FILE}) in it"
        raise LedgerExclusionError(
            f"--exclude_ledger {path}: {what}; give a run folder on which deletion requests were made"
        )
    try:
        with ledger:
            return ExcludedLedger(path, ledger.state(), ledger.requests())
    except sqlite3.Error as err:
        raise LedgerExclusionError(
            f"--exclude_ledger {path}: its {REQUEST_LEDGER_FILE} cannot be read ({err}); a request killed "
            "mid-write leaves it so until the ledger is next opened for writing (the next request on that run)"
        ) from None


def _check_request_ids(exclusion: Exclusion) -> None:
    seen: dict[str, tuple[str, Path]] = {}
    for ledger in exclusion.ledgers:
        for row in ledger.rows:
            first = seen.setdefault(row["request_id"], (row["ids_sha256"], ledger.path))
            if first[0] != row["ids_sha256"]:
                raise LedgerExclusionError(
                    f"--exclude_ledger: request id {row['request_id']!r} names other ids in {first[1]} and in "
                    f"{ledger.path}; exclude the two runs in two retrains"
                )


def forgotten_ids_of(*folders_or_ledgers) -> set[str]:
    """The union of the ids the ledgers of these run folders (or ``RequestLedger`` objects) name, read
    read-only: what ``load_sentiment_dataset(..., exclude=...)`` takes. A folder without a ledger raises."""
    ids: set[str] = set()
    folders = []
    for item in folders_or_ledgers:
        if isinstance(item, RequestLedger):
            ids |= item.forgotten_ids()
        else:
            folders.append(item)
    return ids | read_exclusion(folders).ids


def uncovered_requests(folder: str | Path, exclusion: Exclusion) -> list[dict]:
    """The requests of ``folder``'s own ledger that name an id ``exclusion`` does not exclude: training
    into ``folder`` again would re-learn them (and replace their ledger), so it is refused while any is
    left. When none is, a ledger there that ``exclusion`` does not name becomes ``exclusion.kept``."""
    folder = Path(folder).expanduser().resolve()
    if exclusion.names(folder) or not RequestLedger.exists_in(folder):
        return []
    own = _read_one(folder)
    excluded = exclusion.ids
    uncovered = [row for row in own.rows if not set(row["ids"]) <= excluded]
    if not uncovered and own.rows:
        exclusion.kept = own
    return uncovered


def write_carried_ledger(folder: str | Path, exclusion: Exclusion, meta: dict | None = None) -> Path | None:
    """Give the run being trained in ``folder`` a ledger that carries every excluded request over
    (``carry_over``: served by ``folder``, each with the ledger it came from). It is built whole in a
    temporary folder, then renamed over ``folder/requests.sqlite``: an old ledger there (an overwritten
    run's, whose rows ``exclusion`` read before anything was cleared) stays in place until that rename.
    Nothing is written without an excluded (or kept) ledger."""
    if not exclusion.ledgers and exclusion.kept is None:
        return None
    folder = Path(folder).resolve()
    with private_temp_dir(parent=folder, prefix=f".requests{TEMP_MARKER}") as tmp:
        with RequestLedger.open_or_create(tmp, meta=meta) as ledger, ledger.transaction():
            for excluded in [*exclusion.ledgers, *([exclusion.kept] if exclusion.kept else [])]:
                ledger.carry_over(excluded.rows, origin=str(excluded.path), honoured_by=str(folder))
        built = RequestLedger.path_in(tmp)
        return atomic_write(RequestLedger.path_in(folder), lambda dest: shutil.copyfile(built, dest), mode=0o600)
