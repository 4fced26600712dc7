"""S3T (or SISA) exact unlearning: hf-unlearn s3t train | delete | predict | audit.

    hf-unlearn s3t train --config recipes/s3t_imdb.yaml [--flag value ...]
    hf-unlearn s3t delete --system_dir DIR --ids ID [ID ...] | --ids_file F | --random N
    hf-unlearn s3t audit  --system_dir DIR --ids ... | --ids_file F | --deleted
    hf-unlearn s3t predict --system_dir DIR --dataset SRC [--split test] | --text "..."

``train`` reads YAML keys and flags (flags win) into dataclasses with ``HfArgumentParser``; under
``accelerate launch`` every rank trains its share of the (shard, order) units. ``delete``,
``audit`` and ``predict`` accept ``--config`` too: the system folder is the recipe's
``output_dir`` and the recipe's ``delete:``/``audit:``/``predict:`` sections give defaults.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Optional

SUBCOMMANDS = ("train", "delete", "predict", "audit")


@dataclass
class S3TDataArguments:
    dataset: str = field(default="imdb", metadata={"help": "'synthetic', a local parquet/csv/jsonl file or folder, or a Hub name."})
    text_column: str = field(default="text", metadata={"help": "Text column of the data."})
    label_column: str = field(default="label", metadata={"help": "Label column of the data."})
    id_column: Optional[str] = field(default=None, metadata={"help": "Id column (default: 'id' or split/row)."})
    max_train: Optional[int] = field(default=None, metadata={"help": "Label-balanced training subset size."})
    max_test: Optional[int] = field(default=None, metadata={"help": "Label-balanced test subset size."})
    n_public: int = field(
        default=0,
        metadata={"help": "Training examples held out as a 'public' split that fully fine-tunes the base before "
                          "S3T (needed for a randomly initialised base such as tiny-bert); not deletable."},
    )
    data_seed: int = field(default=0, metadata={"help": "Seed of the subsets and of the public split."})
    synthetic_canaries: int = field(default=8, metadata={"help": "Canaries in the synthetic data."})


@dataclass
class S3TModelArguments:
    model_name_or_path: str = field(
        default="distilbert-base-uncased", metadata={"help": "Hub name or local path of the base, or 'tiny-bert'."}
    )
    method: str = field(default="s3t", metadata={"help": "s3t or sisa (the baseline)."})
    tiny_hidden_size: int = field(default=64, metadata={"help": "tiny-bert hidden size."})
    tiny_num_layers: int = field(default=4, metadata={"help": "tiny-bert layers."})
    tiny_num_heads: int = field(default=2, metadata={"help": "tiny-bert attention heads."})
    tiny_intermediate_size: int = field(default=128, metadata={"help": "tiny-bert feed-forward size."})
    tiny_vocab_size: int = field(default=2000, metadata={"help": "tiny-bert WordPiece vocabulary."})
    pretrain_epochs: int = field(default=3, metadata={"help": "Full fine-tuning epochs on the public split."})
    pretrain_learning_rate: float = field(default=5e-4, metadata={"help": "Learning rate on the public split."})
    pretrain_batch_size: int = field(default=32, metadata={"help": "Batch size on the public split."})


def _read_yaml(path: str | None) -> dict:
    if not path:
        return {}
    import yaml

    data = yaml.safe_load(Path(path).read_text()) or {}
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a mapping of options")
    return data


def _config_class(method: str):
    from ..s3t import S3TConfig, SISAConfig

    if method not in ("s3t", "sisa"):
        raise ValueError(f"method must be s3t or sisa, got {method!r}")
    return SISAConfig if method == "sisa" else S3TConfig


def make_train_parser(method: str = "s3t"):
    from transformers import HfArgumentParser

    parser = HfArgumentParser((S3TDataArguments, S3TModelArguments, _config_class(method)), prog="hf-unlearn s3t train")
    parser.add_argument("--config", default=None, help="YAML recipe (keys = the options below; flags win).")
    return parser


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="hf-unlearn s3t", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="subcommand", required=True)
    sub.add_parser("train", help="train an S3T/SISA system (see: hf-unlearn s3t train --help)", add_help=False)
    for name, text in (("delete", "forget ids exactly"), ("audit", "prove ids are forgotten"), ("predict", "predict")):
        p = sub.add_parser(name, help=text)
        p.add_argument("--config", default=None, help="YAML recipe: output_dir and the '%s:' section." % name)
        p.add_argument("--system_dir", default=None, help="Folder of the system (default: the recipe's output_dir).")
        if name in ("delete", "audit"):
            p.add_argument("--ids", nargs="+", default=None, help="Example ids.")
            p.add_argument("--ids_file", default=None, help="File with one id per line.")
        if name == "delete":
            p.add_argument("--random", type=int, default=None, help="Delete N random private ids (for trying it out).")
            p.add_argument("--seed", type=int, default=0, help="Seed of --random.")
            p.add_argument("--request_id", default=None, help="Request id (default: derived from the ids).")
            p.add_argument("--no_retrain", action="store_true", help="Leave emptied shards pending (retrain later).")
            p.add_argument("--evaluate", action="store_true", help="Re-evaluate on the recorded test split afterwards.")
        if name == "audit":
            p.add_argument("--deleted", action="store_true", help="Audit every deleted id.")
        if name == "predict":
            p.add_argument("--dataset", default=None, help="Data source (default: the one the system was trained on).")
            p.add_argument("--split", default="test")
            p.add_argument("--max_examples", type=int, default=None)
            p.add_argument("--text", nargs="+", default=None, help="Texts to classify instead of a dataset.")
        p.add_argument("--output", default=None, help="Write the full JSON result here.")
    return parser


# -- data -------------------------------------------------------------------------------------------
def load_splits(data_args: S3TDataArguments):
    """(public, private, test) for the data arguments; deterministic, so retrains can reload it."""
    from ..data import load_sentiment_dataset
    from ..s3t import split_public_private

    if data_args.dataset == "synthetic":
        dd = load_sentiment_dataset("synthetic", n_train=data_args.max_train or 400, n_test=data_args.max_test or 200,
                                    n_canaries=data_args.synthetic_canaries, seed=data_args.data_seed)
    else:
        dd = load_sentiment_dataset(data_args.dataset, text_column=data_args.text_column,
                                    label_column=data_args.label_column, id_column=data_args.id_column,
                                    max_train=data_args.max_train, max_test=data_args.max_test, seed=data_args.data_seed)
    public, private = split_public_private(dd["train"], data_args.n_public, data_args.data_seed)
    return public, private, dd["test"]


def _data_args_of(system) -> S3TDataArguments:
    known = {f.name for f in fields(S3TDataArguments)}
    return S3TDataArguments(**{k: v for k, v in (system.info.get("data") or {}).items() if k in known})


def _private_loader(system):
    def load():
        from ..data import fingerprint_dataset

        _, private, _ = load_splits(_data_args_of(system))
        if fingerprint_dataset(private) != system.info["fingerprints"]["private_train"]:
            raise RuntimeError("the reloaded private split differs from the one the system was trained on")
        return private

    return load


# -- sub-commands -----------------------------------------------------------------------------------
def parse_train_args(argv: list[str]):
    """(data args, model args, S3TConfig | SISAConfig) from ``--config`` YAML keys and flags (flags win)."""
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--config", default=None)
    pre.add_argument("--method", default=None)
    known, _ = pre.parse_known_args(argv)
    recipe = {k: v for k, v in _read_yaml(known.config).items() if not isinstance(v, dict)}
    parser = make_train_parser(known.method or recipe.get("method", "s3t"))
    valid = {a.dest for a in parser._actions}
    unknown = sorted(set(recipe) - valid)
    if unknown:
        raise ValueError(f"{known.config}: unknown option(s) {unknown}")
    parser.set_defaults(**recipe)
    data_args, model_args, config, _ = parser.parse_args_into_dataclasses(args=argv)
    return data_args, model_args, config


def _train(argv: list[str]) -> int:
    data_args, model_args, config = parse_train_args(argv)

    from ..models import TINY_BERT, TinyBertSpec, build_tiny_bert, load_model_and_tokenizer
    from ..s3t import S3TModel, SISAModel, finetune_base
    from ..s3t.pretrain import model_accuracy
    from ..s3t.training import distributed_state

    state = distributed_state()
    public, private, test = load_splits(data_args)
    model = tokenizer = base_metrics = None
    name = model_args.model_name_or_path
    if state.is_main_process:
        if name == TINY_BERT:
            spec = TinyBertSpec(vocab_size=model_args.tiny_vocab_size, hidden_size=model_args.tiny_hidden_size,
                                num_hidden_layers=model_args.tiny_num_layers, num_attention_heads=model_args.tiny_num_heads,
                                intermediate_size=model_args.tiny_intermediate_size, max_length=config.max_length)
            texts = public["text"] if len(public) else private["text"]  # public only, when there is one
            model, tokenizer = build_tiny_bert(texts, spec=spec, seed=config.seed)
        else:
            model, tokenizer = load_model_and_tokenizer(name, num_labels=2, seed=config.seed)
        if len(public):
            finetune_base(model, tokenizer, public, epochs=model_args.pretrain_epochs,
                          learning_rate=model_args.pretrain_learning_rate, batch_size=model_args.pretrain_batch_size,
                          max_length=config.max_length, seed=config.seed)
        base_metrics = {"test_acc": round(100 * model_accuracy(model, tokenizer, test, max_length=config.max_length), 4)}
    data_info = asdict(data_args)
    if os.path.exists(data_info["dataset"]):
        data_info["dataset"] = str(Path(data_info["dataset"]).resolve())
    data_info["source"] = data_info["dataset"]
    system_cls = SISAModel if model_args.method == "sisa" else S3TModel
    system = system_cls.train(config, model, tokenizer, private, eval_dataset=test, base_model_name=name,
                              base_metrics=base_metrics, data_info=data_info, public_ids=list(public["id"]))
    if system is not None:
        report = json.loads((system.system_dir / "report.json").read_text())
        print(json.dumps({"system_dir": str(system.system_dir), "method": system.method,
                          "world_size": state.num_processes, "metrics": report["metrics"],
                          "train_s": report.get("timings", {}).get("train_s")}))
    return 0


def _system_and_options(args):
    from ..s3t import S3TModel

    recipe = _read_yaml(args.config)
    for key, value in (recipe.get(args.subcommand) or {}).items():
        if getattr(args, key, None) in (None, False):
            setattr(args, key, value)
    system_dir = args.system_dir or recipe.get("output_dir")
    if not system_dir:
        raise ValueError("give --system_dir (or --config with output_dir)")
    return S3TModel.from_pretrained(system_dir)


def _ids(args, system) -> list[str]:
    from ..data import read_id_file

    if getattr(args, "ids", None):
        return list(args.ids)
    if getattr(args, "ids_file", None):
        return read_id_file(args.ids_file)
    if getattr(args, "deleted", False):
        return sorted(system.ledger.deleted())
    if getattr(args, "random", None):
        import numpy as np

        deleted = system.ledger.deleted()
        pool = [i for i in system.assignment.ids if i not in deleted]
        rng = np.random.default_rng(args.seed)
        return sorted(rng.choice(pool, size=min(args.random, len(pool)), replace=False).tolist())
    raise ValueError("no ids: give --ids, --ids_file" + (", or --deleted" if args.subcommand == "audit" else ", or --random N"))


def _emit(result: dict, output: str | None) -> None:
    if output:
        Path(output).write_text(json.dumps(result, indent=2, default=str))
    print(json.dumps(result, default=str))


def _delete(args) -> int:
    system = _system_and_options(args)
    system.attach_training_data(_private_loader(system))
    result = system.delete(_ids(args, system), request_id=args.request_id, retrain=not args.no_retrain).to_dict()
    if args.evaluate:
        _, _, test = load_splits(_data_args_of(system))
        result["evaluation"] = system.evaluate(test)
    _emit(result, args.output)
    return 0


def _audit(args) -> int:
    system = _system_and_options(args)
    report = system.audit(_ids(args, system))
    if args.output:
        Path(args.output).write_text(json.dumps(report, indent=2))
    shown = report if report["n_ids"] <= 20 else {k: v for k, v in report.items() if k != "ids"}
    print(json.dumps(shown))
    return 0 if report["all_clean"] or not report["n_deleted"] else 1


def _predict(args) -> int:
    system = _system_and_options(args)
    if args.text:
        out = system.predict(args.text)
        _emit({"predictions": out.predictions.tolist(), "logits": out.logits.tolist()}, args.output)
        return 0
    data_args = _data_args_of(system)
    if args.dataset:
        data_args = S3TDataArguments(dataset=args.dataset)
    public, private, test = load_splits(data_args)
    data = {"test": test, "train": private}.get(args.split)
    if data is None:
        raise ValueError("--split must be test or train (the private split)")
    if args.max_examples:
        data = data.select(range(min(args.max_examples, len(data))))
    out = system.predict(data)
    result = {"n": len(data), "served": system.served}
    if out.label_ids is not None:
        result["accuracy"] = float((out.predictions == out.label_ids).mean())
    if args.output:
        rows = [{"id": i, "prediction": int(p)} for i, p in zip(data["id"], out.predictions)]
        Path(args.output).write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    print(json.dumps(result))
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv or argv[0] in ("-h", "--help"):
        make_parser().print_help()
        return 0
    from ..data import ForgetRequestError
    from ..s3t import MissingTrainingDataError, ReadOnlySystemError

    try:
        import datasets
        import transformers

        datasets.disable_progress_bars()
        transformers.utils.logging.disable_progress_bar()
        if argv[0] == "train":
            return _train(argv[1:])
        args = make_parser().parse_args(argv)
        return {"delete": _delete, "audit": _audit, "predict": _predict}[args.subcommand](args)
    except (ForgetRequestError, ReadOnlySystemError, MissingTrainingDataError, FileNotFoundError, FileExistsError,
            ValueError) as err:
        print(f"hf-unlearn s3t {argv[0]}: {type(err).__name__}: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
