"""A stopped ``hf-unlearn calibrate`` resumes at its next setting (``runs/calibration_progress.py``); the
progress it keeps is verified, stands only for the same settings, and holds no id; an existing
``calibration.json`` is replaced only with ``--overwrite``."""

from __future__ import annotations

import contextlib
import json
import math
import shutil

import pytest
from conftest import TINY_TRAIN_ARGS

TINY_RUN = [*TINY_TRAIN_ARGS, "--disable_tqdm", "true", "--learning_rate", "1e-3", "--lr_scheduler_type", "constant"]
SPACE = {"finetune": {"max_steps": (2,)}, "neggrad_plus": {"max_steps": (2,), "alpha": (0.99, 0.9)}}
SETTINGS = {"methods": ["finetune", "neggrad_plus"], "pseudo_requests": 2, "space": SPACE}


class Stop(Exception):
    """Stands for the process being stopped (a crash, a pre-empted job) in the middle of a candidate."""


def _calibrate(run, **kw):
    from hf_unlearn.runs import calibrate as cal

    return cal.calibrate_run(run, 3, **{"budget": 1000.0, **SETTINGS, **kw})


def _spied(monkeypatch, stop_at: int | None = None) -> dict:
    """Count the twins retrained and the candidates run; with ``stop_at``, stop inside that candidate."""
    from hf_unlearn.runs import calibrate as cal
    from hf_unlearn.runs import twins as runs_twins

    seen = {"twins": 0, "candidates": []}
    build_twin, run_candidate = runs_twins.build_twin, cal.run_candidate

    def spy_twin(*args):
        seen["twins"] += 1
        return build_twin(*args)

    def spy_candidate(run, requests, method, options, *args):
        seen["candidates"].append((method, options))
        if stop_at is not None and len(seen["candidates"]) == stop_at:
            raise Stop
        return run_candidate(run, requests, method, options, *args)

    monkeypatch.setattr(runs_twins, "build_twin", spy_twin)
    monkeypatch.setattr(cal, "run_candidate", spy_candidate)
    return seen


@pytest.fixture(scope="module")
def stopped(tmp_path_factory):
    """A tiny run calibrated whole (``whole``), and a copy of it whose calibration was stopped inside its
    second of three candidates (``run``)."""
    from hf_unlearn.commands import train as train_cmd

    root = tmp_path_factory.mktemp("progress")
    run = root / "run"
    assert train_cmd.main([*TINY_RUN, "--output_dir", str(run)]) == 0
    shutil.copytree(run, root / "whole")
    with pytest.MonkeyPatch.context() as mp:
        _spied(mp, stop_at=2)
        with pytest.raises(Stop):
            _calibrate(run)
    whole = _calibrate(root / "whole")
    return root, run, whole


def _figures(results: list[dict]) -> list[dict]:
    """Each candidate's method, options and scores: all but its cost, a wall time."""
    return [{k: v for k, v in r.items() if k != "cost_fraction"} for r in results]


def _fresh_copy(stopped, tmp_path):
    root, run, _ = stopped
    shutil.copytree(run, tmp_path / "run")
    return tmp_path / "run"


def test_a_stopped_calibration_keeps_its_twins_figures_and_finished_settings_without_ids(stopped):
    from hf_unlearn.training.unlearning_log import UnlearningLog

    _, run, _ = stopped
    path = run / "calibration_progress.json"
    assert not (run / "calibration.json").exists() and path.is_file()
    progress = json.loads(path.read_text())
    assert len(progress["requests"]) == 2 and all(r["retrain_s"] > 0 for r in progress["requests"])
    assert [r["method"] for r in progress["results"]] == ["finetune"]  # the second was stopped unfinished
    text = path.read_text()
    assert not [i for i in UnlearningLog(run).train_ids() if f'"{i}"' in text]  # no id, only commitments


