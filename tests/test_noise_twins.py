"""Noise twins on a tiny run: they never see the forget ids (their transcripts), differ from the retrain
twin by their seed only, are saved with an ``unlearn --retrain_twin`` output and reused, not retrained,
by ``evaluate --twin`` and by a later request on the same forget set; a different forget set is refused.

One tiny run (synthetic data, deltas recorded) is trained and served once per module.
"""

from __future__ import annotations

import importlib
import json

import pytest
from conftest import TINY_TRAIN_ARGS

from hf_unlearn.artifacts import read_manifest, sha256_file, verify_folder
from hf_unlearn.cli import main as cli
from hf_unlearn.data.forget import ForgetRequest
from hf_unlearn.training import UnlearningLog
from hf_unlearn.training.replay import retrain_twin
from hf_unlearn.training.retrain_noise import noise_twins

FORGET = ["canary-0000", "synthetic-train-00003", "synthetic-train-00007", "synthetic-train-00012"]
FAST = {"retain_eval_max": 20, "method_args": {"repair_epochs": 0.0}}


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """(run folder, unlearn output, its report): amnesiac with the retrain twin and 2 noise twins."""
    from hf_unlearn.runs.unlearn import unlearn_run

    root = tmp_path_factory.mktemp("noise")
    run = root / "run"
    assert cli(["train", *TINY_TRAIN_ARGS, "--output_dir", str(run), "--quiet"]) == 0
    out = root / "out"
    report = unlearn_run(run, ForgetRequest.from_ids(FORGET), "amnesiac", out, noise_twins=2, **FAST)
    return run, out, report


def test_noise_twins_never_see_the_forget_ids_and_differ_from_the_twin_by_their_seed_only(served, tmp_path):
    from hf_unlearn.runs.unlearn import load_run

    run = load_run(served[0])
    train = run.tokenized["train"]
    twin_dir, noise_dir = tmp_path / "twin", tmp_path / "noise"
    retrain_twin(run.model, train, run.log, FORGET, tokenizer=run.tokenizer, output_dir=twin_dir)
    (noise,) = noise_twins(run.model, train, run.log, FORGET, 1, tokenizer=run.tokenizer, output_dir=noise_dir)
    twin_log, noise_log = UnlearningLog(twin_dir), UnlearningLog(noise_dir / "noise_twin_1")
    retained = run.log.train_ids() - set(FORGET)
    assert noise_log.train_ids() == retained == twin_log.train_ids()  # the same retained set, no forget id
    assert not noise_log.train_ids() & set(FORGET)
    assert noise_log.meta["fingerprint"] == run.log.meta["fingerprint"] == twin_log.meta["fingerprint"]  # w_0
    assert noise_log.recorded_order() != twin_log.recorded_order()  # another data order
    seed = run.log.meta["training_args"]["seed"]
    assert noise.seed == seed + 1 == noise_log.meta["training_args"]["seed"]
    same = ("learning_rate", "num_train_epochs", "per_device_train_batch_size", "weight_decay", "sd_lambda")
    assert all(noise_log.meta["training_args"][k] == run.log.meta["training_args"][k] for k in same)


def test_the_report_has_the_noise_floor_the_do_nothing_baseline_the_verdict_and_no_forgotten_id(served):
    _, out, report = served
    floor, comp = report["noise_floor"], report["comparison"]
    assert floor["n_twins"] == 2 and len(floor["pairs"]) == 2 and floor["seeds"] == [43, 44]
    assert floor["method"]["tow"] == pytest.approx(comp["tow"])
    assert 0.0 <= comp["tow_original"] <= 1.0 and report["verdict"]["label"] and report["verdict"]["rule"]
    assert set(report["membership"]["models"]) == {"original", "unlearned", "retrain_twin"}
    assert report["membership"]["reference_models"] == 2 and report["schema_version"] == 4
    assert report["twins"]["saved"] == ["twins/retrain_twin", "twins/noise_twin_1", "twins/noise_twin_2"]
    assert (out / "plots" / "noise_floor.png").is_file()
    verify_folder(out)  # the twins are listed in the output's manifest
    for path in out.rglob("*"):
        if path.is_file() and path.suffix in (".json", ".md", ".txt"):
            assert not any(i in path.read_text(errors="ignore") for i in FORGET), path


def test_saved_twins_are_model_folders_evaluate_reuses_instead_of_retraining(served, tmp_path, monkeypatch):
    from hf_unlearn.runs.evaluate import evaluate_run
    from hf_unlearn.training import replay

    noise_module = importlib.import_module("hf_unlearn.training.retrain_noise")

    run, out, report = served
    twin = out / "twins" / "retrain_twin"
    record = read_manifest(twin)
    assert record["kind"] == "twin" and record["extra"]["forget"] == {
        "count": 4,
        "commitment": report["forget"]["commitment"],
    }
    assert (twin / "model.safetensors").is_file() and read_manifest(out / "twins" / "noise_twin_2")["extra"]["seeds"][
        0
    ] == 44
    before = {p: sha256_file(p) for p in (out / "twins").rglob("*") if p.is_file()}

    def no_training(*args, **kwargs):
        raise AssertionError("a saved twin was retrained")

    monkeypatch.setattr(noise_module, "noise_twin", no_training)
    monkeypatch.setattr(replay, "retrain_twin", no_training)
    again = evaluate_run(
        run, ForgetRequest.from_ids(FORGET), out, tmp_path / "eval", twin=twin, noise_twins=2, retain_eval_max=20
    )
    assert again["twins"] == {"retrain_twin": "given", "noise_twins": {"trained": 0, "reused": 2}}
    for key in ("tow", "tow_mia"):
        assert again["noise_floor"]["against_twin"][key]["mean"] == pytest.approx(
            report["noise_floor"]["against_twin"][key]["mean"]
        )
    assert {p: sha256_file(p) for p in (out / "twins").rglob("*") if p.is_file()} == before
    with pytest.raises(ValueError, match="another forget set"):
        evaluate_run(run, ForgetRequest.from_ids(FORGET[:2]), out, tmp_path / "e2", twin=twin, retain_eval_max=20)


def test_a_later_request_on_the_same_forget_set_reuses_the_saved_twins(served, tmp_path, monkeypatch):
    from hf_unlearn.runs.unlearn import unlearn_run
    from hf_unlearn.training import replay

    noise_module = importlib.import_module("hf_unlearn.training.retrain_noise")

    def no_training(*args, **kwargs):
        raise AssertionError("a saved twin was retrained")

    monkeypatch.setattr(noise_module, "noise_twin", no_training)
    monkeypatch.setattr(replay, "retrain_twin", no_training)
    request = ForgetRequest.from_ids(FORGET)
    later = unlearn_run(served[0], request, "amnesiac", tmp_path / "later", noise_twins=1, **FAST)
    assert later["twins"]["retrain_twin"] == "reused" and later["twins"]["noise_twins"] == {"trained": 0, "reused": 1}
    assert "retrain_s" not in later["timings"] and "noise_twins_s" not in later["timings"]
    saved = json.loads((tmp_path / "later" / "report.json").read_text())["twins"]
    assert saved["saved"] == ["twins/retrain_twin", "twins/noise_twin_1"]


def test_noise_twins_need_a_retrain_twin_before_any_work(served, tmp_path):
    from hf_unlearn.runs.unlearn import unlearn_run

    with pytest.raises(ValueError, match="add --retrain_twin"):
        unlearn_run(
            served[0], ForgetRequest.from_ids(FORGET), "amnesiac", tmp_path / "x", with_twin=False, noise_twins=2
        )
    assert not (tmp_path / "x").exists()
