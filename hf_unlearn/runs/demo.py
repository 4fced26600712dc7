"""The offline demo: synthetic reviews with canaries, a tiny BERT, every recorder on; then a
deletion request served by amnesiac rollback (+ repair), NegGrad+ and per-sample step replay, judged against the
retrain twin, a dry-run Hub upload folder, and an S3T exact-unlearning system.

Everything is generated here: no download. ``hf-unlearn demo --output_dir DIR``.
"""

from __future__ import annotations

import time
from pathlib import Path

from ..artifacts import atomic_write_json
from ..data.forget import ForgetRequest
from ..data.synthetic import CANARY_PREFIX
from .config import DataArguments, ModelArguments


def _stage(msg: str) -> None:
    print(f"[hf-unlearn demo] {msg}", flush=True)


def train_demo_run(run_dir: Path, seed: int = 0) -> dict:
    from ..training import UnlearnableTrainingArguments
    from .train import train

    data_args = DataArguments(
        dataset_name="synthetic", synthetic_train=500, synthetic_test=200, synthetic_canaries=4, max_length=64
    )
    model_args = ModelArguments(model_name_or_path="tiny-bert", tiny_vocab_size=2000)
    args = UnlearnableTrainingArguments(
        output_dir=str(run_dir),
        num_train_epochs=6,
        per_device_train_batch_size=16,
        learning_rate=1e-3,
        seed=seed,
        adam_beta1=0.0,  # momentum-free Adam: each logged update holds only its own batch's gradient
        sd_lambda=0.01,
        record_deltas=True,
        record_per_sample=True,
        per_sample_fraction=0.05,
        record_learning_events=True,
        record_error_proxy=True,
        error_proxy_every=40,
        error_proxy_batch_size=64,
        save_strategy="no",
        logging_steps=40,
        disable_tqdm=True,
    )
    return train(data_args, model_args, args)


def demo_request(train_ids: list[str]) -> list[str]:
    """1% of the training set, every canary included."""
    n_forget = max(1, round(0.01 * len(train_ids)))
    canaries = [i for i in train_ids if i.startswith(CANARY_PREFIX)]
    others = [i for i in train_ids if not i.startswith(CANARY_PREFIX)][:: max(1, len(train_ids) // n_forget)]
    return sorted(canaries + others[: max(0, n_forget - len(canaries))])


def run_demo(output_dir: str | Path, seed: int = 0, with_s3t: bool = True) -> dict:
    from ..training import UnlearningLog

    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    timings, summary = {}, {"output_dir": str(out)}
    start = time.perf_counter()
    _stage("1/5 training tiny-bert on synthetic reviews (+4 canaries) with every recorder on")
    metrics = train_demo_run(out / "run", seed)
    timings["train_s"] = time.perf_counter() - start
    log = UnlearningLog(out / "run")
    summary["training"] = {
        "test_accuracy": metrics.get("eval_accuracy"),
        "steps": len(log.steps()),
        "recorders": log.meta["recorders"],
        "log_bytes": log.disk_bytes(),
        "error_proxy_last": (log.error_proxy() or [{}])[-1].get("error_proxy"),
    }
    start = time.perf_counter()
    reports = _unlearn_three_ways(out)
    timings["unlearn_and_evaluate_s"] = time.perf_counter() - start
    summary["unlearning"] = {
        m: {
            "tow": r["comparison"].get("tow"),
            "tow_mia": r["comparison"].get("tow_mia"),
            "verification_error": r["comparison"].get("verification_error"),
            "canary_score": {k: v.get("canary_score") for k, v in r["metrics"].items()},
            "unlearn_s": r["timings"].get("unlearn_s"),
        }
        for m, r in reports.items()
    }
    summary["forget"] = {
        "count": reports["amnesiac"]["forget"]["count"],
        "sha256": reports["amnesiac"]["forget"]["sha256"],
    }
    _stage("5/5 dry-run Hub upload folder" + (" and an S3T exact-unlearning system" if with_s3t else ""))
    from ..hub import write_dry_run_folder

    summary["hub_dry_run"] = str(write_dry_run_folder(out / "unlearned" / "amnesiac", out / "hub"))
    if with_s3t:
        from ..s3t.demo import run_s3t_demo

        start = time.perf_counter()
        summary["s3t"] = run_s3t_demo(out / "s3t", seed=seed)
        timings["s3t_s"] = time.perf_counter() - start
    summary["timings"] = timings
    atomic_write_json(out / "summary.json", summary)
    _print_summary(out, reports, summary.get("s3t"))
    return summary


def _unlearn_three_ways(out: Path) -> dict:
    """Stages 2-4: one request served by amnesiac (+ the twin, built once), NegGrad+ and per-sample replay."""
    from .unlearn import load_run, unlearn_run

    _stage("2/5 deletion request: 1% of the training set, canaries included")
    run = load_run(out / "run")
    request = ForgetRequest.from_ids(demo_request(list(run.data["train"]["id"])))
    _stage("3/5 amnesiac rollback + repair, with the retrain twin")
    reports = {
        "amnesiac": unlearn_run(
            out / "run",
            request,
            "amnesiac",
            out / "unlearned" / "amnesiac",
            run=run,
            method_args={"repair_epochs": 1.0, "learning_rate": 5e-4},
        )
    }
    twin = reports["amnesiac"].pop("_twin")
    _stage("4/5 NegGrad+ on the same request")
    reports["neggrad_plus"] = unlearn_run(
        out / "run",
        request,
        "neggrad_plus",
        out / "unlearned" / "neggrad_plus",
        run=run,
        twin=twin,
        method_args={"learning_rate": 5e-4},
    )
    _stage("4b/5 per-sample step replay on the same request")
    reports["per_sample_replay"] = unlearn_run(
        out / "run", request, "per_sample_replay", out / "unlearned" / "per_sample_replay", run=run, twin=twin
    )
    for report in reports.values():
        report.pop("_twin", None)
    return reports


def _print_summary(out: Path, reports: dict, s3t: dict | None) -> None:
    from ..evaluation.report import summary_table

    for method, report in reports.items():
        print(f"\n== {method} ==\n{summary_table(report)}")
    if s3t:
        audit, deletion = s3t["audit"], s3t["deletion"]
        print(
            f"\n== S3T exact unlearning ==\n{len(s3t['deleted_ids'])} ids deleted ({deletion['action']}, "
            f"{deletion['seconds']:.2f} s); test accuracy {s3t['test_acc_before']:.1f}% -> {s3t['test_acc_after']:.1f}% "
            f"(the public base alone: {s3t['base_test_acc']:.1f}%)\naudit: {audit['n_clean']}/{audit['n_ids']} ids proven absent "
            f"from every served checkpoint ({audit['checkpoints_verified']} checked), ledger consistent: "
            f"{audit['records_consistent']}"
        )
    print(f"\nwrote {out / 'summary.json'}; reports in {out / 'unlearned'}; upload folder in {out / 'hub'}")
