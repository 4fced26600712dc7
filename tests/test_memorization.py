"""Memorization proxies, refinement and the RUM meta-method (offline, one tiny synthetic run per module)."""

import copy
import json
import shutil
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import make_args

from hf_unlearn.memorization import (
    EarlyStopping,
    MissingLearningEventsError,
    binary_accuracy,
    compute_proxy,
    confidence,
    entropy,
    event_proxies,
    get_proxy,
    holdout_retraining,
    max_confidence,
    refine,
    symmetric_kl,
)
from hf_unlearn.methods import MethodConfig, MethodOptionError, method_config, register_method, unlearn
from hf_unlearn.methods.rum import RUMConfig, plan, vanilla

FAKE = "rum_test_recorder"


@pytest.fixture(scope="module")
def mem_run(tmp_path_factory):
    """300 synthetic reviews + 6 canaries, tiny BERT, 6 epochs, lr 1e-3, batch 16, learning events on."""
    from hf_unlearn.data import load_sentiment_dataset
    from hf_unlearn.models import TinyBertSpec, build_tiny_bert, tokenize_dataset
    from hf_unlearn.training import UnlearnableTrainer

    data = load_sentiment_dataset("synthetic", n_train=300, n_test=100, n_canaries=6, seed=0)
    model, tokenizer = build_tiny_bert(data["train"]["text"], spec=TinyBertSpec(max_length=32), seed=0)
    tokenized = tokenize_dataset(data, tokenizer, 32)
    out = tmp_path_factory.mktemp("mem_run")
    args = make_args(
        out, num_train_epochs=6, learning_rate=1e-3, per_device_train_batch_size=16, record_learning_events=True
    )
    UnlearnableTrainer(model=model, args=args, train_dataset=tokenized["train"], processing_class=tokenizer).train()
    model.eval()
    ids = list(tokenized["train"]["id"])
    return SimpleNamespace(
        model=model,
        tokenizer=tokenizer,
        tokenized=tokenized,
        out=out,
        ids=ids,
        canaries=[i for i in ids if i.startswith("canary-")],
    )


def _split(tokenized, forget_ids):
    forget_ids = set(forget_ids)
    train = tokenized["train"]
    return train.filter(lambda r: r["id"] in forget_ids), train.filter(lambda r: r["id"] not in forget_ids)


def _canaries_per_group(refinement, canaries):
    return {g.name: len(set(g.ids) & set(canaries)) for g in refinement.groups}


# ---- proxies on the tiny run ---------------------------------------------------------------------
def test_canaries_land_in_the_high_group_by_confidence(mem_run):
    scores = compute_proxy("confidence", log=mem_run.out)
    assert scores.source == "recorded" and set(scores.scores.index) == set(mem_run.ids)
    refinement = refine(mem_run.ids, scores)
    assert refinement.names == ["low", "mid", "high"] and [len(g) for g in refinement.groups] == [102, 102, 102]
    counts = _canaries_per_group(refinement, mem_run.canaries)
    # 6 canaries, chance would put 2 in each third
    assert counts["high"] >= 4 and counts["low"] == 0, counts
    canary_conf = scores.scores[mem_run.canaries].median()
    assert canary_conf < scores.scores.drop(mem_run.canaries).median()  # learned late: lower mean confidence


def test_canaries_land_in_the_high_group_by_holdout_retraining(mem_run):
    train, test = mem_run.tokenized["train"], mem_run.tokenized["test"]
    scores = holdout_retraining(
        mem_run.model, train, test, mem_run.tokenizer, learning_rate=1e-3, batch_size=16, max_epochs=20
    )
    assert scores.attrs["epochs"] <= 20 and (scores >= 0).all()
    refinement = refine(mem_run.ids, scores, proxy="holdout")
    counts = _canaries_per_group(refinement, mem_run.canaries)
    assert counts["high"] >= 4, counts
    # the trained model itself is untouched
    before = {n: p.clone() for n, p in mem_run.model.named_parameters()}
    holdout_retraining(mem_run.model, train.select(range(4)), test, mem_run.tokenizer, max_epochs=1)
    assert all(torch.equal(before[n], p) for n, p in mem_run.model.named_parameters())


