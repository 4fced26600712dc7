"""Train a classifier with ``UnlearnableTrainer`` into a run folder (the engine of ``hf-unlearn train``).

Before any work, ``--output_dir`` must be empty, or the command's own interrupted run with
``--resume_from_checkpoint latest`` (same arguments), or ``--overwrite`` is needed
(``run_folder.plan_train_folder``). The run folder receives the model + tokenizer, ``unlearning_log/`` and the run file
(``hf_unlearn_run.json``: the data and model arguments, the final metrics and the fingerprints of
the train and test splits, which ``unlearn`` and ``evaluate`` check before they use the data).
Each phase (loading, training, evaluation, saving) prints one timed line (``console.phase``);
training shows one bar labelled "training" instead of the Trainer's per-step log lines.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses

from .. import console
from ..artifacts import LOCK_FILE, REQUEST_LEDGER_FILE, folder_lock
from ..data import exclude_train_ids, fingerprint_dataset
from ..requests import Exclusion, RequestLedger, read_exclusion, write_carried_ledger
from ..training import UnlearnableTrainingArguments
from .config import TINY_NUM_LAYERS_DEFAULT, DataArguments, ModelArguments, write_run_file
from .run_folder import (
    clear_folder,
    folder_state,
    plan_train_folder,
    run_request,
    write_run_manifest,
    write_run_request,
)
from .validation import check_folder_ledger, check_lora_modules, check_training_inputs


def train(data_args: DataArguments, model_args: ModelArguments, args: UnlearnableTrainingArguments) -> dict:
    """Fine-tune, evaluate on the test split, save; returns the evaluation metrics."""
    from ..models import tokenize_dataset
    from ..training import UnlearnableTrainer
    from ..training.progress import label_progress

    console.ensure_configured()
    if model_args.tiny_num_layers is None:
        model_args = dataclasses.replace(model_args, tiny_num_layers=TINY_NUM_LAYERS_DEFAULT["train"])
    with contextlib.ExitStack() as held:  # a ledgered --output_dir stays locked until its new ledger is in place
        exclusion = plan_exclusion(data_args, args, held)  # ledgers read, uncovered requests refused: no write
        request = run_request(data_args, model_args, args, exclusion)
        plan = plan_output_dir(request, args)  # refuses before any work
        with console.phase("loading the data and the model") as step:
            data, dropped = exclude_train_ids(data_args.load(), exclusion.ids)  # before the tokenizer sees it
            model, tokenizer = model_args.load(data["train"]["text"], data_args.max_length, args.seed)
            model_args = with_attention(model_args, model)
            model, lora = with_lora(model, model_args, args.seed)  # a target that is not in the model: refused here
            check_training_inputs(data, model, tokenizer, data_args, model_args, args)  # before any write
            tokenized = tokenize_dataset(data, tokenizer, data_args.max_length)
            step.summary = f"{len(data['train'])} training and {len(data['test'])} test examples"
            step.summary += f" ({dropped} forgotten ones excluded)" if exclusion.ledgers else ""
            step.summary += f", {data_args.canaries} canaries planted" if data_args.canaries else ""
        excluded = {"excluded_ledgers": exclusion.record(dropped)} if exclusion.ledgers else {}
        ledger_meta = {"train_fingerprint": fingerprint_dataset(data["train"])}
        resume = prepare_output_dir(plan, request, args, exclusion, ledger_meta)  # the first write
    trainer = UnlearnableTrainer(
        model=model,
        args=args,
        train_dataset=tokenized["train"],
        eval_dataset=tokenized["test"],
        processing_class=tokenizer,
        compute_metrics=accuracy,
        log_meta=excluded,
    )
    label_progress(trainer, "training")
    with console.phase("training") as step:
        out = trainer.train(resume_from_checkpoint=resume)
        step.summary = f"{out.global_step} steps, training loss {out.training_loss:.4f}"
    with console.phase("evaluating on the test split") as step:
        metrics = trainer.evaluate()
        if "eval_accuracy" in metrics:
            step.summary = f"accuracy {100 * metrics['eval_accuracy']:.1f} %"
    with console.phase(f"saving the run to {args.output_dir}"):
        save_trained(trainer, args, lora)
        if args.should_save:
            tokenizer.save_pretrained(args.output_dir)
            # train: what the trainer trained on (--exclude_ids_files may have dropped more rows)
            fingerprints = {
                "train": fingerprint_dataset(trainer.train_dataset),
                "test": fingerprint_dataset(data["test"]),
            }
            extra = {"metrics": metrics, "fingerprints": fingerprints, **excluded, **canary_record(data_args)}
            write_run_file(args.output_dir, data_args, model_args, extra)
            write_run_manifest(args.output_dir)  # last: a run folder with a manifest is complete
    return metrics


def canary_record(data_args: DataArguments) -> dict:
    """The run file's ``canaries`` entry (private): the recipe, the count and the planted ids; {} without."""
    recipe = data_args.canary_recipe()
    return {"canaries": recipe.record()} if recipe else {}


