"""Training a whole system, in one process or across the ranks of ``accelerate launch``.

The (shard, order) units are independent, so ranks split them round-robin and each trains its
units in a single process (no DDP). Rank 0 writes the base model, the assignment and the
structure first; every rank then loads the base from disk (identical bits everywhere); after a
barrier rank 0 creates the ledger and assembles the system. Because every stage is seeded from
(seed, shard, order, stage) alone, the checkpoints equal a single-process run's bit for bit
(given the same intra-op thread count: set ``OMP_NUM_THREADS`` alike).

CPU launch with 2 processes (gloo)::

    OMP_NUM_THREADS=1 accelerate launch --multi_gpu --num_processes 2 --num_machines 1 \\
        --mixed_precision no --dynamo_backend no -m hf_unlearn.cli s3t train ...
"""

from __future__ import annotations

import contextlib
import secrets
import shutil
import time
from datetime import datetime, timezone
from pathlib import Path

import torch
from accelerate import PartialState

from .. import console
from ..artifacts import COMMITMENT_SALT_FILE, forget_set_commitment, is_temporary, load_or_create_salt
from ..data import fingerprint_dataset
from .assignment import ASSIGNMENT_FILE, Assignment, make_assignment
from .checkpoints import CHECKPOINT_DIR, list_checkpoint_files, read_checkpoint_meta
from .consistency import FINGERPRINT_KEY, system_fingerprint
from .deletion import SystemState
from .encoding import EncodedData
from .ledger import LEDGER_FILE, Ledger
from .locking import system_lock
from .orders import check_orders, select_orders
from .persistence import (
    BASE_DIR,
    CONFIG_FILE,
    PRIVATE_FILES,
    REPORT_FILE,
    SERVED_FILE,
    load_base,
    read_system_config,
    save_base,
    write_system_config,
)
from .prefix_scheme import scheme_for
from .report import initial_report, save_report
from .staged import Layout, UnitJob, train_unit

# A stale rollback journal must go with its ledger, or SQLite would replay it into the new one.
MANAGED = (
    BASE_DIR,
    CHECKPOINT_DIR,
    CONFIG_FILE,
    SERVED_FILE,
    REPORT_FILE,
    *PRIVATE_FILES,
    LEDGER_FILE + "-journal",
    COMMITMENT_SALT_FILE,
)


def distributed_state() -> PartialState:
    """The accelerate state; on CPU ``cpu=True`` makes ``--multi_gpu`` launches use gloo."""
    return PartialState(cpu=not torch.cuda.is_available())


def _prepare_output_dir(root: Path, overwrite: bool) -> None:
    existing = [name for name in MANAGED if (root / name).exists()]
    if existing and not overwrite:
        raise FileExistsError(
            f"{root} already holds a system ({', '.join(existing[:4])}): choose another output_dir "
            "or set overwrite_output_dir=True"
        )
    if root.is_dir():  # temporary files a killed writer left behind
        existing += [p.name for p in root.iterdir() if is_temporary(p)]
    for name in existing:
        path = root / name
        shutil.rmtree(path) if path.is_dir() else path.unlink()
    root.mkdir(parents=True, exist_ok=True)


def initial_jobs(assignment: Assignment, orders) -> list[UnitJob]:
    jobs = []
    for j, shard_orders in enumerate(orders):
        for b, order in enumerate(shard_orders):
            stage_ids = [assignment.members(j, order[: k + 1]) for k in range(len(order))]
            jobs.append(UnitJob(j, b, tuple(order), 0, stage_ids))
    return jobs


def train_system(
    system_cls,
    config,
    model,
    tokenizer,
    train_dataset,
    *,
    eval_dataset=None,
    base_model_name: str | None = None,
    base_metrics: dict | None = None,
    data_info: dict | None = None,
    public_ids=(),
    on_stage=None,
):
    """Train ``system_cls`` (S3TModel / SISAModel) on ``train_dataset`` (columns id, text, label).

    ``model``/``tokenizer`` are only read on rank 0 (pass None elsewhere). ``base_metrics`` (e.g.
    the base model's own test accuracy) and ``data_info`` (how to reload the private split, used by
    the CLI's retrains) go into the report and ``s3t_config.json``. ``public_ids`` are the examples that
    pretrained the base: recorded so that a deletion request for them gets a precise error.
    Rank 0 holds the folder's system lock throughout (a folder in use fails at once: busy, retry).
    """
    state = distributed_state()
    root = Path(config.output_dir)
    with contextlib.ExitStack() as stack:
        if state.is_main_process:
            root.mkdir(parents=True, exist_ok=True)
            stack.enter_context(system_lock(root, timeout=0))
        return _train_system_locked(
            system_cls,
            config,
            model,
            tokenizer,
            train_dataset,
            state=state,
            eval_dataset=eval_dataset,
            base_model_name=base_model_name,
            base_metrics=base_metrics,
            data_info=data_info,
            public_ids=public_ids,
            on_stage=on_stage,
        )


