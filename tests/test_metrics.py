"""Tests for hf_unlearn.evaluation (metrics, predict, plots) and the evaluate modules in hf_unlearn.metrics.

Offline: toy inputs with hand-computed values, tiny torch modules, a tiny BERT built from a
config, and the evaluate modules loaded by local path with HF_EVALUATE_OFFLINE=1 and a
temporary HF_HOME.
"""

import importlib
import math
import os
import sys

import numpy as np
import pytest
import torch
from torch import nn

from hf_unlearn.evaluation import metrics as M
from hf_unlearn.evaluation.predict import (
    compare,
    evaluate_model,
    per_example_loss,
    predict_probs,
    true_class_confidence,
)
from hf_unlearn.metrics import available_metrics, load_metric, metric_path

EVAL_KEYS = {"forget_acc", "retain_acc", "test_acc", "mia_efficacy", "mia_auc", "canary_score"}


@pytest.fixture(scope="module")
def offline_hf(tmp_path_factory):
    """Offline Hugging Face environment with a throw-away HF_HOME, set before ``evaluate`` is imported."""
    home = tmp_path_factory.mktemp("hf_home")
    with pytest.MonkeyPatch.context() as mp:
        env = {"HF_EVALUATE_OFFLINE": "1", "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "HF_HOME": str(home)}
        for k, v in env.items():
            mp.setenv(k, v)
        fresh = "evaluate" not in sys.modules
        import evaluate.config as cfg  # reads the variables above when imported first here

        if fresh:
            assert cfg.HF_EVALUATE_OFFLINE is True
        # Also right if another test imported evaluate before the variables were set.
        mp.setattr(cfg, "HF_EVALUATE_OFFLINE", True)
        for attr, sub in (
            ("HF_METRICS_CACHE", "metrics"),
            ("HF_MODULES_CACHE", "modules"),
            ("HF_EVALUATE_CACHE", "evaluate"),
        ):
            mp.setattr(cfg, attr, home / sub)
        _drop_dynamic_modules()  # an earlier test may have imported them from another (removed) cache
        yield home
        _drop_dynamic_modules()


def _drop_dynamic_modules() -> None:
    """Forget the ``evaluate_modules`` package evaluate builds in its modules cache: a stale one keeps the
    __path__ of the cache it was first imported from, and every later metric import would look there."""
    for name in [n for n in sys.modules if n.split(".")[0] == "evaluate_modules"]:
        del sys.modules[name]
    importlib.invalidate_caches()


# ---------------------------------------------------------------------------- pure metrics


def test_accuracy_in_percent():
    assert M.accuracy([0, 1, 1, 0], [0, 1, 0, 0]) == 75.0
    assert M.accuracy(torch.tensor([1, 1]), np.array([1, 1])) == 100.0
    with pytest.raises(ValueError, match="3 predictions but 2 labels"):
        M.accuracy([0, 1, 1], [0, 1])
    with pytest.raises(ValueError, match="no predictions"):
        M.accuracy([], [])


def test_tow_is_one_when_unlearned_equals_twin():
    acc = {"forget": 73.5, "retain": 91.0, "test": 80.25}
    assert M.tow(acc, dict(acc)) == 1.0
    assert M.tow_mia(acc, dict(acc), 0.42, 0.42) == 1.0


def test_tow_hand_computed():
    u = {"forget": 90.0, "retain": 95.0, "test": 85.0}
    r = {"forget": 80.0, "retain": 95.0, "test": 86.0}
    assert M.tow(u, r) == pytest.approx(0.9 * 1.0 * 0.99)  # 0.891
    assert M.tow(r, u) == pytest.approx(0.891)  # symmetric


def test_tow_mia_hand_computed():
    u = {"forget": 90.0, "retain": 95.0, "test": 85.0}
    r = {"forget": 80.0, "retain": 95.0, "test": 86.0}
    # forget factor replaced: (1 - |0.3 - 0.5|) * 1.0 * 0.99; the forget accuracies no longer matter
    assert M.tow_mia(u, r, 0.3, 0.5) == pytest.approx(0.8 * 1.0 * 0.99)
    assert M.tow_mia({**u, "forget": 0.0}, r, 0.3, 0.5) == pytest.approx(0.792)


def test_tow_input_errors():
    good = {"forget": 90.0, "retain": 95.0, "test": 85.0}
    with pytest.raises(KeyError, match="test"):
        M.tow({"forget": 90.0, "retain": 95.0}, good)
    with pytest.raises(ValueError, match="percent"):
        M.tow({**good, "retain": 105.0}, good)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        M.tow_mia(good, good, 30.0, 0.5)


def _mlp(seed: int) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))


