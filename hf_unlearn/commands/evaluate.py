"""``hf-unlearn evaluate``: recompute the forgetting report for any original / unlearned / twin folders."""

from __future__ import annotations

import sys
from dataclasses import dataclass, field

from ..runs.recipe import RecipeParser
from . import fail, start, user_errors

PROG = "hf-unlearn evaluate"


@dataclass
class EvaluateArguments:
    run: str | None = field(
        default=None, metadata={"help": "The training run folder (its data set and tokenizer are used). Required."}
    )
    forget: str | None = field(default=None, metadata={"help": "File with the forgotten ids, one per line. Required."})
    original: str | None = field(
        default=None, metadata={"help": "Model folder of the original model (default: the run folder)."}
    )
    unlearned: str | None = field(default=None, metadata={"help": "Model folder of the unlearned model. Required."})
    twin: str | None = field(
        default=None,
        metadata={
            "help": "Model folder of the retrain twin (ToW, ToW-MIA and VE need it), e.g. OUT/twins/retrain_twin "
            "saved by `unlearn --retrain_twin` (checked against --forget before use)."
        },
    )
    noise_twins: int = field(
        default=0,
        metadata={
            "help": "With --twin: K noise twins for the retrain noise floor (those saved beside --twin for the same "
            "forget set are reused, the others retrained from the run's log)."
        },
    )
    method: str | None = field(
        default=None,
        metadata={"help": "Method name for the report (default: the unlearned folder's report, else 'unknown')."},
    )
    output_dir: str | None = field(default=None, metadata={"help": "Where report.json and plots/ go. Required."})
    overwrite: bool = field(
        default=False,
        metadata={"help": "Replace a non-empty --output_dir (the new folder takes its place whole, at the end)."},
    )
    retain_eval_max: int = field(
        default=2000, metadata={"help": "Retain examples used for the evaluation (balanced subset)."}
    )


def make_parser() -> RecipeParser:
    return RecipeParser(
        EvaluateArguments,
        prog=PROG,
        description="Evaluate saved models on the forget / retain / test splits of a training run.",
        example="hf-unlearn evaluate --run runs/tiny --forget ids.txt --unlearned runs/tiny-forgot "
        "--output_dir runs/tiny-eval",
    )


def main(argv: list[str] | None = None) -> int:
    parser = make_parser()
    (args,) = parser.parse(sys.argv[1:] if argv is None else argv)
    start(parser.output)
    missing = [f"--{name}" for name in ("run", "forget", "unlearned", "output_dir") if not getattr(args, name)]
    if missing:
        parser.error(f"the following arguments are required: {', '.join(missing)}")
    from ..console import result
    from ..data.forget import ForgetRequest
    from ..evaluation.report import summary_table
    from ..runs.evaluate import evaluate_run
    from ..training.log_store import LogError

    try:
        report = evaluate_run(
            args.run,
            ForgetRequest.from_file(args.forget),
            args.unlearned,
            args.output_dir,
            original=args.original,
            twin=args.twin,
            noise_twins=args.noise_twins,
            method=args.method,
            retain_eval_max=args.retain_eval_max,
            overwrite=args.overwrite,
        )
    except (*user_errors(), LogError, OSError, ValueError) as exc:
        return fail(PROG, str(exc))
    result(summary_table(report))
    return 0
