"""``hf-unlearn unlearn``: forget ids from a training run and write the unlearned model + report."""

from __future__ import annotations

import sys
from dataclasses import dataclass, field

from ..runs.recipe import RecipeParser

PROG = "hf-unlearn unlearn"


@dataclass
class UnlearnArguments:
    run: str | None = field(
        default=None,
        metadata={"help": "Training run folder (model, tokenizer, unlearning_log/, hf_unlearn_run.json). Required."},
    )
    forget: str | None = field(
        default=None, metadata={"help": "File with one example id per line (# comments allowed)."}
    )
    forget_label: int | None = field(
        default=None, metadata={"help": "Forget every training example with this label (instead of --forget)."}
    )
    method: str = field(default="amnesiac", metadata={"help": "Registered method (see --list-methods)."})
    output_dir: str | None = field(
        default=None, metadata={"help": "Where the unlearned model, report.json and plots go. Required."}
    )
    retrain_twin: bool = field(
        default=False, metadata={"help": "Also build the deterministic retrain twin and compare against it."}
    )
    repair_epochs: float | None = field(
        default=None, metadata={"help": "Repair fine-tuning epochs after rollback (amnesiac methods)."}
    )
    proxy: str | None = field(
        default=None,
        metadata={
            "help": "rum only: memorization proxy (confidence, max_confidence, entropy, binary_accuracy, holdout)."
        },
    )
    preset: str | None = field(
        default=None,
        metadata={
            "help": "rum only: per-group methods, salun (none -> finetune -> salun), neggrad_plus (alpha .99/.97/.97) or a method name."
        },
    )
    compare_vanilla: bool = field(
        default=False,
        metadata={
            "help": "rum only: also run the highest group's method on the whole forget set and compare per group."
        },
    )
    retain_eval_max: int = field(
        default=2000, metadata={"help": "Retain examples used for the evaluation (balanced subset)."}
    )
    list_methods: bool = field(default=False, metadata={"help": "Print the registered methods and exit."})


def _options_help() -> str:
    from ..methods import available_methods
    from ..methods.registry import describe_options

    lines = ["method options (--set KEY=VALUE, values converted to the option's type):"]
    for name, spec in available_methods().items():
        shown = ", ".join(f"{opt}: {kind} = {default!r}" for opt, kind, default, _ in describe_options(spec))
        lines.append(f"  {name}: {shown or '(none)'}")
    return "\n".join(lines)


def make_parser(with_options_help: bool = False) -> RecipeParser:
    import argparse

    parser = RecipeParser(
        UnlearnArguments,
        prog=PROG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Forget training examples from a run trained with `hf-unlearn train`.",
        epilog=_options_help() if with_options_help else None,
    )
    parser.add_extra_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="method option, e.g. --set learning_rate=1e-4 (repeatable; see the list below)",
    )
    return parser


def parse_options(pairs: list[str]) -> dict[str, str]:
    """``["learning_rate=1e-4"]`` -> ``{"learning_rate": "1e-4"}`` (the registry converts the values)."""
    out = {}
    for pair in pairs:
        if "=" not in pair:
            raise SystemExit(f"{PROG}: --set expects KEY=VALUE, got {pair!r}")
        key, value = pair.split("=", 1)
        out[key.strip()] = value.strip()
    return out


def _fail(message: str) -> int:
    print(f"{PROG}: error: {message}", file=sys.stderr)
    return 2


def _method_options(args, pairs: list[str]) -> dict:
    options = parse_options(pairs)
    if args.repair_epochs is not None:
        options["repair_epochs"] = args.repair_epochs
    for flag in ("proxy", "preset"):
        if getattr(args, flag) is not None:
            if args.method != "rum":
                raise ValueError(f"--{flag} only applies to --method rum")
            options[flag] = getattr(args, flag)
    if args.compare_vanilla and args.method != "rum":
        raise ValueError("--compare-vanilla only applies to --method rum")
    if not args.run or not args.output_dir:
        raise ValueError("--run and --output_dir are required")
    if (args.forget is None) == (args.forget_label is None):
        raise ValueError("give exactly one of --forget FILE or --forget-label N")
    return options


def _list_methods() -> int:
    from ..methods import available_methods

    for name, spec in available_methods().items():
        print(f"{name:22s} {spec.guarantee:12s} {spec.summary}")
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if "--list-methods" in argv or "--list_methods" in argv:
        return _list_methods()
    args, extra = make_parser(with_options_help="-h" in argv or "--help" in argv).parse(argv)
    from ..data.forget import ForgetRequest, ForgetRequestError
    from ..evaluation.report import summary_table
    from ..methods.registry import MethodOptionError, UnknownMethodError
    from ..runs.recipe import RecipeError
    from ..runs.unlearn import unlearn_run
    from ..training.log_store import LogError

    try:
        options = _method_options(args, extra.set)
        request = ForgetRequest.from_file(args.forget) if args.forget else ForgetRequest.from_label(args.forget_label)
        report = unlearn_run(
            args.run,
            request,
            args.method,
            args.output_dir,
            method_args=options,
            with_twin=args.retrain_twin,
            retain_eval_max=args.retain_eval_max,
            compare_vanilla=args.compare_vanilla,
        )
    except UnknownMethodError as exc:
        return _fail(exc.args[0] if exc.args else str(exc))
    except (ForgetRequestError, MethodOptionError, LogError, RecipeError, ValueError, FileNotFoundError) as exc:
        return _fail(str(exc))
    print(summary_table(report))
    print(f"wrote {args.output_dir}/report.json and plots/")
    return 0