def test_verification_error_matches_manual_norm():
    a, b = _mlp(0), _mlp(1)
    manual = torch.cat([(pa - pb).flatten() for pa, pb in zip(a.parameters(), b.parameters())]).norm().item()
    assert M.verification_error(a, b) == pytest.approx(manual, rel=1e-6)
    assert M.verification_error(a.state_dict(), b.state_dict()) == pytest.approx(manual, rel=1e-6)
    assert M.verification_error(a, b.state_dict()) == pytest.approx(manual, rel=1e-6)
    assert M.verification_error(a, a) == 0.0


def test_verification_error_only_trainable_parameters():
    a, b = _mlp(0), _mlp(1)
    for m in (a, b):
        m[0].requires_grad_(False)
    with torch.no_grad():
        manual = math.sqrt(sum(float(((pa - pb) ** 2).sum()) for pa, pb in zip(a[2].parameters(), b[2].parameters())))
    assert M.verification_error(a, b) == pytest.approx(manual, rel=1e-6)
    # the state dict also holds the frozen layer: against a model only the model's trainable names count
    assert M.verification_error(a, b.state_dict()) == pytest.approx(manual, rel=1e-6)


def test_verification_error_rejects_mismatch():
    a = _mlp(0)
    other = nn.Sequential(nn.Linear(3, 5), nn.ReLU(), nn.Linear(5, 2))
    with pytest.raises(ValueError, match="shape of '0.weight' differs"):
        M.verification_error(a, other)
    renamed = {"x." + k: v for k, v in a.state_dict().items()}
    with pytest.raises(ValueError, match="names differ"):
        M.verification_error(a.state_dict(), renamed)
    with pytest.raises(ValueError, match="lacks trainable"):
        M.verification_error(a, renamed)
    with pytest.raises(TypeError):
        M.verification_error(a, [1.0, 2.0])


def _confidences(seed: int = 0):
    rng = np.random.default_rng(seed)
    members = np.clip(1.0 - rng.uniform(0.0, 0.03, 200), 0, 1)  # retain: near 1
    nonmembers = rng.uniform(0.45, 0.55, 60)  # test: near 0.5 (unbalanced on purpose: 200 vs 60)
    return rng, members, nonmembers


def test_svc_mia_separable_confidences():
    rng, members, nonmembers = _confidences()
    forgotten = rng.uniform(0.45, 0.55, 30)
    remembered = np.clip(1.0 - rng.uniform(0.0, 0.03, 30), 0, 1)
    assert M.svc_mia(members, nonmembers, forgotten) >= 0.95
    assert M.svc_mia(members, nonmembers, remembered) <= 0.05
    assert M.svc_mia(members, nonmembers, forgotten, seed=3) == M.svc_mia(members, nonmembers, forgotten, seed=3)


def test_svc_mia_degenerate_inputs():
    _, members, nonmembers = _confidences()
    with pytest.raises(ValueError, match="got 0 retain"):
        M.svc_mia([], nonmembers, [0.5])
    with pytest.raises(ValueError, match="1 test"):
        M.svc_mia(members, [0.5], [0.5])
    with pytest.raises(ValueError, match="forget set is empty"):
        M.svc_mia(members, nonmembers, [])
    with pytest.raises(ValueError, match="NaN"):
        M.svc_mia(members, nonmembers, [float("nan")])


def test_loss_threshold_auc():
    assert M.loss_threshold_mia_auc([0.01, 0.1, 0.2], [0.5, 1.0, 2.0]) == 1.0
    assert M.loss_threshold_mia_auc([0.5, 1.0, 2.0], [0.01, 0.1, 0.2]) == 0.0
    same = [0.3, 0.7, 1.1]
    assert M.loss_threshold_mia_auc(same, same) == 0.5
    rng = np.random.default_rng(0)
    assert 0.4 < M.loss_threshold_mia_auc(rng.exponential(size=500), rng.exponential(size=500)) < 0.6
    with pytest.raises(ValueError, match="member_losses is empty"):
        M.loss_threshold_mia_auc([], [1.0])


def test_canary_score():
    assert M.canary_score([0.9, 0.7]) == pytest.approx(0.8)
    assert M.canary_score(np.array([[0.25], [0.75]])) == pytest.approx(0.5)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        M.canary_score([1.5])
    with pytest.raises(ValueError, match="empty"):
        M.canary_score([])


