"""The floor study's calibration (``benchmarks/floor_calibration.py``): a kept calibration is topped up with
the methods it did not search, merged by ``calibrate.choose``'s order, and never re-searched whole."""

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

    def fake(run, eval_ids, count, a, seed, say, methods):
        searched.append(list(methods))
        new = _choice("per_sample_replay", 0.99, 0.04, 0.99)
        return _calib(new, list(methods), {"per_sample_replay": {"correction_scale": 1.5}}, cost=0.5)

    monkeypatch.setattr(floor_calibration, "calibrate_other_sets", fake)
    a = SimpleNamespace(floor_methods=["neggrad", "per_sample_replay", "ssd"])
    calib = floor_calibration.calibration_for(None, "pct1", set(), 7, a, 0, said.append, cache)
    assert searched == [["per_sample_replay"]]  # neggrad and ssd were in the space the kept one searched
    assert calib["choice"]["method"] == "per_sample_replay" and calib["cost_retrains"] == pytest.approx(10.5)
    assert calib["per_method"] == {"neggrad": {"max_steps": 1}, "per_sample_replay": {"correction_scale": 1.5}}
    assert calib["topped_up"]["methods"] == ["per_sample_replay"] and "per_sample_replay" in calib["methods"]
    assert [r["method"] for r in calib["results"]] == ["per_sample_replay"]  # the kept one held none
    assert cache.read("pct1", "calibration") == calib
    # searched everything now: kept as is, nothing searched again
    assert floor_calibration.calibration_for(None, "pct1", set(), 7, a, 0, said.append, cache) == calib
    assert searched == [["per_sample_replay"]]
    # a top-up drawn on other pseudo-requests is refused in one line
    with pytest.raises(SystemExit, match="drawn on other pseudo-requests"):
        floor_calibration.top_up(old, _calib(None, ["ssd"], {}, digest="d2"))
