"""``hf-unlearn calibrate``: choose a method and its settings for a run on pseudo-requests (``runs/calibrate.py``)."""

from __future__ import annotations

import sys
from dataclasses import dataclass, field

from ..runs.recipe import RecipeParser
from . import fail, start, user_errors

PROG = "hf-unlearn calibrate"


@dataclass
class CalibrateArguments:
    run: str | None = field(
        default=None, metadata={"help": "Training run folder (trained with `hf-unlearn train`: its log). Required."}
    )
    request_size: float | None = field(
        default=None,
        metadata={
            "help": "Expected size of a deletion request: a fraction of the training set in (0, 0.5] "
            "(0.01 = 1%) or a whole count of examples. Required."
        },
    )
    budget: float = field(
        default=0.05,
        metadata={"help": "Most a method may cost, as a share of one retrain's wall time (0.05 = 5%)."},
    )
    methods: str | None = field(
        default=None, metadata={"help": "Comma-separated methods to try (default: every method with a search space)."}
    )
    pseudo_requests: int = field(
        default=3, metadata={"help": "Pseudo-requests drawn from the training set (each retrains its twin once)."}
    )
    seed: int = field(default=0, metadata={"help": "Seed of the pseudo-requests' draw."})
    retain_eval_max: int = field(
        default=2000, metadata={"help": "Retain examples used for each evaluation (balanced subset)."}
    )
    overwrite: bool = field(default=False, metadata={"help": "Replace an existing RUN/calibration.json."})
    restart: bool = field(
        default=False,
        metadata={
            "help": "Discard a calibration in progress (RUN/calibration_progress.json) instead of resuming it; "
            "a stopped calibration started again with the same settings resumes at its next setting."
        },
    )


def make_parser() -> RecipeParser:
    return RecipeParser(
        CalibrateArguments,
        prog=PROG,
        description=(
            "Draw pseudo-requests of the expected size from the training set (never ids already forgotten), "
            "retrain their twins once, try each method's few key settings and store the best within the budget "
            "in RUN/calibration.json; `hf-unlearn unlearn --method auto` then uses it."
        ),
        example="hf-unlearn calibrate --run runs/tiny --request_size 0.01 --budget 0.05 --methods neggrad_plus,scrub",
    )


def _table(record: dict) -> str:
    """The calibration's result: the best setting of each method, the do-nothing baseline, the choice."""
    best: dict[str, dict] = {}
    for r in record["candidates"]:
        if "error" not in r and "over_budget" not in r and r["cost_fraction"] <= record["budget"]:
            key = (round(r["tow_mean"], 4), round(r["tow_mia_mean"], 4), -r["cost_fraction"])
            if r["method"] not in best or key > best[r["method"]]["key"]:
                best[r["method"]] = {**r, "key": key}
    lines = [f"{'method':<18} {'ToW':>7} {'ToW-MIA':>8} {'cost':>6}  settings"]
    nothing = record["do_nothing"]
    lines.append(f"{'(do nothing)':<18} {nothing['tow_mean']:>7.4f} {nothing['tow_mia_mean']:>8.4f} {0:>6.3f}")
    for name, r in sorted(best.items(), key=lambda kv: kv[1]["key"], reverse=True):
        lines.append(
            f"{name:<18} {r['tow_mean']:>7.4f} {r['tow_mia_mean']:>8.4f} {r['cost_fraction']:>6.3f}  {r['options']}"
        )
    choice = record["choice"]
    lines.append(
        f"chosen: {choice['method']} {choice['options']} "
        f"(calibration cost {record['cost_retrains']:.1f} retrains; cost column: share of one retrain)"
    )
    if not record["beats_do_nothing"]:
        lines.append("warning: no setting scored a better ToW than doing nothing on the pseudo-requests")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = make_parser()
    (args,) = parser.parse(sys.argv[1:] if argv is None else argv)
    start(parser.output)
    from ..console import result
    from ..methods.registry import UnknownMethodError
    from ..runs.calibrate import CALIBRATION_FILE, calibrate_run
    from ..training.log_store import LogError

    try:
        if not args.run or args.request_size is None:
            raise ValueError("--run and --request_size are required")
        methods = [m.strip() for m in args.methods.split(",") if m.strip()] if args.methods else None
        record = calibrate_run(
            args.run,
            args.request_size,
            args.budget,
            methods=methods,
            pseudo_requests=args.pseudo_requests,
            seed=args.seed,
            retain_eval_max=args.retain_eval_max,
            overwrite=args.overwrite,
            restart=args.restart,
        )
    except (*user_errors(), UnknownMethodError, LogError, ValueError) as exc:
        return fail(PROG, str(exc))
    result(_table(record))
    result(f"wrote {args.run}/{CALIBRATION_FILE}")
    return 0
