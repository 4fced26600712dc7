"""``hf-unlearn unlearn``: forget ids from a training run and write the unlearned model + report."""

from __future__ import annotations

import argparse
import sys

import yaml


def make_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="hf-unlearn unlearn", description="Forget training examples from a run trained with `hf-unlearn train`.")
    p.add_argument("--run", required=True, help="training run folder (model, tokenizer, unlearning_log/, hf_unlearn_run.json)")
    what = p.add_mutually_exclusive_group(required=True)
    what.add_argument("--forget", help="file with one example id per line (# comments allowed)")
    what.add_argument("--forget-label", type=int, help="forget every training example with this label")
    p.add_argument("--method", default="amnesiac", help="registered method (see --list-methods)")
    p.add_argument("--output_dir", "--output-dir", required=True, help="where the unlearned model, report.json and plots go")
    p.add_argument("--retrain-twin", action="store_true", help="also build the deterministic retrain twin and compare against it")
    p.add_argument("--repair-epochs", type=float, default=None, help="repair fine-tuning epochs after rollback (amnesiac methods)")
    p.add_argument("--proxy", default=None, help="rum only: memorization proxy (confidence, max_confidence, entropy, binary_accuracy, holdout)")
    p.add_argument("--preset", default=None, help="rum only: per-group methods, salun (none -> finetune -> salun), neggrad_plus (alpha .99/.97/.97) or a method name")
    p.add_argument("--compare-vanilla", action="store_true", help="rum only: also run the highest group's method on the whole forget set and compare per group")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="method option, e.g. --set learning_rate=1e-4 (repeatable)")
    p.add_argument("--retain-eval-max", type=int, default=2000, help="retain examples used for the evaluation (balanced subset)")
    p.add_argument("--list-methods", action="store_true", help="print the registered methods and exit")
    return p


def parse_options(pairs: list[str]) -> dict:
    out = {}
    for pair in pairs:
        if "=" not in pair:
            raise SystemExit(f"hf-unlearn unlearn: --set expects KEY=VALUE, got {pair!r}")
        key, value = pair.split("=", 1)
        out[key.strip()] = yaml.safe_load(value)
    return out


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if "--list-methods" in argv:
        from ..methods import available_methods

        for name, spec in available_methods().items():
            print(f"{name:22s} {spec.guarantee:12s} {spec.summary}")
        return 0
    args = make_parser().parse_args(argv)
    from ..data.forget import ForgetRequest, ForgetRequestError
    from ..evaluation.report import summary_table
    from ..pipeline import unlearn_run
    from ..training.log_store import LogError

    options = parse_options(args.set)
    if args.repair_epochs is not None:
        options["repair_epochs"] = args.repair_epochs
    for flag in ("proxy", "preset"):
        value = getattr(args, flag)
        if value is not None:
            if args.method != "rum":
                print(f"hf-unlearn unlearn: error: --{flag} only applies to --method rum", file=sys.stderr)
                return 2
            options[flag] = value
    if args.compare_vanilla and args.method != "rum":
        print("hf-unlearn unlearn: error: --compare-vanilla only applies to --method rum", file=sys.stderr)
        return 2
    request = ForgetRequest.from_file(args.forget) if args.forget else ForgetRequest.from_label(args.forget_label)
    try:
        report = unlearn_run(args.run, request, args.method, args.output_dir, method_args=options,
                             with_twin=args.retrain_twin, retain_eval_max=args.retain_eval_max,
                             compare_vanilla=args.compare_vanilla)
    except (ForgetRequestError, LogError, KeyError, TypeError, ValueError, FileNotFoundError) as exc:
        print(f"hf-unlearn unlearn: error: {exc}", file=sys.stderr)
        return 2
    print(summary_table(report))
    print(f"wrote {args.output_dir}/report.json and plots/")
    return 0
