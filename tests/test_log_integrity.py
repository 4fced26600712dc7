"""Tamper tests of the unlearning log: every damaged, missing, extra or foreign file is refused with
a one-line error naming it, and nothing is written (through the API and through `hf-unlearn unlearn`)."""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import shutil
from pathlib import Path

import pytest
import torch
from conftest import TINY_TRAIN_ARGS

from hf_unlearn.artifacts import (
    COMMITMENT_SALT_FILE,
    LOCK_FILE,
    REQUEST_LEDGER_FILE,
    IntegrityError,
    read_manifest,
    write_manifest,
)
from hf_unlearn.requests import RequestLedger
from hf_unlearn.training import UnlearningLog
from hf_unlearn.training.log_store import LogError, truncate_log

LOG = "unlearning_log"
RUN_ARGS = [
    *[a for a in TINY_TRAIN_ARGS if a not in ("--save_strategy", "no", "--num_train_epochs", "1")],
    "--num_train_epochs",
    "2",
    "--save_strategy",
    "epoch",
    "--record_per_sample",
    "--record_learning_events",
    "--record_error_proxy",
    "--error_proxy_every",
    "3",
    "--error_proxy_batch_size",
    "8",
    "--error_proxy_power_iters",
    "2",
]


def _train(folder: Path, seed: int) -> Path:
    from hf_unlearn.commands import train as train_cmd

    assert train_cmd.main([*RUN_ARGS, "--seed", str(seed), "--output_dir", str(folder)]) == 0
    return folder


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """One small run with every recorder (two epochs: two transcript parts), and a second tiny run
    with another seed (its manifest is the "foreign" one)."""
    root = tmp_path_factory.mktemp("integrity")
    run = _train(root / "run", seed=3)
    other = _train(root / "other", seed=4)
    ids = root / "ids.txt"
    ids.write_text("canary-0000\n")
    return run, other, ids


@pytest.fixture
def run_copy(runs, tmp_path):
    run, _, ids = runs
    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    return copy, ids


def _tree(folder: Path) -> dict[str, str]:
    return {
        p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def _flip(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))


def _read_everything(log: UnlearningLog) -> None:
    """Every request a method can make of the log."""
    log.initial_state_dict()
    log.recorded_order()
    for step in log.delta_steps():
        log.delta(step)
    log.optimizer_final_state()
    log.per_sample_index()
    for step in log.steps():
        log.per_sample(step.step)
    log.learning_events()
    log.error_proxy()


def _one(folder: Path, pattern: str) -> str:
    found = sorted(folder.glob(pattern))
    assert found, pattern
    return found[-1].relative_to(folder).as_posix()


def test_an_intact_log_is_read_whole_and_hashes_only_what_a_request_reads(runs):
    run, _, _ = runs
    log = UnlearningLog(run)
    assert log.files.verified == {"meta.json", *log.meta["transcript_parts"]}
    assert len(log.meta["transcript_parts"]) == 2 and log.meta["global_step"] == len(log.steps())
    first = log.delta_steps()[0]
    log.delta(first)
    assert log.files.verified == {"meta.json", *log.meta["transcript_parts"], f"deltas/step_{first:08d}.safetensors"}
    _read_everything(log)
    assert log.files.verified == set(read_manifest(run / LOG)["files"])


def test_deltas_verified_ahead_stop_at_the_first_damaged_file_in_order(run_copy):
    """``UnlearningLog.deltas`` hashes the files ahead on several threads, yet yields in order, only verified
    files, and raises at the first damaged one in order (naming it), never at a later one."""
    run, _ = run_copy
    log = UnlearningLog(run)
    steps = log.delta_steps()
    assert len(steps) >= 4
    intact = dict(log.deltas(steps[:2]))
    assert list(intact) == steps[:2] and all(
        torch.equal(intact[s][n], log.delta(s)[n]) for s in intact for n in intact[s]
    )
    first_bad, later_bad = steps[2], steps[-1]
    for step in (later_bad, first_bad):
        _flip(run / LOG / f"deltas/step_{step:08d}.safetensors")
    fresh = UnlearningLog(run)
    seen = []
    with pytest.raises(LogError) as err:
        for step, _delta in fresh.deltas(steps):
            seen.append(step)
    assert seen == steps[:2]
    assert f"step_{first_bad:08d}" in str(err.value) and f"step_{later_bad:08d}" not in str(err.value)


@pytest.mark.parametrize(
    "pattern",
    [
        "meta.json",
        "manifest.json",
        "initial_weights.safetensors",
        "optimizer_final.safetensors",
        "order/epoch_*.json",
        "transcript/rank0-*.jsonl",
        "deltas/step_*.safetensors",
        "per_sample/index.safetensors",
        "per_sample/step_*.rank0.safetensors",
        "events/rank0-*.parquet",
        "error_proxy/rank0-*.jsonl",
    ],
)
def test_one_flipped_byte_in_any_log_file_is_refused_naming_it(run_copy, pattern):
    run, _ = run_copy
    rel = _one(run / LOG, pattern)
    _flip(run / LOG / rel)
    before = _tree(run)
    with pytest.raises(LogError) as err:
        _read_everything(UnlearningLog(run))
    assert rel in str(err.value) or (pattern == "manifest.json" and "manifest.json" in str(err.value))
    assert "\n" not in str(err.value)
    assert _tree(run) == before


def _unlearn(run: Path, ids: Path, out: Path, capsys) -> tuple[int, str]:
    from hf_unlearn.cli import main

    rc = main(["unlearn", "--run", str(run), "--forget", str(ids), "--method", "amnesiac", "--output_dir", str(out)])
    return rc, capsys.readouterr().err


