"""The retrain noise floor, the verdict rule and the per-example membership test, on constructed numbers."""

import numpy as np
import pytest

from hf_unlearn.cards import render_card
from hf_unlearn.evaluation import membership as M
from hf_unlearn.evaluation.noise_floor import against_twin, noise_floor_section, noise_min, spread
from hf_unlearn.evaluation.report import summary_table
from hf_unlearn.evaluation.verdict import (
    DID_HARM,
    FORGETS_LESS,
    FORGETS_MORE,
    NO_BETTER,
    NOISE_RULE,
    RULE,
    WITHIN_NOISE,
    judge,
)


def _m(forget, retain=90.0, test=85.0, mia=0.5):
    return {"forget_acc": forget, "retain_acc": retain, "test_acc": test, "mia_efficacy": mia, "mia_auc": 0.5}


TWIN, ORIGINAL = _m(80.0, mia=0.30), _m(100.0, retain=91.0, mia=0.05)
NOISE = [_m(78.0, retain=89.5, mia=0.32), _m(83.0, retain=90.5, mia=0.27), _m(80.0, test=84.0, mia=0.30)]


def _judge(unlearned, noise=NOISE, sizes=None):
    comp, nothing = against_twin(unlearned, TWIN), against_twin(ORIGINAL, TWIN)
    floor = noise_floor_section(TWIN, noise, unlearned) if noise else None
    return judge(
        ORIGINAL,
        unlearned,
        TWIN,
        tow=comp["tow"],
        tow_mia=comp["tow_mia"],
        nothing_tow=nothing["tow"],
        nothing_tow_mia=nothing["tow_mia"],
        noise_min=noise_min(floor),
        sizes=sizes,
    )


def test_the_noise_floor_is_the_spread_of_the_noise_twins_against_the_twin():
    floor = noise_floor_section(TWIN, NOISE, _m(90.0))
    tows = [(1 - 0.02) * (1 - 0.005), (1 - 0.03) * (1 - 0.005), 1 - 0.01]  # by hand, from the accuracies
    tow = floor["against_twin"]["tow"]
    assert tow["mean"] == pytest.approx(np.mean(tows)) and tow["sd"] == pytest.approx(np.std(tows, ddof=1))
    assert (tow["min"], tow["max"]) == (pytest.approx(min(tows)), pytest.approx(max(tows)))
    assert floor["against_twin"]["forget_acc_gap"]["min"] == pytest.approx(-2.0)
    assert floor["method"]["tow"] == pytest.approx(0.9) and floor["n_twins"] == 3
    assert floor["metrics"]["forget_acc"]["max"] == 83.0  # the plots' band: the noise twins' own figures
    assert against_twin(TWIN, TWIN)["tow"] == 1.0 == against_twin(TWIN, TWIN)["tow_mia"]
    assert spread([0.5]) == {"mean": 0.5, "sd": 0.0, "min": 0.5, "max": 0.5, "n": 1}


@pytest.mark.parametrize(
    ("unlearned", "label", "within"),
    [
        (_m(81.0, mia=0.29), WITHIN_NOISE, True),  # closer to the twin than the worst noise twin
        (_m(90.0, mia=0.20), FORGETS_LESS, False),  # better than doing nothing, outside the noise
        (_m(70.0, mia=0.45), FORGETS_MORE, False),
        (dict(ORIGINAL), NO_BETTER, False),  # the original itself: ToW equal to doing nothing
        (_m(80.0, retain=87.0, mia=0.30), DID_HARM, True),  # forgets exactly, retain 3 points below the twin
        (_m(100.0, retain=91.0, test=80.0, mia=0.05), DID_HARM, False),  # ToW below doing nothing
    ],
)
def test_the_verdict_rule_on_constructed_figures(unlearned, label, within):
    verdict = _judge(unlearned)
    assert verdict["label"] == label and verdict["within_noise"] is within
    assert verdict["says"].startswith(label) and verdict["rule"] == RULE and NOISE_RULE in RULE
    assert verdict["harm"] is (label == DID_HARM)


def test_a_drop_that_a_noise_twin_shows_too_is_not_harm():
    """Test accuracy 1.8 points below the twin on 1,000 examples: harm when no noise twin drops that far
    (the worst drops 1.0), retrain noise when one does (2.0 below the twin)."""
    dropped, sizes = _m(81.0, test=83.2, mia=0.29), {"retain": 1000, "test": 1000}
    assert noise_min(noise_floor_section(TWIN, NOISE))["test_acc_gap"] == pytest.approx(-1.0)
    assert _judge(dropped, sizes=sizes)["label"] == DID_HARM
    wider = [*NOISE, _m(80.0, test=83.0, mia=0.30)]
    verdict = _judge(dropped, noise=wider, sizes=sizes)
    assert verdict["label"] == WITHIN_NOISE and not verdict["harm"]
    assert _judge(dropped, noise=None, sizes=sizes)["label"] == DID_HARM  # no noise twins: the 1-point rule


