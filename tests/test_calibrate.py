"""Calibration (``hf-unlearn calibrate``), ``unlearn --method auto``, learning rates derived from the run,
and early stopping with keep-the-best."""

from __future__ import annotations

import json

import pytest
import torch
from conftest import TINY_TRAIN_ARGS

TINY_RUN = [*TINY_TRAIN_ARGS, "--disable_tqdm", "true", "--learning_rate", "1e-3", "--lr_scheduler_type", "constant"]
SPACE = {"finetune": {"max_steps": (2,)}, "neggrad_plus": {"max_steps": (2,), "alpha": (0.99, 0.9)}}


@pytest.fixture(scope="module")
def calibrated(tmp_path_factory):
    """A tiny run with one served request, then calibrated on 2 pseudo-requests of 3 ids; every forget set
    that calibration handed to a method or a twin is recorded."""
    from hf_unlearn.commands import train as train_cmd
    from hf_unlearn.commands import unlearn as unlearn_cmd
    from hf_unlearn.runs import calibrate as cal
    from hf_unlearn.runs import twins as runs_twins

    root = tmp_path_factory.mktemp("calibrate")
    run = root / "run"
    assert train_cmd.main([*TINY_RUN, "--output_dir", str(run)]) == 0
    served = ["canary-0000", "synthetic-train-00003", "synthetic-train-00007"]
    (root / "served.txt").write_text("\n".join(served) + "\n")
    first = ["--run", str(run), "--forget", str(root / "served.txt"), "--method", "finetune", "--set", "max_steps=1"]
    assert unlearn_cmd.main([*first, "--output_dir", str(root / "first"), "--retain_eval_max", "20"]) == 0

    seen = {"twin": [], "method": []}
    build_twin, method = runs_twins.build_twin, cal.unlearn

    def spy_twin(run_, ids):
        seen["twin"].append(set(ids))
        return build_twin(run_, ids)

    def spy_method(model, forget, *args, **kwargs):
        seen["method"].append(set(forget["id"]))
        return method(model, forget, *args, **kwargs)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(runs_twins, "build_twin", spy_twin)
        mp.setattr(cal, "unlearn", spy_method)
        record = cal.calibrate_run(
            run, 3, budget=1000.0, methods=["finetune", "neggrad_plus"], pseudo_requests=2, space=SPACE
        )
    return run, root, set(served), record, seen


def _pseudo_ids(run) -> set[str]:
    """The training ids whose keyed hash calibration.json lists (found with the run's private salt)."""
    from hf_unlearn.artifacts import load_or_create_salt
    from hf_unlearn.runs.calibrate import id_hash
    from hf_unlearn.training.unlearning_log import UnlearningLog

    salt = load_or_create_salt(run)
    hashes = set(json.loads((run / "calibration.json").read_text())["pseudo_request_id_hashes"])
    return {i for i in UnlearningLog(run).train_ids() if id_hash(i, salt) in hashes}


def test_calibration_never_reads_a_forgotten_or_evaluated_forget_set(calibrated):
    run, _, served, record, seen = calibrated
    assert len(seen["twin"]) == 2 and all(len(ids) == 3 for ids in seen["twin"])
    assert not seen["twin"][0] & seen["twin"][1]  # disjoint pseudo-requests
    assert set(map(frozenset, seen["method"])) == set(map(frozenset, seen["twin"]))  # methods saw those only
    assert all(not ids & served for ids in seen["twin"] + seen["method"])  # never the ledger's ids
    assert _pseudo_ids(run) == seen["twin"][0] | seen["twin"][1]
    text = (run / "calibration.json").read_text()
    assert not any(i in text for i in _pseudo_ids(run) | served)  # counts and keyed hashes only
    assert record["pseudo_requests"] == 2 and record["request_count"] == 3 and len(record["candidates"]) == 3
    assert record["cost_retrains"] > 0 and record["choice"]["method"] in ("finetune", "neggrad_plus")


