"""``hf-unlearn unlearn``: forget ids from a training run and write the unlearned model + report."""

from __future__ import annotations

import sys
from dataclasses import dataclass, field

from ..runs.recipe import RecipeParser
from . import fail, start, user_errors

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
    method: str = field(
        default="amnesiac",
        metadata={
            "help": "Registered method (see --list_methods; --method NAME --help), or auto: the method and "
            "settings `hf-unlearn calibrate` stored with the run."
        },
    )
    output_dir: str | None = field(
        default=None, metadata={"help": "Where the unlearned model, report.json and plots go. Required."}
    )
    overwrite: bool = field(
        default=False,
        metadata={"help": "Replace a non-empty --output_dir (the new folder takes its place whole, at the end)."},
    )
    retrain_twin: bool = field(
        default=False,
        metadata={
            "help": "Also build the deterministic retrain twin and compare against it; the twins are saved in "
            "OUTPUT/twins/ and reused by a later request on the same forget set."
        },
    )
    noise_twins: int = field(
        default=0,
        metadata={
            "help": "With --retrain_twin: also retrain K noise twins (without the forget set, seeds seed+1..seed+K) "
            "and report the retrain noise floor and the verdict against it (K >= 2: the per-example membership test)."
        },
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
    request_id: str | None = field(
        default=None,
        metadata={
            "help": "Id of this deletion request in the run's ledger (default: a fresh req-<UTC time>-<hex>, "
            "printed). Given again, a served request is not served twice."
        },
    )
    sequential_strategy: str = field(
        default="union",
        metadata={
            "help": "union: unlearn every request of the run's ledger from the trained weights (every method); "
            "chain: approximate methods only, start from the last served output and forget what it does not "
            "honour yet.",
            "choices": ["union", "chain"],
        },
    )
    retain_eval_max: int = field(
        default=2000, metadata={"help": "Retain examples used for the evaluation (balanced subset)."}
    )
    list_methods: bool = field(default=False, metadata={"help": "Print the registered methods and exit."})


EXAMPLE = (
    "hf-unlearn unlearn --run runs/tiny --forget ids.txt --method neggrad_plus "
    "--set learning_rate=1e-4 --retrain_twin --output_dir runs/tiny-forgot"
)


def _option_lines(spec, indent: str = "    ") -> list[str]:
    from ..methods.registry import describe_options

    rows = describe_options(spec)
    if not rows:
        return [f"{indent}(no options)"]
    return [
        f"{indent}{opt}: {kind} = {default!r}" + (f"  {text}" if text else "") for opt, kind, default, text in rows
    ]


def _options_help(method: str | None = None) -> str:
    """The ``--set`` options of ``method`` (with their help), or of every method."""
    from ..methods import available_methods
    from ..methods.registry import describe_options, get_method

    if method:
        spec = get_method(method)
        head = f"options of {spec.name} ({spec.guarantee}; --set KEY=VALUE, converted to the option's type):"
        return "\n".join([head, f"  {spec.summary}", *_option_lines(spec, "  ")])
    lines = ["method options (--set KEY=VALUE, values converted to the option's type; --method NAME --help for one):"]
    for name, spec in available_methods().items():
        shown = ", ".join(f"{opt}: {kind} = {default!r}" for opt, kind, default, _ in describe_options(spec))
        lines.append(f"  {name}: {shown or '(none)'}")
    return "\n".join(lines)


def make_parser(with_options_help: bool | str = False) -> RecipeParser:
    """The parser; ``with_options_help`` adds every method's options (True) or one method's (its name)."""
    method = with_options_help if isinstance(with_options_help, str) else None
    parser = RecipeParser(
        UnlearnArguments,
        prog=PROG,
        description="Forget training examples from a run trained with `hf-unlearn train`.",
        epilog=_options_help(method) if with_options_help else None,
        example=EXAMPLE,
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
            raise ValueError(f"--set expects KEY=VALUE, got {pair!r}")
        key, value = pair.split("=", 1)
        out[key.strip()] = value.strip()
    return out


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
        raise ValueError("--compare_vanilla only applies to --method rum")
    if not args.run or not args.output_dir:
        raise ValueError("--run and --output_dir are required")
    if (args.forget is None) == (args.forget_label is None):
        raise ValueError("give exactly one of --forget FILE or --forget_label N")
    return options


def _list_methods() -> int:
    from ..console import result
    from ..methods import available_methods

    for name, spec in available_methods().items():
        result(f"{name} ({spec.guarantee}): {spec.summary}")
        result("\n".join(_option_lines(spec)))
    return 0


def _help_method(argv: list[str]) -> str | bool:
    """For ``--help``: the method named by ``--method`` (its options only), else True (every method's;
    also for ``auto``, which runs whichever method the calibration chose)."""
    import argparse

    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--method", default=None)
    method = pre.parse_known_args(argv)[0].method
    return method if method and method != "auto" else True


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if "--list-methods" in argv or "--list_methods" in argv:
        return _list_methods()
    from ..methods.registry import MethodOptionError, UnknownMethodError

    try:
        help_for = _help_method(argv) if "-h" in argv or "--help" in argv else False
        parser = make_parser(with_options_help=help_for)
    except UnknownMethodError as exc:
        return fail(PROG, str(exc))
    args, extra = parser.parse(argv)
    start(parser.output)
    from ..console import result
    from ..data.forget import ForgetRequest
    from ..evaluation.report import summary_table
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
            overwrite=args.overwrite,
            request_id=args.request_id,
            strategy=args.sequential_strategy,
            noise_twins=args.noise_twins,
        )
    except (*user_errors(), UnknownMethodError, MethodOptionError, LogError, ValueError) as exc:
        return fail(PROG, str(exc))
    if report.get("already_served"):
        return 0  # unlearn_run said which output served it; nothing was written
    result(summary_table(report))
    result(f"wrote {args.output_dir}/report.json and plots/")
    return 0
