"""``hf-unlearn demo``: the offline end-to-end demo (synthetic data, tiny BERT, no download)."""

from __future__ import annotations

import argparse
import sys


def make_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="hf-unlearn demo",
        description="Train, forget, verify and prepare a Hub upload, offline, in a few minutes.",
    )
    p.add_argument(
        "--output_dir", "--output-dir", default="demo_out", help="where the run, reports, plots and upload folder go"
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-s3t", action="store_true", help="skip the S3T exact-unlearning part")
    return p


def main(argv: list[str] | None = None) -> int:
    args = make_parser().parse_args(sys.argv[1:] if argv is None else argv)
    from ..runs.demo import run_demo

    run_demo(args.output_dir, seed=args.seed, with_s3t=not args.no_s3t)
    return 0