def test_method_auto_reproduces_the_stored_choice_and_says_how(calibrated):
    from hf_unlearn.artifacts import load_or_create_salt
    from hf_unlearn.commands import unlearn as unlearn_cmd
    from hf_unlearn.runs.calibrate import chosen_by
    from hf_unlearn.training.unlearning_log import UnlearningLog

    run, root, served, record, _ = calibrated
    pseudo = _pseudo_ids(run)

    fresh = sorted(UnlearningLog(run).train_ids() - pseudo - served)[:2]
    (root / "later.txt").write_text("\n".join(fresh) + "\n")
    args = ["--run", str(run), "--method", "auto", "--retain_eval_max", "20"]
    assert unlearn_cmd.main([*args, "--forget", str(root / "later.txt"), "--output_dir", str(root / "auto")]) == 0
    report = json.loads((root / "auto" / "report.json").read_text())
    choice = record["choice"]
    assert report["method"] == choice["method"]
    assert {k: report["method_args"][k] for k in choice["options"]} == choice["options"]
    assert report["method_args"]["learning_rate"] == report["stats"]["learning_rate"]
    line = report["method_args"]["chosen_by"]
    assert "calibration on 2 pseudo-requests of 3 examples" in line and "not an independent check" not in line

    overlapping = chosen_by(record, [sorted(pseudo)[0], *fresh], load_or_create_salt(run))
    assert "; 1 of this request's examples were in those pseudo-requests" in overlapping


def test_method_auto_runs_an_older_calibration_as_it_was_chosen(calibrated, tmp_path):
    """Format 1 predates single_gradient's ``precondition`` (then the SGD formula, now ``auto``): its choice
    runs with ``precondition=none``; a format-2 record's options are read as written."""
    from hf_unlearn.runs.calibrate import FORMAT_VERSION, auto_method

    record = json.loads((calibrated[0] / "calibration.json").read_text())
    assert record["format_version"] == FORMAT_VERSION == 2
    record["choice"] = dict(record["choice"], method="single_gradient", options={"scale": 4.0})
    for version, expected in ((1, {"precondition": "none", "scale": 4.0}), (2, {"scale": 4.0})):
        (tmp_path / "calibration.json").write_text(json.dumps(dict(record, format_version=version)))
        assert auto_method(tmp_path, None)[:2] == ("single_gradient", expected)
    record["choice"]["options"] = {"precondition": "adam", "scale": 1.0}  # given: never replaced
    (tmp_path / "calibration.json").write_text(json.dumps(dict(record, format_version=1)))
    assert auto_method(tmp_path, None)[1] == {"precondition": "adam", "scale": 1.0}


def test_default_learning_rate_is_the_method_factor_times_the_run_peak(calibrated):
    from hf_unlearn.methods import unlearn
    from hf_unlearn.runs.unlearn import load_run

    run = load_run(calibrated[0])
    forget = run.tokenized["train"].select(range(4))
    retain = run.tokenized["train"].select(range(4, 20))

    def lr_of(method, log):
        kw = dict(log=log, tokenizer=run.tokenizer, max_steps=1)
        return unlearn(run.model, forget, retain, method=method, **kw).stats

    # the run trained at a constant 1e-3: NegGrad 0.1x, SCRUB 0.2x, fine-tuning 1x
    assert lr_of("neggrad", run.log)["learning_rate"] == pytest.approx(1e-4, rel=1e-9)
    assert lr_of("scrub", run.log)["learning_rate"] == pytest.approx(2e-4, rel=1e-9)
    stats = lr_of("finetune", run.log)
    assert (
        stats["learning_rate"] == pytest.approx(1e-3, rel=1e-9) and "peak training lr" in stats["learning_rate_rule"]
    )
    assert lr_of("finetune", None)["learning_rate"] == 5e-5 and lr_of("neggrad", None)["learning_rate"] == 2e-5


