"""S3T (or SISA) exact unlearning: hf-unlearn s3t train | delete | resume | predict | audit.

    hf-unlearn s3t train --config recipes/s3t_imdb.yaml [--flag value ...] [--verbose | --quiet]
    hf-unlearn s3t delete --system_dir DIR --ids ID [ID ...] | --ids_file F | --random N [--no_wait]
    hf-unlearn s3t resume --system_dir DIR     # finish what a killed request left (pending retrains)
    hf-unlearn s3t audit  --system_dir DIR --ids ... | --ids_file F | --deleted   # never writes
    hf-unlearn s3t predict --system_dir DIR --dataset_name SRC [--split test] | --text "..."

Every sub-command reads ``--config`` YAML and flags (flags win) with the same ``RecipeParser`` as
``train``; under ``accelerate launch`` every rank trains its share of the (shard, order) units.
For ``delete``, ``audit`` and ``predict`` the system folder is the recipe's ``output_dir`` and the
recipe's ``delete:``/``audit:``/``predict:`` sections give defaults.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path

from ..runs.config import S3T_RENAMES, DataArguments, ModelArguments, S3TArguments
from ..runs.recipe import RecipeParser, add_output_flags, read_recipe, rename_flags
from . import fail, start

SUBCOMMANDS = ("train", "delete", "resume", "predict", "audit")
SUBCOMMAND_RENAMES = {"dataset": "dataset_name", "output": "output_file"}
EXAMPLES = {
    "train": "hf-unlearn s3t train --dataset_name synthetic --model_name_or_path tiny-bert --n_public 100 "
    "--num_shards 2 --output_dir runs/s3t",
    "delete": "hf-unlearn s3t delete --system_dir runs/s3t --ids_file ids.txt --evaluate",
    "resume": "hf-unlearn s3t resume --system_dir runs/s3t",
    "audit": "hf-unlearn s3t audit --system_dir runs/s3t --deleted --output_file audit.json",
    "predict": "hf-unlearn s3t predict --system_dir runs/s3t --text 'a wonderful film'",
}


@dataclass
class SystemArguments:
    system_dir: str | None = field(
        default=None, metadata={"help": "Folder of the system (default: the recipe's output_dir)."}
    )
    output_file: str | None = field(default=None, metadata={"help": "Write the full JSON result to this file."})


@dataclass
class LockArguments(SystemArguments):
    no_wait: bool = field(
        default=False, metadata={"help": "Fail at once ('busy, retry') when another request holds the system."}
    )
    lock_timeout: float | None = field(
        default=None,
        metadata={"help": "Seconds to wait for another request on the system (default: as long as it takes)."},
    )

    def timeout(self) -> float | None:
        return 0.0 if self.no_wait else self.lock_timeout


@dataclass
class ResumeArguments(LockArguments):
    pass


@dataclass
class DeleteArguments(LockArguments):
    ids: list[str] | None = field(default=None, metadata={"help": "Example ids."})
    ids_file: str | None = field(default=None, metadata={"help": "File with one id per line."})
    random: int | None = field(default=None, metadata={"help": "Delete N random private ids (for trying it out)."})
    seed: int = field(default=0, metadata={"help": "Seed of --random."})
    request_id: str | None = field(default=None, metadata={"help": "Request id (default: derived from the ids)."})
    no_retrain: bool = field(default=False, metadata={"help": "Leave emptied shards pending (retrain later)."})
    evaluate: bool = field(default=False, metadata={"help": "Re-evaluate on the recorded test split afterwards."})
    show_ids: bool = field(
        default=False, metadata={"help": "Print (and write) the deleted ids; default: counts only."}
    )


@dataclass
class AuditArguments(SystemArguments):
    ids: list[str] | None = field(default=None, metadata={"help": "Example ids."})
    ids_file: str | None = field(default=None, metadata={"help": "File with one id per line."})
    deleted: bool = field(default=False, metadata={"help": "Audit every deleted id."})
    show_ids: bool = field(
        default=False, metadata={"help": "Print (and write) the ids; default: entries without them."}
    )


@dataclass
class PredictArguments(SystemArguments):
    dataset_name: str | None = field(
        default=None, metadata={"help": "Data source (default: the one the system was trained on)."}
    )
    split: str = field(default="test", metadata={"help": "test or train (the private split)."})
    max_examples: int | None = field(default=None, metadata={"help": "Predict on the first N examples only."})
    text: list[str] | None = field(default=None, metadata={"help": "Texts to classify instead of a dataset."})


SUBCOMMAND_ARGUMENTS = {
    "delete": DeleteArguments,
    "resume": ResumeArguments,
    "audit": AuditArguments,
    "predict": PredictArguments,
}


def _config_class(method: str):
    from ..s3t import S3TConfig, SISAConfig

    if method not in ("s3t", "sisa"):
        raise ValueError(f"method must be s3t or sisa, got {method!r}")
    return SISAConfig if method == "sisa" else S3TConfig


def make_train_parser(method: str = "s3t") -> RecipeParser:
    return RecipeParser(
        (DataArguments, ModelArguments, S3TArguments, _config_class(method)),
        renames=S3T_RENAMES,
        prog="hf-unlearn s3t train",
        example=EXAMPLES["train"],
    )


def make_parser() -> argparse.ArgumentParser:
    """The overview parser (help only); each sub-command parses with its own ``RecipeParser``."""
    parser = argparse.ArgumentParser(prog="hf-unlearn s3t", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="subcommand", required=True)
    sub.add_parser("train", help="train an S3T/SISA system (see: hf-unlearn s3t train --help)", add_help=False)
    for name, text in (
        ("delete", "forget ids exactly"),
        ("resume", "finish what a killed request left"),
        ("audit", "prove ids are forgotten (read-only)"),
        ("predict", "predict"),
    ):
        sub.add_parser(name, help=f"{text} (see: hf-unlearn s3t {name} --help)", add_help=False)
    return parser


def parse_train_args(argv: list[str]):
    """(data args, model args, S3T arguments, S3TConfig | SISAConfig) from ``--config`` YAML and flags."""
    argv = rename_flags(argv, S3T_RENAMES)
    recipe = {k: v for k, v in read_recipe(RecipeParser.config_path(argv)).items() if not isinstance(v, dict)}
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--method", default=None)
    method = pre.parse_known_args(argv)[0].method or recipe.get("method", "s3t")
    return make_train_parser(method).parse(argv, recipe=recipe)


def parse_subcommand_args(name: str, argv: list[str]):
    """The arguments of ``delete``/``audit``/``predict``: the recipe's ``output_dir`` and ``name:`` section, then flags."""
    parser = RecipeParser(
        SUBCOMMAND_ARGUMENTS[name], renames=SUBCOMMAND_RENAMES, prog=f"hf-unlearn s3t {name}", example=EXAMPLES[name]
    )
    recipe = read_recipe(RecipeParser.config_path(argv))
    section = dict(recipe.get(name) or {})
    argv = rename_flags(argv, SUBCOMMAND_RENAMES)
    if recipe.get("output_dir"):
        section.setdefault("system_dir", recipe["output_dir"])
    (args,) = parser.parse(argv, recipe=section)
    if not args.system_dir:
        parser.error("give --system_dir (or --config with output_dir)")
    return args


