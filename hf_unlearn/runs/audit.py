"""Does a model honour every deletion request a run's ledger records? (``hf-unlearn requests audit``)

Two ways to honour a request, and the evidence each leaves:

* **trained without it** (a run trained with ``--exclude_ledger``): the run's transcript, the ids of
  every batch it trained on, holds none of the forgotten ids (the log is verified first);
* **served** (an ``unlearn`` output): the ledger records that this output honours every request, and
  the output is the one it recorded (its ``manifest.json`` hashes to the ledger's record, and every file
  it lists is intact).

Nothing here prints an id: findings are counts.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ..artifacts import LOG_DIRNAME, MANIFEST_FILE, IntegrityError, sha256_file, verify_folder
from ..requests import RequestLedger


@dataclass
class AuditFinding:
    """What the audit found for one folder: ``honours`` is True when every request is honoured."""

    folder: str
    how: str  # "trained without them" | "served" | "not honoured"
    honours: bool
    requests: int
    forgotten: int
    detail: str = ""
    extra: dict = field(default_factory=dict)

    def line(self) -> str:
        verdict = "honours" if self.honours else "does NOT honour"
        return f"{self.folder}: {verdict} all {self.requests} deletion requests ({self.forgotten} examples): {self.detail}"


def audit_folder(ledger_dir: str | Path, folder: str | Path) -> AuditFinding:
    """Audit ``folder`` (a run or an unlearn output) against the ledger of the run in ``ledger_dir``."""
    ledger = RequestLedger.open(ledger_dir, readonly=True)
    if ledger is None:
        raise FileNotFoundError(f"no deletion requests recorded for {ledger_dir} (no request ledger)")
    with ledger:
        rows = ledger.requests()
        forgotten = ledger.forgotten_ids()
    folder = Path(folder)
    base = dict(folder=str(folder), requests=len(rows), forgotten=len(forgotten))
    if (folder / LOG_DIRNAME).is_dir():
        return _audit_transcript(folder, forgotten, base)
    return _audit_output(folder, rows, base)


def _audit_transcript(folder: Path, forgotten: set[str], base: dict) -> AuditFinding:
    from ..training.unlearning_log import UnlearningLog

    seen = UnlearningLog(folder).train_ids() & forgotten
    if not seen:
        return AuditFinding(
            how="trained without them", honours=True, detail="its transcript holds none of them", **base
        )
    return AuditFinding(
        how="not honoured",
        honours=False,
        detail=f"its transcript holds {len(seen)} of them (serve the requests with `hf-unlearn unlearn`)",
        **base,
    )


def verify_served_output(folder: Path, recorded_sha256: str | None) -> None:
    """``folder`` is intact (every listed file, nothing added) and is the output the ledger recorded: its
    ``manifest.json`` hashes to ``recorded_sha256``. Otherwise an ``IntegrityError`` naming it."""
    verify_folder(folder, kind="unlearned")
    if recorded_sha256 and sha256_file(folder / MANIFEST_FILE) != recorded_sha256:
        raise IntegrityError(
            f"{folder / MANIFEST_FILE} is not the manifest the ledger recorded for this output (replaced or edited)"
        )


def _audit_output(folder: Path, rows: list[dict], base: dict) -> AuditFinding:
    target = folder.resolve()
    recorded = [r for r in rows if r["output"] and Path(r["output"]).resolve() == target]
    verify_folder(folder, kind="unlearned")  # also when the ledger never recorded it
    honoured = set()
    for row in recorded:
        verify_served_output(folder, row["output_manifest_sha256"])
        honoured |= set(row["honours"] or [])
    missing = [r for r in rows if r["request_id"] not in honoured]
    if not missing:
        return AuditFinding(how="served", honours=True, detail="the ledger records it as serving every one", **base)
    return AuditFinding(
        how="not honoured",
        honours=False,
        detail=f"{len(missing)} request(s) came after it or were served by another output",
        **base,
    )