def test_every_event_proxy_scores_every_training_id(mem_run):
    table = event_proxies(mem_run.out)
    assert set(table.index) == set(mem_run.ids)
    assert table["confidence"].between(0, 1).all() and table["binary_accuracy"].between(0, 1).all()
    assert (table["max_confidence"] >= 0.5 - 1e-6).all() and (table["entropy"] >= 0).all()
    pd.testing.assert_series_equal(confidence(mem_run.out), table["confidence"], check_names=False)


def test_missing_events_name_the_recorder_and_fallbacks_are_labelled(mem_run, tmp_path):
    src = mem_run.out / "unlearning_log"
    copy_root = tmp_path / "run"
    shutil.copytree(src, copy_root / "unlearning_log")
    shutil.rmtree(copy_root / "unlearning_log" / "events")
    meta_path = copy_root / "unlearning_log" / "meta.json"
    meta = json.loads(meta_path.read_text())
    meta["recorders"] = [r for r in meta["recorders"] if r != "learning_events"]
    meta_path.write_text(json.dumps(meta))
    # a log recorded without events: its manifest lists what is there (a tampered one is refused)
    from hf_unlearn.artifacts import read_manifest, write_manifest

    log_root = copy_root / "unlearning_log"
    write_manifest(log_root, kind="unlearning_log", extra=read_manifest(log_root).get("extra"))
    with pytest.raises(MissingLearningEventsError, match="record_learning_events=True"):
        compute_proxy("confidence", log=copy_root)
    forget, retain = _split(mem_run.tokenized, mem_run.canaries)
    with pytest.raises(MissingLearningEventsError, match="record_learning_events"):
        unlearn(mem_run.model, forget, retain, method="rum", log=copy_root, tokenizer=mem_run.tokenizer, max_steps=1)
    train = mem_run.tokenized["train"]
    final = compute_proxy(
        "confidence",
        log=copy_root,
        model=mem_run.model,
        train=train,
        tokenizer=mem_run.tokenizer,
        fallback="final_model",
    )
    assert final.source == "final_model" and "FALLBACK" in final.summary()["source_description"]
    replay = compute_proxy(
        "confidence", log=copy_root, model=mem_run.model, train=train, tokenizer=mem_run.tokenizer, fallback="replay"
    )
    assert replay.source == "replay"
    recorded = compute_proxy("confidence", log=mem_run.out).scores
    np.testing.assert_allclose(replay.scores.loc[recorded.index].to_numpy(), recorded.to_numpy(), atol=1e-4)


# ---- directions on a fixed input -------------------------------------------------------------------
def _events():
    rows = [  # id, confidence, max_confidence, entropy, correct; two steps each
        ("a", 0.90, 0.90, 0.30, True),
        ("a", 0.95, 0.95, 0.20, True),
        ("b", 0.60, 0.60, 0.65, True),
        ("b", 0.70, 0.70, 0.60, False),
        ("c", 0.20, 0.80, 0.50, False),
        ("c", 0.30, 0.70, 0.60, False),
    ]
    return pd.DataFrame(
        [
            {"id": i, "step": s % 2 + 1, "epoch": 0, "confidence": c, "max_confidence": m, "entropy": e, "correct": k}
            for s, (i, c, m, e, k) in enumerate(rows)
        ]
    )