def _train(argv: list[str]) -> int:
    from ..runs.s3t import train_system, training_summary

    data_args, model_args, s3t_args, config = parse_train_args(argv)
    system, world_size = train_system(data_args, model_args, s3t_args, config)
    if system is not None:
        print(json.dumps(training_summary(system, world_size)))
    return 0


def _ids(name: str, args, system) -> list[str]:
    from ..data import read_id_file

    if args.ids:
        return list(args.ids)
    if args.ids_file:
        return read_id_file(args.ids_file)
    if getattr(args, "random", None):
        import numpy as np

        deleted = system.ledger.deleted()
        pool = [i for i in system.assignment.ids if i not in deleted]
        rng = np.random.default_rng(args.seed)
        return sorted(rng.choice(pool, size=min(args.random, len(pool)), replace=False).tolist())
    raise ValueError("no ids: give --ids, --ids_file" + (", or --deleted" if name == "audit" else ", or --random N"))


def _emit(result: dict, output: str | None) -> None:
    if output:
        Path(output).write_text(json.dumps(result, indent=2, default=str))
    print(json.dumps(result, default=str))


def _delete(args, system) -> int:
    from ..runs.s3t import delete, hide_ids

    result = delete(
        system,
        _ids("delete", args, system),
        request_id=args.request_id,
        retrain=not args.no_retrain,
        evaluate=args.evaluate,
    )
    _emit(result if args.show_ids else hide_ids(result), args.output_file)
    return 0