def test_started_again_it_resumes_at_the_stopped_setting_and_chooses_as_an_unbroken_one(stopped, tmp_path):
    run = _fresh_copy(stopped, tmp_path)
    whole = stopped[2]
    with pytest.MonkeyPatch.context() as mp:
        seen = _spied(mp)
        record = _calibrate(run)
    assert seen["twins"] == 0  # the pseudo-request twins are not retrained
    assert [m for m, _ in seen["candidates"]] == ["neggrad_plus", "neggrad_plus"]  # finetune is not run again
    assert _figures(record["candidates"]) == _figures(whole["candidates"])
    assert _figures([record["choice"]]) == _figures([whole["choice"]])
    assert record["do_nothing"] == whole["do_nothing"] and record["cost_retrains"] > 0
    assert not (run / "calibration_progress.json").exists()  # removed once calibration.json is written
    assert json.loads((run / "calibration.json").read_text())["choice"] == record["choice"]


@pytest.mark.parametrize(
    "other, words",
    [
        ({"budget": 0.5}, "with another budget;"),
        ({"seed": 1}, "with another pseudo-request draw (seed, size or number);"),
        ({"methods": ["finetune"]}, "with another method list;"),
        ({"space": None}, "with another search space;"),
    ],
)
def test_other_settings_are_refused_while_one_is_in_progress(stopped, tmp_path, other, words, monkeypatch):
    from hf_unlearn.runs.calibrate import CalibrationError

    run = _fresh_copy(stopped, tmp_path)
    before = (run / "calibration_progress.json").read_bytes()
    seen = _spied(monkeypatch)
    with pytest.raises(CalibrationError, match="--restart") as caught:
        _calibrate(run, **other)
    assert words in str(caught.value) and seen == {"twins": 0, "candidates": []}
    assert (run / "calibration_progress.json").read_bytes() == before and not (run / "calibration.json").exists()


def test_the_command_says_so_in_one_line(stopped, tmp_path, capsys):
    from hf_unlearn.commands import calibrate as calibrate_cmd

    run = _fresh_copy(stopped, tmp_path)
    argv = ["--run", str(run), "--request_size", "3", "--pseudo_requests", "2", "--methods", "finetune,neggrad_plus"]
    assert calibrate_cmd.main(argv) == 2
    err = [line for line in capsys.readouterr().err.strip().splitlines() if not line.startswith("[hf-unlearn]")]
    assert len(err) == 1 and "holds a calibration in progress with another search space, budget;" in err[0]


def test_a_damaged_progress_file_is_refused_and_restart_discards_it(stopped, tmp_path, monkeypatch):
    from hf_unlearn.artifacts import IntegrityError

    run = _fresh_copy(stopped, tmp_path)
    path = run / "calibration_progress.json"
    progress = json.loads(path.read_text())
    progress["results"][0]["tow_mean"] = 1.0  # a forged figure would decide the choice
    path.write_text(json.dumps(progress))
    with pytest.raises(IntegrityError, match="calibration_progress.json is damaged"):
        _calibrate(run)
    seen = _spied(monkeypatch)
    record = _calibrate(run, restart=True)
    assert seen["twins"] == 2 and len(seen["candidates"]) == 3  # everything again, nothing taken from the file
    assert _figures(record["candidates"]) == _figures(stopped[2]["candidates"])


def test_an_existing_calibration_is_replaced_only_with_overwrite(stopped, tmp_path, capsys, monkeypatch):
    from hf_unlearn.commands import calibrate as calibrate_cmd

    root, _, whole = stopped
    run = tmp_path / "whole"
    shutil.copytree(root / "whole", run)
    before = (run / "calibration.json").read_bytes()
    seen = _spied(monkeypatch)
    assert calibrate_cmd.main(["--run", str(run), "--request_size", "3", "--methods", "finetune"]) == 2
    err = capsys.readouterr().err
    assert "calibration.json exists; pass --overwrite" in err and seen == {"twins": 0, "candidates": []}
    assert (run / "calibration.json").read_bytes() == before
    record = _calibrate(run, overwrite=True, methods=["finetune"])
    assert record["choice"]["method"] == "finetune" and seen["twins"] == 2


