"""``hf-unlearn demo``: the offline end-to-end demo (synthetic data, tiny BERT, no download)."""

from __future__ import annotations

import sys
from dataclasses import dataclass, field

from ..runs.recipe import RecipeParser
from . import fail, start, user_errors


@dataclass
class DemoArguments:
    output_dir: str = field(
        default="demo_out", metadata={"help": "Where the run, reports, plots and upload folder go."}
    )
    seed: int = field(default=0, metadata={"help": "Seed of the data, the model and every method."})
    no_s3t: bool = field(default=False, metadata={"help": "Skip the S3T exact-unlearning part."})
    overwrite: bool = field(
        default=False, metadata={"help": "Replace a non-empty --output_dir (the new folder takes its place whole)."}
    )


def make_parser() -> RecipeParser:
    return RecipeParser(
        DemoArguments,
        prog="hf-unlearn demo",
        description="Train, forget, verify and prepare a Hub upload, offline, in a few minutes.",
        example="hf-unlearn demo --output_dir demo_out --no_s3t",
    )


def main(argv: list[str] | None = None) -> int:
    parser = make_parser()
    (args,) = parser.parse(sys.argv[1:] if argv is None else argv)
    start(parser.output)
    from ..runs.demo import run_demo

    try:
        run_demo(args.output_dir, seed=args.seed, with_s3t=not args.no_s3t, overwrite=args.overwrite)
    except user_errors() as exc:
        return fail("hf-unlearn demo", str(exc))
    return 0
