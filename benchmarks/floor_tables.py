"""Markdown tables of a noise-floor results file (``unlearning_speed.py --floor``), as BENCHMARKS.md records them.

Per seed x forget set (``per_seed``): the noise floor, the cost unit and the calibration's cost, then one row
per method (ToW, ToW-MIA, cost in retrains, the verdict, the setting it ran with) and the calibration's
choice; per forget set (``records``): each method over the seeds (mean ToW with every seed's value, mean
ToW-MIA, ToW SD, mean cost) where the file holds more than one seed, then the target figures with their
target, whether met and, where missed, the factor of ToW that held the budget best back. Nothing is computed here that the results file does not hold.

Usage::

    .venv/bin/python benchmarks/floor_tables.py benchmarks/results/unlearning_floor_minilm_s0_pct1.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from floor_figures import mean

TARGET_FIGURES = (
    "budget_best_tow_mean",
    "budget_best_tow_mia_mean",
    "tow_minus_floor",
    "tow_mia_minus_floor",
    "exposure_gap",
)


def _num(value, digits: int = 4) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def seed_header(rec: dict) -> str:
    """One line: the seed x set's size, its noise floor (mean / min over the noise twins) and its costs."""
    tows = [n["tow"] for n in rec["noise"]]
    mias = [n["tow_mia"] for n in rec["noise"]]
    calib = rec.get("calibration") or {}
    return (
        f"**seed {rec['seed']}, `{rec['forget_set']}`** ({rec['forget_count']} ids, {rec['canaries_forgotten']} "
        f"canaries): noise floor ToW mean {_num(mean(tows))} / min {_num(min(tows))}, ToW-MIA mean "
        f"{_num(mean(mias))} / min {_num(min(mias))}; retrain {rec['retrain_s']:.1f} s, noise twin "
        f"{rec['noise_twin_s']:.1f} s; calibration {_num(calib.get('cost_retrains'), 2)} retrains "
        f"({calib.get('candidates', '-')} candidates)"
    )


def method_rows(rec: dict) -> list[str]:
    """The method table of one seed x set (rows that could not run show their one-line error)."""
    out = ["| method | ToW | ToW-MIA | cost (retrains) | verdict | setting |", "|---|---|---|---|---|---|"]
    for name in sorted(rec["methods"]):
        row = rec["methods"][name]
        if "error" in row:
            out.append(f"| {name} | - | - | - | could not run: {row['error']} | |")
            continue
        setting = json.dumps(row.get("options", {}), sort_keys=False)
        out.append(
            f"| {name} | {_num(row['tow'])} | {_num(row['tow_mia'])} | {_num(row['cost_fraction'])} | "
            f"{row.get('verdict', '-')} | {setting} |"
        )
    return out


def choice_line(rec: dict) -> str:
    choice = (rec.get("calibration") or {}).get("choice")
    if not choice:
        return "Calibration found no setting within the budget."
    return (
        f"Calibration's choice: {choice['method']} {json.dumps(choice.get('options', {}))} (ToW "
        f"{_num(choice.get('tow_mean'))} on the pseudo-requests, cost {_num(choice.get('cost_fraction'))} there)."
    )


def held_back(cfg: dict) -> str:
    """Where a target is missed: the factor of ToW that held the budget best back (the study's own words)."""
    held = cfg.get("held_back_by")
    if not held:
        return ""
    return held["says"]  # names the factor, its value and the noise twins' (floor.held_back_by)


def over_seeds_rows(records: list[dict], forget_set: str) -> list[str]:
    """Each method's figures over the seeds of one forget set, read from its ``<set>/<method>/...`` records."""
    by_figure = {r["figure"]: r for r in records}
    prefix = f"{forget_set}/"
    methods = sorted({f.split("/")[1] for f in by_figure if f.startswith(prefix) and f.endswith("/tow_mean")})
    out = [
        "| method | ToW mean (per seed) | ToW-MIA mean | ToW SD | cost (retrains, mean) |",
        "|---|---|---|---|---|",
    ]
    for name in methods:
        tow = by_figure[f"{prefix}{name}/tow_mean"]
        per_seed = " / ".join(_num(v, 3) for v in tow["config"].get("per_seed_tow", []))
        out.append(
            f"| {name} | {_num(tow['value'])} ({per_seed}) | "
            f"{_num(by_figure[f'{prefix}{name}/tow_mia_mean']['value'])} | "
            f"{_num(by_figure[f'{prefix}{name}/tow_sd']['value'])} | "
            f"{_num(by_figure[f'{prefix}{name}/cost_fraction']['value'])} |"
        )
    return out


def target_rows(records: list[dict], forget_set: str) -> list[str]:
    by_figure = {r["figure"]: r for r in records}
    out = ["| target figure | value | target | met | held back by |", "|---|---|---|---|---|"]
    for figure in TARGET_FIGURES:
        rec = by_figure.get(f"{forget_set}/{figure}")
        if rec is None:
            continue
        cfg = rec["config"]
        note = exposure_bits_note(by_figure, forget_set) if figure == "exposure_gap" else held_back(cfg)
        out.append(f"| `{figure}` | {_num(rec['value'])} | {cfg.get('target', '')} | {cfg.get('met')} | {note} |")
    return out


def exposure_bits_note(by_figure: dict, forget_set: str) -> str:
    """The gap without its ratio (``floor_figures.exposure_bits``), beside the noise twins' own."""
    bits, noise = (
        by_figure.get(f"{forget_set}/exposure_diff_bits"),
        by_figure.get(f"{forget_set}/exposure_diff_bits_noise"),
    )
    if bits is None or noise is None:
        return ""
    twin = mean(bits["config"].get("twin", []))
    return (
        f"in bits: budget best {_num(bits['value'], 2)} from the twin's {_num(twin, 2)}, noise twins "
        f"{_num(noise['value'], 2)}"
    )


def tables(data: dict) -> str:
    """Every seed x set's tables, then each forget set's target table."""
    lines = [f"`{data.get('name')}`: {data.get('command', '')}", ""]
    for rec in data.get("per_seed", []):
        lines += [seed_header(rec), "", *method_rows(rec), "", choice_line(rec), ""]
    for forget_set in sorted({rec["forget_set"] for rec in data.get("per_seed", [])}):
        seeds = sorted({rec["seed"] for rec in data["per_seed"] if rec["forget_set"] == forget_set})
        if len(seeds) > 1:
            lines += [f"Each method over seeds {seeds}, `{forget_set}`:", ""]
            lines += [*over_seeds_rows(data.get("records", []), forget_set), ""]
        lines += [f"Targets, `{forget_set}` (means over the seeds of this file):", ""]
        lines += [*target_rows(data.get("records", []), forget_set), ""]
    return "\n".join(lines)


def read_results(path: str, tool: str) -> dict | None:
    """A ``--floor`` results file, or None after a one-line error (naming ``tool``) on stderr."""
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        print(f"{tool}: cannot read {path}: {exc}", file=sys.stderr)
        return None
    if not isinstance(data, dict) or "per_seed" not in data:
        print(f"{tool}: {path} is not a --floor results file (no per_seed)", file=sys.stderr)
        return None
    return data


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("results", nargs="+", help="results JSON files of unlearning_speed.py --floor")
    a = p.parse_args(argv)
    loaded = [read_results(path, "floor_tables") for path in a.results]
    if any(data is None for data in loaded):
        return 2
    for data in loaded:
        print(tables(data))
    return 0


if __name__ == "__main__":
    sys.exit(main())
