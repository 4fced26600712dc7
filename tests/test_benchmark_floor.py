"""The noise-floor benchmark's aggregation (``benchmarks/floor_figures.py``, ``floor.py --merge``, ``floor_tables.py``) on constructed numbers: no model runs."""

from __future__ import annotations

import importlib

import pytest
from conftest import benchmark_module


@pytest.fixture(scope="module")
def floor():
    with benchmark_module("floor.py") as module:
        yield module


@pytest.fixture(scope="module")
def figures(floor):
    return importlib.import_module("floor_figures")  # on the path while ``floor`` is


def _pair(tow, tow_mia, forget=0.0, retain=0.0, test=0.0, mia=0.0):
    return {
        "tow": tow,
        "tow_mia": tow_mia,
        "forget_acc_gap": forget,
        "retain_acc_gap": retain,
        "test_acc_gap": test,
        "mia_gap": mia,
    }


def _method(tow, tow_mia, cost, exposure_gap=0.05, **gaps):
    return dict(_pair(tow, tow_mia, **gaps), cost_fraction=cost, exposure_gap=exposure_gap, verdict="v")


def _record(seed, noise, best, nothing, exposure_gap):
    return {
        "seed": seed,
        "forget_set": "pct1",
        "forget_count": 50,
        "canaries_forgotten": 4,
        "retrain_s": 100.0 + seed,
        "noise_twin_s": 90.0,
        "noise": noise,
        "noise_exposure_gaps": [0.02, 0.04],
        "exposure": {"original": 5.0, "retrain_twin": 1.5},
        "methods": {
            "neggrad_plus": _method(*best, exposure_gap=exposure_gap),
            "do_nothing": _method(*nothing),
            "ssd": {"error": "cannot run"},
        },
        "calibration": {
            "choice": {"method": "neggrad_plus", "options": {"max_steps": 8}, "tow_mean": 0.9, "cost_fraction": 0.04},
            "cost_retrains": 3.0 + seed,
            "candidates": 40,
        },
    }


def test_floor_figures_means_mins_and_margins(figures):
    records = [
        _record(
            0,
            [_pair(0.98, 0.96), _pair(0.96, 0.90)],
            (0.97, 0.93, 0.04),
            (0.90, 0.80, 0.0),
            0.2,
        ),
        _record(1, [_pair(0.99, 0.97), _pair(0.97, 0.95)], (0.95, 0.91, 0.02), (0.92, 0.82, 0.0), 0.0),
    ]
    figs = {name: (value, cfg) for name, value, _, cfg in figures.floor_figures(records)}
    # noise floor: mean over seeds of the per-seed mean / min over the noise twins
    assert figs["pct1/noise_floor_tow"][0] == pytest.approx((0.97 + 0.98) / 2)
    assert figs["pct1/noise_floor_tow_min"][0] == pytest.approx((0.96 + 0.97) / 2)
    assert figs["pct1/noise_floor_tow_mia_min"][0] == pytest.approx((0.90 + 0.95) / 2)
    # per method: mean, sample SD over seeds, cost; do-nothing is a method row; an error row is counted, not averaged
    assert figs["pct1/neggrad_plus/tow_mean"][0] == pytest.approx(0.96)
    assert figs["pct1/neggrad_plus/tow_sd"][0] == pytest.approx(0.0141421356, rel=1e-6)
    assert figs["pct1/neggrad_plus/cost_fraction"][0] == pytest.approx(0.03)
    assert figs["pct1/do_nothing/tow_mean"][0] == pytest.approx(0.91)
    assert figs["pct1/ssd/tow_mean"][0] is None and len(figs["pct1/ssd/tow_mean"][1]["errors"]) == 2
    # the budget best against the rule's floor (the min), with the margin to the mean floor beside it
    value, cfg = figs["pct1/tow_minus_floor"]
    assert value == pytest.approx(0.96 - 0.965)
    assert cfg["minus_mean_floor"] == pytest.approx(0.96 - 0.975)
    assert cfg["met"] is False and cfg["target"] == ">= 0"
    assert figs["pct1/tow_mia_minus_floor"][0] == pytest.approx(0.92 - 0.925)
    assert figs["pct1/exposure_gap"][0] == pytest.approx(0.1)
    assert figs["pct1/exposure_gap"][1]["met"] is True
    assert figs["pct1/exposure_gap_noise"][0] == pytest.approx(0.03)
    # the same gaps in bits (ratio x the twin's 1.5 bits, as these records keep only the ratio)
    assert figs["pct1/exposure_diff_bits"][0] == pytest.approx((0.2 * 1.5 + 0.0) / 2)
    assert figs["pct1/exposure_diff_bits_noise"][0] == pytest.approx((0.02 + 0.04) * 1.5 / 2)
    assert figs["pct1/calibration_cost"][0] == pytest.approx(3.5)