@pytest.mark.parametrize(
    "proxy, expected_raw, low_to_high",
    [
        ("confidence", {"a": 0.925, "b": 0.65, "c": 0.25}, ["a", "b", "c"]),  # high confidence = low memorization
        ("max_confidence", {"a": 0.925, "b": 0.65, "c": 0.75}, ["a", "c", "b"]),
        ("entropy", {"a": 0.25, "b": 0.625, "c": 0.55}, ["a", "c", "b"]),  # high entropy = high memorization
        ("binary_accuracy", {"a": 1.0, "b": 0.5, "c": 0.0}, ["a", "b", "c"]),
    ],
)
def test_event_proxy_directions_match_hand_computed_order(proxy, expected_raw, low_to_high):
    fn = {
        "confidence": confidence,
        "max_confidence": max_confidence,
        "entropy": entropy,
        "binary_accuracy": binary_accuracy,
    }[proxy]
    raw = fn(_events())
    assert raw.to_dict() == pytest.approx(expected_raw)
    scores = compute_proxy(proxy, events=_events())
    refinement = refine(["c", "b", "a"], scores, k=3)
    assert [g.ids for g in refinement.groups] == [[x] for x in low_to_high]
    assert refinement.names == ["low", "mid", "high"]
    assert refine(["a", "b", "c"], raw, proxy=proxy).as_mapping() == refinement.as_mapping()


def test_holdout_direction_and_symmetric_kl_by_hand():
    p, q = np.array([[0.9, 0.1], [0.5, 0.5], [1.0, 0.0]]), np.array([[0.5, 0.5], [0.5, 0.5], [0.5, 0.5]])
    kl = symmetric_kl(p, q)
    by_hand = 0.5 * (
        (0.9 * np.log(0.9 / 0.5) + 0.1 * np.log(0.1 / 0.5)) + (0.5 * np.log(0.5 / 0.9) + 0.5 * np.log(0.5 / 0.1))
    )
    assert kl[0] == pytest.approx(by_hand) and kl[1] == pytest.approx(0.0)
    clamped = 0.5 * ((np.log(2.0) + 1e-10 * np.log(2e-10)) + (0.5 * np.log(0.5) + 0.5 * np.log(0.5 / 1e-10)))
    assert np.isfinite(kl[2]) and kl[2] == pytest.approx(clamped)  # probabilities clamped at 1e-10
    assert get_proxy("holdout").higher_is_more_memorized and not get_proxy("confidence").higher_is_more_memorized
    refinement = refine(["a", "b", "c"], {"a": 0.01, "b": 2.0, "c": 0.5}, proxy="holdout_retraining")
    assert refinement.as_mapping() == {"low": ["a"], "mid": ["c"], "high": ["b"]}


def test_refine_sizes_ties_and_errors():
    ids = [f"x{i}" for i in range(7)]
    refinement = refine(ids, {i: 0.5 for i in ids}, proxy="confidence")  # all tied: order by id
    assert [len(g) for g in refinement.groups] == [3, 2, 2]
    assert [i for g in refinement.groups for i in g.ids] == sorted(ids)
    assert refinement.summary()["groups"]["low"] == {"level": 0, "count": 3, "score_min": 0.5, "score_max": 0.5}
    with pytest.raises(KeyError, match="no confidence score"):
        refine(ids + ["ghost"], {i: 0.5 for i in ids}, proxy="confidence")
    with pytest.raises(ValueError, match="direction"):
        refine(ids, {i: 0.5 for i in ids})
    with pytest.raises(KeyError, match="unknown memorization proxy"):
        get_proxy("loss")


def test_early_stopping_after_four_epochs_without_improvement():
    stopper = EarlyStopping(patience=4)
    decisions = [stopper.step(x) for x in (1.0, 0.8, 0.9, 0.8, 0.85, 0.95)]
    assert decisions == [False, False, False, False, False, True] and stopper.best == 0.8


