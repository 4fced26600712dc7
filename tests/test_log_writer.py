"""The log writer (a TrainerCallback): the header it writes, when it flushes, what it takes as w_0."""

import json

import pytest
import torch
from conftest import make_args, train_run
from safetensors.torch import load_file
from transformers import TrainerCallback

from hf_unlearn.training import UnlearnableTrainer, UnlearningLog
from hf_unlearn.training.log_store import FORMAT_VERSION

# The persisted contract of meta.json (format_version 2): header keys, then what the footer adds.
HEADER_KEYS = {
    "format_version",
    "log_id",
    "created",
    "model_class",
    "fingerprint",
    "final_fingerprint",
    "structure",
    "recorders",
    "delta_dtype",
    "deletable_only",
    "per_sample_fraction",
    "per_sample_seed",
    "per_sample_module_share",
    "per_sample_k",
    "seed",
    "data_seed",
    "per_device_train_batch_size",
    "gradient_accumulation_steps",
    "world_size",
    "num_train_examples",
    "train_fingerprint",
    "training_args",
    "versions",
}
FOOTER_KEYS = {"global_step", "transcript_parts", "completed", "optimizer"}


def test_meta_json_keeps_its_format(tiny, tmp_path):
    model, trainer = train_run(tiny, tmp_path, num_train_epochs=1, record_deltas=True)
    meta = json.loads((tmp_path / "unlearning_log" / "meta.json").read_text())
    assert set(meta) == HEADER_KEYS | FOOTER_KEYS and meta["format_version"] == FORMAT_VERSION == 2
    assert meta["global_step"] == trainer.state.global_step and meta["optimizer"]["class"] == "AdamW"
    assert {"torch", "transformers", "peft", "hf_unlearn"} <= set(meta["versions"])
    log = UnlearningLog(tmp_path)
    log.check_model(model, state="final")
    assert meta["fingerprint"] != meta["final_fingerprint"]


class _Crash(Exception):
    pass


class _CrashAt(TrainerCallback):
    def __init__(self, step):
        self.step = step

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step == self.step:
            raise _Crash()


def test_resumed_error_proxy_measures_from_the_logged_w0(tiny, tmp_path):
    """A run resumed with a model that already holds the checkpoint's weights still measures
    ||w_t - w_0|| from the run's w_0 (read from the log), as the uninterrupted run does."""
    tokenizer, tokenized, fresh = tiny
    common = dict(
        num_train_epochs=1,
        save_strategy="steps",
        save_steps=2,
        record_error_proxy=True,
        error_proxy_every=2,
        error_proxy_batch_size=8,
    )
    train_run(tiny, tmp_path / "straight", **common)
    reference = {r["step"]: r["distance_from_init"] for r in UnlearningLog(tmp_path / "straight").error_proxy()}

    def trainer_for(model):
        return UnlearnableTrainer(
            model=model,
            args=make_args(tmp_path / "crashy", **common),
            train_dataset=tokenized["train"],
            processing_class=tokenizer,
        )

    crashing = trainer_for(fresh())
    crashing.add_callback(_CrashAt(5))
    with pytest.raises(_Crash):
        crashing.train()
    checkpoint = tmp_path / "crashy" / "checkpoint-4"
    resumed = fresh()
    resumed.load_state_dict(load_file(str(checkpoint / "model.safetensors")), strict=False)
    trainer_for(resumed).train(resume_from_checkpoint=str(checkpoint))
    got = {r["step"]: r["distance_from_init"] for r in UnlearningLog(tmp_path / "crashy").error_proxy()}
    assert set(got) == set(reference) and max(reference) > 4
    for step, dist in reference.items():
        assert got[step] == pytest.approx(dist, rel=1e-5)


def test_records_are_on_disk_for_every_checkpoint_also_when_saved_for_the_best_metric(tiny, tmp_path):
    """With save_strategy="best" the save is decided after the step ends: the writer flushes on_save,
    so each checkpoint finds the transcript written up to its step."""
    tokenizer, tokenized, fresh = tiny
    args = make_args(
        tmp_path,
        num_train_epochs=1,
        eval_strategy="steps",
        eval_steps=2,
        save_strategy="best",
        metric_for_best_model="loss",
        greater_is_better=False,
    )
    trainer = UnlearnableTrainer(
        model=fresh(),
        args=args,
        train_dataset=tokenized["train"],
        eval_dataset=tokenized["test"],
        processing_class=tokenizer,
    )
    trainer.train()
    checkpoints = sorted(int(p.name.split("-")[1]) for p in tmp_path.glob("checkpoint-*"))
    parts = {int(p.stem.split("-")[1]) for p in (tmp_path / "unlearning_log" / "transcript").glob("rank0-*.jsonl")}
    assert checkpoints and set(checkpoints) <= parts
    assert [s.step for s in UnlearningLog(tmp_path).steps()] == list(range(1, trainer.state.global_step + 1))
    assert torch.isfinite(torch.tensor(trainer.state.best_metric))