def test_cost_in_retrains_counts_each_attempt_in_its_own_unit():
    from hf_unlearn.runs.calibration_progress import cost_in_retrains

    # 100 s where a retrain took 50 s, then a resumed attempt: stopped before its unit (30 s), then 60 s at 10 s
    attempts = [{"seconds": 100.0, "retrain_s": 50.0}, {"seconds": 30.0, "retrain_s": None}]
    assert cost_in_retrains([*attempts, {"seconds": 60.0, "retrain_s": 10.0}]) == pytest.approx(2 + 9)
    assert cost_in_retrains(attempts) == pytest.approx(2 + 30 / 50)  # the last known unit
    assert cost_in_retrains([{"seconds": 5.0, "retrain_s": None}]) == 0.0  # nothing known yet


def test_a_resumed_calibration_judges_its_candidates_in_a_retrain_timed_in_its_own_process(stopped, tmp_path):
    """The kept twins were retrained 10^6 times slower (another load, another machine): the resumed attempt does
    not judge its candidates' cost in that unit but in a retrain it times itself."""
    from hf_unlearn.runs import calibrate as cal
    from hf_unlearn.runs import calibration_progress as progress_module
    from hf_unlearn.training.unlearning_log import UnlearningLog

    run = _fresh_copy(stopped, tmp_path)
    path = run / "calibration_progress.json"
    state = json.loads(path.read_text())
    for request in state["requests"]:
        request["retrain_s"] *= 1e6
    state["checksum"] = progress_module.checksum(state)
    path.write_text(json.dumps(state))
    timed, units = [], []
    time_a_retrain, run_candidate = progress_module.time_a_retrain, cal.run_candidate

    def spy_timing(the_run, ids):
        timed.append(list(ids))
        return time_a_retrain(the_run, ids)

    def spy_candidate(the_run, requests, method, options, retrain_s, budget=None):
        units.append(retrain_s)
        return run_candidate(the_run, requests, method, options, retrain_s, budget)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(progress_module, "time_a_retrain", spy_timing)
        mp.setattr(cal, "run_candidate", spy_candidate)
        record = _calibrate(run)
    train_ids = set(UnlearningLog(run).train_ids())
    assert len(timed) == 1 and len(timed[0]) == 3 and set(timed[0]) <= train_ids  # one pseudo-request's retrain
    assert len(units) == 2 and units[0] == units[1] == record["retrain_s_mean"]
    assert 0 < units[0] < min(r["retrain_s"] for r in state["requests"]) / 1e3  # not the kept unit
    kept = state["results"][0]["cost_fraction"]  # finetune, from the first attempt (in its own unit)
    new = [r["cost_fraction"] for r in record["candidates"] if r["method"] == "neggrad_plus"]
    assert min(new) > kept / 1e3  # in the kept 10^6-times unit they would be ~kept / 10^6


def test_timing_a_retrain_runs_the_first_tenth_of_its_steps_and_writes_nothing(stopped, monkeypatch):
    from hf_unlearn.runs import calibration_progress as progress_module
    from hf_unlearn.runs.unlearn import load_run
    from hf_unlearn.training import replay

    _, run_dir, _ = stopped
    before = sorted(p.relative_to(run_dir) for p in run_dir.rglob("*"))
    run = load_run(run_dir)
    total, seen = len(run.log.steps()), {}
    replayed = replay.replayed

    @contextlib.contextmanager
    def spy(*args, **kwargs):
        with replayed(*args, **kwargs) as (model, trainer):
            seen.update(max_steps=kwargs["max_steps"], steps=trainer.state.global_step)
            yield model, trainer

    monkeypatch.setattr(replay, "replayed", spy)
    seconds = progress_module.time_a_retrain(run, list(run.log.train_ids())[:3])
    expected = min(total, max(progress_module.PACE_STEPS, math.ceil(total / 10)))
    assert seconds > 0 and seen == {"max_steps": expected, "steps": expected}
    assert sorted(p.relative_to(run_dir) for p in run_dir.rglob("*")) == before
