"""P1-P3 and P8: cost of the unlearning log vs a plain ``transformers.Trainer`` (and vs Opacus).

Five variants train the same model (same initial weights, fresh copy per run) on the same IMDB
subset, batch 32, AdamW lr 5e-4 with linear decay, ``torch.set_num_threads(2)``:

* ``plain``       ``transformers.Trainer`` (``report_to="none"``), ids dropped before collation;
* ``transcript``  ``UnlearnableTrainer`` recording the transcript only (ids, epoch, lr per step);
* ``deltas``      + batch deltas ``w_after - w_before`` of every trainable parameter, fp32
                  (Graves et al., "Amnesiac Machine Learning", AAAI 2021);
* ``per_sample``  + per-sample gradients on a random subset of p = 1% of the parameters
                  (the per-sample variant of amnesiac rollback);
* ``opacus``      the anchor: ``transformers.Trainer`` on
                  ``opacus.grad_sample.wrap_model(model, grad_sample_mode="hooks")``, which
                  computes the full per-sample gradient of every parameter (in train mode).

Only ``trainer.train()`` is timed (model copy, trainer construction and tokenization are not).
The variants run interleaved (plain, transcript, deltas, per_sample, opacus, plain, ...) after
a short warm-up of each, so slow phases of a shared machine hit every variant alike; each
figure is the median over repeats. Figures (one JSON line each):

* ``overhead_<variant>`` = median time / median plain time (also the median of the per-round
  paired ratios and the min-time ratio in ``config``);
* ``opacus_vs_per_sample_time`` = overhead_opacus / overhead_per_sample (total time), and
  ``opacus_vs_per_sample_extra`` = (overhead_opacus - 1) / (overhead_per_sample - 1), the
  reading that compares the EXTRA cost of each method over plain training;
* ``log_bytes_ratio`` = bytes of ``deltas/`` / (steps * d * 4) (the storage formula of amnesiac rollback);
* ``per_sample_bytes_ratio`` = bytes of the ``per_sample/step_*`` files / (N * E * k * 4);
* ``peak_rss_<variant>`` (MB, peak during ``train()``), ``plain_time`` (s, context only);
* ``hook_extra_per_sample`` / ``hook_extra_opacus`` and ``opacus_vs_per_sample_hook_extra``: the two
  hook sets alone, forward + backward on one fixed batch, minimum of ``--hook-repeats`` passes
  (a fixed computation: the minimum is stable on a shared machine, where whole-run ratios of
  variants a few percent apart are not);
* ``hook_body_per_sample`` / ``hook_body_opacus`` and ``opacus_vs_per_sample_hook_body``: the same
  passes, timed inside the hook bodies only (``hook_timing.py``): each method's own work, readable
  where whole-pass differences are below the timing resolution (LoRA); both are lower bounds.

``all_recorders`` runs at ``--error-proxy-every`` (tiny-bert 50; minilm: once per run). Its
config also gives ``overhead_at_default_every_<N>``: the figure with the proxy's measured share
rescaled to ``UnlearnableTrainingArguments``' default rate. To measure that rate directly, train
for at least that many steps: ``--variants plain,all_recorders --error-proxy-every 200 --train ...``.

Usage::

    .venv/bin/python benchmarks/logging_overhead.py --quick   # ~1 minute
    .venv/bin/python benchmarks/logging_overhead.py           # full size, < ~20 minutes
"""

from __future__ import annotations

import argparse
import copy
import gc
import json
import os
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
    current_rss_mb,
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
    reset_peak_rss,
    resolve_device,
    results_name,
    trainer_device_args,
    write_results,
)

BENCH = "logging_overhead"
VARIANTS = ("plain", "transcript", "deltas", "per_sample", "opacus", "events", "error_proxy", "all_recorders")
TARGETS = {"transcript": 1.02, "deltas": 1.10, "per_sample": 1.20, "all_recorders": 1.20}
TARGETS_LORA = {"transcript": 1.02, "deltas": 1.05, "per_sample": 1.10, "all_recorders": 1.20}
# minilm: 22.7M parameters, ~2 s per step of 16 x 64 tokens on 2 busy cores: small runs, batch 16
SIZES = {
    "tiny-bert": dict(train=2000, quick_train=400, batch=32, seq_len=128, repeats=5, quick_repeats=3, proxy_every=50),
    "minilm": dict(train=160, quick_train=48, batch=16, seq_len=64, repeats=3, quick_repeats=2, proxy_every=None),
}