def _resume(args, system) -> int:
    from ..runs.s3t import resume

    _emit(resume(system), args.output_file)
    return 0


def _audit(args) -> int:
    """Read-only: exit 0 when consistent and every deleted id is clean, 1 otherwise."""
    from ..runs.s3t import audit, hide_ids
    from ..s3t import InconsistentSystemError

    ids = None if args.deleted else _ids("audit", args, None)
    try:
        report = audit(args.system_dir, ids, deleted=args.deleted)
    except InconsistentSystemError as err:  # inconsistent records: exit 1, like a failed audit
        fail("hf-unlearn s3t audit", str(err))
        return 1
    shown = report if args.show_ids else hide_ids(report)
    if args.output_file:
        Path(args.output_file).write_text(json.dumps(shown, indent=2))
    print(json.dumps(shown if report["n_ids"] <= 20 else {k: v for k, v in shown.items() if k != "ids"}))
    clean = report["all_clean"] or not report["n_deleted"]
    return 0 if clean and report["consistent"] else 1


def _predict(args, system) -> int:
    from ..runs.s3t import prediction_data

    if args.text:
        out = system.predict(args.text)
        _emit({"predictions": out.predictions.tolist(), "logits": out.logits.tolist()}, args.output_file)
        return 0
    data = prediction_data(system, args.split, args.dataset_name, args.max_examples)
    out = system.predict(data)
    result = {"n": len(data), "served": system.served}
    if out.label_ids is not None:
        result["accuracy"] = float((out.predictions == out.label_ids).mean())
    if args.output_file:
        rows = [{"id": i, "prediction": int(p)} for i, p in zip(data["id"], out.predictions)]
        Path(args.output_file).write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    print(json.dumps(result))
    return 0


def _run(name: str, argv: list[str]) -> int:
    if name == "train":
        return _train(argv)
    from ..s3t import S3TModel

    args = parse_subcommand_args(name, argv)
    if name == "audit":
        return _audit(args)
    timeout = args.timeout() if isinstance(args, LockArguments) else None
    system = S3TModel.from_pretrained(args.system_dir, lock_timeout=timeout)
    return {"delete": _delete, "resume": _resume, "predict": _predict}[name](args, system)


def _output_flags(argv: list[str]) -> argparse.Namespace:
    pre = argparse.ArgumentParser(add_help=False)
    add_output_flags(pre)
    return pre.parse_known_args(argv)[0]


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv or argv[0] in ("-h", "--help"):
        make_parser().print_help()
        return 0
    if argv[0] not in SUBCOMMANDS:
        return fail("hf-unlearn s3t", f"unknown sub-command {argv[0]!r}; choose from {', '.join(SUBCOMMANDS)}")
    from ..artifacts import BusyError
    from ..data import DatasetFormatError, ForgetRequestError
    from ..models import ModelNotFoundError
    from ..runs.recipe import RecipeError
    from ..s3t import ForeignLedgerError, InconsistentSystemError, MissingTrainingDataError, ReadOnlySystemError

    start(_output_flags(argv[1:]))
    try:
        return _run(argv[0], argv[1:])
    except (
        DatasetFormatError,
        ForgetRequestError,
        ModelNotFoundError,
        ReadOnlySystemError,
        MissingTrainingDataError,
        ForeignLedgerError,
        InconsistentSystemError,
        BusyError,
        RecipeError,
        FileNotFoundError,
        FileExistsError,
        ValueError,
    ) as err:
        return fail(f"hf-unlearn s3t {argv[0]}", str(err))


if __name__ == "__main__":
    sys.exit(main())
