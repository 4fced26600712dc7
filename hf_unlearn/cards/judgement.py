"""The card's verdict section: the method beside doing nothing and the retrain noise, in words and tables.

Pure rendering of the report's ``comparison`` (``tow_original`` / ``tow_mia_original``: the "do
nothing" baseline), ``noise_floor``, ``membership`` and ``verdict`` sections; the rule printed is the
report's own (``verdict.rule``, written by ``evaluation/verdict.py``), so card and report state the same.
"""

from __future__ import annotations

from typing import Any

from .tables import NA, _get, _num, fmt, md_table

NOISE_ROWS = (
    ("tow", "ToW", "unit"),
    ("tow_mia", "ToW-MIA", "unit"),
    ("forget_acc_gap", "Forget accuracy - twin's (points)", "signed"),
    ("retain_acc_gap", "Retain accuracy - twin's (points)", "signed"),
    ("test_acc_gap", "Test accuracy - twin's (points)", "signed"),
)
MODEL_NAMES = {
    "original": "Original (doing nothing)",
    "unlearned": "Unlearned (this model)",
    "retrain_twin": "Retrain twin",
}


def _fmt(value: Any, kind: str) -> str:
    if kind == "signed":
        return f"{value:+.1f}" if _num(value) else NA
    return fmt(value, kind)


def noise_table(floor: dict) -> str | None:
    """Per figure: this model against the twin beside the noise twins against it (mean, sd, min, max)."""
    spread, method = floor.get("against_twin") or {}, floor.get("method") or {}
    rows = []
    for key, label, kind in NOISE_ROWS:
        s = spread.get(key)
        if not isinstance(s, dict):
            continue
        sd = fmt(s.get("sd"), "unit") if kind == "unit" else (f"{s['sd']:.1f}" if _num(s.get("sd")) else NA)
        rows.append(
            [label, _fmt(method.get(key), kind), _fmt(s.get("mean"), kind), sd]
            + [_fmt(s.get(k), kind) for k in ("min", "max")]
        )
    header = ["Against the retrain twin", "This model", "Noise twins: mean", "sd", "min", "max"]
    return md_table(header, rows, right=range(1, 6)) if rows else None


def membership_table(section: dict) -> str | None:
    models = section.get("models") or {}
    rows = [
        [MODEL_NAMES.get(name, name), fmt(v.get("flagged_fraction"), "unit"), fmt(v.get("auc"), "unit")]
        for name, v in models.items()
        if isinstance(v, dict)
    ]
    header = ["Model", "Forget examples flagged (p < 0.05)", "AUC forget vs test"]
    return md_table(header, rows, right=[1, 2]) if rows else None


def do_nothing_line(comparison: dict) -> str | None:
    if not _num(comparison.get("tow_original")):
        return None
    return (
        f"Doing nothing (the original model against the retrain twin) scores ToW {fmt(comparison['tow_original'], 'unit')}"
        f" and ToW-MIA {fmt(comparison.get('tow_mia_original'), 'unit')}; this model scores ToW "
        f"{fmt(comparison.get('tow'), 'unit')} and ToW-MIA {fmt(comparison.get('tow_mia'), 'unit')}."
    )


def judgement_context(report: dict) -> dict:
    """The template values of the verdict section (each None when the report lacks it)."""
    verdict = report.get("verdict") or {}
    floor = report.get("noise_floor") or {}
    membership = report.get("membership") or {}
    return {
        "verdict_says": verdict.get("says"),
        "verdict_rule": verdict.get("rule"),
        "do_nothing_line": do_nothing_line(report.get("comparison") or {}),
        "noise_count": floor.get("n_twins"),
        "noise_table": noise_table(floor) if floor else None,
        "membership_table": membership_table(membership),
        "membership_refs": membership.get("reference_models"),
        "membership_absent": membership.get("absent") if _get(report, "membership", "absent") else None,
    }
