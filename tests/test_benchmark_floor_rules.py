"""Other calibration choice rules judged on a results file (``benchmarks/floor_rules.py``)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

BENCH_DIR = Path(__file__).resolve().parent.parent / "benchmarks"


@pytest.fixture
def rules(monkeypatch):
    monkeypatch.syspath_prepend(str(BENCH_DIR))  # the benchmark modules import each other by bare name
    import floor_rules

    return floor_rules


def _cand(method, tow, sd, mia, cost=0.01, **extra):
    return {"method": method, "options": {"k": tow}, "tow_mean": tow, "tow_sd": sd, "tow_mia_mean": mia,
            "cost_fraction": cost, **extra}  # fmt: skip


RESULTS = [
    _cand("neggrad", 0.97, 0.05, 0.88),  # best mean, unsteady, weak on ToW-MIA
    _cand("per_sample_replay", 0.96, 0.005, 0.96),  # steady
    _cand("scrub", 0.99, 0.0, 0.99, cost=0.2),  # over the budget: never chosen
    _cand("ssd", 0.995, 0.0, 0.995, over_budget=True),
    _cand("salun", 0.999, 0.0, 0.999, error="RuntimeError: x"),
]


def _record(methods):
    return {"seed": 0, "forget_set": "small", "calibration": {"results": RESULTS, "candidates": 5}, "methods": methods}


def test_each_rule_picks_by_its_own_key_within_the_budget(rules):
    assert rules.choose(RESULTS, 0.05, "mean")["method"] == "neggrad"
    assert rules.choose(RESULTS, 0.05, "worst")["method"] == "per_sample_replay"  # 0.955 > 0.92
    assert rules.choose(RESULTS, 0.05, "both")["method"] == "per_sample_replay"  # 0.96 > 0.88
    assert rules.choose(RESULTS[2:], 0.05, "mean") is None


def test_a_choice_is_judged_only_by_a_row_that_ran_its_options(rules):
    methods = {
        "neggrad": {"options": {"k": 0.97}, "tow": 0.81, "tow_mia": 0.95, "cost_fraction": 0.03},
        "per_sample_replay": {"options": {"k": 0.5}, "tow": 0.97, "tow_mia": 0.97, "cost_fraction": 0.04},
    }
    rows = {r["rule"]: r for r in rules.judged(_record(methods), 0.05)}
    assert rows["mean"]["evaluation"] == {"tow": 0.81, "tow_mia": 0.95, "cost_fraction": 0.03}
    assert rows["worst"]["choice"]["method"] == "per_sample_replay" and rows["worst"]["evaluation"] is None


def test_the_table_skips_calibrations_without_every_candidate(rules, tmp_path, capsys):
    partial = dict(_record({}), calibration={"results": RESULTS[:1], "candidates": 45}, seed=1)
    path = tmp_path / "r.json"
    path.write_text(json.dumps({"per_seed": [_record({}), partial]}))
    assert rules.main([str(path)]) == 0
    out = capsys.readouterr().out
    assert "| 0 | small | worst | per_sample_replay" in out and "1 of 45 candidates kept" in out
    (tmp_path / "bad.json").write_text("[]")
    assert rules.main([str(tmp_path / "bad.json")]) == 2