def test_exposure_in_bits_is_read_where_the_twins_exposure_is_zero_and_the_ratio_is_not(figures):
    rec = _record(0, [_pair(0.98, 0.96), _pair(0.96, 0.90)], (0.97, 0.93, 0.04), (0.90, 0.80, 0.0), None)
    rec["exposure"] = {"original": 5.0, "retrain_twin": 0.0, "noise_twin_1": 0.5, "noise_twin_2": 1.5}
    rec["noise_exposure_gaps"] = [None, None]  # the ratio divides by the twin's 0 bits
    rec["methods"]["neggrad_plus"]["exposure"] = 2.0
    figs = {name: (value, cfg) for name, value, _, cfg in figures.floor_figures([rec])}
    assert figs["pct1/exposure_gap"][0] is None
    assert figs["pct1/exposure_diff_bits"][0] == pytest.approx(2.0)
    assert figs["pct1/exposure_diff_bits_noise"][0] == pytest.approx(1.0)  # (0.5 + 1.5) / 2


def test_missed_target_names_the_factor_that_holds_tow_back(figures):
    noise = [_pair(0.99, 0.99, forget=1.0, retain=0.2, test=-0.3, mia=0.01)] * 2
    best = _method(0.9, 0.9, 0.04, forget=8.0, retain=-1.0, test=0.5, mia=0.02)
    mia_bad = _method(0.9, 0.8, 0.04, forget=1.0, retain=-1.0, test=0.5, mia=-0.15)
    cfg = figures.target_config("budget_best_tow_mean", 0.9, [best], noise)
    assert cfg["met"] is False
    assert cfg["held_back_by"]["factor"] == "forget"
    assert cfg["held_back_by"]["value"] == pytest.approx(0.92)
    assert cfg["held_back_by"]["noise_twins_value"] == pytest.approx(0.99)
    assert "above" in cfg["held_back_by"]["says"]
    mia_cfg = figures.target_config("budget_best_tow_mia_mean", 0.8, [mia_bad], noise)
    assert mia_cfg["held_back_by"]["factor"] == "mia" and "below" in mia_cfg["held_back_by"]["says"]
    assert "held_back_by" not in figures.target_config("budget_best_tow_mean", 0.98, [best], noise)


def test_a_factor_off_on_both_sides_says_its_mean_distance_not_a_zero_signed_gap(figures):
    """Seeds 0.1 above, 0.1 below and at the twin's MIA efficacy: 0.0667 off on average, signed mean 0."""
    noise = [_pair(0.9, 0.85, mia=0.15)] * 2
    rows = [_method(0.98, 0.9, 0.04, mia=m) for m in (0.1, -0.1, 0.0)]
    held = figures.target_config("budget_best_tow_mia_mean", 0.91, rows, noise)["held_back_by"]
    assert held["factor"] == "mia" and held["value"] == pytest.approx(1 - 0.2 / 3)
    assert "MIA efficacy 0.0667 from the twin's on average, on both sides (signed mean +0)" in held["says"]


def _results_file(floor, folder, name, records, **protocol):
    import json

    cfg = {"model": "tiny-bert", "train": 5000, "budget": 0.05, "pseudo_requests": 2, "quick": False, **protocol}
    fig = {"bench": floor.BENCH, "figure": "pct1/noise_floor_tow", "value": 1.0, "unit": "", "config": cfg}
    total = {"bench": floor.BENCH, "figure": "total_time", "value": 100.0, "unit": "s", "config": cfg}
    path = folder / f"{name}.json"
    path.write_text(json.dumps({"name": name, "command": "x", "records": [fig, total], "per_seed": records}))
    return path


def _seed(seed, tow):
    return _record(seed, [_pair(0.98, 0.96), _pair(0.96, 0.90)], (tow, 0.93, 0.04), (0.90, 0.80, 0.0), 0.1)


def test_merge_gives_the_figures_over_the_seeds_of_several_files(floor, tmp_path, monkeypatch, capsys):
    import json

    common = importlib.import_module("_common")
    monkeypatch.setattr(common, "RESULTS_DIR", tmp_path)
    monkeypatch.setattr(common, "_RECORDS", [])
    a = _results_file(floor, tmp_path, "s0", [_seed(0, 0.97)])
    b = _results_file(floor, tmp_path, "s1", [_seed(1, 0.95)])
    floor.merge_results([str(a), "s1.json"], "merged", lambda msg: None)
    out = json.loads((tmp_path / "merged.json").read_text())
    figs = {r["figure"]: r for r in out["records"]}
    assert figs["pct1/budget_best_tow_mean"]["value"] == pytest.approx(0.96)
    assert figs["pct1/budget_best_tow_mean"]["config"]["seeds"] == [0, 1]
    assert figs["total_time"]["value"] == 200.0
    assert [m["seeds"] for m in out["merged_from"]] == [[0], [1]]
    assert [r["seed"] for r in out["per_seed"]] == [0, 1]
    # another protocol, or a seed twice: refused in one line, nothing written
    c = _results_file(floor, tmp_path, "s2", [_seed(2, 0.9)], pseudo_requests=3)
    with pytest.raises(SystemExit, match="s2.json ran another protocol than s0.json \\(pseudo_requests\\)"):
        floor.merge_results([str(a), str(c)], "bad", lambda msg: None)
    with pytest.raises(SystemExit, match="a seed appears in two files"):
        floor.merge_results([str(a), str(b), str(a)], "bad", lambda msg: None)
    with pytest.raises(SystemExit, match="is not a results file of --floor"):
        floor.merge_results([str(a), str(tmp_path / "missing.json")], "bad", lambda msg: None)
    assert not (tmp_path / "bad.json").exists()
    # an interrupted study's partial file (its finished records) merges like a results file
    cfg = next(r["config"] for r in json.loads(a.read_text())["records"] if r["figure"] == "total_time")
    floor.write_partial("s3", [_seed(3, 0.99)], cfg)
    floor.merge_results([str(a), "s3.partial.json"], "with_partial", lambda msg: None)
    merged = json.loads((tmp_path / "with_partial.json").read_text())
    assert [r["seed"] for r in merged["per_seed"]] == [0, 3]