def plan_exclusion(data_args, args, held: contextlib.ExitStack) -> Exclusion:
    """Before any write: the ledgers ``--exclude_ledger`` names, read read-only, and the refusal to train
    into a folder whose own ledger names an id they do not exclude (``validation.check_folder_ledger``).
    A folder with a ledger is locked (``held``) first: no request lands in it until its new ledger,
    which carries its requests over, is in place."""
    if args.should_save and RequestLedger.exists_in(args.output_dir):
        held.enter_context(folder_lock(args.output_dir, timeout=0))
    exclusion = read_exclusion(getattr(data_args, "exclude_ledger", None))
    check_folder_ledger(args.output_dir, exclusion)
    return exclusion


def with_attention(model_args: ModelArguments, model) -> ModelArguments:
    """``model_args`` naming the attention kernel the model trains with (the run file records it, so
    ``unlearn``, the twin and ``evaluate`` load the model with it: tiny-bert trains with ``eager``,
    while a plain load would pick ``sdpa`` and a replay would differ in the last bits)."""
    from ..training._compat import attn_implementation_of

    if model_args.attn_implementation is not None:
        return model_args
    return dataclasses.replace(model_args, attn_implementation=attn_implementation_of(model))


def with_lora(model, model_args: ModelArguments, seed: int):
    """(the model to train, the LoRA state or None): with ``--use_peft``, the plain ``model`` recorded
    (``base_model.json``: name, Hub id, fingerprint; tiny-bert, which no name loads again, keeps a plain
    copy to save in ``base_model/``) and wrapped with adapters drawn from ``seed``."""
    if not model_args.use_peft:
        return model, None
    from ..models import TINY_BERT, apply_lora, base_record, resolve_model_name

    name = model_args.model_name_or_path
    tiny = name == TINY_BERT
    if tiny:
        console.warn(
            "--use_peft on tiny-bert: LoRA on a randomly initialised base barely learns; "
            "use a pretrained base (minilm, distilbert-base-uncased) for real runs"
        )
        source, hub_id = name, None
    else:
        source, hub_id = resolve_model_name(name)
    check_lora_modules(model, model_args)  # a name that is not in the model: one line, nothing written
    settings = model_args.lora_settings()
    # a Hub name or packaged alias is kept as given (loaded again by name); a local folder by its absolute path
    record = base_record(name if hub_id else source, model, settings, hub_id=hub_id, seed=seed, save_base=tiny)
    plain = copy.deepcopy(model) if tiny else None
    return apply_lora(model, settings, seed=seed), {"record": record, "base": plain}


def save_trained(trainer, args, lora) -> None:
    """The trained model into ``args.output_dir``: the full model, or (LoRA) the adapter, ``base_model.json``
    and ``base_model/`` (no PEFT boilerplate card)."""
    if lora is None:
        trainer.save_model(args.output_dir)
    elif args.should_save:
        from ..models import save_adapter

        save_adapter(trainer.model, args.output_dir, lora["record"], base=lora["base"])


def plan_output_dir(request: dict, args) -> str:
    """Decide what ``train`` does with ``args.output_dir`` (``run_folder.plan_train_folder``), before
    any work and without writing: ``"fresh"``, ``"resume"``, or a one-line refusal."""
    asked = args.resume_from_checkpoint not in (None, "", False, "false", "False")
    return plan_train_folder(args.output_dir, request, overwrite=args.overwrite, resume=asked)


def prepare_output_dir(
    plan: str, request: dict, args, exclusion: Exclusion | None = None, ledger_meta: dict | None = None
) -> str | None:
    """Carry out ``plan`` once the inputs are checked; returns what to pass to
    ``trainer.train(resume_from_checkpoint=...)``.

    Fresh: the old contents go (only with ``--overwrite``, said in one line) but an old request ledger,
    which stays until the new run's ledger (``exclusion``'s requests carried over) is renamed over it;
    then the run's request file. Resume: the folder's own interrupted run with the same arguments
    (its ledger written again: the same requests). At every instant the folder holds the old ledger
    or the new one. Under several processes the main one clears and writes; the others wait for it.
    """
    from ..training._compat import wait_for_every_rank

    exclusion = exclusion or Exclusion()
    carries = bool(exclusion.ledgers or exclusion.kept)
    if plan == "fresh" and args.should_save and folder_state(args.output_dir) != "empty":
        # the ledger and the lock this process holds on it (an unlinked lock file would lock nothing) stay
        removed = clear_folder(args.output_dir, keep=(REQUEST_LEDGER_FILE, LOCK_FILE) if carries else ())
        console.say(f"--overwrite: removed the old contents of {args.output_dir} ({removed} entries)")
    if args.should_save and carries:
        write_carried_ledger(args.output_dir, exclusion, meta=ledger_meta)
    if plan == "fresh" and args.should_save:
        write_run_request(args.output_dir, request)
    wait_for_every_rank()  # every process starts once the folder is ready
    return args.resume_from_checkpoint if plan == "resume" else None


def accuracy(pred) -> dict:
    import numpy as np

    return {"accuracy": float((np.argmax(pred.predictions, axis=-1) == pred.label_ids).mean())}