def test_holdout_fine_tuning_stops_where_early_stopping_says(mem_run):
    from hf_unlearn.memorization import HoldoutConfig
    from hf_unlearn.memorization.holdout import finetune_with_early_stopping

    holdout = mem_run.tokenized["test"].select(range(48))
    rng = torch.random.get_rng_state()
    tuned = copy.deepcopy(mem_run.model)
    info = finetune_with_early_stopping(
        tuned, holdout, mem_run.tokenizer, HoldoutConfig(learning_rate=3e-2, batch_size=16, max_epochs=12, patience=1)
    )
    assert torch.equal(torch.random.get_rng_state(), rng)  # the caller's random stream is left alone
    replay = EarlyStopping(patience=1)
    decisions = [replay.step(x) for x in info["epoch_losses"]]
    assert (
        info["stopped_early"] and decisions[-1] and not any(decisions[:-1]) and len(decisions) == info["epochs"] < 12
    )
    assert not tuned.training and any(
        not torch.equal(a, b) for a, b in zip(tuned.parameters(), mem_run.model.parameters())
    )
    bounded = finetune_with_early_stopping(
        copy.deepcopy(mem_run.model),
        holdout,
        mem_run.tokenizer,
        HoldoutConfig(learning_rate=1e-4, batch_size=16, max_epochs=2, patience=5),
    )
    assert bounded["epochs"] == 2 and not bounded["stopped_early"] and len(bounded["epoch_losses"]) == 2


# ---- RUM -----------------------------------------------------------------------------------------
@pytest.fixture
def recorder():
    """A registered fake method that records every call (removed again after the test)."""
    from hf_unlearn.methods import registry

    calls = []

    def fake(model, forget, retain, config, log, ctx):
        """Record the call."""
        calls.append(
            {
                "forget": sorted(forget["id"]),
                "retain": set(retain["id"]) if retain is not None else set(),
                "learning_rate": config.learning_rate,
            }
        )
        return {"optimizer_steps": 1}

    register_method(FAKE, MethodConfig, guarantee="approximate", description="A test double that records its calls.")(
        fake
    )
    yield calls
    registry._METHODS.pop(FAKE, None)


def _forget_with_scores(mem_run):
    forget_ids = sorted(mem_run.ids)[:9]
    scores = {i: 0.9 - 0.1 * k for k, i in enumerate(forget_ids)}  # confidence: first ids least memorized
    forget, retain = _split(mem_run.tokenized, forget_ids)
    return forget_ids, scores, forget, retain


def test_rum_runs_groups_low_to_high_with_shrinking_retain_sets(mem_run, recorder):
    forget_ids, scores, forget, retain = _forget_with_scores(mem_run)
    low, mid, high = forget_ids[:3], forget_ids[3:6], forget_ids[6:]
    result = unlearn(
        mem_run.model,
        forget,
        retain,
        method="rum",
        tokenizer=mem_run.tokenizer,
        proxy="confidence",
        memorization_scores=scores,
        methods=[FAKE] * 3,
        group_args=[{"learning_rate": 1e-3}, {"learning_rate": 2e-3}, {}],
        learning_rate=5e-4,
    )
    assert [c["forget"] for c in recorder] == [low, mid, high]
    base = set(retain["id"])
    assert [c["retain"] for c in recorder] == [base | set(mid) | set(high), base | set(high), base]
    assert [c["learning_rate"] for c in recorder] == [1e-3, 2e-3, 5e-4]  # group_args over the shared value
    stats = result.stats
    assert stats["optimizer_steps"] == 3 and stats["proxy"] == "confidence" and stats["proxy_source"] == "given"
    assert [stats[f"group_{g}_retain_count"] for g in ("low", "mid", "high")] == [
        len(base) + 6,
        len(base) + 3,
        len(base),
    ]
    assert [g["ids"] for g in stats["groups"]] == [low, mid, high]


def test_rum_group_with_no_method_still_leaves_the_retain_set(mem_run, recorder):
    forget_ids, scores, forget, retain = _forget_with_scores(mem_run)
    result = unlearn(
        mem_run.model,
        forget,
        retain,
        method="rum",
        tokenizer=mem_run.tokenizer,
        memorization_scores=scores,
        methods=f"none,{FAKE},{FAKE}",
    )
    assert [c["forget"] for c in recorder] == [forget_ids[3:6], forget_ids[6:]]
    assert recorder[0]["retain"] == set(retain["id"]) | set(forget_ids[6:])  # low group processed (by nothing): gone
    assert result.stats["group_low_method"] == "none" and result.stats["group_low_optimizer_steps"] == 0
    assert all(torch.equal(a, b) for a, b in zip(mem_run.model.parameters(), result.model.parameters()))


