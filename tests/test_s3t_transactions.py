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
from hf_unlearn.s3t.checkpoints import CHECKPOINT_DIR, read_checkpoint_meta  # noqa: E402
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
    for rel in checkpoint_files(system_dir):  # public metadata: salted, never a plain hash of ids
        meta = read_checkpoint_meta(system_dir / rel)
        assert meta["train_ids_commitment"].startswith("hmac-sha256:") and "train_ids_sha256" not in meta


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


def checkpoint_tensors(system_dir: Path) -> dict:
    from safetensors.torch import load_file

    return {rel: load_file(system_dir / rel) for rel in sorted(checkpoint_files(system_dir))}


def assert_same_system(got: Path, want: Path) -> None:
    """Same ledger (requests, state, deleted ids), same public files, same checkpoint tensors."""
    (r1, s1, d1), (r2, s2, d2) = ledger_view(got), ledger_view(want)
    strip = ("created_at", "completed_at")
    assert [{k: v for k, v in r.items() if k not in strip} for r in r1] == [
        {k: v for k, v in r.items() if k not in strip} for r in r2
    ]
    assert s1 == s2 and d1 == d2
    assert (got / SERVED_FILE).read_bytes() == (want / SERVED_FILE).read_bytes()
    rep1, rep2 = (json.loads((p / "report.json").read_text()) for p in (got, want))
    assert rep1["forget"]["count"] == rep2["forget"]["count"] and rep1["system"] == rep2["system"]
    t1, t2 = checkpoint_tensors(got), checkpoint_tensors(want)
    assert t1.keys() == t2.keys()
    assert all(torch.equal(t1[f][n], t2[f][n]) for f in t1 for n in t1[f])  # bit-identical
    assert_in_step(got, s1)


def test_killed_delete_recovers_to_the_uninterrupted_result(pristine, tmp_path):
    """SIGKILL at seeded crash points of an emptying deletion (ledger commit, cut, public files, the
    retrain's checkpoints and commit); the read-only audit changes nothing, ``reconcile`` (what push
    calls) leaves no checkpoint trained on a deleted id, ``s3t resume`` + re-running the request
    give the same system as an uninterrupted deletion, bit for bit."""
    ids = [ids_at(pristine, 0, 0)[0], ids_at(pristine, 0, 1)[0]]  # both slices of shard 0: a retrain
    argv = ["delete", "--ids", *ids, "--request_id", "req-kill", "--system_dir"]
    reference = copy_of(pristine, tmp_path / "reference")
    os.environ[KILL_ENV] = str(10**9)  # count the crash points of an uninterrupted run
    artifacts_writing._crash_points[0] = 0
    try:
        assert cmd.main([*argv, str(reference)]) == 0
        total = artifacts_writing._crash_points[0]
    finally:
        del os.environ[KILL_ENV]
    assert total >= 16  # commits, cut, public files, 4 retrained stages
    # 1 / 2: just before / after the ledger commit of the request; 6 more seeded among the others
    points = [1, 2, *sorted(random.Random(7).sample(range(3, total + 1), 6))]
    print(f"kill points {points} of {total}")
    dirs = [copy_of(pristine, tmp_path / f"kill{n}") for n in points]
    codes = run_forked([([*argv, str(d)], {KILL_ENV: str(n)}) for n, d in zip(points, dirs)])
    assert codes == [-signal.SIGKILL] * len(points)
    for n, d in zip(points, dirs):
        before = tree(d)
        for flags in (["--deleted"], ["--ids", *ids]):
            assert cmd.main(["audit", "--system_dir", str(d), *flags]) in (0, 1)
        assert tree(d) == before, f"audit wrote at kill point {n}"
        summary = reconcile(d)  # what push runs first
        _, state, deleted = ledger_view(d)
        assert checkpoint_files(d) == {k.relpath for k in state.active_keys()} == set(summary["checkpoints"])
        if deleted:
            assert audit_folder(d, deleted=True)["all_clean"]  # nothing on disk saw a committed deletion
        assert cmd.main(["resume", "--system_dir", str(d)]) == 0
        assert cmd.main([*argv, str(d)]) == 0  # the request re-sent: served, or a replay
        assert_same_system(d, reference)


