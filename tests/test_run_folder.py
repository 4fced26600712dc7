"""The train folder's lifecycle: no overwrite without asking, resume without hand-picking, crash tests.

The crash test kills ``hf-unlearn train`` (SIGKILL, ``HF_UNLEARN_KILL_AT_WRITE=N``) at 7 crash points
drawn with a seeded RNG across a whole run, then runs the documented command (the same command plus
``--resume_from_checkpoint latest``) and checks that the final weights are bit-identical to those of
one uninterrupted run.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from hf_unlearn.artifacts import KILL_ENV, MANIFEST_FILE, atomic_write_json, write_manifest
from hf_unlearn.runs.run_folder import (
    RUN_REQUEST_FILE,
    TrainFolderError,
    plan_train_folder,
    verify_run_files,
)
from hf_unlearn.training.checkpoints import (
    CHECKPOINT_KIND,
    CheckpointError,
    optimizer_from_files,
    optimizer_to_files,
    resolve_resume,
    verify_checkpoint,
)

REPO = Path(__file__).resolve().parents[1]
# 48 examples, batch 4, 2 epochs: 24 optimizer steps, a checkpoint every 5 steps (and at the end)
CRASH_TRAIN_ARGS = [
    "--dataset_name", "synthetic", "--synthetic_train", "46", "--synthetic_test", "8",
    "--synthetic_canaries", "2", "--model_name_or_path", "tiny-bert", "--num_train_epochs", "2",
    "--per_device_train_batch_size", "4", "--learning_rate", "1e-3", "--record_deltas",
    "--save_strategy", "steps", "--save_steps", "5", "--disable_tqdm", "true", "--seed", "5",
]  # fmt: skip
RESUME = ["--resume_from_checkpoint", "latest"]  # the documented command after any interruption
COUNTING = (
    "import atexit, runpy, sys\n"
    "from hf_unlearn.artifacts import writing\n"
    "atexit.register(lambda: print('CRASH_POINTS', writing._crash_points[0], file=sys.stderr))\n"
    "sys.argv = ['hf-unlearn', *sys.argv[1:]]\n"
    "runpy.run_module('hf_unlearn.cli', run_name='__main__')\n"
)


def _run(args: list[str], kill_at: int | None = None, counting: bool = False) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    env.pop(KILL_ENV, None)
    if kill_at is not None:
        env[KILL_ENV] = str(kill_at)
    head = ["-c", COUNTING] if counting else ["-m", "hf_unlearn.cli"]
    proc = subprocess.Popen(
        [sys.executable, *head, "train", *args], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        out, err = proc.communicate(timeout=600)
    finally:
        proc.kill()
        proc.wait()
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def _weights(folder: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(str(folder / "model.safetensors"))


@pytest.mark.slow
def test_killed_train_resumes_to_bit_identical_weights(tmp_path):
    ref_dir = tmp_path / "reference"
    ref = _run([*CRASH_TRAIN_ARGS, "--output_dir", str(ref_dir)], kill_at=10**9, counting=True)
    assert ref.returncode == 0, ref.stderr[-2000:]
    total = int(ref.stderr.rsplit("CRASH_POINTS", 1)[1].split()[0])
    assert total > 50  # every atomic write of the run passes two crash points
    reference = _weights(ref_dir)
    # the last point follows the rename of the run manifest: the run is complete there, not interrupted
    points = sorted(random.Random(12).sample(range(1, total), 5))
    recovered = 0
    for n in points:
        run_dir = tmp_path / f"killed-{n}"
        args = [*CRASH_TRAIN_ARGS, "--output_dir", str(run_dir)]
        killed = _run(args, kill_at=n)
        assert killed.returncode == -9, (n, killed.stderr[-2000:])
        assert not (run_dir / MANIFEST_FILE).exists(), n  # a killed train never looks complete
        if n == points[-1]:  # once (a process costs seconds): without the documented flag, refused
            again = _run(args)
            assert again.returncode == 2 and "--resume_from_checkpoint latest" in again.stderr, again.stderr
            assert len(again.stderr.strip().splitlines()) == 1
        resumed = _run([*args, *RESUME])
        assert resumed.returncode == 0, (n, resumed.stderr[-2000:])
        verify_run_files(run_dir, ["model.safetensors"])
        got = _weights(run_dir)
        assert got.keys() == reference.keys()
        assert all(torch.equal(got[k], reference[k]) for k in reference), f"kill point {n} of {total}"
        recovered += 1
    assert recovered == len(points) == 5


# ---- the folder decisions, without training ---------------------------------------------------------------
REQUEST = {"data": {"dataset_name": "synthetic"}, "model": {"model_name_or_path": "tiny-bert"},
           "training": {"seed": 7, "learning_rate": 1e-3}, "world_size": 1}  # fmt: skip


def _interrupted(folder: Path, request=REQUEST) -> Path:
    atomic_write_json(folder / RUN_REQUEST_FILE, request)
    (folder / "unlearning_log").mkdir()
    return folder


def test_empty_folders_are_trained_into_and_others_need_overwrite(tmp_path):
    assert plan_train_folder(tmp_path / "new", REQUEST, overwrite=False, resume=False) == "fresh"
    (tmp_path / ".x.hf_unlearn-tmp-1").write_text("")  # only a killed writer's temporary: still empty
    assert plan_train_folder(tmp_path, REQUEST, overwrite=False, resume=True) == "fresh"
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(TrainFolderError, match="not empty.*--overwrite"):
        plan_train_folder(tmp_path, REQUEST, overwrite=False, resume=True)
    assert plan_train_folder(tmp_path, REQUEST, overwrite=True, resume=False) == "fresh"
    assert (tmp_path / "notes.txt").exists()  # deciding writes nothing


def test_a_completed_run_is_never_written_into_without_overwrite(tmp_path):
    _interrupted(tmp_path)
    write_manifest(tmp_path, kind="run")
    for resume in (False, True):
        with pytest.raises(TrainFolderError, match="completed training run; pass --overwrite"):
            plan_train_folder(tmp_path, REQUEST, overwrite=False, resume=resume)
    assert plan_train_folder(tmp_path, REQUEST, overwrite=True, resume=True) == "fresh"


def test_an_interrupted_run_resumes_only_with_its_own_arguments(tmp_path):
    _interrupted(tmp_path)
    with pytest.raises(TrainFolderError, match="interrupted.*--resume_from_checkpoint latest"):
        plan_train_folder(tmp_path, REQUEST, overwrite=False, resume=False)
    assert plan_train_folder(tmp_path, REQUEST, overwrite=False, resume=True) == "resume"
    other = {**REQUEST, "training": {**REQUEST["training"], "seed": 8}}
    with pytest.raises(TrainFolderError, match=r"--seed \(was 7, now 8\)"):
        plan_train_folder(tmp_path, other, overwrite=False, resume=True)
    assert plan_train_folder(tmp_path, other, overwrite=True, resume=True) == "fresh"


def _checkpoint(root: Path, step: int, complete: bool = True) -> Path:
    folder = root / f"checkpoint-{step}"
    folder.mkdir(parents=True)
    (folder / "model.safetensors").write_bytes(b"w" * step)
    if complete:
        write_manifest(folder, kind=CHECKPOINT_KIND, extra={"step": step, "world_size": 1})
    return folder


def test_latest_skips_half_written_and_damaged_checkpoints(tmp_path, capsys):
    _checkpoint(tmp_path, 5)
    _checkpoint(tmp_path, 10)
    _checkpoint(tmp_path, 15, complete=False)  # killed while saving
    damaged = _checkpoint(tmp_path, 20)
    (damaged / "model.safetensors").write_bytes(b"x" * 20)
    assert resolve_resume(tmp_path, "latest") == str(tmp_path / "checkpoint-10")
    err = capsys.readouterr().err
    assert "skipping checkpoint-20" in err and "damaged" in err and "skipping checkpoint-15" in err
    assert not (tmp_path / "checkpoint-15").exists() and not damaged.exists()  # their steps are redone
    assert resolve_resume(tmp_path, True) == str(tmp_path / "checkpoint-10")
    assert resolve_resume(tmp_path, None) is None
    assert resolve_resume(tmp_path / "nothing", "latest") is None  # nothing saved yet: from step 0


def test_a_named_checkpoint_is_verified_and_pickles_are_refused(tmp_path):
    half = _checkpoint(tmp_path, 3, complete=False)
    with pytest.raises(CheckpointError, match="half-written"):
        resolve_resume(tmp_path, str(half))
    good = _checkpoint(tmp_path, 6)
    (good / "optimizer.pt").write_bytes(b"pickle")
    with pytest.raises(CheckpointError, match="optimizer.pt is a pickle"):
        verify_checkpoint(good)
    moved = tmp_path / "checkpoint-9"
    _checkpoint(tmp_path, 12).rename(moved)
    with pytest.raises(CheckpointError, match="step 12, not 9"):
        verify_checkpoint(moved)


def test_optimizer_state_round_trips_exactly_through_safetensors_and_json():
    from safetensors.torch import load, save

    model = torch.nn.Linear(4, 3)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, betas=(0.9, 0.99))
    for _ in range(3):
        model(torch.randn(2, 4)).sum().backward()
        opt.step()
    tensors, body = optimizer_to_files(opt)
    body = json.loads(json.dumps(body))
    restored_opt = torch.optim.AdamW(torch.nn.Linear(4, 3).parameters(), lr=5.0)
    restored_opt.load_state_dict(optimizer_from_files(load(save(tensors)), body))
    a, b = opt.state_dict(), restored_opt.state_dict()
    assert a["param_groups"][0]["lr"] == b["param_groups"][0]["lr"]
    for idx, entry in a["state"].items():
        assert all(torch.equal(entry[k], b["state"][idx][k]) for k in entry)