def test_rum_takes_holdout_and_scores_as_inputs_not_options(mem_run, recorder):
    forget_ids, scores, forget, retain = _forget_with_scores(mem_run)
    holdout = mem_run.tokenized["test"].select(range(32))
    result = unlearn(
        mem_run.model,
        forget,
        retain,
        method="rum",
        tokenizer=mem_run.tokenizer,
        proxy="holdout",
        holdout=holdout,
        holdout_args={"max_epochs": 1, "batch_size": 16},
        methods=[FAKE] * 3,
    )
    assert result.stats["proxy"] == "holdout_retraining" and result.stats["proxy_source"] != "given"
    assert sorted(i for c in recorder for i in c["forget"]) == forget_ids
    with pytest.raises(ValueError, match="needs held-out data"):
        unlearn(
            mem_run.model,
            forget,
            retain,
            method="rum",
            tokenizer=mem_run.tokenizer,
            proxy="holdout",
            methods=[FAKE] * 3,
        )
    with pytest.raises(MethodOptionError, match="no option 'scores'"):  # data is not a config field
        unlearn(mem_run.model, forget, retain, method="rum", tokenizer=mem_run.tokenizer, scores=scores)
    with pytest.raises(MethodOptionError, match="does not take memorization_scores"):
        unlearn(
            mem_run.model, forget, retain, method="finetune", tokenizer=mem_run.tokenizer, memorization_scores=scores
        )


def test_presets_and_vanilla_counterparts():
    assert [(s.name, s.method, s.args) for s in plan(RUMConfig(preset="salun"))] == [
        ("low", "none", {}),
        ("mid", "finetune", {}),
        ("high", "salun", {"forget_share": 0.1}),
    ]
    assert [(s.method, s.args["alpha"]) for s in plan(RUMConfig(preset="neggrad_plus", learning_rate=1e-4))] == [
        ("neggrad_plus", 0.99),
        ("neggrad_plus", 0.97),
        ("neggrad_plus", 0.97),
    ]
    assert all(s.args["learning_rate"] == 1e-4 for s in plan(RUMConfig(preset="neggrad_plus", learning_rate=1e-4)))
    assert [s.method for s in plan(RUMConfig(preset="scrub", num_groups=2))] == ["scrub", "scrub"]
    assert vanilla(RUMConfig(preset="salun")) == ("salun", {})
    with pytest.raises(KeyError, match="unknown unlearning method"):
        RUMConfig(preset="nope")
    with pytest.raises(MethodOptionError, match="method 'salun' has no option 'alpha'"):  # from the command line
        method_config("rum", {"preset": "salun", "group_args": "{high: {alpha: 0.5}}"})
    with pytest.raises(MethodOptionError, match="no option 'alpha'"):
        plan(RUMConfig(preset="salun", group_args={"high": {"alpha": 0.5}}))
    with pytest.raises(ValueError, match="3 groups"):
        RUMConfig(preset="salun", num_groups=2)


