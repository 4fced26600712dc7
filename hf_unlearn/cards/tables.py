"""Formatting helpers of the model cards: figures as text, padded Markdown tables, report look-ups.

Tables are padded to aligned columns so that they read well as plain text too. Pure functions of
plain data; :mod:`hf_unlearn.cards.card` builds the card sections from them.
"""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

NA = "n/a"
# bases built from a configuration, with random weights (no pretraining)
OFFLINE_BASES = ("tiny-bert",)
SYNTHETIC_DATASET = "synthetic"
SMALL_FORGET_SET = 200  # below this, the card warns that forget-set figures are noisy


# ------------------------------------------------------------------------------------ formatting


def fmt(value: Any, kind: str = "auto") -> str:
    """Format a figure for a table: ``None``/missing/NaN -> ``n/a``; pct 1 decimal; unit 3 decimals."""
    if value is None or isinstance(value, bool):
        return NA if value is None else ("yes" if value else "no")
    if not isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, float) and (math.isnan(value) or math.isinf(value)):
        return NA
    if kind == "pct":
        return f"{value:.1f}"
    if kind == "unit":
        return f"{value:.3f}"
    if kind == "sci":
        return f"{value:.4g}"
    if kind == "s":
        return f"{value:,.1f} s"
    return f"{value:g}" if isinstance(value, float) else str(value)


def md_table(header: list[str], rows: list[list[str]], right: Iterable[int] = ()) -> str:
    """A Markdown table padded to aligned columns; columns in ``right`` are right-aligned."""
    right = set(right)
    cells = [[str(c).replace("|", "\\|") for c in row] for row in [header, *rows]]
    widths = [max(3, *(len(r[i]) for r in cells)) for i in range(len(header))]

    def line(row):
        return (
            "| "
            + " | ".join(c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in enumerate(zip(row, widths)))
            + " |"
        )

    sep = (
        "|"
        + "|".join(("-" * (w + 1) + ":") if i in right else (":" + "-" * (w + 1)) for i, w in enumerate(widths))
        + "|"
    )
    return "\n".join([line(cells[0]), sep, *(line(r) for r in cells[1:])])


def _kv_table(
    header: list[str], d: dict | None, notes: dict | None = None, names: dict | None = None, kind: str = "auto"
) -> str | None:
    if not d:
        return None
    notes, names = notes or {}, names or {}
    rows = [
        [names.get(k, f"`{k}`"), fmt(v, kind) if not isinstance(v, (dict, list)) else json.dumps(v)]
        + ([notes.get(k, "")] if notes else [])
        for k, v in d.items()
    ]
    numeric = all(_num(v) or v is None for v in d.values())
    return md_table(header + (["Meaning"] if notes else []), rows, right=[1] if numeric else [])


def _forgotten_table(forget: dict) -> str:
    """What was forgotten: the count, the forget set's salted commitment and the request date (never a
    plain hash of the ids: a version-1 report's ``sha256`` is not shown)."""
    commitment = forget.get("commitment")
    commitment = commitment if isinstance(commitment, str) and commitment.startswith("hmac-sha256:") else None
    return md_table(
        ["What", "Value"],
        [
            ["Examples forgotten", fmt(forget.get("count"))],
            ["Forget-set commitment (salted)", f"`{commitment}`" if commitment else NA],
            ["Deletion request date", fmt(forget.get("request_date"))],
        ],
    )


def _speedup(timings: dict) -> str | None:
    """Retraining time over unlearning time (``12.3x``), or None when either is missing or zero."""
    if _num(timings.get("unlearn_s")) and _num(timings.get("retrain_s")) and timings["unlearn_s"] > 0:
        return f"{timings['retrain_s'] / timings['unlearn_s']:,.1f}x"
    return None


# ------------------------------------------------------------------------------------ look-ups


def _get(d: Any, *keys: str) -> Any:
    for k in keys:
        if not isinstance(d, dict):
            return None
        d = d.get(k)
    return d


def _num(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def hub_id_or_none(name: Any) -> str | None:
    """``name`` if it can be a Hub repo id (not a local path, not an offline built-in), else None."""
    if not isinstance(name, str) or name in OFFLINE_BASES or name in ("synthetic",):
        return None
    if os.path.isabs(name) or name.startswith(".") or os.path.exists(name) or "\\" in name:
        return None
    if not re.fullmatch(r"[A-Za-z0-9][\w.-]*(/[\w.-]+)?", name) or ".." in name or "--" in name:
        return None
    return name


def _tag(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", str(name).lower()).strip("-")


def _dataset_label(source: Any) -> str:
    if not isinstance(source, str) or not source:
        return "unknown"
    return (
        Path(source).name if (os.path.isabs(source) or os.sep in source and hub_id_or_none(source) is None) else source
    )


def _key(name: Any) -> str:
    return str(name or "").lower().replace("-", "_")


# ------------------------------------------------------------------------------------ the run's base


def is_random_init(base: Any) -> bool:
    """True when the base model was built from a configuration with random weights (tiny-bert)."""
    return isinstance(base, str) and base in OFFLINE_BASES


def base_phrase(base: Any) -> str:
    """How the card names the start of training: ``fine-tuned from `X``` or, for a model built from a
    configuration, ``trained from a randomly initialised tiny-bert``."""
    if is_random_init(base):
        return f"trained from a randomly initialised {base} (built from a configuration: no pretrained weights)"
    return f"fine-tuned from `{base or NA}`"


def applicable_config(config: Any, *, dataset: Any, base: Any) -> Any:
    """``config`` without the fields that do not apply to this run, at any depth: the synthetic
    generator's ``synthetic_*`` settings unless ``dataset`` is ``synthetic``, and tiny-bert's
    ``tiny_*`` sizes unless ``base`` is tiny-bert."""
    drop = () if dataset == SYNTHETIC_DATASET else ("synthetic_",)
    drop += () if is_random_init(base) else ("tiny_",)
    if not drop:
        return config

    def keep(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: keep(v) for k, v in value.items() if not str(k).startswith(drop)}
        if isinstance(value, list):
            return [keep(v) for v in value]
        return value

    return keep(config)


def requests_line(section: Any) -> str | None:
    """The card's line for a report's ``requests`` section: "Honours 3 deletion requests (12 examples)"
    (None without one). Counts only; the salted commitment over their union is shown beside it."""
    if not isinstance(section, dict) or not isinstance(section.get("honoured"), int):
        return None
    n, m = section["honoured"], section.get("forgotten")
    examples = f" ({m} example{'' if m == 1 else 's'})" if isinstance(m, int) else ""
    return f"Honours {n} deletion request{'' if n == 1 else 's'}{examples}"


def _commitment(forget: dict) -> str | None:
    """The report's salted commitment when it has the documented form (``hmac-sha256:`` + 64 hex digits)."""
    value = forget.get("commitment")
    return value if isinstance(value, str) and re.fullmatch(r"hmac-sha256:[0-9a-f]{64}", value) else None


def _forget_context(forget: dict, requests: dict | None = None) -> dict:
    """The card's "What was forgotten" values: the count, the table, the commitment, the noise warning,
    and the deletion requests the model honours (their count and the commitment over their union)."""
    count = forget.get("count")
    return {
        "requests_line": requests_line(requests),
        "requests_commitment": _commitment(requests or {}),
        "forget_count": fmt(count),
        "small_forget": _num(count) and 0 < count < SMALL_FORGET_SET,
        "one_example_pts": f"{100 / count:.1f}" if _num(count) and count > 0 else NA,
        "forgotten_table": _forgotten_table(forget),
        "commitment": _commitment(forget),
    }