def _train_system_locked(
    system_cls, config, model, tokenizer, train_dataset, *, state, eval_dataset, on_stage, **info_kwargs
):
    rank, world = state.process_index, state.num_processes
    root = Path(config.output_dir)
    start = time.perf_counter()
    if rank == 0:
        _prepare_output_dir(root, config.overwrite_output_dir)
        salt = load_or_create_salt(root)
        save_base(model, tokenizer, root / BASE_DIR)
        make_assignment(
            list(train_dataset["id"]),
            list(train_dataset["label"]),
            config.num_shards,
            config.num_slices,
            config.seed,
            info_kwargs["public_ids"],
        ).save(root)
        info = _system_info(system_cls, config, model, train_dataset, eval_dataset, world=world, **info_kwargs)
        info["public"] = _public_block(info_kwargs["public_ids"], salt)
        write_system_config(root, config, info)
    state.wait_for_everyone()

    _, info = read_system_config(root)
    _train_units(system_cls, config, root, info, train_dataset, rank, world, on_stage)
    state.wait_for_everyone()

    system = None
    if rank == 0:
        system = _assemble(system_cls, config, root, info, train_dataset, eval_dataset, start)
    state.wait_for_everyone()
    return system


def _system_info(
    system_cls,
    config,
    model,
    train_dataset,
    eval_dataset,
    *,
    base_model_name,
    base_metrics,
    data_info,
    public_ids,
    world,
) -> dict:
    """The structure recorded in ``s3t_config.json``: layout, slice orders, data source, fingerprints."""
    orders = select_orders(config)
    check_orders(orders, config.num_slices)
    return {
        "format": 1,
        "method": system_cls.method,
        "base_model": base_model_name or getattr(model.config, "_name_or_path", None) or "unknown",
        "num_labels": int(model.config.num_labels),
        "layout": scheme_for(system_cls, config).layout(model, config).to_dict(),
        "orders": [[list(o) for o in shard] for shard in orders],
        "data": data_info or {},
        "fingerprints": {
            "private_train": fingerprint_dataset(train_dataset),
            **({"eval": fingerprint_dataset(eval_dataset)} if eval_dataset is not None else {}),
        },
        "n_private": len(train_dataset),
        "public": None,  # the salted commitment of public_ids (_public_block)
        "base_metrics": base_metrics,
        "world_size": world,
        "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "creation_nonce": secrets.token_hex(16),  # makes the fingerprint of every trained system unique
    }


def _public_block(public_ids, salt: bytes) -> dict | None:
    """The public split in ``s3t_config.json`` (published): its count and salted commitment."""
    public_ids = list(public_ids)
    return {"count": len(public_ids), "commitment": forget_set_commitment(public_ids, salt)} if public_ids else None


def _train_units(system_cls, config, root: Path, info: dict, train_dataset, rank: int, world: int, on_stage) -> None:
    """This rank's share of the (shard, order) units, each trained from the base saved on disk."""
    assignment = Assignment.load(root)
    base, tok = load_base(root / BASE_DIR)
    layout = Layout(**info["layout"])
    data = EncodedData.from_dataset(train_dataset, tok, config.max_length)
    orders = [[tuple(o) for o in shard] for shard in info["orders"]]
    scheme = scheme_for(system_cls, config)
    for job in initial_jobs(assignment, orders)[rank::world]:
        train_unit(base, data, job, layout, config, scheme, root, on_stage=on_stage)


def _assemble(system_cls, config, root: Path, info: dict, train_dataset, eval_dataset, start: float):
    """Rank 0, after every unit: the ledger over all stage checkpoints, the report, the loaded system."""
    rows = [read_checkpoint_meta(p) for p in list_checkpoint_files(root)]
    expected = config.num_shards * config.budget * config.num_slices
    if len(rows) != expected:
        raise RuntimeError(f"expected {expected} stage checkpoints after training, found {len(rows)}")
    Ledger.create(
        root / LEDGER_FILE,
        SystemState.initial(config.num_shards, config.budget, config.num_slices),
        rows,
        meta={
            "method": system_cls.method,
            "created_at": info["created_at"],
            FINGERPRINT_KEY: system_fingerprint(root),
        },
    ).close()
    report = initial_report(info, config)
    report["timings"]["train_s"] = round(time.perf_counter() - start, 3)
    save_report(root, report)
    system = system_cls.from_pretrained(root, train_dataset=train_dataset)
    if eval_dataset is not None:
        with console.phase("evaluating the system on the test split") as step:
            metrics = system.evaluate(eval_dataset)
            if isinstance(metrics, dict) and isinstance(metrics.get("accuracy"), float):
                step.summary = f"accuracy {100 * metrics['accuracy']:.1f} %"
    assert (root / ASSIGNMENT_FILE).is_file()
    return system
