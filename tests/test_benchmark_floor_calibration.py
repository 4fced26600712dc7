"""The floor study's calibration (``benchmarks/floor_calibration.py``): a kept calibration is topped up with
the methods it did not search, merged by ``calibrate.choose``'s order, and never re-searched whole; a search
stopped part-way resumes at the candidate it had not finished."""

from __future__ import annotations

import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

BENCH_DIR = Path(__file__).resolve().parent.parent / "benchmarks"


@pytest.fixture(scope="module")
def fc():
    sys.path.insert(0, str(BENCH_DIR))
    try:
        import floor_cache
        import floor_calibration

        yield floor_calibration, floor_cache
    finally:
        sys.path.remove(str(BENCH_DIR))


def _choice(method, tow, cost, mia=None):
    c = {"method": method, "options": {}, "tow_mean": tow, "cost_fraction": cost}
    return c if mia is None else dict(c, tow_mia_mean=mia)


def _calib(choice, methods, per_method, cost=10.0, digest="d1"):
    out = {
        "choice": choice, "per_method": per_method, "cost_retrains": cost, "retrain_s_mean": 100.0,
        "candidates": 4, "errors": [], "disjoint_from_eval": True, "draw_digest": digest,
        "results": [{"method": m, "tow_mean": 0.9} for m in methods or []],
    }  # fmt: skip
    return out if methods is None else dict(out, methods=methods)


def test_better_choice_follows_the_calibration_order(fc):
    floor_calibration, _ = fc
    kept = _choice("neggrad", 0.97731, 0.03)  # kept before ToW-MIA was recorded
    assert floor_calibration.better_choice(kept, _choice("per_sample_replay", 0.9801, 0.04, 0.98))["method"] == (
        "per_sample_replay"
    )
    assert (
        floor_calibration.better_choice(kept, _choice("per_sample_replay", 0.9773, 0.04, 0.99)) is kept
    )  # tie: cheaper
    assert floor_calibration.better_choice(kept, _choice("x", 0.9773, 0.01, 0.5))["method"] == "x"
    with_mia = _choice("neggrad", 0.9773, 0.03, 0.90)
    assert floor_calibration.better_choice(with_mia, _choice("x", 0.9773, 0.04, 0.95))["method"] == "x"
    assert floor_calibration.better_choice(None, kept) is kept and floor_calibration.better_choice(kept, None) is kept


def test_a_kept_calibration_is_topped_up_with_only_the_methods_it_did_not_search(fc, tmp_path, monkeypatch):
    floor_calibration, floor_cache = fc
    said, searched = [], []
    cache = floor_cache.SeedCache(tmp_path, 0, {"quick": True}, said.append)
    cache.check_original("aa")
    old = _calib(_choice("neggrad", 0.97, 0.03), None, {"neggrad": {"max_steps": 1}})  # written before "methods"
    cache.write("pct1", "calibration", old)

    def fake(run, eval_ids, count, a, seed, say, methods, *kept):
        searched.append(list(methods))
        new = _choice("per_sample_replay", 0.99, 0.04, 0.99)
        out = _calib(new, list(methods), {"per_sample_replay": {"correction_scale": 1.5}}, cost=0.5)
        return dict(out, spaces=floor_calibration.study_space(list(methods), False))

    monkeypatch.setattr(floor_calibration, "calibrate_other_sets", fake)
    a = SimpleNamespace(floor_methods=["neggrad", "per_sample_replay", "ssd"])
    calib = floor_calibration.calibration_for(None, "pct1", set(), 7, a, 0, said.append, cache)
    assert searched == [["per_sample_replay"]]  # neggrad and ssd were in the space the kept one searched
    assert calib["choice"]["method"] == "per_sample_replay" and calib["cost_retrains"] == pytest.approx(10.5)
    assert calib["per_method"] == {"neggrad": {"max_steps": 1}, "per_sample_replay": {"correction_scale": 1.5}}
    assert [t["methods"] for t in calib["topped_up"]] == [["per_sample_replay"]]
    assert "per_sample_replay" in calib["methods"]
    assert [r["method"] for r in calib["results"]] == ["per_sample_replay"]  # the kept one held none
    assert cache.read("pct1", "calibration") == calib
    # searched everything now: kept as is, nothing searched again
    assert floor_calibration.calibration_for(None, "pct1", set(), 7, a, 0, said.append, cache) == calib
    assert searched == [["per_sample_replay"]]
    # a top-up drawn on other pseudo-requests is refused in one line
    with pytest.raises(SystemExit, match="drawn on other pseudo-requests"):
        floor_calibration.top_up(old, _calib(None, ["ssd"], {}, digest="d2"))


