"""RUM on IMDB: cost of the memorization proxies, and ToW / ToW-MIA of RUM vs the vanilla method.

RUM (Zhao et al., "What makes unlearning hard and what to do about it", NeurIPS 2024) with the
cheap proxies of Zhao & Triantafillou ("Scalability of memorization-based machine unlearning",
2024). One small BERT (from config: hidden 128, 4 layers, 4 heads, intermediate 512, WordPiece
vocabulary 8,000 trained on the training texts, eager attention) is trained on a label-balanced
IMDB subset with ``UnlearnableTrainer`` (learning events on), then:

* ``proxy_cost_ratio``: training time WITH the learning-event recorder / WITHOUT it (both
  ``UnlearnableTrainer`` with the transcript), same initial weights and data, short runs of
  ``--time-train`` examples, the two variants interleaved after a warm-up of each; median of
  ``--repeats`` (>= 3) wall times. Paired ratios, min ratio and the CPU-time ratio are in
  ``config`` (CPU time is less sensitive to a shared machine). Target <= 1.02.
* ``holdout_proxy_cost``: (fine-tune a copy on held-out IMDB training reviews the model never
  saw, early stopping after 4 epochs without a lower epoch loss, capped at ``--holdout-epochs``;
  then score the forget set by symmetric KL) / the time of one training run (the original's).
  ``holdout_full_train_cost`` adds the scoring of every training example instead.
* The forget set mixes memorization levels: a third each drawn at random from the fifth of the
  training set with the highest mean confidence (low memorization), the middle fifth and the
  lowest fifth (high memorization), by the confidence proxy of the original run. The retrain
  twin (same w_0, seed and recorded order without the forget ids) is the reference.
* For NegGrad+ and for the SalUn preset: ``tow_rum``, ``tow_vanilla``, ``tow_mia_rum``,
  ``tow_mia_vanilla`` (ToW / ToW-MIA against the twin, Zhao et al.). Vanilla runs the method
  once on the whole forget set; RUM refines the forget set by the confidence proxy into
  low / mid / high groups and runs, in that order, NegGrad+ with alpha 0.99 / 0.97 / 0.97
  (``neggrad_plus`` preset; vanilla: NegGrad+ alpha 0.99) or nothing / fine-tune / SalUn
  (``salun`` preset; vanilla: SalUn). Each group gets the same learning rate and step budget as
  the vanilla run, so RUM-NegGrad+ takes up to 3x the optimizer steps of vanilla NegGrad+ and
  RUM-SalUn 2x (steps and seconds are in ``config``). Per-group ToW / ToW-MIA of every run are in
  ``config.per_group``; target RUM >= vanilla on ToW for both.
* ``proxy_agreement_holdout_confidence``: share of forget examples that the holdout proxy puts
  in the same group as the confidence proxy (chance 1/3), with their Spearman correlation.

Usage::

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/rum.py --quick   # ~1 minute (checks only: the model is untrained)
    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/rum.py           # full size, < ~20 minutes on 2 shared cores
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import gc
import shutil
import sys
import tempfile
import time
from pathlib import Path

# Import the helpers by file location: a site-packages module named ``benchmarks`` may shadow this folder.
_HERE = Path(__file__).resolve().parent
for _p in (str(_HERE.parent), str(_HERE)):
    if _p not in sys.path:
        sys.path.insert(0, _p)

from _common import (  # noqa: E402
    add_model_device_args,
    collected,
    dir_bytes,
    emit,
    load_avg,
    load_bench_model,
    machine_info,
    median,
    peak_rss_mb,
    quiet_libraries,
    require_imdb,
    require_model,
    resolve_device,
    results_name,
    trainer_device_args,
    write_results,
)

BENCH = "rum"
TARGETS = {"proxy_cost_ratio": 1.02}


def parse_args(argv=None):
    p = argparse.ArgumentParser(
        description=__doc__.split("\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument(
        "--quick", action="store_true", help="small sizes for checks (~1 minute; the model stays near chance)"
    )
    p.add_argument("--train", type=int, default=None, help="training examples (default 2500; quick 160)")
    p.add_argument("--epochs", type=int, default=None, help="training epochs (default 3; quick 1)")
    p.add_argument("--test", type=int, default=None, help="test examples for the evaluation (default 800; quick 64)")
    p.add_argument(
        "--holdout",
        type=int,
        default=None,
        help="held-out training reviews for holdout retraining (default 400; quick 32)",
    )
    p.add_argument(
        "--holdout-epochs", type=int, default=None, help="cap on holdout fine-tuning epochs (default 6; quick 1)"
    )
    p.add_argument("--forget", type=int, default=None, help="forget-set size, a multiple of 3 (default 150; quick 12)")
    p.add_argument(
        "--retain-eval", type=int, default=None, help="retain examples in the evaluation (default 800; quick 64)"
    )
    p.add_argument(
        "--time-train",
        type=int,
        default=None,
        help="examples per timing run of proxy_cost_ratio (default 400; quick 64)",
    )
    p.add_argument("--repeats", type=int, default=None, help="timed repeats per variant (>= 3; default 5; quick 3)")
    p.add_argument(
        "--steps",
        type=int,
        default=None,
        help="optimizer steps of each unlearning run / RUM group (default 25; quick 1)",
    )
    p.add_argument(
        "--unlearn-lr",
        type=float,
        default=None,
        help="learning rate of every unlearning run / RUM group (default 3e-4)",
    )
    p.add_argument(
        "--salun-shares",
        default="none,0.05,0.2,0.3",
        help="forget_share values of the SalUn step of RUM's salun preset to sweep ('none' = each forget row once)",
    )
    p.add_argument("--seq-len", type=int, default=None, help="max tokens (tiny-bert 128, minilm 64)")
    p.add_argument(
        "--finetune", choices=["full", "lora"], default=None, help="tiny-bert: full (default); minilm: lora"
    )
    add_model_device_args(p)
    p.add_argument("--batch-size", type=int, default=16, help="training batch size")
    p.add_argument(
        "--lr", type=float, default=5e-4, help="training learning rate (AdamW, linear decay, warm-up 30 steps)"
    )
    p.add_argument("--threads", type=int, default=1, help="torch threads (1: the 2 cores are shared)")
    p.add_argument("--name", default=None, help="results file name (default rum[_quick])")
    p.add_argument("--plots-dir", default=None, help="also write per-group PNG bars here (default: none)")
    p.add_argument("--tmp", default=None, help="folder for temporary run folders (default: system temp)")
    a = p.parse_args(argv)
    q = a.quick
    defaults = {
        "train": (2500, 160),
        "epochs": (3, 1),
        "test": (800, 64),
        "holdout": (400, 32),
        "holdout_epochs": (6, 1),
        "forget": (150, 12),
        "retain_eval": (800, 64),
        "time_train": (400, 64),
        "repeats": (5, 3),
        "steps": (25, 1),
        "unlearn_lr": (3e-4, 3e-4),
    }
    if a.model == "minilm":  # 22.7M parameters: ~6-10 LoRA training examples/s at 64 tokens on 2 busy cores
        defaults.update(
            train=(800, 96),
            epochs=(1, 1),
            test=(300, 48),
            holdout=(150, 24),
            holdout_epochs=(2, 1),
            forget=(60, 12),
            retain_eval=(300, 48),
            time_train=(96, 32),
            steps=(8, 1),
        )
    a.seq_len = a.seq_len or (64 if a.model == "minilm" else 128)
    a.finetune = a.finetune or ("lora" if a.model == "minilm" else "full")
    for key, (full, quick) in defaults.items():
        if getattr(a, key) is None:
            setattr(a, key, quick if q else full)
    if a.repeats < 3:
        p.error("--repeats must be >= 3 (median of >= 3)")
    if a.forget % 3:
        p.error("--forget must be a multiple of 3")
    a.name = a.name or results_name(BENCH, a.model, q)
    return a


def log(msg: str) -> None:
    print(f"# {msg}", file=sys.stderr, flush=True)


class Setup:
    """Data (train / held-out / test), tokenizer and the initial model, built once."""

    def __init__(self, a):
        from hf_unlearn.data.loading import balanced_subset, load_sentiment_dataset
        from hf_unlearn.models import TinyBertSpec, tokenize_dataset

        data = load_sentiment_dataset(str(require_imdb()), max_train=a.train + a.holdout, max_test=a.test, seed=0)
        pool = data["train"]
        train = balanced_subset(pool, a.train, seed=1)
        keep = set(train["id"])
        holdout = pool.select([k for k, i in enumerate(pool["id"]) if i not in keep])
        self.spec = TinyBertSpec(
            vocab_size=8000,
            hidden_size=128,
            num_hidden_layers=4,
            num_attention_heads=4,
            intermediate_size=512,
            max_length=a.seq_len,
            dropout=0.1,
        )
        self.model, self.tokenizer, self.desc = load_bench_model(
            a.model, train_texts=train["text"], spec=self.spec, seed=0, lora=a.finetune == "lora"
        )
        self.train = tokenize_dataset(train, self.tokenizer, a.seq_len)
        self.holdout = tokenize_dataset(holdout, self.tokenizer, a.seq_len)
        self.test = tokenize_dataset(data["test"], self.tokenizer, a.seq_len)
        self.d = sum(p.numel() for p in self.model.parameters() if p.requires_grad)

    def fresh_model(self):
        m = copy.deepcopy(self.model)
        m.train()
        return m


def train_args(a, out_dir: str, events: bool, max_steps: int | None = None):
    from hf_unlearn.training import UnlearnableTrainingArguments

    return UnlearnableTrainingArguments(
        output_dir=out_dir,
        per_device_train_batch_size=a.batch_size,
        learning_rate=a.lr,
        lr_scheduler_type="linear",
        warmup_steps=30,
        num_train_epochs=a.epochs,
        max_steps=max_steps or -1,
        seed=0,
        report_to="none",
        save_strategy="no",
        logging_strategy="no",
        eval_strategy="no",
        disable_tqdm=True,
        **trainer_device_args(a.device),
        record_transcript=True,
        record_learning_events=events,
    )


def make_trainer(s: Setup, a, out_dir: str, events: bool, dataset=None, max_steps: int | None = None):
    from transformers.trainer_callback import PrinterCallback

    from hf_unlearn.training import UnlearnableTrainer

    trainer = UnlearnableTrainer(
        model=s.fresh_model(),
        args=train_args(a, out_dir, events, max_steps),
        train_dataset=dataset if dataset is not None else s.train,
        processing_class=s.tokenizer,
    )
    trainer.remove_callback(PrinterCallback)  # keep stdout to the JSON lines
    return trainer


# ---- proxy_cost_ratio ------------------------------------------------------------------------------
def time_proxy_cost(s: Setup, a, tmp_root: str) -> dict:
    """Interleaved short trainings with / without learning events (after a warm-up of each)."""
    subset = s.train.select(range(min(a.time_train, len(s.train))))
    saved_epochs = a.epochs
    a.epochs = 1
    runs = []
    try:
        for events in (False, True):  # warm-up
            out = tempfile.mkdtemp(prefix="warm-", dir=tmp_root)
            make_trainer(s, a, out, events, subset, max_steps=3).train()
            shutil.rmtree(out, ignore_errors=True)
        for r in range(a.repeats):
            order = (False, True) if r % 2 == 0 else (True, False)
            for events in order:
                out = tempfile.mkdtemp(prefix="time-", dir=tmp_root)
                trainer = make_trainer(s, a, out, events, subset)
                gc.collect()
                c0, t0 = time.process_time(), time.perf_counter()
                trainer.train()
                wall, cpu = time.perf_counter() - t0, time.process_time() - c0
                runs.append(
                    {
                        "round": r,
                        "events": events,
                        "seconds": wall,
                        "cpu_seconds": cpu,
                        "events_bytes": dir_bytes(Path(out) / "unlearning_log" / "events"),
                        "steps": trainer.state.global_step,
                        "load_avg": load_avg(),
                    }
                )
                log(f"timing round {r} events={events}: {wall:.2f}s (cpu {cpu:.2f}s)")
                del trainer
                shutil.rmtree(out, ignore_errors=True)
    finally:
        a.epochs = saved_epochs
    on = [x for x in runs if x["events"]]
    off = [x for x in runs if not x["events"]]
    off_by_round = {x["round"]: x for x in off}
    paired = [x["seconds"] / off_by_round[x["round"]]["seconds"] for x in on]
    return {
        "ratio": median([x["seconds"] for x in on]) / median([x["seconds"] for x in off]),
        "median_paired_ratio": median(paired),
        "min_ratio": min(x["seconds"] for x in on) / min(x["seconds"] for x in off),
        "cpu_time_ratio": median([x["cpu_seconds"] for x in on]) / median([x["cpu_seconds"] for x in off]),
        "seconds_with": [round(x["seconds"], 3) for x in on],
        "seconds_without": [round(x["seconds"], 3) for x in off],
        "events_bytes": on[0]["events_bytes"],
        "examples": len(subset),
        "steps": on[0]["steps"],
        "runs": runs,
    }


# ---- forget set, twin, runs ----------------------------------------------------------------------
def mixed_forget_set(confidence, n: int, seed: int = 0) -> dict[str, list[str]]:
    """n/3 ids each from the top, middle and bottom fifth of the training set by mean confidence."""
    import numpy as np

    ranked = confidence.sort_values(ascending=False, kind="mergesort")  # most confident (least memorized) first
    ids = list(ranked.index)
    fifth = len(ids) // 5
    bands = {"low": ids[:fifth], "mid": ids[2 * fifth : 3 * fifth], "high": ids[-fifth:]}
    rng = np.random.default_rng(seed)
    return {k: sorted(rng.choice(v, size=n // 3, replace=False).tolist()) for k, v in bands.items()}


def unlearn_variant(s: Setup, model, splits, log_obj, method: str, args: dict) -> tuple[object, dict, float]:
    from hf_unlearn.methods import unlearn

    t0 = time.perf_counter()
    with contextlib.redirect_stdout(sys.stderr):  # stdout carries the JSON lines only
        result = unlearn(
            model, splits["forget"], splits["retain_full"], method=method, log=log_obj, tokenizer=s.tokenizer, **args
        )
    return result.model, result.stats, time.perf_counter() - t0


def main(argv=None) -> int:
    a = parse_args(argv)
    require_imdb()
    require_model(a.model)
    a.device = resolve_device(a.device)
    quiet_libraries()
    import numpy as np
    import torch

    torch.set_num_threads(a.threads)
    torch.set_num_interop_threads(1)
    from hf_unlearn.evaluation.report import split_for_evaluation
    from hf_unlearn.evaluation.rum_report import plot_rum_groups, rum_section
    from hf_unlearn.memorization import HoldoutConfig, compute_proxy, refine
    from hf_unlearn.methods.rum import PRESETS
    from hf_unlearn.training import UnlearningLog
    from hf_unlearn.training.replay import retrain_twin

    t_all = time.perf_counter()
    s = Setup(a)
    log(
        f"setup {time.perf_counter() - t_all:.1f}s: train {len(s.train)}, holdout {len(s.holdout)}, test {len(s.test)}, d={s.d}, load {load_avg()}"
    )
    tmp_root = tempfile.mkdtemp(prefix="hfu-bench-rum-", dir=a.tmp)
    base_cfg = {
        "train_examples": len(s.train),
        "epochs": a.epochs,
        "batch_size": a.batch_size,
        "lr": a.lr,
        "seq_len": a.seq_len,
        "model": (
            {
                "hidden": 128,
                "layers": 4,
                "heads": 4,
                "intermediate": 512,
                "vocab": 8000,
                "attn": "eager",
                "params": s.d,
            }
            if a.model == "tiny-bert"
            else s.desc
        ),
        "finetune": a.finetune,
        "device": a.device,
        "threads": a.threads,
        "quick": a.quick,
    }
    try:
        # 1. proxy cost: training with / without the learning-event recorder
        timing = time_proxy_cost(s, a, tmp_root)
        emit(
            BENCH,
            "proxy_cost_ratio",
            round(timing["ratio"], 4),
            "x training time without learning events",
            dict(
                base_cfg,
                **{k: v for k, v in timing.items() if k != "runs"},
                repeats=a.repeats,
                epochs=1,
                target=TARGETS["proxy_cost_ratio"],
                meets_target=timing["ratio"] <= TARGETS["proxy_cost_ratio"],
            ),
        )

        # 2. the original run (events on)
        run_dir = tempfile.mkdtemp(prefix="original-", dir=tmp_root)
        trainer = make_trainer(s, a, run_dir, events=True)
        c0, t0 = time.process_time(), time.perf_counter()
        trainer.train()
        train_s, train_cpu = time.perf_counter() - t0, time.process_time() - c0
        original = trainer.model.eval()
        run_log = UnlearningLog(run_dir)
        log(f"original trained in {train_s:.1f}s ({trainer.state.global_step} steps)")
        del trainer

        # 3. proxies: confidence (from the log) and holdout retraining
        conf = compute_proxy("confidence", log=run_log)
        forget_bands = mixed_forget_set(conf.scores, a.forget)
        forget_ids = sorted(i for ids in forget_bands.values() for i in ids)
        splits = split_for_evaluation(s.train, s.test, forget_ids, retain_max=a.retain_eval)
        hcfg = HoldoutConfig(learning_rate=a.lr, batch_size=32, max_epochs=a.holdout_epochs, patience=4, seed=0)
        c0 = time.process_time()
        holdout = compute_proxy(
            "holdout_retraining",
            model=original,
            tokenizer=s.tokenizer,
            holdout=s.holdout,
            score_on=splits["forget"],
            holdout_config=hcfg,
        )
        holdout_cpu = time.process_time() - c0
        from hf_unlearn.evaluation.predict import predict_probs

        t0 = time.perf_counter()
        predict_probs(original, s.train, s.tokenizer)
        full_score_s = 2 * (time.perf_counter() - t0)  # two models (original, fine-tuned) over the whole training set
        hold_cost = holdout.seconds / train_s
        emit(
            BENCH,
            "holdout_proxy_cost",
            round(hold_cost, 4),
            "x one training run",
            dict(
                base_cfg,
                holdout_seconds=round(holdout.seconds, 2),
                train_seconds=round(train_s, 2),
                cpu_time_ratio=round(holdout_cpu / train_cpu, 4),
                finetune_seconds=round(holdout.details["finetune_s"], 2),
                score_seconds=round(holdout.details["score_s"], 2),
                finetune_epochs=holdout.details["epochs"],
                stopped_early=holdout.details["stopped_early"],
                holdout_examples=len(s.holdout),
                scored="forget set",
                forget=len(forget_ids),
                confidence_proxy_seconds=round(conf.seconds, 3),
                holdout_config=holdout.details["config"],
            ),
        )
        emit(
            BENCH,
            "holdout_full_train_cost",
            round((holdout.details["finetune_s"] + full_score_s) / train_s, 4),
            "x one training run",
            dict(
                base_cfg,
                scored="every training example (scoring time: 2 x one measured forward pass)",
                full_score_seconds=round(full_score_s, 2),
            ),
        )
        ref_conf, ref_hold = refine(forget_ids, conf), refine(forget_ids, holdout)
        same = np.mean([ref_conf.group_of()[i] == ref_hold.group_of()[i] for i in forget_ids])
        mem_c, mem_h = conf.memorization().loc[forget_ids], holdout.memorization().loc[forget_ids]
        spearman = float(mem_c.rank().corr(mem_h.rank()))
        emit(
            BENCH,
            "proxy_agreement_holdout_confidence",
            round(float(same), 4),
            "share of forget ids in the same group (chance 1/3)",
            dict(
                base_cfg,
                spearman=round(spearman, 4),
                forget=len(forget_ids),
                bands_vs_confidence_groups=round(
                    float(np.mean([ref_conf.group_of()[i] == b for b, ids in forget_bands.items() for i in ids])), 4
                ),
            ),
        )

        # 4. the retrain twin
        t0 = time.perf_counter()
        with contextlib.redirect_stdout(sys.stderr):  # the twin's Trainer prints its train metrics
            twin, _ = retrain_twin(
                original,
                s.train,
                run_log,
                forget_ids,
                tokenizer=s.tokenizer,
                output_dir=tempfile.mkdtemp(prefix="twin-", dir=tmp_root),
            )
        twin_s = time.perf_counter() - t0
        log(f"twin in {twin_s:.1f}s")

        # 5. vanilla vs RUM
        shared = {"learning_rate": a.unlearn_lr, "max_steps": a.steps, "batch_size": 32}
        variants = {
            "neggrad_plus": {
                "vanilla": ("neggrad_plus", dict(shared, alpha=0.99)),
                "rum": ("rum", dict(shared, proxy="confidence", preset="neggrad_plus")),
            },
            "salun": {
                "vanilla": ("salun", dict(shared)),
                "rum": ("rum", dict(shared, proxy="confidence", preset="salun")),
            },
        }
        models = {"original": original, "retrain_twin": twin}
        run_stats = {}
        for family, pair in variants.items():
            for kind, (method, args) in pair.items():
                name = f"{family}_{kind}"
                model, stats, secs = unlearn_variant(s, original, splits, run_log, method, args)
                models[name] = model
                run_stats[name] = {
                    "method": method,
                    "args": args,
                    "seconds": round(secs, 2),
                    "optimizer_steps": stats.get("optimizer_steps"),
                    "groups": {
                        g["name"]: {k: g.get(k) for k in ("method", "count", "retain_count", "optimizer_steps")}
                        for g in stats.get("groups", [])
                    }
                    or None,
                }
                log(f"{name}: {secs:.1f}s, {stats.get('optimizer_steps')} steps")
        # the SalUn step's forget share (the preset's default is one point of this curve)
        sweep_names = {}
        for share in [x.strip() for x in a.salun_shares.split(",") if x.strip()]:
            value = None if share == "none" else float(share)
            name = f"salun_rum_share_{share}"
            args = dict(shared, proxy="confidence", preset="salun", group_args={"high": {"forget_share": value}})
            models[name], _, secs = unlearn_variant(s, original, splits, run_log, "rum", args)
            sweep_names[name] = (value, round(secs, 2))
        groups = ref_conf.as_mapping()
        section = rum_section(models, s.tokenizer, splits, groups)
        comp = section["comparison"]
        per_group = {
            name: {
                g: {k: (round(v, 4) if isinstance(v, float) else v) for k, v in vals.items()}
                for g, vals in comp[name].items()
            }
            for name in comp
        }
        accs = {name: {g: round(m[g]["forget_acc"], 2) for g in m} for name, m in section["metrics"].items()}
        overall = {
            name: {k: round(m["all"][k], 4) for k in ("forget_acc", "retain_acc", "test_acc", "mia_efficacy")}
            for name, m in section["metrics"].items()
        }
        for family in variants:
            cfg = dict(
                base_cfg,
                forget=len(forget_ids),
                steps_budget=a.steps,
                shared=shared,
                rum=run_stats[f"{family}_rum"],
                vanilla=run_stats[f"{family}_vanilla"],
                per_group={k: per_group[f"{family}_{k}"] for k in ("rum", "vanilla")},
                forget_acc_by_group={
                    k: accs[k] for k in ("original", "retrain_twin", f"{family}_rum", f"{family}_vanilla")
                },
                overall={k: overall[k] for k in ("original", "retrain_twin", f"{family}_rum", f"{family}_vanilla")},
                original_vs_twin=per_group["original"]["all"],
                groups={g: len(v) for g, v in groups.items()},
                twin_seconds=round(twin_s, 1),
                train_seconds=round(train_s, 1),
            )
            for metric, key in (("tow", "tow"), ("tow_mia", "tow_mia")):
                for kind in ("rum", "vanilla"):
                    emit(
                        BENCH,
                        f"{metric}_{kind}_{family}",
                        round(comp[f"{family}_{kind}"]["all"][key], 4),
                        "score in [0, 1] vs the retrain twin",
                        cfg if (metric, kind) == ("tow", "rum") else {"family": family, "see": f"tow_rum_{family}"},
                    )
            tow_r, tow_v = comp[f"{family}_rum"]["all"]["tow"], comp[f"{family}_vanilla"]["all"]["tow"]
            emit(
                BENCH,
                f"tow_gain_{family}",
                round(tow_r - tow_v, 4),
                "ToW(RUM) - ToW(vanilla); target >= 0",
                {"family": family, "meets_target": tow_r >= tow_v},
            )
            if a.plots_dir:
                others = {f"vanilla {family}": comp[f"{family}_vanilla"]}
                plot_rum_groups(
                    {
                        "comparison": {f"RUM {family}": comp[f"{family}_rum"]},
                        "metrics": {
                            k: section["metrics"][k]
                            for k in ("original", "retrain_twin", f"{family}_rum", f"{family}_vanilla")
                        },
                    },
                    Path(a.plots_dir) / family,
                    model=f"RUM {family}",
                    others=others,
                )
        if sweep_names:
            sweep = [
                {
                    "forget_share": v,
                    "seconds": secs,
                    "tow": round(comp[n]["all"]["tow"], 4),
                    "tow_mia": round(comp[n]["all"]["tow_mia"], 4),
                    "forget_acc_by_group": accs[n],
                }
                for n, (v, secs) in sweep_names.items()
            ]
            best = max(sweep, key=lambda r: r["tow"])
            emit(
                BENCH,
                "salun_share_sweep_best_tow",
                best["tow"],
                "ToW of RUM-SalUn at the best forget_share of the sweep",
                dict(
                    base_cfg,
                    sweep=sweep,
                    best_forget_share=best["forget_share"],
                    preset_forget_share=PRESETS["salun"][2][1].get("forget_share"),
                    tow_vanilla_salun=round(comp["salun_vanilla"]["all"]["tow"], 4),
                ),
            )
        emit(BENCH, "peak_rss", round(peak_rss_mb(), 1), "MB (process peak)", dict(base_cfg))
        emit(
            BENCH,
            "events_bytes_per_example_epoch",
            round(timing["events_bytes"] / (timing["examples"]), 1),
            "bytes of events/*.parquet per example per epoch",
            dict(base_cfg, events_bytes=timing["events_bytes"]),
        )
    finally:
        shutil.rmtree(tmp_root, ignore_errors=True)
    total = time.perf_counter() - t_all
    log(f"total {total:.0f}s")
    path = write_results(
        a.name, collected(), machine_info(), total_seconds=round(total, 1), timing_runs=timing["runs"]
    )
    log(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
