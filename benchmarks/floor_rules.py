"""Other calibration choice rules, judged on the evaluation forget sets of a noise-floor results file.

``calibrate.choose`` picks the best MEAN ToW over the pseudo-requests (then ToW-MIA, then the cheapest). On
7-10-id requests one example moves ToW by 10-14 points, so two pseudo-requests rank candidates by one or two
examples (BENCHMARKS.md). This script asks, without running anything, what other rules would have chosen from
the same candidates, and how those choices scored on the evaluation set:

* ``mean``: ``calibrate.choose`` itself (the study's budget best);
* ``worst``: the best ``tow_mean - tow_sd`` (a pessimistic ToW: with two pseudo-requests the lower one is
  ``mean - sd / sqrt 2``), then ToW-MIA, then the cheapest;
* ``both``: the best ``min(tow_mean, tow_mia_mean)``, then the cheapest.

A choice is judged by the evaluation row of its method, when that row ran the same options (each method ran
with its own calibrated best). Otherwise the row is missing. Only calibrations that kept every candidate's
figures (``calibration.results`` as long as ``candidates``: those searched from 2026-12-02 on) are judged. Usage::

    .venv/bin/python benchmarks/floor_rules.py benchmarks/results/unlearning_floor_s0.json
"""

from __future__ import annotations

import argparse
import json
import sys

DECIMALS = 4  # calibrate.TOW_DECIMALS: ties below it are ties


def _r(x: float) -> float:
    return round(x, DECIMALS)


RULES = {
    "mean": lambda c: (_r(c["tow_mean"]), _r(c["tow_mia_mean"]), -c["cost_fraction"]),
    "worst": lambda c: (_r(c["tow_mean"] - c.get("tow_sd", 0.0)), _r(c["tow_mia_mean"]), -c["cost_fraction"]),
    "both": lambda c: (_r(min(c["tow_mean"], c["tow_mia_mean"])), -c["cost_fraction"]),
}


def choose(results: list[dict], budget: float, rule: str) -> dict | None:
    """The candidate ``rule`` picks among those scored within ``budget`` (None when none is)."""
    fit = [c for c in results if "error" not in c and "over_budget" not in c and c["cost_fraction"] <= budget]
    return max(fit, key=RULES[rule]) if fit else None


def judged(rec: dict, budget: float) -> list[dict]:
    """One row per rule for a seed x set: its choice and that choice's evaluation figures (or None)."""
    rows = []
    for rule in RULES:
        pick = choose(rec["calibration"].get("results") or [], budget, rule)
        row = (rec["methods"].get(pick["method"]) or {}) if pick else {}
        same = pick is not None and "error" not in row and row.get("options") == pick["options"]
        rows.append({
            "rule": rule, "seed": rec["seed"], "forget_set": rec["forget_set"], "choice": pick,
            "evaluation": {k: row[k] for k in ("tow", "tow_mia", "cost_fraction")} if same else None,
        })  # fmt: skip
    return rows


def table(data: dict, budget: float) -> str:
    lines = ["| seed | set | rule | choice | calibration ToW / ToW-MIA | evaluation ToW / ToW-MIA | cost |"]
    lines.append("|---|---|---|---|---|---|---|")
    for rec in data.get("per_seed", []):
        calib = rec.get("calibration", {})
        kept, searched = len(calib.get("results") or []), calib.get("candidates", 0)
        if kept < searched:  # kept before every candidate's figures were, or only a top-up's
            lines.append(f"| {rec['seed']} | {rec['forget_set']} | - | {kept} of {searched} candidates kept | | | |")
            continue
        for row in judged(rec, budget):
            c, e = row["choice"], row["evaluation"]
            name = "none within the budget" if c is None else f"{c['method']} {json.dumps(c['options'])}"
            cal = "" if c is None else f"{c['tow_mean']:.4f} / {c['tow_mia_mean']:.4f}"
            ev = (
                ""
                if c is None
                else "no row with these options"
                if e is None
                else f"{e['tow']:.4f} / {e['tow_mia']:.4f}"
            )
            cost = "" if e is None else f"{e['cost_fraction']:.4f}"
            lines.append(f"| {rec['seed']} | {rec['forget_set']} | {row['rule']} | {name} | {cal} | {ev} | {cost} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    from floor_tables import read_results

    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("results", nargs="+", help="results JSON files of unlearning_speed.py --floor")
    p.add_argument("--budget", type=float, default=0.05, help="the calibration budget (share of a retrain)")
    a = p.parse_args(argv)
    loaded = [read_results(path, "floor_rules") for path in a.results]
    if any(data is None for data in loaded):
        return 2
    for data in loaded:
        print(table(data, a.budget))
    return 0


if __name__ == "__main__":
    sys.exit(main())
