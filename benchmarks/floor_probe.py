"""One method's settings scored on a kept noise-floor seed: nothing is retrained.

The floor study (``unlearning_speed.py --floor --work-dir DIR``) keeps each seed's trained original and each
forget set's twins in ``DIR/seed<S>/``. This script loads them (each checked against its recorded weights
digest), runs ``--method`` at every point of ``--grid`` (plus ``--set`` options) on the evaluation forget set,
and scores each against the twin as the study does (ToW, ToW-MIA, the accuracy gaps, the cost in retrains of
that twin), beside doing nothing. It answers "would this setting have done better?" in minutes instead of a
new study. These are evaluation-set figures: a setting chosen by looking at them is tuned on the set it is
judged on, so it is evidence about a method, not a calibrated result. Usage (the study's own arguments first,
so that its protocol, and so its kept files, match)::

    .venv/bin/python benchmarks/floor_probe.py --floor --seeds 0 --forget-sets pct1 --pseudo-requests 2 \\
        --work-dir benchmarks/results/floor_state/tiny --method single_gradient \\
        --grid precondition=adam,none --grid scale=1,4 --name floor_probe_single_gradient_s0
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

BENCH = "floor_probe"


def probe_args(argv=None):
    """(this script's arguments, the study's own arguments)."""
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--method", required=True, help="a registered method name")
    p.add_argument("--grid", action="append", default=[], help="key=v1,v2,...: one run per combination")
    p.add_argument("--set", action="append", default=[], dest="fixed", help="key=value for every run")
    p.add_argument("--name", default=None, help="results file name (default floor_probe_<method>)")
    return p.parse_known_args(argv)


def settings(grid: list[str], fixed: list[str]) -> list[dict[str, str]]:
    """Every combination of the ``--grid`` values, each with the ``--set`` options."""

    def pair(text: str) -> tuple[str, str]:
        key, sep, value = text.partition("=")
        if not sep or not key:
            raise SystemExit(f"expected key=value, got {text!r}")
        return key, value

    base = dict(pair(t) for t in fixed)
    axes = [(k, v.split(",")) for k, v in (pair(t) for t in grid)]
    return [{**base, **dict(zip([k for k, _ in axes], combo))} for combo in itertools.product(*[v for _, v in axes])]


def load_original(a, seed: int, fname: str, say):
    """(args for this seed, its data, its SeedCache, BenchRun on the kept original, the evaluation forget ids)
    from the kept work dir; exits if no original is kept for this protocol."""
    import floor as fl
    from unlearning_speed import Data

    from hf_unlearn.training import UnlearningLog

    a, s, cache = fl.seed_setup(a, seed, Data, say)
    kept = cache.kept_original(s.model0)
    if kept is None:
        raise SystemExit(f"{a.work_dir}/seed{seed} holds no kept original for this protocol")
    model, run_dir, _ = kept
    run = fl.BenchRun(model, s.tokenizer, UnlearningLog(run_dir), {"train": s.train, "test": s.test})
    ids = fl.eval_forget_sets(list(s.train["id"]), a.canary_recipe.ids(), a, seed)[fname]
    return a, s, cache, run, ids


def load_seed(a, seed: int, fname: str, say):
    """(BenchRun, evaluation splits, twin figures, retrain seconds) from the kept work dir; exits if absent."""
    from hf_unlearn.evaluation.predict import evaluate_model
    from hf_unlearn.evaluation.report import split_for_evaluation

    a, s, cache, run, ids = load_original(a, seed, fname, say)
    twins = cache.read_twins(fname, s.model0)
    if twins is None:
        raise SystemExit(f"{a.work_dir}/seed{seed} holds no kept original and {fname} twins for this protocol")
    splits = split_for_evaluation(s.train, s.test, ids, a.retain_eval, seed)
    twin_m = evaluate_model(twins[0]["retrain_twin"], s.tokenizer, splits, seed=seed)
    return run, splits, twin_m, twins[1]["retrain_s"]


def figure(row: dict, metrics: dict, cost: float | None) -> dict:
    keys = ("tow", "tow_mia", "forget_acc_gap", "retain_acc_gap", "test_acc_gap", "mia_gap")
    out = {k: round(float(row[k]), 4) for k in keys if k in row}
    out.update({k: metrics.get(k) for k in ("forget_acc", "retain_acc", "test_acc", "mia_efficacy")})
    return {**out, "cost_fraction": None if cost is None else round(cost, 4)}


def main(argv=None) -> int:
    import floor as fl
    from _common import emit, quiet_libraries, write_results
    from unlearning_speed import parse_args, say

    mine, study_argv = probe_args(argv)
    a = parse_args(study_argv)
    if not a.floor or a.work_dir is None or len(a.seeds) != 1 or len(a.forget_sets) != 1:
        raise SystemExit("give the study's --floor --work-dir DIR with one --seeds S and one --forget-sets SET")
    from hf_unlearn.methods import get_method, method_config, unlearn

    runs = settings(mine.grid, mine.fixed)
    try:  # the method and every setting are checked before any work
        spec = get_method(mine.method)
        for options in runs:
            method_config(spec, options)
    except (KeyError, ValueError) as exc:
        raise SystemExit(f"floor_probe: {exc}") from None
    quiet_libraries("hf_unlearn")
    import torch

    torch.set_num_threads(a.threads)
    seed, fname = a.seeds[0], a.forget_sets[0]
    run, splits, twin_m, retrain_s = load_seed(a, seed, fname, say)
    base = {"seed": seed, "forget_set": fname, "method": mine.method, "retrain_s": retrain_s}
    metrics, row = fl.score(run.model, run, splits, twin_m, seed)
    emit(BENCH, "do_nothing", figure(row, metrics, None)["tow"], "ToW vs twin", {**base, **figure(row, metrics, 0.0)})
    for options in runs:
        t0 = time.perf_counter()
        wants_holdout = "holdout" in spec.inputs or getattr(method_config(spec, options), "early_stopping", False)
        with contextlib.redirect_stdout(sys.stderr):
            res = unlearn(
                run.model, splits["forget"], splits["retain_full"], method=mine.method, log=run.log,
                tokenizer=run.tokenizer, holdout=run.tokenized["test"] if wants_holdout else None, **options,
            )  # fmt: skip
        metrics, row = fl.score(res.model, run, splits, twin_m, seed)
        fig = figure(row, metrics, float(res.stats["wall_time_s"]) / retrain_s)
        label = ",".join(f"{k}={v}" for k, v in options.items()) or "defaults"
        emit(BENCH, label, fig["tow"], "ToW vs twin", {**base, "options": options, **fig})
        say(f"{label}: ToW {fig['tow']}, ToW-MIA {fig['tow_mia']} ({time.perf_counter() - t0:.0f} s)")
        del res
    from _common import collected

    write_results(mine.name or f"{BENCH}_{mine.method}", collected())
    return 0


if __name__ == "__main__":
    sys.exit(main())