@pytest.mark.parametrize("kept_best", ["single_gradient", "neggrad"])
def test_a_method_whose_space_changed_is_searched_again_whole(fc, tmp_path, monkeypatch, kept_best):
    """single_gradient gained ``precondition``: a calibration kept before (its space not recorded) searches it
    again, and only it; its kept figures and choice give way to the new search's."""
    floor_calibration, floor_cache = fc
    said, searched = [], []
    cache = floor_cache.SeedCache(tmp_path, 0, {"quick": False}, said.append)
    cache.check_original("aa")
    best = _choice(kept_best, 0.98 if kept_best == "single_gradient" else 0.99, 0.01, 0.9)
    per_method = {"neggrad": {"max_steps": 1}, "single_gradient": {"scale": 4.0}}
    earlier = {"methods": ["neggrad"], "cost_retrains": 2.0, "retrain_s_mean": 90.0, "candidates": 2}
    old = dict(_calib(best, ["neggrad", "single_gradient"], per_method), topped_up=earlier)  # one dict, as kept
    cache.write("pct1", "calibration", old)

    def fake(run, eval_ids, count, a, seed, say, methods, *kept):
        searched.append(list(methods))
        new = dict(_choice("single_gradient", 0.985, 0.002, 0.95), options={"precondition": "adam", "scale": 2.0})
        out = _calib(new, list(methods), {"single_gradient": new["options"]}, cost=0.5)
        return dict(out, spaces=floor_calibration.study_space(list(methods), False))

    monkeypatch.setattr(floor_calibration, "calibrate_other_sets", fake)
    a = SimpleNamespace(floor_methods=["neggrad", "single_gradient"], quick=False)
    calib = floor_calibration.calibration_for(None, "pct1", set(), 7, a, 0, said.append, cache)
    assert searched == [["single_gradient"]]  # neggrad's space is the one it was searched in
    assert "searched single_gradient in another space" in said[-1]
    assert calib["per_method"] == {
        "neggrad": {"max_steps": 1},
        "single_gradient": {"precondition": "adam", "scale": 2.0},
    }
    assert [r["method"] for r in calib["results"]] == ["neggrad", "single_gradient"]  # the old figures dropped
    assert calib["choice"]["method"] == ("single_gradient" if kept_best == "single_gradient" else "neggrad")
    assert calib["spaces"]["single_gradient"]["precondition"] == ["none", "adam"]
    assert calib["cost_retrains"] == pytest.approx(10.5) and calib["methods"] == ["neggrad", "single_gradient"]
    assert calib["candidates"] == 4  # the kept 4, less the 4 settings of single_gradient searched before, plus 4 new
    assert [t["methods"] for t in calib["topped_up"]] == [["neggrad"], ["single_gradient"]]  # the earlier one kept
    # recorded now: the same space is not searched again
    assert floor_calibration.calibration_for(None, "pct1", set(), 7, a, 0, said.append, cache) == calib
    assert searched == [["single_gradient"]]


class _Stop(Exception):
    """Stands for the process being stopped part-way through the search."""


def _run(n_train=40):
    from datasets import Dataset

    train = Dataset.from_dict({"id": [f"t{k}" for k in range(n_train)], "label": [k % 2 for k in range(n_train)]})
    test = Dataset.from_dict({"id": ["x0", "x1"], "label": [0, 1]})
    return SimpleNamespace(tokenized={"train": train, "test": test}, log=SimpleNamespace(steps=lambda: range(20)))


