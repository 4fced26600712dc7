"""Training under ``accelerate launch`` with 2 CPU processes (gloo) gives the same checkpoints,
bit for bit, as a single process with the same seed."""

import os
import shutil
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

os.environ.setdefault("HF_HOME", tempfile.mkdtemp(prefix="hf_home_s3t_"))

ARGS = [
    "s3t",
    "train",
    "--dataset_name",
    "synthetic",
    "--max_train_samples",
    "160",
    "--max_test_samples",
    "32",
    "--model_name_or_path",
    "tiny-bert",
    "--tiny_hidden_size",
    "32",
    "--tiny_vocab_size",
    "300",
    "--max_length",
    "24",
    "--num_shards",
    "2",
    "--num_slices",
    "2",
    "--budget",
    "2",
    "--num_train_epochs",
    "1",
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run(cmd, cwd):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout


@pytest.mark.slow
def test_two_process_accelerate_equals_single_process(tmp_path):
    accelerate = shutil.which("accelerate", path=str(Path(sys.executable).parent)) or shutil.which("accelerate")
    if accelerate is None:
        pytest.skip("accelerate launcher not found")
    run([sys.executable, "-m", "hf_unlearn.cli", *ARGS, "--output_dir", "one"], tmp_path)
    out = run(
        [
            accelerate,
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
            "--main_process_port",
            str(free_port()),
            "-m",
            "hf_unlearn.cli",
            *ARGS,
            "--output_dir",
            "two",
        ],
        tmp_path,
    )
    assert '"world_size": 2' in out

    import json

    import torch
    from safetensors.torch import load_file

    one, two = tmp_path / "one", tmp_path / "two"
    files = sorted(p.relative_to(one) for p in one.rglob("*.safetensors"))
    assert files == sorted(p.relative_to(two) for p in two.rglob("*.safetensors"))
    assert len([f for f in files if f.parts[0] == "checkpoints"]) == 2 * 2 * 2
    for rel in files:
        a, b = load_file(one / rel), load_file(two / rel)
        assert a.keys() == b.keys()
        for key in a:
            assert torch.equal(a[key], b[key]), f"{rel}:{key} differs"
    assert (one / "assignment.json").read_text() == (two / "assignment.json").read_text()
    assert json.loads((two / "s3t_config.json").read_text())["system"]["world_size"] == 2