def test_early_stopping_stops_at_the_reference_and_keeps_the_best_state(tiny):
    """A model fitted hard on 8 examples (their loss far below held-out loss); NegGrad's ascent crosses the
    held-out loss well before its 60 steps; the kept weights are those of a plain run cut at the best step."""
    from hf_unlearn.methods import unlearn
    from hf_unlearn.methods._early_stopping import mean_loss
    from hf_unlearn.training.loops import forward_logits, make_loader, run_steps, to_device

    tokenizer, tokenized, fresh = tiny
    forget, holdout = tokenized["train"].select(range(8)), tokenized["test"]
    model = fresh()
    batch = to_device(next(iter(make_loader(forget, tokenizer, 8))), "cpu")

    def fit_loss(_):
        return torch.nn.functional.cross_entropy(forward_logits(model, batch), batch["labels"])

    run_steps(model, 40, fit_loss, learning_rate=3e-3, progress=False)
    assert mean_loss(model, forget, tokenizer) < mean_loss(model, holdout, tokenizer)

    common = dict(tokenizer=tokenizer, learning_rate=1e-3, epochs=60.0, batch_size=8, seed=0)
    stopping = dict(holdout=holdout, early_stopping=True, eval_every=2, patience=0)
    stopped = unlearn(model, forget, method="neggrad", **stopping, **common)
    s = stopped.stats
    assert s["early_stopping_reason"] == "forget loss reached the reference"
    assert s["early_stopping_steps_taken"] < 60 and s["early_stopping_best_step"] in (
        s["early_stopping_steps_taken"] - 2,
        s["early_stopping_steps_taken"],
    )
    cut = unlearn(model, forget, method="neggrad", **{**common, "max_steps": s["early_stopping_best_step"]})
    for a, b in zip(stopped.model.parameters(), cut.model.parameters()):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-6)
    kept = mean_loss(stopped.model, forget, tokenizer)
    assert kept == pytest.approx(s["early_stopping_forget_loss_kept"], abs=1e-5)
    assert kept > mean_loss(model, forget, tokenizer)