def test_a_stopped_search_resumes_at_the_next_candidate(fc, tmp_path, monkeypatch):
    from hf_unlearn.runs import calibrate as cal
    from hf_unlearn.runs import calibration_progress

    floor_calibration, floor_cache = fc
    cache = floor_cache.SeedCache(tmp_path, 0, {"quick": False}, lambda line: None)
    cache.check_original("aa")
    prepared, ran = [], []

    def fake_prepare(run, drawn, retain_eval_max):
        prepared.append(len(drawn))
        return [
            {"splits": {}, "retrain_s": 100.0, "twin_metrics": {"m": 1.0}, "do_nothing": {"tow": 0.5}} for _ in drawn
        ]

    def fake_candidate(run, requests, method, options, retrain_s, budget, stop_after=None):
        assert retrain_s == 100.0 and all(
            sorted(r) == ["do_nothing", "retrain_s", "splits", "twin_metrics"] for r in requests
        )
        if stop_after is not None and len(ran) == stop_after:
            raise _Stop
        ran.append((method, dict(options)))
        tow = 0.9 + options.get("scale", options.get("alpha", 0)) / 1000  # the largest setting wins
        return {"method": method, "options": options, "tow_mean": tow, "tow_mia_mean": tow, "tow_sd": 0.0,
                "cost_fraction": 0.01}  # fmt: skip

    monkeypatch.setattr(cal, "prepare_requests", fake_prepare)
    monkeypatch.setattr(cal, "run_candidate", lambda *args: fake_candidate(*args, stop_after=3))
    a = SimpleNamespace(
        pseudo_requests=2, quick=False, retain_eval=4, budget=0.05, floor_methods=["ssd", "single_gradient"]
    )
    run, said = _run(), []
    with pytest.raises(_Stop):
        floor_calibration.calibration_for(run, "pct1", {"t0"}, 3, a, 0, said.append, cache)
    progress = cache.read("pct1", floor_calibration.PROGRESS)
    assert [r["method"] for r in progress["results"]] == ["single_gradient"] * 3
    assert cache.read("pct1", "calibration") is None
    assert [sorted(r) for r in progress["requests"]] == [["do_nothing", "retrain_s", "twin_metrics"]] * 2  # no ids

    timed = []
    monkeypatch.setattr(cal, "run_candidate", fake_candidate)
    monkeypatch.setattr(calibration_progress, "time_a_retrain", lambda run, ids: timed.append(len(ids)) or 100.0)
    calib = floor_calibration.calibration_for(run, "pct1", {"t0"}, 3, a, 0, said.append, cache)
    assert prepared == [2]  # the pseudo-request twins were not retrained
    assert timed == [3]  # a retrain timed again in this process: the resumed candidates' unit (100 s here)
    assert len(ran) == 11 and len(set(map(str, ran))) == 11  # 3 + 8: no candidate ran twice
    assert calib["candidates"] == 11 and calib["choice"]["method"] == "ssd"  # alpha 30 scores 0.93
    assert calib["choice"]["options"] == {"alpha": 30.0} and calib["per_method"]["single_gradient"]["scale"] == 4.0
    assert cache.read("pct1", floor_calibration.PROGRESS) is None and cache.read("pct1", "calibration") == calib
    assert "resuming after 3 candidates" in said[-1]


DRAWN = [["t1", "t2"], ["t3", "t4"]]


def _kept_search(fc, tmp_path):
    floor_calibration, floor_cache = fc
    cache = floor_cache.SeedCache(tmp_path, 0, {}, lambda line: None)
    cache.check_original("aa")
    return cache, floor_calibration.KeptSearch(cache, "small", DRAWN, ["ssd"])


def test_kept_progress_stands_only_for_the_same_draw_and_methods(fc, tmp_path):
    floor_calibration, drawn = fc[0], DRAWN
    cache, kept = _kept_search(fc, tmp_path)
    kept.state["results"].append({"method": "ssd", "options": {"alpha": 3.0}, "tow_mean": 0.9})
    kept.save()
    assert len(floor_calibration.KeptSearch(cache, "small", drawn, ["ssd"]).done) == 1
    assert not floor_calibration.KeptSearch(cache, "small", [["t1", "t2"], ["t3", "t5"]], ["ssd"]).done
    assert not floor_calibration.KeptSearch(cache, "small", drawn, ["ssd", "scrub"]).done
    assert not floor_calibration.KeptSearch(None, "small", drawn, ["ssd"]).done  # no work dir: nothing kept


def test_kept_requests_get_the_splits_of_their_own_ids(fc, tmp_path, monkeypatch):
    from hf_unlearn.runs import calibration_progress

    _, kept = _kept_search(fc, tmp_path)
    kept.state["requests"] = [{"retrain_s": 9.0, "twin_metrics": {}, "do_nothing": {}}] * 2
    monkeypatch.setattr(calibration_progress, "time_a_retrain", lambda run, ids: 3.0)
    requests = kept.requests(_run(), DRAWN, 4)
    assert [sorted(r["splits"]["forget"]["id"]) for r in requests] == DRAWN
    assert kept.retrain_s == 3.0 and [r["retrain_s"] for r in requests] == [9.0, 9.0]  # the unit: timed now
    assert all(len(r["splits"]["retain"]) == 4 and "t1" not in r["splits"]["retain_full"]["id"] for r in requests[:1])
