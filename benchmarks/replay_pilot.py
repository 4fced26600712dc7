"""Pilot for ``per_sample_replay``'s settings: the full-size beta1 = 0 run of
``unlearning_speed.py`` (same data, model, training and 1% forget set for a given ``--seed``),
one retrain twin, then the replay with each setting side by side: the correction scale
(1 = every step exactly replayed; > 1 also offsets part of what the later steps built on the
removed updates) and the mode of the forget gradients (eval, or train mode with dropout).

Figures: ``tow``, ``tow_mia`` and ``seconds`` per setting, with the accuracies and MIA-efficacy
of the replayed model and of the twin in ``config``. The settings used by
``unlearning_speed.py``'s ``per_sample_replay_x2`` were picked on this pilot at ``--seed 0``
and are then measured there at other seeds.

Usage::

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/replay_pilot.py --seed 0     # ~10 minutes
"""

from __future__ import annotations

import argparse
import contextlib
import shutil
import sys
import tempfile
import time
from pathlib import Path

_HERE = Path(__file__).resolve().parent
for _p in (str(_HERE.parent), str(_HERE)):
    if _p not in sys.path:
        sys.path.insert(0, _p)

import unlearning_speed as speed  # noqa: E402
from _common import collected, emit, machine_info, quiet_libraries, write_results  # noqa: E402

BENCH = "replay_pilot"
SETTINGS = {
    "scale1": {},
    "scale1.5": {"correction_scale": 1.5},
    "scale2": {"correction_scale": 2.0},
    "scale3": {"correction_scale": 3.0},
    "dropout_scale1": {"dropout": True},
    "dropout_scale2": {"dropout": True, "correction_scale": 2.0},
}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--quick", action="store_true", help="the quick sizes of unlearning_speed.py (a check that it runs)"
    )
    p.add_argument("--model", choices=["tiny-bert", "minilm"], default="tiny-bert", help="as unlearning_speed.py")
    p.add_argument("--device", choices=["cpu", "cuda", "auto"], default="auto", help="as unlearning_speed.py")
    a = p.parse_args(argv)
    import torch

    from hf_unlearn.evaluation.predict import compare, evaluate_model
    from hf_unlearn.evaluation.report import split_for_evaluation
    from hf_unlearn.methods import unlearn
    from hf_unlearn.training import UnlearningLog
    from hf_unlearn.training.replay import retrain_twin

    sa = speed.parse_args(
        ["--betas", "0.0", "--seed", str(a.seed), "--threads", "1", "--model", a.model, "--device", a.device]
        + (["--quick"] if a.quick else [])
    )
    speed.require_model(sa.model)
    sa.device = speed.resolve_device(sa.device)
    quiet_libraries("hf_unlearn")
    torch.set_num_threads(1)
    start = time.perf_counter()
    s = speed.Data(sa)
    tmp = Path(tempfile.mkdtemp(prefix="hfu-replay-pilot-"))
    try:
        model, _, _, _ = speed.train_original(s, sa, 0.0, str(tmp / "run"))
        log = UnlearningLog(tmp / "run")
        ids = s.forget_sets["pct1"]
        splits = split_for_evaluation(s.train, s.test, ids, retain_max=sa.retain_eval, seed=sa.seed)
        with contextlib.redirect_stdout(sys.stderr):
            twin, _ = retrain_twin(model, s.train, log, ids, tokenizer=s.tokenizer, output_dir=tmp / "twin")
        twin_m = evaluate_model(twin, s.tokenizer, splits, seed=sa.seed)
        keys = ("forget_acc", "retain_acc", "test_acc", "mia_efficacy")
        for name, kwargs in SETTINGS.items():
            res = unlearn(
                model,
                splits["forget"],
                splits["retain_full"],
                method="per_sample_replay",
                log=log,
                tokenizer=s.tokenizer,
                **kwargs,
            )
            m = evaluate_model(res.model, s.tokenizer, splits, seed=sa.seed)
            c = compare(m, twin_m)
            cfg = {
                "seed": a.seed,
                "setting": kwargs,
                "forget": len(ids),
                "replayed": {k: round(m[k], 3) for k in keys},
                "twin": {k: round(twin_m[k], 3) for k in keys},
            }
            emit(BENCH, f"{name}/tow", round(c["tow"], 4), "ToW vs retrain twin", cfg)
            emit(BENCH, f"{name}/tow_mia", round(c["tow_mia"], 4), "ToW-MIA vs retrain twin", cfg)
            emit(BENCH, f"{name}/seconds", round(res.stats["wall_time_s"], 3), "s (method's own work)", cfg)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    path = write_results(
        f"{BENCH}_seed{a.seed}" + ("_minilm" if a.model == "minilm" else "") + ("_quick" if a.quick else ""),
        collected(),
        machine_info(),
        total_seconds=round(time.perf_counter() - start, 1),
    )
    print(f"# wrote {path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