def test_confidence_and_loss_helpers():
    probs = np.array([[0.2, 0.8], [1.0, 0.0], [0.5, 0.5]], dtype=np.float32)
    labels = np.array([1, 1, 0])
    np.testing.assert_allclose(true_class_confidence(probs, labels), [0.8, 0.0, 0.5])
    np.testing.assert_allclose(
        per_example_loss(probs, labels), [-math.log(0.8), -math.log(1e-12), math.log(2)], rtol=1e-6
    )


# ------------------------------------------------------------------------- evaluate modules

MODULE_CASES = {
    "unlearning_accuracy": (
        dict(predictions=[0, 1, 1, 0], references=[0, 1, 0, 0]),
        {"accuracy": M.accuracy([0, 1, 1, 0], [0, 1, 0, 0])},
    ),
    "tow": (
        dict(predictions=[90.0, 95.0, 85.0], references=[80.0, 95.0, 86.0], mia_unlearned=0.3, mia_retrained=0.5),
        {
            "tow": M.tow({"forget": 90, "retain": 95, "test": 85}, {"forget": 80, "retain": 95, "test": 86}),
            "tow_mia": M.tow_mia(
                {"forget": 90, "retain": 95, "test": 85}, {"forget": 80, "retain": 95, "test": 86}, 0.3, 0.5
            ),
        },
    ),
    "mia_efficacy": (
        dict(
            confidence=[0.99, 0.98, 0.97, 0.96, 0.5, 0.52, 0.48, 0.51, 0.5, 0.99],
            split=["retain"] * 4 + ["test"] * 4 + ["forget"] * 2,
            seed=0,
        ),
        {"mia_efficacy": M.svc_mia([0.99, 0.98, 0.97, 0.96], [0.5, 0.52, 0.48, 0.51], [0.5, 0.99], seed=0)},
    ),
    "canary_score": (dict(predictions=[0.9, 0.7, 0.2]), {"canary_score": M.canary_score([0.9, 0.7, 0.2])}),
    "verification_error": (
        dict(predictions=[[1.0, 2.0], [3.0, 4.0, 5.0]], references=[[1.0, 0.0], [0.0, 4.0, 5.0]]),
        {"verification_error": math.sqrt(2.0**2 + 3.0**2)},
    ),
}


def test_metric_path_and_registry():
    assert set(MODULE_CASES) <= set(available_metrics())
    path = metric_path("tow")
    assert os.path.isfile(os.path.join(path, "tow.py"))
    with pytest.raises(ValueError, match="unknown metric 'accuracy'"):
        metric_path("accuracy")
    with pytest.raises(ValueError, match="unknown metric"):
        metric_path("../metrics/tow")


@pytest.mark.parametrize("name", sorted(MODULE_CASES))
def test_evaluate_module_loads_offline_and_matches_function(offline_hf, name):
    kwargs, expected = MODULE_CASES[name]
    module = load_metric(name)
    assert module.name == name
    assert module.citation.strip() and module.description.strip()
    out = module.compute(**kwargs)
    assert out.keys() == expected.keys()
    for k, v in expected.items():
        assert out[k] == pytest.approx(v, rel=1e-9, abs=1e-12)
    # nothing was fetched: the loaded script is a copy of the package's file in the temp HF_HOME
    assert any(offline_hf.rglob(f"{name}.py"))


def test_verification_error_module_on_tiny_models(offline_hf):
    a, b = _mlp(0), _mlp(1)
    rows = lambda m: [p.detach().flatten().tolist() for p in m.parameters() if p.requires_grad]  # noqa: E731
    out = load_metric("verification_error").compute(predictions=rows(a), references=rows(b))
    assert out["verification_error"] == pytest.approx(M.verification_error(a, b), rel=1e-6)


def test_tow_module_rejects_wrong_row_count(offline_hf):
    with pytest.raises(ValueError, match="exactly 3 accuracies"):
        load_metric("tow").compute(predictions=[90.0, 95.0], references=[80.0, 95.0])


# --------------------------------------------------------------------- tiny BERT end to end


@pytest.fixture(scope="module")
def tiny_setup(offline_hf):
    from hf_unlearn.data import load_sentiment_dataset
    from hf_unlearn.models import build_tiny_bert, tokenize_dataset

    dd = load_sentiment_dataset("synthetic", n_train=80, n_test=40, n_canaries=4)
    model, tok = build_tiny_bert(dd["train"]["text"])
    tds = tokenize_dataset(dd, tok)
    train = tds["train"]
    canaries = [i for i in train["id"] if i.startswith("canary-")]
    assert len(canaries) == 4
    forget_ids = set(canaries) | set(train["id"][:8])
    splits = {
        "forget": train.filter(lambda r: r["id"] in forget_ids),
        "retain": train.filter(lambda r: r["id"] not in forget_ids),
        "test": tds["test"],
    }
    return model, tok, splits, canaries