def test_kill_past_the_commit_in_a_real_subprocess(pristine, tmp_path):
    """``python -m hf_unlearn.cli s3t delete`` killed just past the ledger commit: before any reopen,
    ``reconcile`` (push) removes the cut checkpoints, and the next plain open agrees."""
    d = copy_of(pristine, tmp_path / "sys")
    x = ids_at(d, 1, 0)[0]  # slice 0 of shard 1: order (0, 1) cut to nothing, order (1, 0) to 1 stage
    env = {**os.environ, KILL_ENV: "2", "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "hf_unlearn.cli", "s3t", "delete", "--system_dir", str(d), "--ids", x, "--quiet"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        out, err = proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == -signal.SIGKILL, err.decode()[-2000:]
    assert x not in out.decode() + err.decode()
    _, state, deleted = ledger_view(d)
    assert deleted == {x: 1}  # committed
    stale = checkpoint_files(d) - {k.relpath for k in state.active_keys()}
    assert len(stale) == 3  # 3 stages trained on x still on disk
    problems = check_consistent(d)
    assert any(rel in p for rel in stale for p in problems) and any(SERVED_FILE in p for p in problems)
    summary = reconcile(d)
    assert len([r for r in summary["repaired"] if r.startswith("removed")]) == 3
    assert_in_step(d, state)
    assert reconcile(d)["repaired"] == []  # a consistent system: nothing to do, nothing written


def test_foreign_ledger_is_refused_and_audit_never_writes(pristine, tmp_path, capsys):
    d = copy_of(pristine, tmp_path / "sys")
    other = copy_of(pristine, tmp_path / "other")
    config = json.loads((other / CONFIG_FILE).read_text())
    config["system"]["creation_nonce"] = "another training run"  # what a second training makes
    (other / CONFIG_FILE).write_text(json.dumps(config))
    shutil.copy2(d / LEDGER_FILE, other / LEDGER_FILE)  # d's ledger in the other system
    before = tree(other)
    with pytest.raises(ForeignLedgerError, match="belongs to another system"):
        S3TModel.from_pretrained(other)
    x = ids_at(d, 0, 0)[0]
    for argv in (["delete", "--ids", x], ["audit", "--deleted"], ["resume"]):
        assert cmd.main([*argv, "--system_dir", str(other)]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and "belongs to another system" in err and "Traceback" not in err
    assert tree(other) == before

    # a deletion whose clean-up was lost: audit says so (exit 1) and writes nothing
    system = S3TModel.from_pretrained(d)
    cut = d / system.state.keys(0, 0, [0])[0].relpath
    saved = cut.read_bytes()
    assert system.delete([x], retrain=False).action == "cut"
    system.ledger.close()
    cut.write_bytes(saved)  # as if killed before the file was removed
    before = tree(d)
    assert cmd.main(["audit", "--system_dir", str(d), "--deleted"]) == 1
    shown = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert not shown["consistent"] and any(cut.name in p for p in shown["problems"])
    assert x not in json.dumps(shown)  # no id without --show-ids
    assert tree(d) == before
    # a ledger record that disagrees with what was trained: records_consistent false, exit 1
    reconcile(d)
    conn = Ledger(d / LEDGER_FILE).conn
    conn.execute("UPDATE checkpoints SET n_train = n_train + 1 WHERE shard = 0")  # x's shard
    conn.close()
    before = tree(d)
    assert cmd.main(["audit", "--system_dir", str(d), "--ids", x, "--show_ids"]) == 1
    shown = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert not shown["records_consistent"] and shown["ids"][0]["id"] == x
    assert tree(d) == before
    # bad input: one line, exit 2, nothing written
    for argv in (["--system_dir", str(tmp_path / "nowhere"), "--deleted"], ["--system_dir", str(d), "--ids", "nope"]):
        assert cmd.main(["audit", *argv]) == 2
        assert len(capsys.readouterr().err.strip().splitlines()) == 1
    assert tree(d) == before


def test_a_busy_system_fails_fast_with_no_wait(pristine, tmp_path, capsys):
    d = copy_of(pristine, tmp_path / "sys")
    x = ids_at(d, 1, 1)[0]
    with folder_lock(d):  # another request holds the system
        for flags in (["--no_wait"], ["--lock_timeout", "0.2"]):
            assert cmd.main(["delete", "--system_dir", str(d), "--ids", x, *flags]) == 2
            assert "busy" in capsys.readouterr().err
    assert ledger_view(d)[0] == []  # nothing recorded; the request can be sent again
    assert cmd.main(["delete", "--system_dir", str(d), "--ids", x, "--no_wait"]) == 0
    assert ledger_view(d)[2] == {x: 1}
    assert (d / CHECKPOINT_DIR).is_dir()
