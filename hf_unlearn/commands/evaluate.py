"""``hf-unlearn evaluate``: recompute the forgetting report for any original / unlearned / twin folders."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def make_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="hf-unlearn evaluate",
                                description="Evaluate saved models on the forget / retain / test splits of a training run.")
    p.add_argument("--run", required=True, help="the training run folder (its data set and tokenizer are used)")
    p.add_argument("--forget", required=True, help="file with the forgotten ids, one per line")
    p.add_argument("--original", help="model folder of the original model (default: the run folder)")
    p.add_argument("--unlearned", required=True, help="model folder of the unlearned model")
    p.add_argument("--twin", help="model folder of the retrain twin (ToW, ToW-MIA and VE need it)")
    p.add_argument("--method", default=None, help="method name for the report (default: the unlearned folder's report, else 'unknown')")
    p.add_argument("--output_dir", "--output-dir", required=True, help="where report.json and plots/ go")
    p.add_argument("--retain-eval-max", type=int, default=2000)
    return p


def main(argv: list[str] | None = None) -> int:
    args = make_parser().parse_args(sys.argv[1:] if argv is None else argv)
    from transformers import AutoModelForSequenceClassification

    from ..data.forget import ForgetRequest, ForgetRequestError
    from ..data.synthetic import CANARY_PREFIX
    from ..evaluation.report import build_report, split_for_evaluation, summary_table, write_report
    from ..pipeline import load_run

    try:
        run = load_run(args.run)
        forget_ids = ForgetRequest.from_file(args.forget).resolve(run["data"]["train"])
        folders = {"original": args.original or args.run, "unlearned": args.unlearned, "retrain_twin": args.twin}
        models = {k: AutoModelForSequenceClassification.from_pretrained(v, trust_remote_code=False).eval()
                  for k, v in folders.items() if v}
    except (ForgetRequestError, FileNotFoundError, OSError, ValueError) as exc:
        print(f"hf-unlearn evaluate: error: {exc}", file=sys.stderr)
        return 2
    previous = Path(args.unlearned) / "report.json"
    old = json.loads(previous.read_text()) if previous.is_file() else {}
    splits = split_for_evaluation(run["tokenized"]["train"], run["tokenized"]["test"], forget_ids, args.retain_eval_max)
    meta = run["log"].meta if run["log"] is not None else {}
    report = build_report(
        models=models, tokenizer=run["tokenizer"], splits=splits, forget_ids=forget_ids,
        method=args.method or old.get("method", "unknown"), method_args=old.get("method_args"),
        guarantee=old.get("guarantee", "approximate"), stats=old.get("stats"), base_model=run["model_args"].model,
        dataset_source=run["data_args"].dataset, train_fingerprint=meta.get("train_fingerprint"),
        canary_ids=[i for i in forget_ids if i.startswith(CANARY_PREFIX)] or None, log=run["log"],
        seeds={"train": meta.get("seed")}, timings=old.get("timings"),
    )
    write_report(report, args.output_dir)
    print(summary_table(report))
    return 0