def test_predict_probs_shapes_order_and_padding(tiny_setup):
    model, tok, splits, _ = tiny_setup
    model.train()
    probs, labels = predict_probs(model, splits["test"], tok)
    assert model.training  # mode restored
    assert probs.shape == (40, 2) and probs.dtype == np.float32
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)
    np.testing.assert_array_equal(labels, np.asarray(splits["test"]["label"]))
    # eval mode (no dropout) and correct attention masks: batch composition must not matter
    small, _ = predict_probs(model, splits["test"], tok, batch_size=7)
    np.testing.assert_allclose(small, probs, atol=1e-5)


def test_evaluate_model_on_tiny_bert(tiny_setup):
    model, tok, splits, canaries = tiny_setup
    out = evaluate_model(model, tok, splits, canary_ids=canaries)
    assert set(out) == EVAL_KEYS
    for k in ("forget_acc", "retain_acc", "test_acc"):
        assert isinstance(out[k], float) and 0.0 <= out[k] <= 100.0
    for k in ("mia_efficacy", "mia_auc", "canary_score"):
        assert isinstance(out[k], float) and 0.0 <= out[k] <= 1.0
    assert not any(isinstance(v, (np.ndarray, list, dict)) for v in out.values())
    # the canary score is the mean p(y|x) of exactly the 4 canaries
    probs, labels = predict_probs(model, splits["forget"], tok)
    is_canary = np.array([i in set(canaries) for i in splits["forget"]["id"]])
    assert out["canary_score"] == pytest.approx(
        float(true_class_confidence(probs, labels)[is_canary].mean()), rel=1e-6
    )

    no_canary = evaluate_model(model, tok, splits)
    assert no_canary["canary_score"] is None
    assert no_canary["forget_acc"] == out["forget_acc"]
    assert compare(out, no_canary) == {"tow": 1.0, "tow_mia": 1.0}
    with pytest.raises(KeyError, match="missing"):
        evaluate_model(model, tok, {"forget": splits["forget"], "test": splits["test"]})


def test_compare_hand_computed():
    u = {"forget_acc": 90.0, "retain_acc": 95.0, "test_acc": 85.0, "mia_efficacy": 0.3}
    r = {"forget_acc": 80.0, "retain_acc": 95.0, "test_acc": 86.0, "mia_efficacy": 0.5}
    out = compare(u, r)
    assert out["tow"] == pytest.approx(0.891) and out["tow_mia"] == pytest.approx(0.792)


# ------------------------------------------------------------------------------------ plots


def _is_png(path) -> bool:
    with open(path, "rb") as f:
        return f.read(8) == b"\x89PNG\r\n\x1a\n"


def test_plots_write_png_atomically(tmp_path):
    from hf_unlearn.evaluation import plots

    mbm = {
        "original": {
            "forget_acc": 100.0,
            "retain_acc": 97.0,
            "test_acc": 81.0,
            "mia_efficacy": 0.05,
            "mia_auc": 0.85,
            "canary_score": 0.97,
        },
        "unlearned": {
            "forget_acc": 83.0,
            "retain_acc": 95.0,
            "test_acc": 80.0,
            "mia_efficacy": 0.31,
            "mia_auc": 0.58,
            "canary_score": None,
        },
        "retrain_twin": {
            "forget_acc": 79.0,
            "retain_acc": 96.8,
            "test_acc": 80.9,
            "mia_efficacy": 0.36,
            "mia_auc": 0.52,
            "canary_score": 0.49,
        },
    }
    out = [
        plots.plot_accuracies(mbm, tmp_path / "acc.png"),
        plots.plot_mia(mbm, tmp_path / "mia.png"),
        plots.plot_verification_error({"unlearned": 1.23, "original": 3.9}, tmp_path / "ve.png"),
        plots.plot_group_bars(
            {"low": {"tow": 0.97, "tow_mia": 0.9}, "high": {"tow": 0.7}}, tmp_path / "sub" / "g.png", "ToW per group"
        ),
    ]
    assert all(_is_png(p) for p in out)
    assert sorted(p.name for p in tmp_path.rglob("*") if p.is_file()) == ["acc.png", "g.png", "mia.png", "ve.png"]
    with pytest.raises(KeyError, match="test_acc"):
        plots.plot_accuracies({"x": {"forget_acc": 1.0, "retain_acc": 2.0}}, tmp_path / "bad.png")
    assert not (tmp_path / "bad.png").exists()
