"""S3T deletion as a transaction: concurrent requests, kills at every kind of write, foreign
ledgers, a read-only audit.

One tiny system (2 shards x 2 slices x 2 orders, a 2-layer BERT of hidden size 32) is trained once
through ``hf-unlearn s3t train`` and copied per test. Requests run in forked processes (one torch
import for the module) calling the CLI entry point, so they are truly concurrent processes; one
kill also runs as a real ``python -m hf_unlearn.cli`` subprocess.
"""

import hashlib
import json
import multiprocessing
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("HF_HOME", tempfile.mkdtemp(prefix="hf_home_s3t_"))

import pytest  # noqa: E402
import torch  # noqa: E402

pytest.importorskip("datasets").disable_progress_bars()

from hf_unlearn.artifacts import KILL_ENV, folder_lock  # noqa: E402
from hf_unlearn.artifacts import writing as artifacts_writing  # noqa: E402
from hf_unlearn.commands import s3t as cmd  # noqa: E402
from hf_unlearn.s3t import (  # noqa: E402
    Assignment,
    ForeignLedgerError,
    S3TModel,
    SystemState,
    audit_folder,
    check_consistent,
    plan_deletion,
    reconcile,
)
from hf_unlearn.s3t.checkpoints import CHECKPOINT_DIR  # noqa: E402
from hf_unlearn.s3t.consistency import checkpoint_files, served_file  # noqa: E402
from hf_unlearn.s3t.deletion import apply_retrain, next_generation, pending_jobs  # noqa: E402
from hf_unlearn.s3t.ledger import LEDGER_FILE, Ledger  # noqa: E402
from hf_unlearn.s3t.persistence import CONFIG_FILE, SERVED_FILE, read_system_config  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
TRAIN = [
    "--dataset_name", "synthetic", "--max_train_samples", "64", "--max_test_samples", "8",
    "--synthetic_canaries", "0", "--n_public", "0", "--model_name_or_path", "tiny-bert",
    "--tiny_hidden_size", "32", "--tiny_intermediate_size", "64", "--tiny_vocab_size", "200",
    "--tiny_num_layers", "2", "--max_length", "24", "--num_shards", "2", "--num_slices", "2",
    "--budget", "2", "--num_train_epochs", "1", "--quiet",
]  # fmt: skip
FORK = multiprocessing.get_context("fork")


@pytest.fixture(scope="module")
def one_thread():
    """One intra-op thread in this process and its forks: bit-identical retrains, fork-safe OpenMP."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def pristine(one_thread, tmp_path_factory):
    root = tmp_path_factory.mktemp("txn") / "system"
    assert cmd.main(["train", *TRAIN, "--output_dir", str(root)]) == 0
    return root


def copy_of(pristine, dest: Path) -> Path:
    shutil.copytree(pristine, dest)
    return dest


def tree(root: Path) -> dict[str, str]:
    return {
        p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def ids_at(system_dir: Path, shard: int, slice_: int) -> list[str]:
    a = Assignment.load(system_dir)
    return [i for i in a.ids if a.locate(i) == (shard, slice_)]


def _child(argv: list[str], env: dict) -> None:
    os.environ.update(env)
    artifacts_writing._crash_points[0] = 0
    try:
        code = cmd.main(argv)
    except BaseException:  # a bug: report it through the exit code
        import traceback

        traceback.print_exc()
        code = 99
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def run_forked(requests: list[tuple[list[str], dict]], timeout: float = 600) -> list[int]:
    """Start one forked process per (argv, env) at once; their exit codes (-9: SIGKILL)."""
    procs = [FORK.Process(target=_child, args=(argv, env)) for argv, env in requests]
    try:
        for p in procs:
            p.start()
        for p in procs:
            p.join(timeout)
        return [p.exitcode for p in procs]
    finally:
        for p in procs:
            if p.is_alive():
                p.kill()
            p.join()


def replay(system_dir: Path, requests: list[dict]) -> tuple[SystemState, dict]:
    """The state after applying ``requests`` in ledger order, each retrained before the next
    (the pure planning functions, no training), and the deleted ids with their request seq."""
    config_fields, info = read_system_config(system_dir)
    config = cmd._config_class(info["method"]).from_dict(config_fields)
    assignment = Assignment.load(system_dir)
    orders = [[tuple(o) for o in shard] for shard in info["orders"]]
    state = SystemState.initial(config.num_shards, config.budget, config.num_slices)
    deleted: dict[str, int] = {}
    for r in requests:
        plan = plan_deletion(state, assignment, orders, r["ids"], set(deleted), config, r["request_id"])
        assert r["affected"] == plan.affected and r["n_new"] == len(plan.new_ids), r["request_id"]
        deleted.update({i: r["seq"] for i in plan.new_ids})
        state = plan.new_state
        jobs = pending_jobs(state, config.num_slices, config.on_cut)
        state = apply_retrain(state, jobs, lambda j, s=state: next_generation(s, j), config.num_slices)
    return state, deleted


def ledger_view(system_dir: Path) -> tuple[list[dict], SystemState, dict]:
    ledger = Ledger(system_dir / LEDGER_FILE, readonly=True)
    try:
        return ledger.requests(), ledger.read_state(), ledger.deleted()
    finally:
        ledger.close()


def assert_in_step(system_dir: Path, state: SystemState) -> None:
    """Public files show ``state``: active_prefixes.json, and exactly its active checkpoints on disk."""
    assert json.loads((system_dir / SERVED_FILE).read_text()) == served_file(state, len(state.status))
    assert checkpoint_files(system_dir) == {k.relpath for k in state.active_keys()}
    assert check_consistent(system_dir) == []


def test_concurrent_deletes_are_serialised_and_none_lost(pristine, tmp_path):
    system_dir = copy_of(pristine, tmp_path / "sys")
    pool = Assignment.load(system_dir).ids
    rng = random.Random(12)
    sent = []
    for rnd in range(10):
        batch = []
        for i in range(rng.randint(2, 4)):
            ids = rng.sample(pool, rng.randint(1, 2))
            rid = f"round{rnd}-req{i}"
            sent.append((rid, sorted(ids)))
            batch.append((["delete", "--system_dir", str(system_dir), "--ids", *ids, "--request_id", rid], {}))
        assert run_forked(batch) == [0] * len(batch), f"round {rnd}"
    requests, state, deleted = ledger_view(system_dir)
    assert sorted((r["request_id"], r["ids"]) for r in requests) == sorted(sent)  # none lost
    assert all(r["status"] == "done" for r in requests)
    expected_state, expected_deleted = replay(system_dir, requests)
    assert state == expected_state and deleted == expected_deleted
    assert max(g for shard in state.generations for order in shard for g in order) >= 1  # retrains ran too
    assert_in_step(system_dir, state)
    report = json.loads((system_dir / "report.json").read_text())
    assert report["forget"]["count"] == len(deleted)
    audit = audit_folder(system_dir, deleted=True)
    assert audit["all_clean"] and audit["consistent"] and audit["n_ids"] == len(deleted)