@pytest.mark.parametrize(
    "argv, words",
    [
        (["--request_size", "0.01", "--budget", "0"], "--budget must be > 0"),
        (["--request_size", "0.7"], "--request_size must be a fraction in (0, 0.5]"),
        (["--request_size", "0"], "--request_size must be a fraction in (0, 0.5]"),
        (["--request_size", "2.5"], "a count must be a whole number"),
        (["--request_size", "0.01", "--pseudo_requests", "0"], "--pseudo_requests must be >= 1"),
    ],
)
def test_calibrate_refuses_bad_arguments_in_one_line_before_any_work(tmp_path, capsys, argv, words):
    from hf_unlearn.commands import calibrate as calibrate_cmd

    assert calibrate_cmd.main(["--run", str(tmp_path / "absent"), *argv]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and words in err[0] and not (tmp_path / "absent").exists()


def test_too_large_a_request_and_auto_without_calibration_are_one_line_errors(calibrated, tmp_path, capsys):
    from hf_unlearn.commands import calibrate as calibrate_cmd
    from hf_unlearn.commands import unlearn as unlearn_cmd

    run, root = calibrated[0], calibrated[1]
    before = (run / "calibration.json").read_bytes()
    assert calibrate_cmd.main(["--run", str(run), "--request_size", "30", "--overwrite"]) == 2
    assert "more than half" in capsys.readouterr().err and (run / "calibration.json").read_bytes() == before
    forget = ["--forget", str(root / "served.txt"), "--output_dir", str(tmp_path / "out")]
    assert unlearn_cmd.main(["--run", str(tmp_path / "nocal"), "--method", "auto", *forget]) == 2
    err = [line for line in capsys.readouterr().err.strip().splitlines() if not line.startswith("[hf-unlearn]")]
    assert len(err) == 1 and "run `hf-unlearn calibrate" in err[0]
    assert unlearn_cmd.main(["--run", str(run), "--method", "auto", "--set", "alpha=0.5", *forget]) == 2
    assert "drop alpha" in capsys.readouterr().err and not (tmp_path / "out").exists()


def test_a_failing_candidate_is_recorded_but_a_damaged_log_stops_the_calibration(monkeypatch):
    """One method's runtime failure leaves a candidate with its error; an integrity error (a damaged log)
    is never swallowed as one candidate's failure."""
    from types import SimpleNamespace

    from hf_unlearn.runs import calibrate as cal
    from hf_unlearn.training.log_store import LogError

    run = SimpleNamespace(model=None, log=None, tokenizer=None, tokenized={"test": None})
    requests = [{"splits": {"forget": None, "retain_full": None}, "twin_metrics": {}}]

    def raising(exc):
        def fake_unlearn(*args, **kwargs):
            raise exc

        return fake_unlearn

    monkeypatch.setattr(cal, "unlearn", raising(RuntimeError("diverged\nsecond line")))
    failed = cal.run_candidate(run, requests, "neggrad", {"max_steps": 1}, retrain_s=1.0)
    assert failed["error"] == "RuntimeError: diverged" and cal.choose([failed], budget=1.0) is None
    monkeypatch.setattr(cal, "unlearn", raising(LogError("deltas/step_3.safetensors: sha256 mismatch")))
    with pytest.raises(LogError, match="sha256 mismatch"):
        cal.run_candidate(run, requests, "amnesiac", {}, retrain_s=1.0)


def test_a_candidate_proven_over_the_budget_stops_unscored(monkeypatch):
    """Once a candidate's time so far puts its mean cost over the budget, the other requests are not run and
    nothing is scored; it can never be chosen. Within the budget every request runs and is scored."""
    from types import SimpleNamespace

    from hf_unlearn.runs import calibrate as cal

    run = SimpleNamespace(model=None, log=None, tokenizer=None, tokenized={"test": None})
    requests = [{"splits": {"forget": None, "retain_full": None}, "twin_metrics": {}} for _ in range(3)]
    calls, scored = [], []
    seconds = {"slow": 0.4, "fast": 0.01}  # per request, retrain_s = 1: slow's bound after one is 0.4 / 3

    def fake_unlearn(model, forget, retain, method, **kw):
        calls.append(method)
        return SimpleNamespace(model=None, stats={"wall_time_s": seconds[method]})

    monkeypatch.setattr(cal, "unlearn", fake_unlearn)
    monkeypatch.setattr(cal, "_score", lambda *a: scored.append(1) or {})
    monkeypatch.setattr(cal, "compare", lambda *a: {"tow": 0.9, "tow_mia": 0.8})
    slow = cal.run_candidate(run, requests, "slow", {}, retrain_s=1.0, budget=0.1)
    assert slow["over_budget"] and slow["cost_fraction"] == pytest.approx(0.4 / 3)
    assert calls == ["slow"] and scored == []  # one request run, none scored
    fast = cal.run_candidate(run, requests, "fast", {}, retrain_s=1.0, budget=0.1)
    assert calls.count("fast") == 3 and len(scored) == 3 and fast["cost_fraction"] == pytest.approx(0.01)
    assert cal.choose([slow, fast], budget=0.1) is fast and cal.choose([slow], budget=1.0) is None
    unguarded = cal.run_candidate(run, requests, "slow", {}, retrain_s=1.0)  # no budget: every request, scored
    assert unguarded["cost_fraction"] == pytest.approx(0.4) and len(scored) == 6


def test_per_sample_replay_is_a_candidate_on_a_momentum_free_run_and_an_error_on_another(tmp_path):
    """Exact replay (correction scale 1) runs and can be chosen on a run it can replay; on a run with
    momentum its candidate is a recorded error, not the end of calibration."""
    from hf_unlearn.commands import train as train_cmd
    from hf_unlearn.runs import calibrate as cal

    assert cal.search_space("per_sample_replay") == {"correction_scale": (1.0,)}
    assert "per_sample_replay" in cal.calibratable()
    run = tmp_path / "run"
    assert train_cmd.main([*TINY_RUN, "--adam_beta1", "0", "--output_dir", str(run)]) == 0
    record = cal.calibrate_run(run, 3, budget=1000.0, methods=["per_sample_replay"], pseudo_requests=1)
    tried = [c for c in record["candidates"] if c["method"] == "per_sample_replay"]
    assert [c["options"] for c in tried] == [{"correction_scale": 1.0}]
    assert not [c for c in tried if "error" in c]
    assert record["choice"]["method"] == "per_sample_replay"
    assert record["choice"]["options"] == {"correction_scale": 1.0} and record["choice"]["tow_mean"] > 0
    momentum = tmp_path / "momentum"
    assert train_cmd.main([*TINY_RUN, "--output_dir", str(momentum)]) == 0
    space = {"per_sample_replay": {"correction_scale": (1.0,)}, "finetune": {"max_steps": (1,)}}
    mixed = cal.calibrate_run(
        momentum, 3, budget=1000.0, methods=["per_sample_replay", "finetune"], pseudo_requests=1, space=space
    )
    assert [c["method"] for c in mixed["candidates"] if "error" in c] == ["per_sample_replay"]
    assert mixed["choice"]["method"] == "finetune"
