"""Two real CPU ranks (gloo) under ``accelerate launch``: every rank records its transcript, and every
rank ends its process group cleanly (no abort at teardown: run 20 times in a row without a failure)."""

import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
import torch

from hf_unlearn.training import UnlearningLog

ACCELERATE = Path(sys.executable).with_name("accelerate")


@pytest.mark.slow
def test_two_rank_transcripts_cover_every_id_once_per_epoch(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [
        str(ACCELERATE),
        "launch",
        "--multi_gpu",
        "--num_processes",
        "2",
        "--num_machines",
        "1",
        "--mixed_precision",
        "no",
        "--dynamo_backend",
        "no",
        "-m",
        "hf_unlearn.cli",
        "train",
        "--dataset_name",
        "synthetic",
        "--synthetic_train",
        "60",
        "--synthetic_test",
        "10",
        "--synthetic_canaries",
        "3",
        "--model_name_or_path",
        "tiny-bert",
        "--output_dir",
        str(tmp_path),
        "--num_train_epochs",
        "2",
        "--per_device_train_batch_size",
        "8",
        "--learning_rate",
        "1e-3",
        "--record_deltas",
        "--save_strategy",
        "no",
        "--disable_tqdm",
        "true",
    ]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    # every rank ended its process group (commands/train.py): no abort or leak warning at teardown
    assert "terminate called" not in done.stderr, done.stderr[-3000:]
    assert "has NOT been destroyed" not in done.stderr, done.stderr[-3000:]
    log = UnlearningLog(tmp_path)
    assert log.meta["world_size"] == 2
    assert sorted(p.name.split("-")[0] for p in (log.root / "transcript").iterdir()) == ["rank0", "rank1"]
    steps = log.steps()
    assert all({mb["rank"] for mb in s.micro_batches} == {0, 1} for s in steps)
    for epoch in (0, 1):
        counts = Counter(i for s in steps if s.epoch == epoch for i in s.ids)
        assert len(counts) == 63 and set(counts.values()) == {1}
    # every step's update was logged once (rank 0) and they add up to the trained weights
    from safetensors.torch import load_file

    final = load_file(str(tmp_path / "model.safetensors"))
    w0 = log.initial_state_dict()
    deltas = [log.delta(s) for s in log.delta_steps()]
    assert len(deltas) == len(steps)
    for name in deltas[0]:
        torch.testing.assert_close(w0[name] + sum(d[name] for d in deltas), final[name], rtol=0, atol=1e-6)