def parse_args(argv=None):
    p = argparse.ArgumentParser(
        description=__doc__.split("\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--quick", action="store_true", help="small size for checks (~1 minute)")
    p.add_argument("--train", type=int, default=None, help="training examples (default 2000; quick 400)")
    p.add_argument("--epochs", type=int, default=1, help="training epochs per run")
    p.add_argument("--repeats", type=int, default=None, help="timed repeats per variant (default 5; quick 3)")
    p.add_argument(
        "--warmup-steps",
        type=int,
        default=None,
        help="optimizer steps of each variant's warm-up run (default 4; quick 2)",
    )
    p.add_argument("--variants", default=",".join(VARIANTS), help="comma-separated subset of " + ",".join(VARIANTS))
    p.add_argument("--per-sample-fraction", type=float, default=0.01)
    p.add_argument(
        "--per-sample-module-share",
        type=float,
        default=1.0,
        help="share q of the modules that hold the per-sample subset (p / q of their entries; default 1: all)",
    )
    p.add_argument("--seq-len", type=int, default=None, help="max tokens (tiny-bert 128, minilm 64)")
    p.add_argument("--batch-size", type=int, default=None, help="batch (tiny-bert 32, minilm 16)")
    p.add_argument(
        "--finetune",
        default=None,
        help="comma-separated: full, lora (default: tiny-bert full; minilm full,lora, measured one after the other)",
    )
    p.add_argument(
        "--error-proxy-every",
        type=int,
        default=None,
        help="steps between error-proxy evaluations in the error_proxy / all_recorders variants "
        "(tiny-bert 50 as the README; minilm: the steps of one run, so that it is evaluated once, at the end)",
    )
    add_model_device_args(p)
    p.add_argument(
        "--hook-repeats",
        type=int,
        default=None,
        help="forward+backward passes per model when timing the per-sample and Opacus hooks alone (default 30; "
        "quick 10; 0 skips)",
    )
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--name", default=None, help="results file name (default logging_overhead[_quick])")
    p.add_argument("--tmp", default=None, help="folder for the temporary output dirs (default: system temp)")
    p.add_argument(
        "--omp-wait-policy",
        default="PASSIVE",
        choices=["PASSIVE", "ACTIVE", "inherit"],
        help="OMP_WAIT_POLICY set before torch is imported (default PASSIVE: on a shared, oversubscribed "
        "machine spinning OpenMP workers make every small op up to 10x slower; 'inherit' keeps the "
        "environment's value)",
    )
    a = p.parse_args(argv)
    size = SIZES[a.model]
    a.train = a.train or (size["quick_train"] if a.quick else size["train"])
    a.repeats = a.repeats or (size["quick_repeats"] if a.quick else size["repeats"])
    a.seq_len = a.seq_len or size["seq_len"]
    a.hook_repeats = a.hook_repeats if a.hook_repeats is not None else (10 if a.quick else 30)
    a.batch_size = a.batch_size or size["batch"]
    # minilm's runs are a few steps long: one error-proxy evaluation per run, at its last step
    a.error_proxy_every = a.error_proxy_every or size["proxy_every"] or -(-a.train // a.batch_size) * a.epochs
    a.warmup_steps = a.warmup_steps if a.warmup_steps is not None else (2 if a.quick else 4)
    if a.model == "minilm" and a.warmup_steps == (2 if a.quick else 4):
        a.warmup_steps //= 2  # each minilm step costs ~100x a tiny-bert step
    a.finetune = (a.finetune or ("full,lora" if a.model == "minilm" else "full")).split(",")
    if set(a.finetune) - {"full", "lora"}:
        p.error(f"--finetune takes full and/or lora; got {a.finetune}")
    a.name = a.name or results_name(BENCH, a.model, a.quick)
    a.variants = [v for v in a.variants.split(",") if v]
    unknown = set(a.variants) - set(VARIANTS)
    if unknown or "plain" not in a.variants:
        p.error(f"--variants must include plain and only name {VARIANTS}; got {a.variants}")
    return a


_DATA = {}


def load_sentiment_dataset_cached(a):
    """The label-balanced IMDB subset (loaded once per process)."""
    from hf_unlearn.data.loading import load_sentiment_dataset

    if "data" not in _DATA:
        _DATA["data"] = load_sentiment_dataset(str(require_imdb()), max_train=a.train, max_test=8, seed=0)
    return _DATA["data"]


class Setup:
    """Data, tokenizer and the initial model, built once (not timed)."""

    def __init__(self, a, finetune: str = "full"):
        import torch
        from transformers import DataCollatorWithPadding

        from hf_unlearn.models import TinyBertSpec, tokenize_dataset

        data = load_sentiment_dataset_cached(a)
        self.finetune = finetune
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
            a.model, train_texts=data["train"]["text"], spec=self.spec, seed=0, lora=finetune == "lora"
        )
        self.with_ids = tokenize_dataset(data["train"], self.tokenizer, a.seq_len)
        self.without_ids = self.with_ids.remove_columns("id")
        self.plain_collator = DataCollatorWithPadding(self.tokenizer)
        self.n_train = len(self.with_ids)
        self.d = sum(p.numel() for p in self.model.parameters() if p.requires_grad)
        lengths = [len(x) for x in self.with_ids["input_ids"]]
        self.mean_len = sum(lengths) / len(lengths)
        self.frac_full = sum(n >= a.seq_len for n in lengths) / len(lengths)
        self.torch = torch

    def fresh_model(self):
        m = copy.deepcopy(self.model)
        m.train()
        return m


def common_args(a, out_dir: str, max_steps: int | None) -> dict:
    return dict(
        output_dir=out_dir,
        per_device_train_batch_size=a.batch_size,
        learning_rate=5e-4,
        optim="adamw_torch",
        lr_scheduler_type="linear",
        num_train_epochs=a.epochs,
        max_steps=max_steps if max_steps else -1,
        seed=0,
        report_to="none",
        save_strategy="no",
        logging_strategy="no",
        eval_strategy="no",
        disable_tqdm=True,
        dataloader_pin_memory=False,
        **trainer_device_args(a.device),
    )


def build_trainer(variant: str, s: Setup, a, out_dir: str, max_steps: int | None):
    """A trainer for ``variant`` on a fresh copy of the initial model (not timed)."""
    trainer = _build_trainer(variant, s, a, out_dir, max_steps)
    from transformers.trainer_callback import PrinterCallback

    trainer.remove_callback(PrinterCallback)  # keep stdout to the JSON lines
    return trainer


def _build_trainer(variant: str, s: Setup, a, out_dir: str, max_steps: int | None):
    model = s.fresh_model()
    if variant in ("plain", "opacus"):
        from transformers import Trainer, TrainingArguments

        if variant == "opacus":
            from opacus.grad_sample import wrap_model

            model = wrap_model(model, grad_sample_mode="hooks")
        args = TrainingArguments(remove_unused_columns=False, **common_args(a, out_dir, max_steps))
        return Trainer(model=model, args=args, train_dataset=s.without_ids, data_collator=s.plain_collator)
    from hf_unlearn.training import UnlearnableTrainer, UnlearnableTrainingArguments

    every = variant == "all_recorders"  # as the README's Python example: bf16 deltas and every recorder
    args = UnlearnableTrainingArguments(
        record_transcript=True,
        record_deltas=variant == "deltas" or every,
        delta_dtype="bfloat16" if every else "float32",
        record_per_sample=variant in ("per_sample", "all_recorders"),
        per_sample_fraction=a.per_sample_fraction,
        per_sample_module_share=a.per_sample_module_share,
        per_sample_seed=0,
        record_learning_events=variant in ("events", "all_recorders"),
        record_error_proxy=variant in ("error_proxy", "all_recorders"),
        error_proxy_every=a.error_proxy_every,
        **common_args(a, out_dir, max_steps),
    )
    return UnlearnableTrainer(model=model, args=args, train_dataset=s.with_ids, processing_class=s.tokenizer)


def opacus_check(trainer) -> dict:
    """Warm-up only: does Opacus fill ``grad_sample`` for every trainable parameter in train mode?"""
    from transformers import TrainerCallback

    seen = {}

    class Check(TrainerCallback):
        def on_pre_optimizer_step(self, args, state, control, **kw):
            if seen:
                return
            for n, p in trainer.model.named_parameters():
                if p.requires_grad:
                    gs = getattr(p, "grad_sample", None)
                    seen[n] = None if gs is None else list(gs.shape)

    trainer.add_callback(Check())
    return seen


def run_once(variant: str, s: Setup, a, tmp_root: str, max_steps: int | None = None, check: bool = False) -> dict:
    out_dir = tempfile.mkdtemp(prefix=f"{variant}-", dir=tmp_root)
    try:
        trainer = build_trainer(variant, s, a, out_dir, max_steps)
        seen = opacus_check(trainer) if (check and variant == "opacus") else None
        gc.collect()
        reset_peak_rss()
        rss_before = current_rss_mb()
        c0, t0 = time.process_time(), time.perf_counter()
        trainer.train()
        if a.device == "cuda":
            s.torch.cuda.synchronize()
        seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
        rec = {
            "variant": variant,
            "seconds": seconds,
            "cpu_seconds": cpu,
            "peak_rss_mb": peak_rss_mb(),
            "rss_before_mb": rss_before,
            "steps": trainer.state.global_step,
        }
        log = Path(out_dir) / "unlearning_log"
        if log.is_dir():
            rec["log_bytes"] = dir_bytes(log)
            rec["delta_bytes"] = dir_bytes(log / "deltas", "step_*.safetensors")
            rec["delta_files"] = (
                len(list((log / "deltas").glob("step_*.safetensors"))) if (log / "deltas").is_dir() else 0
            )
            rec["per_sample_bytes"] = dir_bytes(log / "per_sample", "step_*.safetensors")
            rec["per_sample_index_bytes"] = dir_bytes(log / "per_sample", "index.safetensors")
            proxy = [f for f in (log / "error_proxy").glob("*.jsonl")] if (log / "error_proxy").is_dir() else []
            rows = sorted((json.loads(x) for f in proxy for x in f.read_text().splitlines()), key=lambda r: r["step"])
            rec["error_proxy_evals"] = len(rows)
            rec["error_proxy_seconds"] = [r.get("seconds") for r in rows]
            rec["error_proxy_products"] = [r.get("hessian_products") for r in rows]
            rec["error_proxy_gradient_passes"] = [r.get("gradient_passes") for r in rows]
        if getattr(trainer, "per_sample", None) is not None:
            rec["per_sample_k"] = trainer.per_sample.num_entries
            rec["per_sample_skipped"] = list(trainer.per_sample.skipped)
        if seen is not None:
            rec["opacus_grad_sample"] = {
                "params": len(seen),
                "missing": [n for n, v in seen.items() if v is None],
                "batch_dims": sorted({v[0] for v in seen.values() if v}),
            }
        del trainer
        return rec
    finally:
        shutil.rmtree(out_dir, ignore_errors=True)
        gc.collect()


# IMDB at the users' scale: 25,000 reviews x 3 epochs at batch 16 (the README's "At scale" table)
SCALE_STEPS = 25_000 * 3 // 16


def proxy_cost(runs: list[dict], step_seconds: float, overhead: float, every: int) -> dict:
    """The error proxy's cost read from its own records (``seconds`` per evaluation, in plain-step units):
    the first (cold) evaluation and the later (warm-started) ones, and the run's overhead without the proxy
    plus one cold and ``SCALE_STEPS / every - 1`` warm evaluations over ``SCALE_STEPS`` steps: the projected
    overhead of a run at the users' scale at the default rate."""
    cold = [r["error_proxy_seconds"][0] for r in runs if r.get("error_proxy_seconds")]
    warm = [x for r in runs for x in (r.get("error_proxy_seconds") or [])[1:]]
    if not cold or None in cold or None in warm:
        return {}
    out = {
        "error_proxy_cold_eval_steps": round(median(cold) / step_seconds, 2),
        "error_proxy_hessian_products": [r.get("error_proxy_products") for r in runs],
        "error_proxy_gradient_passes": [r.get("error_proxy_gradient_passes") for r in runs],
    }
    warm_steps = median(warm) / step_seconds if warm else out["error_proxy_cold_eval_steps"]
    out["error_proxy_warm_eval_steps"] = round(warm_steps, 2) if warm else None
    in_run = median([sum(r["error_proxy_seconds"]) for r in runs]) / (step_seconds * runs[0]["steps"])
    n = max(1, SCALE_STEPS // every)
    at_scale = overhead - in_run + (out["error_proxy_cold_eval_steps"] + (n - 1) * warm_steps) / SCALE_STEPS
    out[f"projected_overhead_{SCALE_STEPS}_steps_every_{every}"] = round(at_scale, 4)
    return out


def default_error_proxy_every() -> int:
    """``UnlearnableTrainingArguments``' default ``error_proxy_every`` (what the README's example runs)."""
    from dataclasses import fields

    from hf_unlearn.training import UnlearnableTrainingArguments

    return next(f.default for f in fields(UnlearnableTrainingArguments) if f.name == "error_proxy_every")


def _fixed_batch(s: Setup, a) -> dict:
    rows = s.without_ids.select(range(min(a.batch_size, s.n_train)))
    batch = s.plain_collator([rows[i] for i in range(len(rows))])
    return {k: v.to(a.device) for k, v in batch.items()}


def _time_forward_backward(model, batch: dict, n: int, around=None, clock=None) -> tuple[list[float], list[float]]:
    """(seconds of ``n`` forward + backward passes on ``batch``, seconds inside the hooks of each, from
    ``clock``); 3 untimed passes first; ``around`` (the per-sample recorder) wraps each."""
    import torch

    times, in_hooks = [], []
    for i in range(n + 3):
        model.zero_grad(set_to_none=True)
        if clock is not None:
            clock.take()
        t0 = time.perf_counter()
        if around is not None:
            around.begin(1.0)
        model(**batch).loss.backward()
        if around is not None:
            around.collect()
        if _on_cuda(batch):
            torch.cuda.synchronize()
        if i >= 3:
            times.append(time.perf_counter() - t0)
            in_hooks.append(clock.take() if clock is not None else 0.0)
    return times, in_hooks


def _on_cuda(batch: dict) -> bool:
    return next(iter(batch.values())).is_cuda


def hook_costs(s: Setup, a, sfx: str, cfg: dict) -> None:
    """The per-sample recorder's hooks vs Opacus' hooks, alone: forward + backward on one fixed batch.

    Three models (plain, with ``PerSampleSubsetGradients`` at ``--per-sample-fraction``, Opacus
    ``wrap_model(grad_sample_mode="hooks")``, every trainable parameter) run ``--hook-repeats``
    passes each, interleaved in rounds of 5; the extra cost of each over plain is taken on the
    minimum time (the least disturbed pass: on a shared machine the minimum is the stable
    statistic of a fixed computation) and on the median.
    """
    from hook_timing import HookClock, TimedPerSample, timed_opacus

    batch = _fixed_batch(s, a)
    plain = s.fresh_model()
    clocks = {"per_sample": HookClock(), "opacus": HookClock()}
    ours = s.fresh_model()
    share = a.per_sample_module_share
    recorder = TimedPerSample(ours, a.per_sample_fraction, 0, share, clock=clocks["per_sample"]).attach()
    opacus = timed_opacus(s.fresh_model(), clocks["opacus"])
    times = {"plain": [], "per_sample": [], "opacus": []}
    body = {"per_sample": [], "opacus": []}
    for _ in range(max(1, a.hook_repeats // 5)):
        times["plain"] += _time_forward_backward(plain, batch, 5)[0]
        for k, model, around in (("per_sample", ours, recorder), ("opacus", opacus, None)):
            t, h = _time_forward_backward(model, batch, 5, around=around, clock=clocks[k])
            times[k] += t
            body[k] += h
    recorder.detach()
    hook_bodies(body, median(times["plain"]), sfx, dict(cfg, passes_per_model=len(body["opacus"])))
    lo = {k: min(v) for k, v in times.items()}
    mid = {k: median(v) for k, v in times.items()}
    extra = {k: lo[k] - lo["plain"] for k in ("per_sample", "opacus")}
    extra_med = {k: mid[k] - mid["plain"] for k in ("per_sample", "opacus")}
    info = dict(
        cfg,
        passes_per_model=len(times["plain"]),
        batch=a.batch_size,
        min_ms={k: round(1e3 * v, 2) for k, v in lo.items()},
        median_ms={k: round(1e3 * v, 2) for k, v in mid.items()},
        extra_min_ms={k: round(1e3 * v, 2) for k, v in extra.items()},
        extra_median_ms={k: round(1e3 * v, 2) for k, v in extra_med.items()},
        per_sample_entries=recorder.num_entries,
        per_sample_hooked_modules=recorder.num_hooked_modules,
        reading="forward + backward only (no optimizer, no log write); extra = time - plain time",
    )
    shares = {k: round(extra[k] / lo["plain"], 4) for k in extra}
    units = ("x plain forward+backward (min)", "x (Opacus hooks' extra / per-sample hooks' extra, min times)")
    emit_hook_pair("hook_extra", extra, shares, units, sfx, info)


def hook_bodies(body: dict, plain_s: float, sfx: str, cfg: dict) -> None:
    """The seconds spent inside each method's hook bodies per pass (``hook_timing.py``; median over the
    passes): ``hook_body_<k>`` as a share of the plain pass and the ratio Opacus / ours (target >= 4)."""
    mid = {k: median(v) for k, v in body.items()}
    info = dict(
        cfg,
        hook_body_median_ms={k: round(1e3 * v, 3) for k, v in mid.items()},
        hook_body_max_ms={k: round(1e3 * max(v), 3) for k, v in body.items()},
        plain_pass_median_ms=round(1e3 * plain_s, 2),
        reading="time inside the hook bodies (benchmarks/hook_timing.py): a lower bound on each one's extra "
        "(the autograd engine's calls and Opacus' BackwardHook wrappers run outside the bodies)",
    )
    shares = {k: round(v / plain_s, 5) for k, v in mid.items()}
    units = ("x plain forward+backward (median)", "x (time inside Opacus' hooks / inside the per-sample recorder's)")
    emit_hook_pair("hook_body", mid, shares, units, sfx, info)


def emit_hook_pair(stem: str, seconds: dict, shares: dict, units: tuple, sfx: str, info: dict) -> None:
    """``<stem>_per_sample``, ``<stem>_opacus`` (shares of a plain pass) and ``opacus_vs_per_sample_<stem>``
    (Opacus' seconds / ours; None when ours is <= 0 at the timing resolution)."""
    for k in ("per_sample", "opacus"):
        emit(BENCH, f"{stem}_{k}{sfx}", shares[k], units[0], info)
    ratio = seconds["opacus"] / seconds["per_sample"] if seconds["per_sample"] > 0 else None
    note = None if ratio else "per-sample extra <= 0 at this resolution"
    value = None if ratio is None else round(ratio, 2)
    emit(
        BENCH,
        f"opacus_vs_per_sample_{stem}{sfx}",
        value,
        units[1],
        dict(info, target=">= 4 (MiniLM + LoRA)", note=note),
    )


def measure(a, finetune: str) -> tuple[list[dict], list[dict]]:
    """Every variant on ``finetune`` (full or lora), interleaved; emits the figures (LoRA's end in ``_lora``)."""
    # long on purpose: the measurement protocol and its figures, read top to bottom
    t_setup = time.perf_counter()
    s = Setup(a, finetune)
    setup_s = time.perf_counter() - t_setup
    sfx = "_lora" if finetune == "lora" else ""
    targets = TARGETS_LORA if finetune == "lora" else TARGETS
    tmp_root = tempfile.mkdtemp(prefix="hfu-bench-logging-", dir=a.tmp)
    config = {
        "train_examples": s.n_train,
        "epochs": a.epochs,
        "batch_size": a.batch_size,
        "seq_len": a.seq_len,
        "mean_tokens": round(s.mean_len, 1),
        "share_at_max_len": round(s.frac_full, 3),
        "params": s.d,
        "model": (
            {"hidden": 128, "layers": 4, "heads": 4, "intermediate": 512, "vocab": 8000, "attn": "eager"}
            if a.model == "tiny-bert"
            else s.desc
        ),
        "finetune": finetune,
        "device": a.device,
        "error_proxy_every": a.error_proxy_every,
        "optimizer": "adamw_torch lr 5e-4 linear",
        "threads": a.threads,
        "repeats": a.repeats,
        "warmup_steps": a.warmup_steps,
        "per_sample_fraction": a.per_sample_fraction,
        "per_sample_module_share": a.per_sample_module_share,
        "quick": a.quick,
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY", "default (ACTIVE)"),
    }
    print(
        f"# setup {setup_s:.1f}s: {s.n_train} examples, d={s.d}, mean tokens {s.mean_len:.1f}, load {load_avg()}",
        file=sys.stderr,
        flush=True,
    )
    runs: list[dict] = []
    warm = {}
    try:
        for v in a.variants:  # warm-up: a few steps of each variant (allocator, imports, kernels)
            warm[v] = run_once(v, s, a, tmp_root, max_steps=a.warmup_steps, check=True)
            print(f"# warm-up {v}: {warm[v]['seconds']:.2f}s", file=sys.stderr, flush=True)
        for r in range(a.repeats):
            for v in a.variants:
                rec = run_once(v, s, a, tmp_root)
                rec["round"] = r
                rec["load_avg"] = load_avg()
                runs.append(rec)
                print(
                    f"# round {r} {v}: {rec['seconds']:.2f}s rss {rec['peak_rss_mb']:.0f}MB load {rec['load_avg']}",
                    file=sys.stderr,
                    flush=True,
                )
    finally:
        shutil.rmtree(tmp_root, ignore_errors=True)

    by = {v: [r for r in runs if r["variant"] == v] for v in a.variants}
    times = {v: [r["seconds"] for r in by[v]] for v in a.variants}
    med = {v: median(times[v]) for v in a.variants}
    cpu = {v: median([r["cpu_seconds"] for r in by[v]]) for v in a.variants}
    plain_rounds = {r["round"]: r["seconds"] for r in by["plain"]}
    steps = by["plain"][0]["steps"]
    cfg = dict(config, steps=steps)
    overhead = {}
    for v in a.variants:
        if v == "plain":
            continue
        paired = [r["seconds"] / plain_rounds[r["round"]] for r in by[v]]
        overhead[v] = med[v] / med["plain"]
        extra = {
            "median_seconds": round(med[v], 3),
            "plain_median_seconds": round(med["plain"], 3),
            "median_paired_ratio": round(median(paired), 4),
            "min_ratio": round(min(times[v]) / min(times["plain"]), 4),
            "cpu_time_ratio": round(cpu[v] / cpu["plain"], 4),
            "seconds": [round(t, 3) for t in times[v]],
            "plain_seconds": [round(t, 3) for t in times["plain"]],
        }
        if v in targets:
            extra["target"] = targets[v]
            extra["meets_target"] = overhead[v] <= targets[v]
        if v in ("error_proxy", "all_recorders"):
            n_proxy = median([r.get("error_proxy_evals", 0) for r in by[v]])
            extra["error_proxy_evals_per_run"] = n_proxy
            rate = default_error_proxy_every()
            if n_proxy and a.error_proxy_every != rate and "error_proxy" in overhead:
                # the default rate (one evaluation every `rate` steps): the proxy's share scaled by every/rate
                proxy_part = (overhead["error_proxy"] - 1) * (1 - a.error_proxy_every / rate)
                extra[f"overhead_at_default_every_{rate}"] = round(overhead[v] - proxy_part, 4)
            extra.update(proxy_cost(by[v], med["plain"] / steps, overhead[v], rate))
        if v == "opacus" and warm.get("opacus", {}).get("opacus_grad_sample"):
            extra["grad_sample_check"] = warm["opacus"]["opacus_grad_sample"]
        emit(BENCH, f"overhead_{v}{sfx}", round(overhead[v], 4), "x plain Trainer time", dict(cfg, **extra))
    for v in overhead:  # cross-check that a busy machine disturbs less: process CPU time (user + sys)
        emit(
            BENCH,
            f"cpu_overhead_{v}{sfx}",
            round(cpu[v] / cpu["plain"], 4),
            "x plain Trainer process CPU time",
            dict(
                cfg,
                median_cpu_seconds=round(cpu[v], 3),
                plain_median_cpu_seconds=round(cpu["plain"], 3),
                note="CPU time of this process (all threads); a cross-check of the wall-time figure, not a target",
            ),
        )
    if "opacus" in overhead and "per_sample" in overhead:
        ps, op = overhead["per_sample"], overhead["opacus"]
        emit(
            BENCH,
            "opacus_vs_per_sample_time" + sfx,
            round(op / ps, 3),
            "x (total time, opacus / per_sample)",
            dict(cfg, reading="total training time ratio"),
        )
        extra_ratio = (op - 1.0) / (ps - 1.0) if ps > 1.0 else None
        emit(
            BENCH,
            "opacus_vs_per_sample_extra" + sfx,
            None if extra_ratio is None else round(extra_ratio, 2),
            "x (extra cost over plain, (opacus-1)/(per_sample-1))",
            dict(
                cfg,
                reading="extra cost ratio; target >= 2 (MiniLM + LoRA: >= 4)",
                opacus_extra=round(op - 1.0, 4),
                per_sample_extra=round(ps - 1.0, 4),
                note=None if extra_ratio is not None else "per_sample extra cost <= 0 (inside the noise)",
            ),
        )
    if "deltas" in by:
        r0 = by["deltas"][0]
        formula = r0["steps"] * s.d * 4
        emit(
            BENCH,
            "log_bytes_ratio" + sfx,
            round(r0["delta_bytes"] / formula, 5),
            "x formula steps*d*4",
            dict(
                cfg,
                delta_bytes=r0["delta_bytes"],
                formula_bytes=formula,
                delta_files=r0["delta_files"],
                d=s.d,
                bytes_per_element=4,
                mb_per_step=round(r0["delta_bytes"] / max(1, r0["delta_files"]) / 1e6, 3),
                target=1.05,
            ),
        )
    if "per_sample" in by:
        r0 = by["per_sample"][0]
        formula = s.n_train * a.epochs * r0["per_sample_k"] * 4
        emit(
            BENCH,
            "per_sample_bytes_ratio" + sfx,
            round(r0["per_sample_bytes"] / formula, 5),
            "x formula N*E*k*4",
            dict(
                cfg,
                per_sample_bytes=r0["per_sample_bytes"],
                formula_bytes=formula,
                k=r0["per_sample_k"],
                k_over_d=round(r0["per_sample_k"] / s.d, 5),
                index_bytes=r0["per_sample_index_bytes"],
                skipped_params=r0.get("per_sample_skipped", []),
            ),
        )
    for v in a.variants:
        peak = median([r["peak_rss_mb"] for r in by[v]])
        before = median([r["rss_before_mb"] for r in by[v]])
        emit(
            BENCH,
            f"peak_rss_{v}{sfx}",
            round(peak, 1),
            "MB (process peak during train())",
            dict(
                cfg,
                max_mb=round(max(r["peak_rss_mb"] for r in by[v]), 1),
                rss_before_train_mb=round(before, 1),
                increase_during_train_mb=round(peak - before, 1),
            ),
        )
    if a.hook_repeats:
        hook_costs(s, a, sfx, cfg)
    emit(
        BENCH,
        "plain_time" + sfx,
        round(med["plain"], 3),
        "s (context only: absolute, machine-dependent)",
        dict(cfg, examples_per_s=round(s.n_train * a.epochs / med["plain"], 1)),
    )
    return runs, [dict(w, finetune=finetune) for w in warm.values()]


def main(argv=None) -> int:
    a = parse_args(argv)
    require_model(a.model)
    require_imdb()
    if "torch" in sys.modules and a.omp_wait_policy != "inherit":
        print("# warning: torch already imported, --omp-wait-policy has no effect", file=sys.stderr)
    if a.omp_wait_policy != "inherit":
        os.environ["OMP_WAIT_POLICY"] = a.omp_wait_policy  # read once, when OpenMP starts
    quiet_libraries("opacus")
    import torch

    torch.set_num_threads(a.threads)
    torch.set_num_interop_threads(1)
    a.device = resolve_device(a.device)
    all_runs, all_warm = [], []
    for finetune in a.finetune:
        runs, warm = measure(a, finetune)
        all_runs += runs
        all_warm += warm
    machine = machine_info()
    path = write_results(a.name, collected(), machine, runs=all_runs, warmup=all_warm)
    print(f"# wrote {path}", file=sys.stderr, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
