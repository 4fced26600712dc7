"""Replays of a recorded run own their files: nothing is left in the temporary folder."""

import tempfile
from pathlib import Path

import pytest
import torch
from conftest import train_run

from hf_unlearn.training import UnlearningLog
from hf_unlearn.training.replay import replayed, retrain_twin


@pytest.fixture(scope="module")
def run(tiny, tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    model, _ = train_run(tiny, out, num_train_epochs=1)
    return model, out


@pytest.fixture
def private_tmp(tmp_path, monkeypatch):
    """Point the system temporary folder at an empty folder so leftovers can be counted."""
    root = tmp_path / "systmp"
    root.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(root))
    return root


def test_twin_without_output_dir_leaves_nothing_behind(tiny, run, private_tmp):
    tokenizer, tokenized, _ = tiny
    model, out = run
    twin, trainer = retrain_twin(model, tokenized["train"], out, ["canary-0000"], tokenizer=tokenizer)
    assert list(private_tmp.iterdir()) == []
    assert not Path(trainer.log_root).exists()
    assert any(not torch.equal(a, b) for a, b in zip(model.parameters(), twin.parameters()))


def test_replay_removes_its_folder_on_error(tiny, run, private_tmp):
    tokenizer, tokenized, _ = tiny
    model, out = run
    with pytest.raises(RuntimeError, match="boom"):
        with replayed(model, tokenized["train"], out, tokenizer=tokenizer) as (_, trainer):
            assert UnlearningLog(trainer.log_root).meta["num_train_examples"] == len(tokenized["train"])
            raise RuntimeError("boom")
    assert list(private_tmp.iterdir()) == []


def test_replay_with_output_dir_keeps_its_log(tiny, run, tmp_path):
    tokenizer, tokenized, _ = tiny
    model, out = run
    with replayed(
        model, tokenized["train"], out, tokenizer=tokenizer, output_dir=tmp_path, record_learning_events=True
    ) as (_, trainer):
        assert trainer.args.record_learning_events
    assert not UnlearningLog(tmp_path).learning_events().empty