def test_tables_show_every_method_the_choice_and_the_missed_targets(floor, figures, tmp_path, capsys):
    import json

    tables = importlib.import_module("floor_tables")
    rec = _seed(0, 0.90)
    rec["methods"]["neggrad_plus"]["forget_acc_gap"] = 8.0
    lines = [
        {"bench": floor.BENCH, "figure": name, "value": value, "unit": unit, "config": cfg}
        for name, value, unit, cfg in figures.floor_figures([rec])
    ]
    path = tmp_path / "s0.json"
    path.write_text(json.dumps({"name": "s0", "command": "x", "records": lines, "per_seed": [rec]}))
    assert tables.main([str(path)]) == 0
    out = capsys.readouterr().out
    assert "noise floor ToW mean 0.9700 / min 0.9600" in out and "calibration 3.00 retrains (40 candidates)" in out
    assert "| neggrad_plus | 0.9000 | 0.9300 | 0.0400 | v |" in out
    assert "| ssd | - | - | - | could not run: cannot run | |" in out
    assert "Calibration's choice: neggrad_plus" in out
    row = next(line for line in out.splitlines() if line.startswith("| `budget_best_tow_mean`"))
    assert "| 0.9000 | >= 0.97 | False | forget accuracy 8 points above the twin's" in row
    assert next(line for line in out.splitlines() if line.startswith("| `exposure_gap`")).endswith(
        "| True | in bits: budget best 0.15 from the twin's 1.50, noise twins 0.04 |"
    )
    bad = tmp_path / "bad.json"
    bad.write_text("[]")
    assert tables.main([str(bad)]) == 2
    assert "is not a --floor results file" in capsys.readouterr().err


def test_tables_give_each_method_over_the_seeds_when_a_file_holds_several(floor, figures, tmp_path, capsys):
    import json

    tables = importlib.import_module("floor_tables")
    recs = [_seed(0, 0.90), _seed(1, 0.96)]
    lines = [
        {"bench": floor.BENCH, "figure": name, "value": value, "unit": unit, "config": cfg}
        for name, value, unit, cfg in figures.floor_figures(recs)
    ]
    path = tmp_path / "two.json"
    path.write_text(json.dumps({"name": "two", "command": "x", "records": lines, "per_seed": recs}))
    assert tables.main([str(path)]) == 0
    out = capsys.readouterr().out
    assert "Each method over seeds [0, 1], `pct1`:" in out
    row = next(line for line in out.splitlines() if line.startswith("| neggrad_plus | 0.9300 ("))
    assert row.startswith("| neggrad_plus | 0.9300 (0.900 / 0.960) | 0.9300 | 0.0424 |")
    single = tmp_path / "one.json"
    single.write_text(json.dumps({"name": "one", "command": "x", "records": lines[:0], "per_seed": recs[:1]}))
    assert tables.main([str(single)]) == 0
    assert "Each method over seeds" not in capsys.readouterr().out


def test_methods_cost_unit_is_a_retrain_of_their_own_process(floor, monkeypatch):
    """A twin trained in this process is the unit; a kept one was timed by an earlier process (maybe under
    another load), so a retrain is timed again, once, when a method first needs it."""
    from types import SimpleNamespace

    from hf_unlearn.runs import calibration_progress

    timed, said = [], []
    monkeypatch.setattr(calibration_progress, "time_a_retrain", lambda run, ids: timed.append(list(ids)) or 7.0)
    trained = SimpleNamespace(origin={"retrain_twin": "trained", "noise_twin_1": "trained"})
    assert floor.process_unit(None, ["a"], trained, 100.0, said.append)() == 100.0 and timed == []
    unit = floor.process_unit(None, ["a", "b"], SimpleNamespace(origin={"retrain_twin": "reused"}), 100.0, said.append)
    assert timed == []  # nothing is timed unless a method runs
    assert unit() == 7.0 and unit() == 7.0 and timed == [["a", "b"]]
    assert "(retrained in 100.0 s then); a retrain timed now: 7.0 s" in said[-1]
