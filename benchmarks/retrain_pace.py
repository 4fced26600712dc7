"""How well a resumed calibration's retrain unit stands for a whole retrain: ``time_a_retrain`` against one.

A calibration resumed in a new process judges its candidates' cost in a retrain it times itself
(``runs/calibration_progress.time_a_retrain``: the first tenth of a twin's steps, at least 20, extrapolated as
``t(first step) + (t(last) - t(first)) / (n - 1) * (N - 1)``). This script measures, on a kept floor-study seed
(the trained original of ``--work-dir``; nothing else is trained), the estimate and a whole retrain of the same
twin side by side, alternating, ``--repeats`` times, and reports their ratio (1 is exact). Usage (the study's own
arguments, so that its protocol, and so its kept original, match)::

    .venv/bin/python benchmarks/retrain_pace.py --floor --seeds 2 --forget-sets small --pseudo-requests 2 \\
        --work-dir benchmarks/results/floor_state/tiny --repeats 2
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

BENCH = "retrain_pace"


def main(argv=None) -> int:
    from _common import collected, emit, load_avg, quiet_libraries, write_results
    from floor_probe import load_original
    from unlearning_speed import parse_args, say

    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--repeats", type=int, default=2, help="estimate + whole retrain pairs (default 2)")
    p.add_argument("--name", default=BENCH, help=f"results file name (default {BENCH})")
    mine, study_argv = p.parse_known_args(argv)
    a = parse_args(study_argv)
    if not a.floor or a.work_dir is None or len(a.seeds) != 1 or len(a.forget_sets) != 1 or mine.repeats < 1:
        raise SystemExit(
            "give the study's --floor --work-dir DIR, one --seeds S, one --forget-sets SET, --repeats >= 1"
        )
    quiet_libraries("hf_unlearn")
    import torch

    from hf_unlearn.runs.calibration_progress import time_a_retrain
    from hf_unlearn.runs.twins import build_twin

    torch.set_num_threads(a.threads)
    seed, fname = a.seeds[0], a.forget_sets[0]
    _, _, _, run, ids = load_original(a, seed, fname, say)
    base = {"seed": seed, "forget_set": fname, "steps": len(run.log.steps()), "threads": a.threads}
    ratios = []
    for repeat in range(1, mine.repeats + 1):
        with contextlib.redirect_stdout(sys.stderr):
            estimate = time_a_retrain(run, ids)
            _, whole = build_twin(run, ids)
        ratios.append(estimate / whole)
        cfg = dict(base, repeat=repeat, load_avg=load_avg())
        emit(BENCH, f"repeat{repeat}/estimate_s", round(estimate, 2), "s (time_a_retrain)", cfg)
        emit(BENCH, f"repeat{repeat}/retrain_s", round(whole, 2), "s (a whole retrain)", cfg)
        emit(BENCH, f"repeat{repeat}/ratio", round(ratios[-1], 4), "estimate / whole retrain", cfg)
        say(f"repeat {repeat}: estimate {estimate:.1f} s, whole retrain {whole:.1f} s, ratio {ratios[-1]:.3f}")
    emit(
        BENCH,
        "ratio_mean",
        round(statistics.fmean(ratios), 4),
        "estimate / whole retrain",
        dict(base, per_repeat=ratios),
    )
    write_results(mine.name, collected())
    return 0


if __name__ == "__main__":
    sys.exit(main())
