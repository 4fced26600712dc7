"""The ledger and the public files of a system, kept in step; whose ledger it is.

The ledger is the truth: a request is committed in ONE SQLite transaction. The public files are
derived from it: ``active_prefixes.json``, the ``forget`` / ``system`` sections of ``report.json``,
and the checkpoint files, which must be exactly those of the active stages (a stage cut by a
deletion was trained on a deleted id: its file must go). A kill after the commit leaves them stale
until :func:`repair` runs, which happens on every open of a writable system, at the start of
every mutation, and in :func:`reconcile` (what ``push`` calls before building an upload folder).
:func:`find_problems` / :func:`check_consistent` only read (``audit``).

The ledger records the system's fingerprint (:func:`system_fingerprint`: ``s3t_config.json``,
with the random ``creation_nonce`` made at training, and ``assignment.json``); a ledger from another
system is refused (:class:`ForeignLedgerError`).
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from ..artifacts import COMMITMENT_SALT_FILE, BusyError, is_temporary, load_or_create_salt, read_salt, sha256_file
from .assignment import ASSIGNMENT_FILE
from .checkpoints import CHECKPOINT_DIR
from .deletion import SystemState
from .ledger import LEDGER_FILE, Ledger
from .locking import shared_lock, system_lock
from .persistence import CONFIG_FILE, SERVED_FILE, read_json, read_system_config, write_json
from .report import REPORT_FILE, forget_section, load_report, save_report

FINGERPRINT_KEY = "system_fingerprint"


class ForeignLedgerError(ValueError):
    """The ledger in a system folder was made for another system."""


class InconsistentSystemError(RuntimeError):
    """The system's files disagree with its ledger in a way no repair can fix (e.g. a lost checkpoint)."""


def system_fingerprint(root: str | os.PathLike) -> str:
    """sha256 over ``s3t_config.json`` (config, structure, random ``creation_nonce``) and ``assignment.json``."""
    h = hashlib.sha256(b"hf_unlearn-s3t-system-v1\0")
    for name in (CONFIG_FILE, ASSIGNMENT_FILE):
        h.update(sha256_file(Path(root) / name).encode())
    return h.hexdigest()


def check_ledger_owner(ledger: Ledger, root: str | os.PathLike) -> bool:
    """Raise :class:`ForeignLedgerError` when ``ledger`` belongs to another system; False for a
    ledger made before fingerprints were recorded (adopted by the next :func:`repair`)."""
    recorded = ledger.meta().get(FINGERPRINT_KEY)
    if recorded is None:
        return False
    if recorded != system_fingerprint(root):
        raise ForeignLedgerError(
            f"{ledger.path} belongs to another system: its fingerprint does not match {CONFIG_FILE} and "
            f"{ASSIGNMENT_FILE} of {root}; put this system's own ledger back"
        )
    return True


# -- what the public files must say ---------------------------------------------------------------
def served_records(state: SystemState, num_shards: int) -> list[dict]:
    out = []
    for j in range(num_shards):
        s = state.served(j)
        out.append({"shard": j, **({"order": s[0], "prefix_len": s[1]} if s else {"status": state.status[j]})})
    return out


def system_summary(state: SystemState, num_shards: int) -> dict:
    served = served_records(state, num_shards)
    return {"served": served, "active_shards": sum("order" in r for r in served), "num_shards": num_shards}


def served_file(state: SystemState, num_shards: int) -> dict:
    return {"state": state.to_dict(), "served": served_records(state, num_shards)}


def _num_shards(root: Path) -> int:
    return int(read_system_config(root)[0]["num_shards"])


def _salt(root: Path, create: bool) -> bytes | None:
    path = root / COMMITMENT_SALT_FILE
    if create:
        return load_or_create_salt(root)
    return read_salt(path) if path.is_file() else None


def checkpoint_files(root: Path) -> set[str]:
    """Relative paths of every file under ``checkpoints/`` (temporaries included)."""
    folder = root / CHECKPOINT_DIR
    return {p.relative_to(root).as_posix() for p in folder.rglob("*") if p.is_file()} if folder.is_dir() else set()


def _stray_files(root: Path, state: SystemState) -> tuple[list[str], list[str]]:
    """(files under checkpoints/ that are not active stages, active stages without a file)."""
    active = {k.relpath for k in state.active_keys()}
    on_disk = checkpoint_files(root)
    temps = sorted(p.relative_to(root).as_posix() for p in root.iterdir() if p.is_file() and is_temporary(p))
    return sorted(on_disk - active) + temps, sorted(active - on_disk)


def _report_is_current(report: dict, ledger: Ledger, state: SystemState, num_shards: int, salt) -> bool:
    deleted = ledger.deleted()
    if deleted and salt is None:
        return False
    expected = forget_section(deleted, ledger.last_request_date(), salt) if deleted else None
    return report.get("forget") == expected and report.get("system") == system_summary(state, num_shards)


def find_problems(root: str | os.PathLike, ledger: Ledger) -> list[str]:
    """What disagrees between the ledger and the public files (reads only; empty when consistent)."""
    root = Path(root)
    state, n = ledger.read_state(), _num_shards(root)
    problems = []
    if ledger.meta().get(FINGERPRINT_KEY) is None:
        problems.append(f"{LEDGER_FILE} records no system fingerprint (made by an older version; any open adopts it)")
    stray, missing = _stray_files(root, state)
    problems += [f"{rel} is not an active stage (cut by a deletion or left by a killed writer)" for rel in stray]
    problems += [f"active stage checkpoint {rel} is missing" for rel in missing]
    path = root / SERVED_FILE
    if not path.is_file() or read_json(path) != served_file(state, n):
        problems.append(f"{SERVED_FILE} does not show the ledger's active prefixes")
    if not (root / REPORT_FILE).is_file():
        problems.append(f"{REPORT_FILE} is missing")
    elif not _report_is_current(load_report(root), ledger, state, n, _salt(root, create=False)):
        problems.append(f"{REPORT_FILE} does not show the ledger's deletions and served shards")
    return problems