def test_harm_needs_more_than_one_evaluated_example():
    """3 points below the twin is harm on 1,000 retain examples, not on 25 (one example = 4 points)."""
    hurt = _m(80.0, retain=87.0, mia=0.30)
    assert _judge(hurt, sizes={"retain": 1000, "test": 1000})["label"] == DID_HARM
    assert _judge(hurt, sizes={"retain": 25, "test": 1000})["label"] == WITHIN_NOISE


def test_without_noise_twins_the_verdict_does_not_judge_the_noise():
    verdict = _judge(_m(81.0, mia=0.29), noise=[])
    assert verdict["label"] == FORGETS_LESS and verdict["within_noise"] is None


def test_lira_style_test_on_synthetic_confidences_with_a_known_answer():
    rng = np.random.default_rng(0)
    k, n = 16, 400
    mu = rng.normal(0.0, 2.0, size=n)  # each example's mean logit confidence under models that never saw it

    def probs(phi):
        return 1.0 / (1.0 + np.exp(-phi))

    ref_f, ref_t = probs(mu + rng.normal(0, 1, (k, n))), probs(mu + rng.normal(0, 1, (k, n)))
    unseen = probs(mu + rng.normal(0, 1, n))  # drawn like the references: a model that never saw them
    memorised = probs(mu + 4.0)  # 4 sd more confident on every forget example
    test_p = probs(mu + rng.normal(0, 1, n))
    assert M.logit_confidence([0.5])[0] == 0.0 and M.p_values([1.6448536])[0] == pytest.approx(0.05, abs=1e-6)
    seen = M.membership_figures(memorised, ref_f, test_p, ref_t)
    fresh = M.membership_figures(unseen, ref_f, test_p, ref_t)
    assert seen["flagged_fraction"] > 0.95 and seen["auc"] > 0.97 and seen["mean_z"] == pytest.approx(4.0, abs=0.3)
    assert fresh["flagged_fraction"] == pytest.approx(0.05, abs=0.035) and fresh["auc"] == pytest.approx(0.5, abs=0.07)
    with pytest.raises(ValueError, match="K >= 2"):
        M.reference_fit(ref_f[:1])
    assert "at least 2 noise twins" in M.absent_section(1)["absent"]


def _report():
    floor = noise_floor_section(TWIN, NOISE, _m(90.0, mia=0.2))
    verdict = _judge(_m(90.0, mia=0.2))
    comp = {**against_twin(_m(90.0, mia=0.2), TWIN), "verification_error": 1.5}
    nothing = against_twin(ORIGINAL, TWIN)
    comp.update(tow_original=nothing["tow"], tow_mia_original=nothing["tow_mia"])
    return {
        "method": "neggrad_plus",
        "forget": {"count": 7, "commitment": "hmac-sha256:" + "ab" * 32},
        "metrics": {"original": ORIGINAL, "unlearned": _m(90.0, mia=0.2), "retrain_twin": TWIN},
        "comparison": comp,
        "noise_floor": floor,
        "verdict": verdict,
        "membership": {
            "reference_models": 3,
            "models": {"unlearned": {"flagged_fraction": 0.4, "auc": 0.71, "mean_z": 1.2}},
        },
    }


def test_report_table_and_card_show_the_noise_floor_the_do_nothing_line_and_the_verdict(tmp_path):
    report = _report()
    table = summary_table(report)
    assert "do nothing (the original against the twin): ToW" in table and "retrain noise (3 noise twins" in table
    assert f"verdict: {FORGETS_LESS}" in table and "membership test (3 reference models)" in table
    card = str(render_card(report))
    assert "### Verdict: against doing nothing and the retrain noise" in card and FORGETS_LESS in card
    assert "Doing nothing (the original model against the retrain twin) scores ToW" in card
    assert "Noise twins: mean" in card and NOISE_RULE in card and "ToW of doing nothing" in card
    assert "### Per-example membership test" in card and "0.710" in card

    from hf_unlearn.evaluation.noise_plots import plot_noise_floor
    from hf_unlearn.evaluation.plot_style import noise_band

    plot_noise_floor(report, tmp_path / "noise_floor.png")
    assert (tmp_path / "noise_floor.png").stat().st_size > 0
    assert noise_band(report["noise_floor"], "forget_acc") == (78.0, 83.0)


def test_a_card_without_noise_twins_says_why_the_membership_test_is_absent():
    report = _report()
    del report["noise_floor"]
    report["membership"] = M.absent_section(0)
    card = str(render_card(report))
    assert "No noise twins were trained" in card and "absent, because the per-example membership test" in card
