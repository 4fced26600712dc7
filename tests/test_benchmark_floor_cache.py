"""The floor study's resume cache (``benchmarks/floor_cache.py``): what it keeps and when it lets go."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch

BENCH_DIR = Path(__file__).resolve().parent.parent / "benchmarks"
PROTOCOL = {"model": "tiny-bert", "train": 5000, "quick": False}


@pytest.fixture(scope="module")
def cache_module():
    sys.path.insert(0, str(BENCH_DIR))
    try:
        import floor_cache

        yield floor_cache
    finally:
        sys.path.remove(str(BENCH_DIR))


def test_a_cache_is_kept_for_the_same_original_and_discarded_for_another(cache_module, tmp_path):
    said = []
    first = cache_module.SeedCache(tmp_path, 3, PROTOCOL, said.append)
    first.check_original("aa")
    first.write("pct1", "calibration", {"choice": None})
    again = cache_module.SeedCache(tmp_path, 3, PROTOCOL, said.append)
    again.check_original("aa")
    assert again.read("pct1", "calibration") == {"choice": None} and "resuming" in said[-1]
    other = cache_module.SeedCache(tmp_path, 3, PROTOCOL, said.append)
    other.check_original("bb")  # another original: nothing of the first is used
    assert other.read("pct1", "calibration") is None and "discarded" in said[-1]
    changed = cache_module.SeedCache(tmp_path, 3, dict(PROTOCOL, train=100), said.append)
    changed.check_original("bb")  # another protocol, same digest
    assert "discarded" in said[-1]


def test_method_rows_round_trip_as_plain_numbers(cache_module, tmp_path):
    cache = cache_module.SeedCache(tmp_path, 0, PROTOCOL, lambda _: None)
    cache.check_original("aa")
    rows = cache.bind("small")
    assert rows.rows() == {}
    fresh = cache_module.plain({"neggrad": {"tow": np.float32(0.5), "steps": np.int64(3), "options": {"alpha": 0.9}}})
    rows.save(fresh)
    assert rows.rows() == fresh == {"neggrad": {"tow": 0.5, "steps": 3, "options": {"alpha": 0.9}}}
    assert type(fresh["neggrad"]["tow"]) is float and type(fresh["neggrad"]["steps"]) is int


def test_twins_come_back_as_copies_of_the_template_with_their_weights(cache_module, tmp_path):
    torch.manual_seed(0)
    template, twin, noise = torch.nn.Linear(4, 2), torch.nn.Linear(4, 2), torch.nn.Linear(4, 2)
    cache = cache_module.SeedCache(tmp_path, 0, PROTOCOL, lambda _: None)
    cache.check_original("aa")
    assert cache.read_twins("pct1", template) is None
    models = {"retrain_twin": twin, "noise_twin_1": noise}
    cache.write_twins("pct1", models, {"retrain_s": 12.5}, {"noise_twin_1": (1, 1)})
    back, timings, seeds = cache.read_twins("pct1", template)
    assert list(back) == ["retrain_twin", "noise_twin_1"] and timings == {"retrain_s": 12.5}
    assert seeds == {"noise_twin_1": (1, 1)}
    for name, model in models.items():
        assert back[name] is not template and torch.equal(back[name].weight, model.weight)
    assert not torch.equal(template.weight, twin.weight)


def test_without_a_work_dir_nothing_is_kept(cache_module, tmp_path):
    cache = cache_module.SeedCache(None, 0, PROTOCOL, lambda _: None)
    cache.check_original("aa")
    cache.write("pct1", "calibration", {"x": 1})
    cache.write_twins("pct1", {"retrain_twin": torch.nn.Linear(2, 2)}, {}, {})
    assert cache.read("pct1", "calibration") is None and cache.read_twins("pct1", torch.nn.Linear(2, 2)) is None
    assert not list(tmp_path.iterdir())


def test_without_the_weights_rows_stand_only_for_twins_with_the_recorded_digests(cache_module, tmp_path):
    said = []
    torch.manual_seed(0)
    template, twin = torch.nn.Linear(4, 2), torch.nn.Linear(4, 2)
    cache = cache_module.SeedCache(tmp_path, 0, PROTOCOL, said.append)
    cache.check_original("aa")
    assert cache.twins_match("pct1", {"retrain_twin": twin})  # no rows kept: nothing to protect
    cache.write_twins("pct1", {"retrain_twin": twin}, {"retrain_s": 1.0}, {})
    cache.bind("pct1").save({"neggrad": {"tow": 0.9}})
    (tmp_path / "seed0" / "pct1.twins.safetensors").unlink()  # the folder kept without its weights
    assert cache.read_twins("pct1", template) is None  # so the twins are retrained
    same = torch.nn.Linear(4, 2)
    same.load_state_dict(twin.state_dict())
    assert cache.twins_match("pct1", {"retrain_twin": same}) and "stand" in said[-1]
    assert cache.bind("pct1").rows() == {"neggrad": {"tow": 0.9}}
    other = torch.nn.Linear(4, 2)  # another draw: not the twin the rows were scored against
    assert not cache.twins_match("pct1", {"retrain_twin": other}) and "run again" in said[-1]
    assert cache.bind("pct1").rows() == {}
    # rows kept by a version that recorded no digests cannot be matched either
    cache.bind("small").save({"neggrad": {"tow": 0.5}})
    cache.write("small", "twins", {"names": ["retrain_twin"], "timings": {}, "seeds": {}})
    assert not cache.twins_match("small", {"retrain_twin": same}) and cache.bind("small").rows() == {}


def test_a_kept_original_is_loaded_only_with_the_recorded_digest_and_protocol(cache_module, tmp_path):
    torch.manual_seed(0)
    template, trained = torch.nn.Linear(4, 2), torch.nn.Linear(4, 2)
    said = []
    cache = cache_module.SeedCache(tmp_path / "work", 0, PROTOCOL, said.append)
    assert cache.kept_original(template) is None  # nothing kept yet
    run_dir = tmp_path / "floor-seed0-x"
    (run_dir / "unlearning_log").mkdir(parents=True)
    (run_dir / "unlearning_log" / "manifest.json").write_text("{}")
    cache.check_original(cache_module.model_digest(trained))
    kept_dir = cache.keep_original(run_dir, trained, 12.5)
    assert (
        kept_dir == cache.dir / "run"
        and not run_dir.exists()
        and (kept_dir / "unlearning_log/manifest.json").is_file()
    )

    again = cache_module.SeedCache(tmp_path / "work", 0, PROTOCOL, said.append)
    model, folder, train_s = again.kept_original(template)
    assert folder == kept_dir and train_s == 12.5 and model is not template
    assert torch.equal(model.weight, trained.weight) and not torch.equal(template.weight, trained.weight)
    other = cache_module.SeedCache(tmp_path / "work", 0, dict(PROTOCOL, train=100), said.append)
    assert other.kept_original(template) is None  # another protocol: trained again

    with torch.no_grad():  # weights that no longer have the recorded digest are never used
        trained.weight.add_(1.0)
    from safetensors.torch import save_file

    save_file({k: v.contiguous() for k, v in trained.state_dict().items()}, str(kept_dir / "original.safetensors"))
    assert again.kept_original(template) is None and "do not have the recorded digest" in said[-1]


def test_without_a_work_dir_the_original_stays_where_it_was_trained(cache_module, tmp_path):
    cache = cache_module.SeedCache(None, 0, PROTOCOL, lambda _: None)
    assert cache.keep_original(tmp_path, torch.nn.Linear(2, 2), 1.0) == tmp_path
    assert cache.kept_original(torch.nn.Linear(2, 2)) is None and not list(tmp_path.iterdir())


def test_a_discarded_cache_says_what_differs(cache_module, tmp_path):
    said = []
    env = {"torch_threads": 2, "peft": "0.21.2"}
    cache_module.SeedCache(tmp_path, 1, PROTOCOL, said.append).check_original("aa", env)
    cache_module.SeedCache(tmp_path, 1, PROTOCOL, said.append).check_original("bb", dict(env, peft="0.22.0"))
    assert "environment: peft 0.21.2 -> 0.22.0); its cache is discarded" in said[-1]
    cache_module.SeedCache(tmp_path, 1, dict(PROTOCOL, train=100), said.append).check_original("bb", env)
    assert "(protocol: train)" in said[-1]


def test_a_record_without_its_environment_gains_it_on_resume(cache_module, tmp_path):
    import json

    cache = cache_module.SeedCache(tmp_path, 2, PROTOCOL, lambda _: None)
    cache.check_original("aa")  # a record written before environments were noted
    assert "environment" not in json.loads((tmp_path / "seed2" / "original.json").read_text())
    said = []
    cache_module.SeedCache(tmp_path, 2, PROTOCOL, said.append).check_original("aa", {"torch_threads": 2})
    assert "resuming" in said[-1]
    assert json.loads((tmp_path / "seed2" / "original.json").read_text())["environment"] == {"torch_threads": 2}
