"""LoRA runs through the commands: ``train --use_peft``, every registered method, the retrain twin,
``unlearn`` and ``evaluate``; the frozen base never changes and a changed base is refused.

One tiny LoRA run is trained once through the real command line (a subprocess) with every recorder a
method needs (deltas, per-sample gradients, learning events; momentum-free Adam); the rest runs in
process on it.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from types import SimpleNamespace

import pytest
import torch
from conftest import REPO, TINY_TRAIN_ARGS

from hf_unlearn.artifacts import BASE_MODEL_DIRNAME, BASE_MODEL_FILE, IntegrityError, read_manifest
from hf_unlearn.methods import available_methods, describe_options, unlearn
from hf_unlearn.models import (
    ADAPTER_CONFIG_FILE,
    ADAPTER_WEIGHTS_FILE,
    ModelMismatchError,
    frozen_base_state,
    is_lora_model,
    load_classifier,
    save_adapter,
)

METHODS = sorted(available_methods())
FORGET = ["canary-0000", "synthetic-train-00003", "synthetic-train-00010"]
TRAIN = [
    *TINY_TRAIN_ARGS,
    "--per_device_train_batch_size",
    "8",
    "--learning_rate",
    "1e-2",
    "--adam_beta1",
    "0",
    "--record_per_sample",
    "--per_sample_fraction",
    "0.05",
    "--per_sample_module_share",
    "0.5",  # the subset from half of the adapter / head modules: every method still runs on it
    "--record_learning_events",
    "--use_peft",
    "--lora_r",
    "4",
    "--lora_target_modules",
    "query",
    "value",
]


def adapted(name: str) -> bool:
    return "lora_" in name or "modules_to_save" in name


@pytest.fixture(scope="module")
def lora_run(tmp_path_factory):
    """The run trained by ``hf-unlearn train --use_peft`` (a subprocess), opened with ``load_run``."""
    from hf_unlearn.runs.unlearn import load_run

    root = tmp_path_factory.mktemp("lora")
    run_dir = root / "run"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run(
        [sys.executable, "-m", "hf_unlearn.cli", "train", *TRAIN, "--output_dir", str(run_dir)],
        capture_output=True,
        text=True,
        timeout=900,
        env=env,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    (root / "forget.txt").write_text("\n".join(FORGET) + "\n")
    run = load_run(run_dir)
    train = run.tokenized["train"]
    return SimpleNamespace(
        dir=run_dir,
        root=root,
        stderr=done.stderr,
        run=run,
        base=frozen_base_state(run.model),  # taken BEFORE any method runs
        forget=train.filter(lambda r: r["id"] in FORGET),
        retain=train.filter(lambda r: r["id"] not in FORGET),
        ids=root / "forget.txt",
    )


def test_train_writes_an_adapter_run(lora_run):
    folder = lora_run.dir
    assert "LoRA on a randomly initialised base barely learns" in lora_run.stderr
    for name in (ADAPTER_CONFIG_FILE, ADAPTER_WEIGHTS_FILE, BASE_MODEL_FILE, f"{BASE_MODEL_DIRNAME}/config.json"):
        assert (folder / name).is_file(), name
    assert not (folder / "README.md").exists() and not (folder / "model.safetensors").exists()  # no PEFT card
    listed = read_manifest(folder, kind="run")["files"]
    assert BASE_MODEL_FILE in listed and f"{BASE_MODEL_DIRNAME}/model.safetensors" in listed
    model = json.loads((folder / "hf_unlearn_run.json").read_text())["model"]
    assert model["use_peft"] and model["lora_r"] == 4 and model["lora_target_modules"] == ["query", "value"]
    record = json.loads((folder / BASE_MODEL_FILE).read_text())
    assert record["name_or_path"] == "tiny-bert" and record["saved_in_folder"] and record["hub_id"] is None
    assert is_lora_model(lora_run.run.model)


def test_the_log_holds_only_adapter_and_head_tensors(lora_run):
    from safetensors import safe_open

    log = lora_run.run.log
    w0 = log.initial_state_dict()
    trainable = {n for n, p in lora_run.run.model.named_parameters() if p.requires_grad}
    assert set(w0) == trainable and all(adapted(n) for n in w0)
    deltas = sorted((log.root / "deltas").glob("*.safetensors"))
    assert deltas
    with safe_open(str(deltas[0]), framework="pt") as f:
        assert set(f.keys()) <= trainable


@pytest.mark.parametrize("method", METHODS)
def test_every_method_keeps_the_frozen_base_and_saves_a_loadable_adapter(lora_run, method, tmp_path):
    run = lora_run.run
    names = {row[0] for row in describe_options(method)}
    options = {"max_steps": 2} if "max_steps" in names else {}
    result = unlearn(
        run.model, lora_run.forget, lora_run.retain, method=method, log=run.log, tokenizer=run.tokenizer, **options
    )
    assert is_lora_model(result.model)
    after = frozen_base_state(result.model)
    assert after.keys() == lora_run.base.keys()
    changed = [n for n in after if not torch.equal(after[n], lora_run.base[n])]
    assert not changed, f"{method} changed frozen base weights: {changed[:3]}"
    assert frozen_base_state(run.model).keys() == after.keys()
    save_adapter(result.model, tmp_path, run.base, base=lora_run.dir / BASE_MODEL_DIRNAME)
    loaded, is_lora = load_classifier(tmp_path, num_labels=2, attn_implementation=run.model_args.attn_implementation)
    assert is_lora
    batch = run.tokenizer(["a fine film", "dull and long"], return_tensors="pt", padding=True)
    with torch.no_grad():
        torch.testing.assert_close(loaded.eval()(**batch).logits, result.model.eval()(**batch).logits, rtol=0, atol=0)


def test_twin_with_an_empty_forget_set_reproduces_the_adapter_exactly(lora_run):
    from hf_unlearn.training.replay import retrain_twin

    run = lora_run.run
    twin, _ = retrain_twin(run.model, run.tokenized["train"], run.log, [], tokenizer=run.tokenizer)
    ours = {n: p for n, p in run.model.named_parameters() if p.requires_grad}
    theirs = {n: p for n, p in twin.named_parameters() if p.requires_grad}
    assert ours.keys() == theirs.keys() and all(adapted(n) for n in ours)
    assert [n for n in ours if not torch.equal(ours[n], theirs[n])] == []
    assert all(torch.equal(t, lora_run.base[n]) for n, t in frozen_base_state(twin).items())


def test_unlearn_with_the_twin_and_evaluate_on_the_command_line(lora_run, tmp_path):
    from hf_unlearn.commands import evaluate as evaluate_cmd
    from hf_unlearn.commands import unlearn as unlearn_cmd

    run = lora_run.run
    out, report_dir = tmp_path / "unlearned", tmp_path / "evaluation"
    argv = ["--run", str(lora_run.dir), "--forget", str(lora_run.ids), "--method", "amnesiac"]
    assert unlearn_cmd.main([*argv, "--retrain_twin", "--output_dir", str(out), "--retain_eval_max", "20"]) == 0
    for name in (
        ADAPTER_CONFIG_FILE,
        ADAPTER_WEIGHTS_FILE,
        BASE_MODEL_FILE,
        f"{BASE_MODEL_DIRNAME}/model.safetensors",
    ):
        assert (out / name).is_file(), name
    assert read_manifest(out, kind="unlearned")["files"]
    report = json.loads((out / "report.json").read_text())
    assert report["base_model"] == "tiny-bert" and "retrain_twin" in report["metrics"]
    # the folder holds the same model as the method run in memory (amnesiac rollback is deterministic)
    expected = unlearn(
        run.model, lora_run.forget, lora_run.retain, method="amnesiac", log=run.log, tokenizer=run.tokenizer
    ).model
    loaded, is_lora = load_classifier(out, num_labels=2, attn_implementation=run.model_args.attn_implementation)
    assert is_lora
    batch = run.tokenizer(["a fine film", "dull and long"], return_tensors="pt", padding=True)
    with torch.no_grad():
        assert torch.equal(loaded.eval()(**batch).logits, expected.eval()(**batch).logits)
    assert all(torch.equal(t, lora_run.base[n]) for n, t in frozen_base_state(loaded).items())
    argv = ["--run", str(lora_run.dir), "--forget", str(lora_run.ids), "--unlearned", str(out)]
    assert evaluate_cmd.main([*argv, "--original", str(lora_run.dir), "--output_dir", str(report_dir)]) == 0
    again = json.loads((report_dir / "report.json").read_text())
    assert again["method"] == "amnesiac" and again["base_model"] == "tiny-bert"


def _copy_run(lora_run, dest):
    shutil.copytree(lora_run.dir, dest)
    return dest


def test_a_damaged_base_file_is_an_integrity_error(lora_run, tmp_path):
    from hf_unlearn.runs.unlearn import verify_run

    run_dir = _copy_run(lora_run, tmp_path / "run")
    weights = run_dir / BASE_MODEL_DIRNAME / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 1
    weights.write_bytes(bytes(data))
    with pytest.raises(IntegrityError, match="base_model/model.safetensors"):
        verify_run(run_dir)


def test_a_base_with_another_fingerprint_is_refused_in_one_line(lora_run, tmp_path, capsys):
    from safetensors.torch import load_file, save_file

    from hf_unlearn.commands import unlearn as unlearn_cmd
    from hf_unlearn.runs.run_folder import write_run_manifest

    run_dir = _copy_run(lora_run, tmp_path / "run")
    weights = run_dir / BASE_MODEL_DIRNAME / "model.safetensors"
    tensors = load_file(str(weights))
    name = next(n for n in tensors if "word_embeddings" in n)
    tensors[name] = tensors[name] + 1e-3  # another base under the same name, the manifest made to match
    save_file(tensors, str(weights), metadata={"format": "pt"})
    write_run_manifest(run_dir)
    with pytest.raises(ModelMismatchError, match="not the one the adapter"):
        load_classifier(run_dir, num_labels=2)
    out = tmp_path / "out"
    capsys.readouterr()
    code = unlearn_cmd.main(["--run", str(run_dir), "--forget", str(lora_run.ids), "--output_dir", str(out)])
    err = [line for line in capsys.readouterr().err.strip().splitlines() if not line.startswith("[hf-unlearn] ")]
    assert code == 2 and len(err) == 1 and "fingerprint" in err[0] and not out.exists()


def test_a_target_module_not_in_the_model_is_refused_before_any_write(tmp_path, capsys):
    from hf_unlearn.commands import train as train_cmd

    out = tmp_path / "run"
    argv = [*TRAIN[: TRAIN.index("--lora_target_modules")], "--lora_target_modules", "query", "q_lin"]
    assert train_cmd.main([*argv, "--output_dir", str(out)]) == 2
    err = [line for line in capsys.readouterr().err.strip().splitlines() if not line.startswith("[hf-unlearn] ")]
    assert len(err) == 1 and "--lora_target_modules q_lin" in err[0] and not out.exists()


@pytest.mark.parametrize(
    "given",
    [["query", "value"], ["query,value"], ["query, value,"], "query,value"],
    ids=["space-separated", "comma-separated", "spaces-and-trailing-comma", "yaml-string"],
)
def test_module_names_are_read_with_spaces_or_commas(given):
    from hf_unlearn.runs.config import ModelArguments

    args = ModelArguments(use_peft=True, lora_target_modules=given, lora_modules_to_save=given)
    assert args.lora_target_modules == ["query", "value"] == args.lora_modules_to_save
    assert args.lora_settings().target_modules == ["query", "value"]
    assert ModelArguments(use_peft=True).lora_target_modules is None


def test_load_classifier_loads_a_full_model_folder_as_is(tmp_path, tiny):
    _, _, fresh = tiny
    fresh().save_pretrained(tmp_path)
    model, is_lora = load_classifier(tmp_path)
    assert not is_lora and not is_lora_model(model)
