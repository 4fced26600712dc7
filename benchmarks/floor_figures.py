"""The noise-floor study's figures over seeds (``unlearning_speed.py --floor``; protocol in ``floor.py``).

Pure functions of the per-seed x forget-set records (tested on constructed numbers in
tests/test_benchmark_floor.py): the noise floor (mean and min over the noise twins), each method's ToW /
ToW-MIA mean and SD over seeds and cost, the budget best (calibration's choice) against the floor, the canary
exposure gap, and for a missed target the factor of ToW that held the budget best back.
"""

from __future__ import annotations

import math

TARGETS = {  # figure: (comparison, threshold); issue 13, on both settings
    "tow_minus_floor": (">=", 0.0),
    "tow_mia_minus_floor": (">=", 0.0),
    "budget_best_tow_mean": (">=", 0.97),
    "budget_best_tow_mia_mean": (">=", 0.95),
    "exposure_gap": ("<=", 0.10),
}
FORGET_SETS = ("pct1", "small")


def mean(values) -> float | None:
    vals = [float(v) for v in values if v is not None]
    return sum(vals) / len(vals) if vals else None


def sd(values) -> float | None:
    vals = [float(v) for v in values if v is not None]
    if not vals:
        return None
    m = sum(vals) / len(vals)
    return math.sqrt(sum((v - m) ** 2 for v in vals) / (len(vals) - 1)) if len(vals) > 1 else 0.0


def factors(rows: list[dict]) -> dict:
    """Mean factor of ToW / ToW-MIA over ``rows`` (each with ``*_acc_gap`` in points and ``mia_gap``) and the
    mean signed gaps: forget/retain/test = 1 - |gap| / 100, mia = 1 - |MIA gap|."""
    out = {s: mean(1 - abs(r[f"{s}_acc_gap"]) / 100 for r in rows) for s in ("forget", "retain", "test")}
    out["mia"] = mean(1 - abs(r["mia_gap"]) for r in rows)
    out["signed_gaps"] = {s: mean(r[f"{s}_acc_gap"] for r in rows) for s in ("forget", "retain", "test")}
    out["signed_gaps"]["mia"] = mean(r["mia_gap"] for r in rows)
    return out


def exposure_bits(recs: list[dict], pairs: list[tuple[dict, dict]]) -> dict:
    """The exposure gap without its ratio: ``|E(model) - E(twin)|`` in bits, for the budget best
    (``unlearned``, per seed) and for every noise twin (``noise``). Readable where the twin's own exposure
    is near 0 bits and the ratio divides by almost nothing. Records that kept only the ratio give
    ``ratio x E(twin)``."""

    def diff(exposure, twin, ratio):
        if exposure is not None and twin is not None:
            return abs(float(exposure) - float(twin))
        return None if ratio is None or twin is None else float(ratio) * float(twin)

    unlearned = [
        diff(row.get("exposure"), r["exposure"].get("retrain_twin"), row.get("exposure_gap")) for r, row in pairs
    ]
    noise = []
    for r in recs:
        twin = r["exposure"].get("retrain_twin")
        for k, ratio in enumerate(r["noise_exposure_gaps"], start=1):
            noise.append(diff(r["exposure"].get(f"noise_twin_{k}"), twin, ratio))
    return {"unlearned": unlearned, "noise": noise, "twin": [r["exposure"].get("retrain_twin") for r in recs]}


def held_back_by(best: dict, noise: dict, mia: bool) -> dict:
    """Which factor of ToW (``mia``: ToW-MIA) of the budget best is lowest, with its signed gap in words."""
    keys = ("mia" if mia else "forget", "retain", "test")
    worst = min(keys, key=lambda k: best[k] if best[k] is not None else 2.0)
    gap = best["signed_gaps"][worst]
    unit, scale = ("", 1.0) if worst == "mia" else (" points", 100.0)
    off = (1 - best[worst]) * scale  # the mean |gap|: the factor is 1 - |gap| (/ 100 for accuracies)
    what = "MIA efficacy" if worst == "mia" else f"{worst} accuracy"
    if abs(abs(gap) - off) <= 1e-9 * max(1.0, off):  # every seed on the same side of the twin
        where = f"{off:.3g}{unit} {'above' if gap > 0 else 'below'} the twin's on average"
    else:
        where = f"{off:.3g}{unit} from the twin's on average, on both sides (signed mean {gap:+.3g})"
    return {
        "factor": worst,
        "value": best[worst],
        "noise_twins_value": noise[worst],
        "says": f"{what} {where} (factor {best[worst]:.4f}; the noise twins' {noise[worst]:.4f})",
    }


def target_config(figure: str, value, best_rows: list[dict], noise_rows: list[dict]) -> dict:
    """``target``, ``met`` and, when missed, the factor breakdown of the budget best against the noise twins."""
    op, threshold = TARGETS[figure]
    met = value is not None and (value >= threshold if op == ">=" else value <= threshold)
    cfg = {"target": f"{op} {threshold:g}", "met": bool(met)}
    if not met and best_rows and figure != "exposure_gap":
        best, noise = factors(best_rows), factors(noise_rows)
        cfg.update(factors={"budget_best": best, "noise_twins": noise})
        cfg["held_back_by"] = held_back_by(best, noise, mia="mia" in figure)
    return cfg


