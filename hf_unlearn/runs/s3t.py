"""S3T (or SISA) systems over a system folder: the engine behind ``hf-unlearn s3t``.

``train_system`` builds the base (a Hub model, or tiny-bert fully fine-tuned on a disjoint public
split first: S3T presumes a pretrained base), then trains the system on the private rest. The
data arguments are recorded in the system, so ``delete`` (retraining) and ``predict`` reload the
same private split, checked against its fingerprint.
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

from .. import console
from ..data import fingerprint_dataset, load_sentiment_dataset
from ..models import TINY_BERT, build_tiny_bert, load_model_and_tokenizer
from ..s3t import S3TModel, SISAModel, finetune_base, split_public_private
from .config import DataArguments, ModelArguments, S3TArguments, from_record


def load_splits(data_args: DataArguments, n_public: int = 0):
    """(public, private, test); deterministic, so retrains can reload it.

    With synthetic data, ``max_*_samples`` (or ``synthetic_*``) is the number of reviews generated.
    """
    if data_args.dataset_name == "synthetic":
        n_train = data_args.synthetic_train or data_args.max_train_samples or 400
        n_test = data_args.synthetic_test or data_args.max_test_samples or 200
        dd = load_sentiment_dataset(
            "synthetic",
            n_train=n_train,
            n_test=n_test,
            n_canaries=data_args.synthetic_canaries,
            seed=data_args.dataset_seed,
        )
    else:
        dd = data_args.load()
    public, private = split_public_private(dd["train"], n_public, data_args.dataset_seed)
    return public, private, dd["test"]


def data_args_of(system) -> tuple[DataArguments, int]:
    """(the data arguments recorded in ``system``, its public split size); old key names are mapped."""
    recorded = dict(system.info.get("data") or {})
    return from_record(DataArguments, recorded), int(recorded.get("n_public") or 0)


def private_loader(system):
    """A loader of the system's private split (for retraining), refusing data that changed."""

    def load():
        data_args, n_public = data_args_of(system)
        _, private, _ = load_splits(data_args, n_public)
        if fingerprint_dataset(private) != system.info["fingerprints"]["private_train"]:
            raise RuntimeError("the reloaded private split differs from the one the system was trained on")
        return private

    return load


def base_model(model_args: ModelArguments, s3t_args: S3TArguments, config, public, private, test):
    """(model, tokenizer, base metrics): the base the system is trained on, fine-tuned on ``public`` first."""
    from ..s3t.pretrain import model_accuracy

    with console.phase(f"preparing the base model {model_args.model_name_or_path}"):
        model, tokenizer = _load_base(model_args, config, public, private)
    if len(public):
        with console.phase(f"fine-tuning the base on {len(public)} public examples") as step:
            stats = finetune_base(
                model,
                tokenizer,
                public,
                epochs=s3t_args.pretrain_epochs,
                learning_rate=s3t_args.pretrain_learning_rate,
                batch_size=s3t_args.pretrain_batch_size,
                max_length=config.max_length,
                seed=config.seed,
            )
            step.summary = f"{stats['steps']} steps" + (
                f", loss {stats['loss']:.4f}" if stats["loss"] is not None else ""
            )
    with console.phase("evaluating the base on the test split") as step:
        base_metrics = {
            "test_acc": round(100 * model_accuracy(model, tokenizer, test, max_length=config.max_length), 4)
        }
        step.summary = f"accuracy {base_metrics['test_acc']:.1f} %"
    return model, tokenizer, base_metrics


def _load_base(model_args: ModelArguments, config, public, private):
    name = model_args.model_name_or_path
    if name == TINY_BERT:
        texts = public["text"] if len(public) else private["text"]  # public only, when there is one
        model, tokenizer = build_tiny_bert(
            texts, spec=model_args.tiny_spec(config.max_length, "s3t"), seed=config.seed
        )
    else:
        model, tokenizer = load_model_and_tokenizer(
            name,
            num_labels=model_args.num_labels,
            seed=config.seed,
            attn_implementation=model_args.attn_implementation,
        )
    return model, tokenizer


