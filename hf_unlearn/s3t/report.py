"""``report.json`` of a system: what the publisher's model card is built from.

A :class:`~hf_unlearn.cards.schema.ForgettingReport` (the schema shared with the other methods):
``method`` ("s3t" | "sisa") and its ``method_description``, ``guarantee`` ("exact"),
``base_model``, ``dataset`` {source, fingerprints}, ``forget`` {count, commitment, request_date} or
null (``commitment``: the salted ``artifacts.forget_set_commitment``, salt kept privately in the system), ``metrics`` {base, original, unlearned: {test_acc (0-100)}}, ``config``, ``versions``,
``timings`` {train_s, unlearn_s}; plus ``evaluation`` (split, size, whether the unlearned figure
predates the last request) and ``system`` (served shards). No id appears in it, and no dict is
keyed by numbers (the publisher's scrubber would drop it).
"""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

from .. import __version__
from ..artifacts import forget_set_commitment, library_versions
from ..cards.schema import SCHEMA_VERSION, ForgettingReport
from .persistence import REPORT_FILE, read_json, write_json

DESCRIPTIONS = {
    "s3t": 'S3T (Chowdhury et al., "Towards Scalable Exact Machine Unlearning Using Parameter-Efficient '
    'Fine-Tuning", 2024): shards of LoRA adapters trained slice by slice; every adapter stage that saw a '
    "forgotten example is switched off, so the remaining system never saw it.",
    "sisa": 'SISA (Bourtoule et al., "Machine Unlearning", IEEE S&P 2021): one model per shard, checkpointed '
    "after each data slice; a shard that saw a forgotten example is retrained from the last checkpoint before it.",
}
METHOD_ARGS = (
    "num_shards",
    "num_slices",
    "budget",
    "order_selection",
    "block_order",
    "lora_r",
    "lora_alpha",
    "lora_target_modules",
    "learning_rate",
    "num_train_epochs",
    "on_cut",
    "on_empty_shard",
    "finetune",
    "seed",
)


def initial_report(info: dict, config) -> dict:
    """The report of a system just trained (no deletion yet), as the dict of a ``ForgettingReport``."""
    return ForgettingReport(
        method=info["method"],
        method_description=DESCRIPTIONS.get(info["method"]),
        guarantee="exact",
        base_model=info.get("base_model"),
        dataset={"source": (info.get("data") or {}).get("source"), "fingerprints": info.get("fingerprints", {})},
        forget=None,
        metrics={"base": info.get("base_metrics"), "original": None, "unlearned": None},
        config=config.to_dict(),
        method_args={k: v for k, v in config.to_dict().items() if k in METHOD_ARGS and v is not None},
        timings={},
        versions=library_versions(),
        hf_unlearn_version=__version__,
    ).to_dict()


def load_report(system_dir: str | Path) -> dict:
    path = Path(system_dir) / REPORT_FILE
    return read_json(path) if path.is_file() else {}


def save_report(system_dir: str | Path, report: dict) -> None:
    """Write ``report`` through the schema (a report of an older version gains ``schema_version``
    and, for S3T/SISA, its ``method_description``)."""
    report["updated_at"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
    parsed = ForgettingReport.from_dict(report)
    parsed.schema_version = SCHEMA_VERSION
    parsed.method_description = parsed.method_description or DESCRIPTIONS.get(parsed.method)
    write_json(Path(system_dir) / REPORT_FILE, parsed.to_dict())


def forget_section(deleted_ids, last_request_at: str | None, salt: bytes) -> dict | None:
    """The report's forget set: its count and salted commitment (no value computable from the ids alone)."""
    deleted_ids = list(deleted_ids)
    if not deleted_ids:
        return None
    return {
        "count": len(deleted_ids),
        "commitment": forget_set_commitment(deleted_ids, salt),
        "request_date": (last_request_at or "")[:10] or None,
    }


def record_evaluation(report: dict, accuracy: float, n: int, split: str) -> dict:
    """Put a test accuracy into ``metrics.original`` (no deletion yet) or ``metrics.unlearned``."""
    stage = "unlearned" if report.get("forget") else "original"
    metrics = report.setdefault("metrics", {})
    metrics[stage] = {"test_acc": round(100.0 * accuracy, 4)}
    if stage == "original":
        metrics["unlearned"] = None
    report["evaluation"] = {"split": split, "n": n, "unlearned_is_stale": False}
    return report