def floor_figures(records: list[dict]) -> list[tuple[str, object, str, dict]]:
    """(figure, value, unit, config) of every aggregate figure, from the per-seed x forget-set records."""
    # long on purpose: every figure of the study, in the order the module docstring lists them
    out = []
    for fs in FORGET_SETS:
        recs = [r for r in records if r["forget_set"] == fs]
        if not recs:
            continue
        seeds = [r["seed"] for r in recs]
        base = {"forget_set": fs, "seeds": seeds, "forget_count": recs[0]["forget_count"]}
        floor = {}
        for key in ("tow", "tow_mia"):
            means = [mean(n[key] for n in r["noise"]) for r in recs]
            mins = [min(n[key] for n in r["noise"]) for r in recs]
            floor[key], floor[f"{key}_min"] = mean(means), mean(mins)
            cfg = dict(base, per_seed_mean=means, per_seed_min=mins, noise_twins=len(recs[0]["noise"]))
            out.append((f"{fs}/noise_floor_{key}", floor[key], "mean over noise twins, mean over seeds", cfg))
            out.append((f"{fs}/noise_floor_{key}_min", floor[f"{key}_min"], "min over noise twins (the rule)", cfg))
        for name in sorted({m for r in recs for m in r["methods"]}):
            rows = [r["methods"].get(name) or {"error": "not run"} for r in recs]
            ok = [row for row in rows if "error" not in row]
            cfg = dict(
                base,
                method=name,
                per_seed_tow=[row.get("tow") for row in rows],
                per_seed_tow_mia=[row.get("tow_mia") for row in rows],
                per_seed_cost=[row.get("cost_fraction") for row in rows],
                settings=[row.get("settings") for row in rows],
                options=[row.get("options") for row in rows],
                verdicts=[row.get("verdict") for row in rows],
                exposure_gaps=[row.get("exposure_gap") for row in rows],
                errors=[row["error"] for row in rows if "error" in row],
            )
            out.append((f"{fs}/{name}/tow_mean", mean(r["tow"] for r in ok), "ToW vs twin, mean over seeds", cfg))
            out.append((f"{fs}/{name}/tow_mia_mean", mean(r["tow_mia"] for r in ok), "ToW-MIA, mean", cfg))
            out.append((f"{fs}/{name}/tow_sd", sd(r["tow"] for r in ok), "ToW, SD over seeds", cfg))
            out.append((f"{fs}/{name}/cost_fraction", mean(r["cost_fraction"] for r in ok), "of a retrain", cfg))
        chosen = [(r, (r["calibration"]["choice"] or {}).get("method")) for r in recs]
        pairs = [(r, r["methods"][m]) for r, m in chosen if m and "error" not in r["methods"].get(m, {"error": 1})]
        best_rows = [row for _, row in pairs]
        noise_rows = [n for r in recs for n in r["noise"]]
        bcfg = dict(
            base,
            chosen=[m for _, m in chosen],
            options=[(r["calibration"]["choice"] or {}).get("options") for r, _ in chosen],
            calibration_tow=[(r["calibration"]["choice"] or {}).get("tow_mean") for r, _ in chosen],
            calibration_cost_fraction=[(r["calibration"]["choice"] or {}).get("cost_fraction") for r, _ in chosen],
            measured_cost_fraction=[row["cost_fraction"] for row in best_rows],
            verdicts=[row["verdict"] for row in best_rows],
        )
        best = {k: mean(row[k] for row in best_rows) if best_rows else None for k in ("tow", "tow_mia")}
        for key in ("tow", "tow_mia"):
            fig = f"budget_best_{key}_mean"
            tcfg = target_config(fig, best[key], best_rows, noise_rows)
            out.append((f"{fs}/{fig}", best[key], "chosen by calibration", {**bcfg, **tcfg}))
        for key in ("tow", "tow_mia"):
            fig = f"{key}_minus_floor"
            value = None if best[key] is None else best[key] - floor[f"{key}_min"]
            cfg = dict(bcfg, minus_mean_floor=None if best[key] is None else best[key] - floor[key])
            cfg.update(target_config(fig, value, best_rows, noise_rows))
            out.append((f"{fs}/{fig}", value, "budget best - noise floor (min)", cfg))
        gap = mean(row.get("exposure_gap") for row in best_rows)
        ecfg = dict(
            bcfg,
            per_seed=[row.get("exposure_gap") for row in best_rows],
            noise_twin_gaps=[g for r in recs for g in r["noise_exposure_gaps"]],
            exposure=[dict(r["exposure"], unlearned=row.get("exposure")) for r, row in pairs],
            canaries_forgotten=[r["canaries_forgotten"] for r in recs],
        )
        ecfg.update(target_config("exposure_gap", gap, best_rows, noise_rows))
        out.append((f"{fs}/exposure_gap", gap, "|E(unlearned) - E(twin)| / E(twin)", ecfg))
        noise_gap = mean(ecfg["noise_twin_gaps"])
        out.append((f"{fs}/exposure_gap_noise", noise_gap, "the noise twins' own exposure gap, mean", ecfg))
        bits = exposure_bits(recs, pairs)
        out.append((f"{fs}/exposure_diff_bits", mean(bits["unlearned"]), "|E(unlearned) - E(twin)| bits, mean", bits))
        out.append((f"{fs}/exposure_diff_bits_noise", mean(bits["noise"]), "|E(noise twin) - E(twin)| bits", bits))
        ccfg = dict(base, per_seed=[r["calibration"]["cost_retrains"] for r in recs])
        ccfg.update(candidates=[r["calibration"]["candidates"] for r in recs])
        out.append((f"{fs}/calibration_cost", mean(ccfg["per_seed"]), "retrains", ccfg))
        out.append((f"{fs}/retrain_time", mean(r["retrain_s"] for r in recs), "s (the twin)", base))
        out.append((f"{fs}/noise_twin_time", mean(r["noise_twin_s"] for r in recs), "s (one noise twin)", base))
    return out
