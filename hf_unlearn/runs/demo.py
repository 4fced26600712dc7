"""The offline demo: synthetic reviews with canaries, a tiny BERT, every recorder on; then a
deletion request (5% of the training set, every canary included) served by amnesiac rollback
(+ repair), NegGrad+ and per-sample step replay, each judged against the retrain twin and
beside the "do nothing" baseline (the original model scored against the same twin), a verdict
in words per method (the report's, ``evaluation/verdict.py``: the one rule the card states too), a
dry-run Hub upload folder, and an S3T exact-unlearning system.

Everything is generated here: no download. ``hf-unlearn demo --output_dir DIR``. The folder is
checked before any work (not empty -> ``overwrite``) and assembled beside ``DIR``, then renamed into
place whole with its manifest (kind ``"demo"``): a kill leaves the previous demo folder or none.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path

from ..artifacts import atomic_write_json, check_output_folder, staged_folder
from ..data.forget import ForgetRequest
from ..data.synthetic import CANARY_PREFIX
from ..evaluation.verdict import RULE, VERDICTS  # noqa: F401  (VERDICTS: the words a verdict can say)
from .config import DataArguments, ModelArguments

REPAIR = {"repair_epochs": 1.0, "learning_rate": 5e-4}  # the same repair after both rollback methods


@dataclass(frozen=True)
class DemoSizes:
    """The demo's sizes; the defaults are the demo, the tests pass smaller ones."""

    n_train: int = 980  # ordinary synthetic reviews in the training set
    n_canaries: int = 20  # random-token canaries, all in the forget set
    n_test: int = 200
    forget_fraction: float = 0.05  # of the whole training set (canaries included)
    epochs: float = 6.0
    vocab_size: int = 2000
    max_length: int = 64


def verdict_rule(n_forget: int | None = None) -> str:
    """The rule of the verdicts (:data:`hf_unlearn.evaluation.verdict.RULE`, the one report and card state)."""
    return "verdict rule: " + RULE