def _last_part(run: Path) -> str:
    return _one(run / LOG, "transcript/rank0-*.jsonl")


def _delete_last_part(run: Path, foreign: Path) -> str:
    rel = _last_part(run)
    (run / LOG / rel).unlink()
    return rel


def _delete_last_part_and_its_manifest_entry(run: Path, foreign: Path) -> str:
    rel = _delete_last_part(run, foreign)
    write_manifest(run / LOG, kind="unlearning_log", extra=read_manifest(run / LOG).get("extra"))
    return rel


def _extra_part(run: Path, foreign: Path) -> str:
    rel = _last_part(run)
    extra = rel.replace(rel.split("-")[-1], "00000999.jsonl")
    shutil.copy(run / LOG / rel, run / LOG / extra)
    return extra


def _extra_part_listed(run: Path, foreign: Path) -> str:
    extra = _extra_part(run, foreign)
    write_manifest(run / LOG, kind="unlearning_log", extra=read_manifest(run / LOG).get("extra"))
    return extra


def _flip_a_delta(run: Path, foreign: Path) -> str:
    """A delta of a step that saw the id to forget (amnesiac reads it)."""
    step = UnlearningLog(run).steps_seeing(["canary-0000"])[-1].step
    rel = f"deltas/step_{step:08d}.safetensors"
    _flip(run / LOG / rel)
    return rel


def _edit_meta_fingerprint(run: Path, foreign: Path) -> str:
    meta = json.loads((run / LOG / "meta.json").read_text())
    meta["fingerprint"] = "0" * 64
    (run / LOG / "meta.json").write_text(json.dumps(meta, indent=1, sort_keys=True) + "\n")
    return "meta.json"


def _foreign_manifest(run: Path, foreign: Path) -> str:
    shutil.copy(foreign / LOG / "manifest.json", run / LOG / "manifest.json")
    return "manifest.json"


def _delete_manifest(run: Path, foreign: Path) -> str:
    (run / LOG / "manifest.json").unlink()
    return "manifest.json"


@pytest.mark.parametrize(
    "tamper",
    [
        _delete_last_part,
        _delete_last_part_and_its_manifest_entry,
        _extra_part,
        _extra_part_listed,
        _flip_a_delta,
        _edit_meta_fingerprint,
        _foreign_manifest,
        _delete_manifest,
    ],
)
def test_unlearn_refuses_a_tampered_log_in_one_line_and_writes_nothing(runs, run_copy, tamper, tmp_path, capsys):
    _, other, _ = runs
    run, ids = run_copy
    rel = tamper(run, other)
    before = _tree(run)
    out = tmp_path / "out"
    if tamper in (_delete_last_part, _flip_a_delta, _foreign_manifest, _delete_manifest):
        rc, err = _unlearn(run, ids, out, capsys)  # through the CLI, in-process
        errors = [line for line in err.splitlines() if line.startswith("hf-unlearn unlearn: error: ")]
        assert rc == 2 and "Traceback" not in err and len(errors) == 1, err
        assert rel.split("/")[-1] in errors[0], err
    else:
        with pytest.raises(LogError, match=rel.split("/")[-1].replace(".", r"\.")):
            _read_everything(UnlearningLog(run))
    assert not out.exists() and _run_files(_tree(run)) == _run_files(before)
    if tamper is _flip_a_delta:  # found while unlearning, after the request was recorded: it is marked failed
        with RequestLedger.open(run) as ledger:
            (row,) = ledger.requests()
        assert row["status"] == "failed" and rel.split("/")[-1] in row["error"] and not row["output"]
    else:  # found before the request was recorded
        assert not RequestLedger.exists_in(run)


def _run_files(tree: dict) -> dict:
    """The run's own files: without the live state a request adds (its ledger, lock and the run's salt)."""
    return {rel: sha for rel, sha in tree.items() if rel not in (REQUEST_LEDGER_FILE, LOCK_FILE, COMMITMENT_SALT_FILE)}


def test_a_log_error_is_an_integrity_error_and_a_value_error():
    assert issubclass(LogError, IntegrityError) and issubclass(LogError, ValueError)


def test_truncate_on_resume_removes_the_manifest_and_the_hashes_of_removed_files(tmp_path):
    root = tmp_path / LOG
    names = ["transcript/rank0-00000004.jsonl", "transcript/rank0-00000008.jsonl", "deltas/step_00000005.safetensors"]
    for rel in [*names, "manifest.json"]:
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(rel)
    hashes = {rel: "x" for rel in names}
    assert truncate_log(root, 4, hashes) == 2
    assert hashes == {"transcript/rank0-00000004.jsonl": "x"} and not (root / "manifest.json").exists()
    with contextlib.redirect_stderr(io.StringIO()), pytest.raises(LogError, match="manifest.json is missing"):
        (root / "meta.json").write_text("{}")
        UnlearningLog(root)


def test_a_finished_log_of_format_1_is_refused_as_unverifiable(tmp_path):
    root = tmp_path / LOG
    root.mkdir()
    (root / "meta.json").write_text(json.dumps({"format_version": 1, "completed": "2026-01-01T00:00:00+00:00"}))
    with pytest.raises(LogError, match="format_version 1 .*cannot be verified"):
        UnlearningLog(tmp_path)


def test_a_damaged_events_file_is_never_replaced_by_a_proxy_fallback(run_copy):
    from hf_unlearn.memorization.proxies import learning_events
    from hf_unlearn.training.log_store import LogDamagedError

    run, _ = run_copy
    rel = _one(run / LOG, "events/rank0-*.parquet")
    _flip(run / LOG / rel)
    with pytest.raises(LogDamagedError, match=rel):
        learning_events(run, fallback="final_model")
