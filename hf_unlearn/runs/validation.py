"""Checks of a training configuration against its data and model, after loading and before training.

``train`` calls :func:`check_training_inputs` once the data, model and tokenizer are loaded and
before the trainer is built: nothing has been trained or written yet. Each failure is one user
error that names the file, column, flag or value and says what to do (the commands report it as
one line, exit status 2). The checks made while parsing and loading (flags, encodings, columns,
ids, model folders) live with the arguments (``runs/config.py``, ``training/arguments.py``), the
loaders (``data/``) and ``models.py``.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

from ..artifacts import OutputFolderError
from ..data import DatasetFormatError, ForgetRequestError, check_ids_known, read_id_file
from ..models import ModelMismatchError, check_model_fits
from ..requests import uncovered_requests
from ..training.log_size import check_disk_for_run
from .run_folder import TrainFolderError


def check_training_inputs(data, model, tokenizer, data_args, model_args, args) -> None:
    """Labels in ``0..num_labels-1``, a model that fits its tokenizer and ``max_length``, known deletable
    ids, a writable output folder and the disk space the run's log needs; raises on the first problem."""
    for split in ("train", "test"):
        if split in data:
            check_labels(data[split]["label"], model_args.num_labels, data_args, split)
    check_model_fits(
        model,
        tokenizer,
        max_length=data_args.max_length,
        num_labels=model_args.num_labels,
        name=model_args.model_name_or_path,
    )
    for path in args.exclude_ids_files or ():
        try:
            read_id_file(path)
        except ForgetRequestError as exc:
            raise ForgetRequestError(f"--exclude_ids_files: {exc}") from None
    if args.deletable_ids_file:
        try:
            check_ids_known(read_id_file(args.deletable_ids_file), data["train"]["id"])
        except ForgetRequestError as exc:
            raise ForgetRequestError(f"--deletable_ids_file {args.deletable_ids_file}: {exc}") from None
    if args.should_save:
        check_writable(args.output_dir)
        check_disk_for_run(args, model, data["train"]["id"])


def check_folder_ledger(output_dir: str | os.PathLike, exclusion) -> None:
    """Training into a folder whose request ledger holds deletion requests (``--overwrite``, a resume)
    must exclude every id they name (``--exclude_ledger`` that folder, or ledgers covering it): else the
    new run would re-learn what was forgotten and drop the requests. One line, before any work."""
    uncovered = uncovered_requests(output_dir, exclusion)
    if uncovered:
        folder = Path(output_dir).expanduser().resolve()
        raise TrainFolderError(
            f"{folder} has {len(uncovered)} deletion request(s): retrain with --exclude_ledger {folder} "
            "(training without it would re-learn what they forgot)"
        )


def check_labels(labels, num_labels: int, data_args, split: str) -> None:
    """Every label must be a class id ``0 .. num_labels - 1`` (else training fails mid-way)."""
    bad = sorted({int(y) for y in labels if not 0 <= int(y) < num_labels})
    if bad:
        shown = ", ".join(map(str, bad[:10]))
        raise DatasetFormatError(
            f"the {split} split of {data_args.dataset_name} has label(s) {shown} in column "
            f"{data_args.label_column!r}, outside 0..{num_labels - 1} for --num_labels {num_labels}; "
            f"give --num_labels {max(bad) + 1} or map the labels to 0..{num_labels - 1}"
        )


def check_writable(folder: str | os.PathLike) -> None:
    """``folder`` (or, if it does not exist yet, its nearest existing parent) must be writable."""
    path = Path(folder).expanduser().resolve()
    existing = path
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise OutputFolderError(f"output folder {path}: {existing} is a file, not a folder")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise OutputFolderError(
            f"cannot write the output folder {path}: {existing} is not writable; "
            "choose another --output_dir or change its permissions"
        )


def check_lora_modules(model, model_args) -> None:
    """Every ``--lora_target_modules`` / ``--lora_modules_to_save`` name must name modules of the model
    (PEFT's rule: a module's full name, or its last dotted parts); before any adapter or file is made."""
    names = [n for n, _ in model.named_modules() if n]
    leaves = sorted({n.rsplit(".", 1)[-1] for n, m in model.named_modules() if n and isinstance(m, torch.nn.Linear)})
    for flag, wanted in (
        ("--lora_target_modules", model_args.lora_target_modules),
        ("--lora_modules_to_save", model_args.lora_modules_to_save),
    ):
        for key in wanted or ():
            if key == "all-linear" and flag == "--lora_target_modules":
                continue
            if not any(n == key or n.endswith(f".{key}") for n in names):
                raise ModelMismatchError(
                    f"{flag} {key}: {model_args.model_name_or_path} has no module named so; "
                    f"its linear layers are named {', '.join(leaves[:12])}"
                )