def train_demo_run(run_dir: Path, seed: int = 0, sizes: DemoSizes = DemoSizes()) -> dict:
    from ..training import UnlearnableTrainingArguments
    from .train import train

    data_args = DataArguments(
        dataset_name="synthetic",
        synthetic_train=sizes.n_train,
        synthetic_test=sizes.n_test,
        synthetic_canaries=0,
        canaries=sizes.n_canaries,  # planted by data/canaries.py: their exposure is reported
        max_length=sizes.max_length,
    )
    model_args = ModelArguments(model_name_or_path="tiny-bert", tiny_vocab_size=sizes.vocab_size)
    args = UnlearnableTrainingArguments(
        output_dir=str(run_dir),
        num_train_epochs=sizes.epochs,
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


def demo_request(train_ids: list[str], fraction: float = 0.05) -> list[str]:
    """``fraction`` of the training set, every canary included, the rest spread evenly over the ordinary ids."""
    n_forget = max(1, round(fraction * len(train_ids)))
    canaries = [i for i in train_ids if i.startswith(CANARY_PREFIX)]
    others = [i for i in train_ids if not i.startswith(CANARY_PREFIX)]
    n_others = max(0, n_forget - len(canaries))
    picked = others[:: max(1, len(others) // n_others)][:n_others] if n_others else []
    return sorted(canaries + picked)


def run_demo(
    output_dir: str | Path,
    seed: int = 0,
    with_s3t: bool = True,
    sizes: DemoSizes = DemoSizes(),
    *,
    overwrite: bool = False,
) -> dict:
    """The whole demo into ``output_dir`` (empty or absent unless ``overwrite``); returns the summary."""
    dest = check_output_folder(output_dir, overwrite=overwrite)
    with staged_folder(dest, kind="demo") as out:
        summary = _run_demo(out, dest, seed, with_s3t, sizes)
    _print_summary(dest, summary.pop("_reports"), summary)
    return summary


def _run_demo(out: Path, dest: Path, seed: int, with_s3t: bool, sizes: DemoSizes) -> dict:
    """The demo in ``out`` (the staged folder); paths in the summary name ``dest``, where it will be."""
    from ..console import phase
    from ..training import UnlearningLog

    timings, summary = {}, {"output_dir": str(dest), "sizes": asdict(sizes)}
    start = time.perf_counter()
    with phase(f"1/5 training tiny-bert on {sizes.n_train} synthetic reviews + {sizes.n_canaries} canaries"):
        metrics = train_demo_run(out / "run", seed, sizes)
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
    reports = _unlearn_three_ways(out, sizes)
    timings["unlearn_and_evaluate_s"] = time.perf_counter() - start
    n_forget = reports["amnesiac"]["forget"]["count"]
    summary["forget"] = {"count": n_forget, "commitment": reports["amnesiac"]["forget"]["commitment"]}
    summary["verdict_rule"] = verdict_rule(n_forget)
    summary["unlearning"] = {m: _method_summary(r, n_forget) for m, r in reports.items()}
    with phase("5/5 dry-run Hub upload folder" + (" and an S3T exact-unlearning system" if with_s3t else "")):
        from ..hub import write_dry_run_folder

        write_dry_run_folder(out / "unlearned" / "amnesiac", out / "hub")
        summary["hub_dry_run"] = str(dest / "hub")
        if with_s3t:
            from ..s3t.demo import run_s3t_demo

            start = time.perf_counter()
            summary["s3t"] = run_s3t_demo(out / "s3t", seed=seed)
            summary["s3t"]["system_dir"] = str(dest / Path(summary["s3t"]["system_dir"]).relative_to(out))
            timings["s3t_s"] = time.perf_counter() - start
    summary["timings"] = timings
    atomic_write_json(out / "summary.json", summary)
    return {**summary, "_reports": reports}


def _method_summary(report: dict, n_forget: int) -> dict:
    """The figures of one method beside the do-nothing baseline (the original against the same twin)."""
    m, comp = report["metrics"], report["comparison"]
    return {
        "tow": comp.get("tow"),
        "tow_mia": comp.get("tow_mia"),
        "do_nothing": {"tow": comp["tow_original"], "tow_mia": comp["tow_mia_original"]},
        "verdict": report["verdict"]["label"],
        "verdict_says": report["verdict"]["says"],
        "forget_acc": {k: m[k]["forget_acc"] for k in ("original", "unlearned", "retrain_twin")},
        "verification_error": report["comparison"].get("verification_error"),
        "canary_score": {k: v.get("canary_score") for k, v in m.items()},
        "exposure": report.get("exposure"),
        "unlearn_s": report["timings"].get("unlearn_s"),
    }


def _unlearn_three_ways(out: Path, sizes: DemoSizes) -> dict:
    """Stages 2-4: one request served by amnesiac (+ the twin, built once), NegGrad+ and per-sample replay."""
    from ..console import phase
    from .unlearn import load_run, unlearn_run

    run = load_run(out / "run")
    ids = demo_request(list(run.data["train"]["id"]), sizes.forget_fraction)
    request = ForgetRequest.from_ids(ids)
    reports = {}
    with phase(f"2/5 forgetting {len(ids)} examples (canaries included): amnesiac + repair, and the retrain twin"):
        reports["amnesiac"] = unlearn_run(
            out / "run",
            request,
            "amnesiac",
            out / "unlearned" / "amnesiac",
            run=run,
            method_args=REPAIR,
        )
    twin = reports["amnesiac"].pop("_twin")
    with phase("3/5 NegGrad+ on the same request"):
        reports["neggrad_plus"] = unlearn_run(
            out / "run",
            request,
            "neggrad_plus",
            out / "unlearned" / "neggrad_plus",
            run=run,
            twin=twin,
            method_args={"learning_rate": 5e-4},
        )
    with phase("4/5 per-sample step replay on the same request"):
        reports["per_sample_replay"] = unlearn_run(
            out / "run",
            request,
            "per_sample_replay",
            out / "unlearned" / "per_sample_replay",
            run=run,
            twin=twin,
            method_args=REPAIR,
        )
    for report in reports.values():
        report.pop("_twin", None)
    return reports


def exposure_line(section: dict | None) -> str:
    """One line: the forgotten canaries' mean exposure per model (``evaluation/exposure.py``) and the gap."""
    if not section:
        return "canary exposure: n/a (no planted canary in the forget set)"
    shown = {"original": "original", "unlearned": "unlearned", "retrain_twin": "twin"}
    parts = [
        f"{label} {section['models'][k]['forgotten']:.2f}" for k, label in shown.items() if k in section["models"]
    ]
    gap = section.get("exposure_gap")
    return (
        f"canary exposure of the {section['forgotten_canaries']} forgotten canaries (bits; ~1 = never seen, "
        f"{section['max_exposure']:.0f} = ranked above all {section['references']} references): {', '.join(parts)}; "
        f"exposure gap {'n/a' if gap is None else f'{gap:.3f}'}"
    )


def _print_summary(out: Path, reports: dict, summary: dict) -> None:
    from ..console import result
    from ..evaluation.report import summary_table

    for method, report in reports.items():
        result(f"\n== {method} ==\n{summary_table(report)}")
        result(exposure_line(report.get("exposure")))
    s3t = summary.get("s3t")
    if s3t:
        audit, deletion = s3t["audit"], s3t["deletion"]
        result(
            f"\n== S3T exact unlearning ==\n{len(s3t['deleted_ids'])} ids deleted ({deletion['action']}, "
            f"{deletion['seconds']:.2f} s); test accuracy {s3t['test_acc_before']:.1f}% -> {s3t['test_acc_after']:.1f}% "
            f"(the public base alone: {s3t['base_test_acc']:.1f}%)\naudit: {audit['n_clean']}/{audit['n_ids']} ids proven absent "
            f"from every served checkpoint ({audit['checkpoints_verified']} checked), ledger consistent: "
            f"{audit['records_consistent']}"
        )
    n_forget = summary["forget"]["count"]
    import textwrap

    result(f"\n== verdicts ({n_forget} examples forgotten) ==\n{textwrap.fill(summary['verdict_rule'], 110)}")
    for method, s in summary["unlearning"].items():
        acc = s["forget_acc"]
        result(
            f"{method:<18} {s['verdict']:<30} (forget accuracy {acc['unlearned']:.1f}%; twin "
            f"{acc['retrain_twin']:.1f}%; doing nothing {acc['original']:.1f}%)"
        )
    result(f"\nwrote {out / 'summary.json'}; reports in {out / 'unlearned'}; upload folder in {out / 'hub'}")
