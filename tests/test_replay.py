"""Replays of a recorded run own their files: nothing is left in the temporary folder."""

import tempfile
from pathlib import Path

import pytest
import torch
from conftest import train_run

from hf_unlearn.training import UnlearnableTrainingArguments, UnlearningLog
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


def test_twin_arguments_of_a_log_that_names_a_retired_proxy_kind(tmp_path):
    """Logs written before the forward-difference default record ``error_proxy_hvp="finite_difference"``,
    a name the arguments now refuse: the twin (which records no proxy) still builds its arguments."""
    from types import SimpleNamespace

    from hf_unlearn.training.replay import twin_arguments

    recorded = {"seed": 3, "learning_rate": 1e-3, "record_error_proxy": True, "error_proxy_hvp": "finite_difference"}
    args = twin_arguments(SimpleNamespace(meta={"training_args": recorded}), tmp_path / "twin")
    assert args.seed == 3 and args.learning_rate == 1e-3 and not args.record_error_proxy
    with pytest.raises(ValueError, match="error_proxy_hvp must be one of"):
        UnlearnableTrainingArguments(output_dir=str(tmp_path / "x"), error_proxy_hvp="finite_difference")