def test_rum_end_to_end_with_report_and_group_plots(mem_run, tmp_path):
    from hf_unlearn.evaluation.report import build_report, split_for_evaluation
    from hf_unlearn.evaluation.rum_report import (
        group_summary,
        plot_rum_groups,
        rum_section,
    )
    from hf_unlearn.training.replay import retrain_twin

    forget_ids = mem_run.canaries + [i for i in mem_run.ids if not i.startswith("canary-")][:12]
    splits = split_for_evaluation(mem_run.tokenized["train"], mem_run.tokenized["test"], forget_ids, retain_max=60)
    result = unlearn(
        mem_run.model,
        splits["forget"],
        splits["retain_full"],
        method="rum",
        log=mem_run.out,
        tokenizer=mem_run.tokenizer,
        proxy="confidence",
        preset="salun",
        max_steps=2,
        learning_rate=1e-3,
    )
    stats = result.stats
    assert [stats[f"group_{g}_method"] for g in ("low", "mid", "high")] == ["none", "finetune", "salun"]
    assert [stats[f"group_{g}_count"] for g in ("low", "mid", "high")] == [6, 6, 6]
    assert stats["group_high_optimizer_steps"] == 2 and 0 < stats["group_high_mask_fraction"] <= 1
    assert any(not torch.equal(a, b) for a, b in zip(mem_run.model.parameters(), result.model.parameters()))
    twin, _ = retrain_twin(
        mem_run.model, mem_run.tokenized["train"], mem_run.out, forget_ids, tokenizer=mem_run.tokenizer
    )
    models = {"original": mem_run.model, "unlearned": result.model, "retrain_twin": twin}
    section = rum_section(
        models, mem_run.tokenizer, splits, stats["groups"], summary=group_summary(stats), canary_ids=mem_run.canaries
    )
    metrics, comparison = section["metrics"], section["comparison"]
    assert set(metrics["unlearned"]) == {"low", "mid", "high", "all"} and set(comparison) == {"original", "unlearned"}
    assert [metrics["original"][g]["count"] for g in ("low", "mid", "high", "all")] == [6, 6, 6, 18]
    # the original still fits the forget set, the twin never saw it; they differ most on the HIGH group
    high_o, high_t = metrics["original"]["high"], metrics["retrain_twin"]["high"]
    assert high_o["canary_score"] > high_t["canary_score"] + 0.2 and high_o["forget_acc"] > high_t["forget_acc"]
    assert comparison["original"]["high"]["tow"] < comparison["original"]["low"]["tow"] <= 1.0
    for g in ("low", "mid", "high", "all"):  # each group against the SAME group of the twin
        factors = [
            1 - abs(metrics["original"][g][f"{s}_acc"] - metrics["retrain_twin"][g][f"{s}_acc"]) / 100
            for s in ("forget", "retain", "test")
        ]
        assert comparison["original"][g]["tow"] == pytest.approx(np.prod(factors))
    assert section["groups"]["high"]["method"] == "salun"
    paths = plot_rum_groups(section, tmp_path)
    assert all(p.endswith(".png") for p in paths) and len(paths) == 2
    report = build_report(
        models={"unlearned": result.model},
        tokenizer=mem_run.tokenizer,
        splits=splits,
        forget_ids=forget_ids,
        method="rum",
        stats=stats,
        commitment_salt=b"s" * 32,
    )
    text = json.dumps({**report, "rum": section}, default=str)
    assert "group_high_method" in report["stats"] and not any(i in text for i in forget_ids)  # no forget id leaks


def test_unlearn_cli_runs_rum_through_set_options(tmp_path):
    from hf_unlearn.commands import train as train_cmd
    from hf_unlearn.commands import unlearn as unlearn_cmd

    run = tmp_path / "run"
    train_cmd.main(
        [
            "--dataset",
            "synthetic",
            "--synthetic_train",
            "60",
            "--synthetic_test",
            "20",
            "--synthetic_canaries",
            "3",
            "--model",
            "tiny-bert",
            "--output_dir",
            str(run),
            "--num_train_epochs",
            "1",
            "--record_learning_events",
            "--save_strategy",
            "no",
            "--disable_tqdm",
            "true",
            "--learning_rate",
            "1e-3",
        ]
    )
    ids = tmp_path / "forget.txt"
    ids.write_text(
        "canary-0000\ncanary-0001\ncanary-0002\nsynthetic-train-00001\nsynthetic-train-00002\nsynthetic-train-00003\n"
    )
    out = tmp_path / "out"
    assert (
        unlearn_cmd.main(
            [
                "--run",
                str(run),
                "--forget",
                str(ids),
                "--output_dir",
                str(out),
                "--method",
                "rum",
                "--set",
                "proxy=confidence",
                "--set",
                "preset=salun",
                "--set",
                "max_steps=1",
                "--retain-eval-max",
                "20",
            ]
        )
        == 0
    )
    report = json.loads((out / "report.json").read_text())
    assert report["method"] == "rum" and report["stats"]["group_high_method"] == "salun"
    assert report["stats"]["proxy_source"] == "recorded"