def train_system(data_args: DataArguments, model_args: ModelArguments, s3t_args: S3TArguments, config):
    """Train an S3T / SISA system in ``config.output_dir`` (every rank under ``accelerate launch``);
    returns ``(system, world_size)``, the system being None on ranks other than 0."""
    from ..s3t.training import distributed_state

    console.ensure_configured()
    state = distributed_state()
    with console.phase("loading the data") as step:
        public, private, test = load_splits(data_args, s3t_args.n_public)
        step.summary = f"{len(public)} public, {len(private)} private and {len(test)} test examples"
    model = tokenizer = base_metrics = None
    if state.is_main_process:
        model, tokenizer, base_metrics = base_model(model_args, s3t_args, config, public, private, test)
    data_info = {**dataclasses.asdict(data_args), "n_public": s3t_args.n_public}
    if os.path.exists(data_info["dataset_name"]):
        data_info["dataset_name"] = str(Path(data_info["dataset_name"]).resolve())
    data_info["source"] = data_info["dataset_name"]
    system_cls = SISAModel if s3t_args.method == "sisa" else S3TModel
    units = f"{config.num_shards} shards x {getattr(config, 'budget', 1)} orders x {config.num_slices} slices"
    with console.phase(f"training the {system_cls.method} system ({units})"):
        system = system_cls.train(
            config,
            model,
            tokenizer,
            private,
            eval_dataset=test,
            base_model_name=model_args.model_name_or_path,
            base_metrics=base_metrics,
            data_info=data_info,
            public_ids=list(public["id"]),
        )
    return system, state.num_processes


def training_summary(system, world_size: int) -> dict:
    report = json.loads((system.system_dir / "report.json").read_text())
    return {
        "system_dir": str(system.system_dir),
        "method": system.method,
        "world_size": world_size,
        "metrics": report["metrics"],
        "train_s": report.get("timings", {}).get("train_s"),
    }


def delete(
    system, ids: list[str], *, request_id: str | None = None, retrain: bool = True, evaluate: bool = False
) -> dict:
    """Serve a deletion request exactly; with ``evaluate``, re-evaluate on the recorded test split."""
    console.ensure_configured()
    system.attach_training_data(private_loader(system))
    with console.phase(f"deleting {len(set(ids))} examples" + (" and retraining what saw them" if retrain else "")):
        result = system.delete(ids, request_id=request_id, retrain=retrain).to_dict()
    if evaluate:
        with console.phase("evaluating the system on the test split") as step:
            data_args, n_public = data_args_of(system)
            _, _, test = load_splits(data_args, n_public)
            result["evaluation"] = system.evaluate(test)
            step.summary = f"accuracy {100 * result['evaluation']['accuracy']:.1f} %"
    return result


def prediction_data(system, split: str = "test", dataset_name: str | None = None, max_examples: int | None = None):
    """The recorded test split or private training split of ``system`` (or of another ``dataset_name``)."""
    data_args, n_public = data_args_of(system)
    if dataset_name:
        data_args, n_public = DataArguments(dataset_name=dataset_name), 0
    _, private, test = load_splits(data_args, n_public)
    data = {"test": test, "train": private}.get(split)
    if data is None:
        raise ValueError("--split must be test or train (the private split)")
    if max_examples:
        data = data.select(range(min(max_examples, len(data))))
    return data


def resume(system) -> dict:
    """Finish what a killed request left on ``system``: public files repaired (on open and here) and
    every pending retrain run (reloading the recorded private split)."""
    console.ensure_configured()
    system.attach_training_data(private_loader(system))
    with console.phase("finishing the pending retrains"):
        retrained = system.retrain_pending()
    return {"retrained": retrained, "served": system.served_records(), "pending_shards": system.pending_shards()}


def audit(system_dir, ids=None, *, deleted: bool = False) -> dict:
    """The read-only audit of a system folder (``hf_unlearn.s3t.audit_folder``)."""
    from ..s3t import audit_folder

    return audit_folder(system_dir, ids, deleted=deleted)


ID_FIELDS = ("ids", "new_ids", "already_deleted")


def hide_ids(result: dict) -> dict:
    """``result`` without example ids: id lists become counts (``n_<name>``), audit entries lose ``id``."""
    out = dict(result)
    for name in ID_FIELDS:
        value = out.get(name)
        if isinstance(value, list) and all(isinstance(v, str) for v in value):
            out.pop(name)
            out.setdefault(f"n_{name}", len(value))
    if isinstance(out.get("ids"), list):  # audit entries: keep the evidence, drop the id
        out["ids"] = [{k: v for k, v in e.items() if k != "id"} for e in out["ids"]]
    return out
