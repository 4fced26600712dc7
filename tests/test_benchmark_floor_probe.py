"""``benchmarks/floor_probe.py``: its settings grid, and its refusals before any work (no model runs); the same
refusals for ``benchmarks/retrain_pace.py``."""

from __future__ import annotations

import pytest
from conftest import benchmark_module


@pytest.fixture(scope="module")
def probe():
    with benchmark_module("floor_probe.py") as module:
        yield module


def test_grid_gives_every_combination_with_the_fixed_options(probe):
    runs = probe.settings(["precondition=adam,none", "scale=1,4"], ["eta=0.01"])
    assert runs == [
        {"eta": "0.01", "precondition": "adam", "scale": "1"},
        {"eta": "0.01", "precondition": "adam", "scale": "4"},
        {"eta": "0.01", "precondition": "none", "scale": "1"},
        {"eta": "0.01", "precondition": "none", "scale": "4"},
    ]
    assert probe.settings([], []) == [{}]  # the method's defaults
    with pytest.raises(SystemExit, match="expected key=value"):
        probe.settings(["scale"], [])


STUDY = ["--floor", "--seeds", "0", "--forget-sets", "pct1"]


def test_refuses_without_one_kept_seed_and_set(probe, tmp_path):
    with pytest.raises(SystemExit, match="--work-dir DIR with one --seeds S and one --forget-sets SET"):
        probe.main(["--method", "ssd", *STUDY])  # no --work-dir: nothing is kept to load
    with pytest.raises(SystemExit, match="one --seeds S"):
        probe.main(
            ["--method", "ssd", "--floor", "--seeds", "0,1", "--forget-sets", "pct1", "--work-dir", str(tmp_path)]
        )
    assert list(tmp_path.iterdir()) == []


def test_refuses_a_bad_setting_before_any_work(probe, tmp_path):
    argv = ["--method", "single_gradient", "--grid", "precondition=adam,rmsprop", *STUDY, "--work-dir", str(tmp_path)]
    with pytest.raises(SystemExit, match="precondition must be one of"):
        probe.main(argv)
    with pytest.raises(SystemExit, match="no_such_method"):
        probe.main(["--method", "no_such_method", *STUDY, "--work-dir", str(tmp_path)])
    assert list(tmp_path.iterdir()) == []


@pytest.fixture(scope="module")
def pace():
    with benchmark_module("retrain_pace.py") as module:
        yield module


def test_retrain_pace_refuses_without_one_kept_seed_and_set_or_a_repeat(pace, tmp_path):
    for argv in (
        STUDY,  # no --work-dir: no kept original to time
        ["--floor", "--seeds", "0,1", "--forget-sets", "pct1", "--work-dir", str(tmp_path)],
        [*STUDY, "--work-dir", str(tmp_path), "--repeats", "0"],
    ):
        with pytest.raises(SystemExit, match="one --seeds S, one --forget-sets SET, --repeats >= 1"):
            pace.main(argv)
    assert list(tmp_path.iterdir()) == []