# -- bringing them in step ------------------------------------------------------------------------
def publish(root: Path, ledger: Ledger, *, unlearn_s: float | None = None) -> None:
    """Write ``active_prefixes.json`` and the report's forget / system sections from the ledger."""
    state, n = ledger.read_state(), _num_shards(root)
    write_json(root / SERVED_FILE, served_file(state, n))
    report = load_report(root)
    deleted = ledger.deleted()
    report["forget"] = forget_section(deleted, ledger.last_request_date(), _salt(root, create=True))
    report["system"] = system_summary(state, n)
    if unlearn_s is not None:
        report.setdefault("timings", {})["unlearn_s"] = round(unlearn_s, 4)
    if report["forget"] and report.get("evaluation"):
        report["evaluation"]["unlearned_is_stale"] = True  # evaluate() again to refresh it
    save_report(root, report)


def repair(root: str | os.PathLike, ledger: Ledger) -> list[str]:
    """Bring the public files in line with the committed ledger (the caller holds the system lock).

    Removes checkpoint files of stages that are not active (first: they may have seen a deleted id)
    and leftover temporary files, then rewrites ``active_prefixes.json`` and the report if they
    differ. Writes nothing when all is in step. Returns what was repaired; a lost active checkpoint
    raises :class:`InconsistentSystemError`.
    """
    root = Path(root)
    done = []
    if not check_ledger_owner(ledger, root):
        with ledger.transaction():
            ledger.set_meta(FINGERPRINT_KEY, system_fingerprint(root))
        done.append(f"recorded the system fingerprint in {LEDGER_FILE}")
    state = ledger.read_state()
    stray, missing = _stray_files(root, state)
    for rel in stray:
        (root / rel).unlink(missing_ok=True)
        done.append(f"removed {rel}")
    if missing:
        raise InconsistentSystemError(
            f"active stage checkpoint {missing[0]} of {root} is missing ({len(missing)} in all): restore the "
            "system folder from a copy"
        )
    stale = [p for p in find_problems(root, ledger) if "does not show" in p]
    if stale:
        publish(root, ledger)
        done += [f"rewrote {p.split()[0]}" for p in stale]
    return done


def repair_if_idle(root: str | os.PathLike, ledger: Ledger) -> bool:
    """On open: refuse another system's ledger; :func:`repair` unless another request holds the lock
    (it repairs itself; meanwhile the ledger's committed state is what is served). True if repaired."""
    check_ledger_owner(ledger, root)
    try:
        with system_lock(root, timeout=0):
            repair(root, ledger)
        return True
    except BusyError:
        return False


def reconcile(system_dir: str | os.PathLike, *, timeout: float | None = None) -> dict:
    """Make ``system_dir``'s public files agree with its ledger, under the system lock.

    Call it before publishing anything of a system (``push``): afterwards no checkpoint cut by a
    committed deletion is on disk, and ``active_prefixes.json`` / ``report.json`` show the ledger.
    Hold ``system_lock(system_dir)`` around it and the copy for a race-free upload (re-entrant).
    Returns ``{"repaired": [...], "checkpoints": [active relpaths], "pending_shards": [...],
    "private": bool}``; a copy without the private files (published, read-only) is only checked for
    its active checkpoints. Raises ``FileNotFoundError`` (no system), :class:`ForeignLedgerError`,
    :class:`InconsistentSystemError`, ``BusyError`` (``timeout`` ran out).
    """
    root = Path(system_dir)
    read_system_config(root)  # FileNotFoundError when root holds no system
    if not (root / LEDGER_FILE).is_file():
        state = SystemState.from_dict(read_json(root / SERVED_FILE)["state"])
        missing = [k.relpath for k in state.active_keys() if not (root / k.relpath).is_file()]
        if missing:
            raise InconsistentSystemError(f"active stage checkpoint {missing[0]} of {root} is missing")
        return _summary(state, [], private=False)
    with system_lock(root, timeout=timeout):
        ledger = Ledger(root / LEDGER_FILE)
        try:
            repaired = repair(root, ledger)
            left = find_problems(root, ledger)
            if left:
                raise InconsistentSystemError(f"{root}: {left[0]}")
            return _summary(ledger.read_state(), repaired, private=True)
        finally:
            ledger.close()


def _summary(state: SystemState, repaired: list[str], *, private: bool) -> dict:
    return {
        "repaired": repaired,
        "checkpoints": sorted(k.relpath for k in state.active_keys()),
        "pending_shards": [j for j, s in enumerate(state.status) if s == "pending"],
        "private": private,
    }


def check_consistent(system_dir: str | os.PathLike, *, timeout: float | None = None) -> list[str]:
    """The problems :func:`reconcile` would repair or refuse, WITHOUT writing anything (waits for a
    running mutation through a shared lock). Raises :class:`ForeignLedgerError` for another system's
    ledger and ``FileNotFoundError`` when the folder holds no system or no ledger."""
    root = Path(system_dir)
    read_system_config(root)
    with shared_lock(root, timeout=timeout):
        ledger = Ledger(root / LEDGER_FILE, readonly=True)
        try:
            check_ledger_owner(ledger, root)
            return find_problems(root, ledger)
        finally:
            ledger.close()
