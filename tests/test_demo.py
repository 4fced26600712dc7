"""The offline demo: its forget request, the verdict rule, and a run at reduced sizes."""

import json
import re

import pytest

from hf_unlearn.runs.demo import (
    DAMAGES,
    FORGETS_LESS,
    FORGETS_MORE,
    NO_BETTER,
    VERDICTS,
    WITHIN_NOISE,
    DemoSizes,
    demo_request,
    verdict,
    verdict_rule,
)


def _acc(forget, retain=100.0, test=100.0):
    return {"forget_acc": forget, "retain_acc": retain, "test_acc": test}


ORIGINAL, TWIN = _acc(100.0), _acc(80.0)


@pytest.mark.parametrize(
    ("unlearned", "expected"),
    [
        (_acc(81.0), WITHIN_NOISE),  # 1 point off, tolerance 2 points (50 examples)
        (_acc(78.0), WITHIN_NOISE),  # exactly one example below the twin
        (_acc(90.0), FORGETS_LESS),  # closed half of the original's 20-point gap
        (_acc(70.0), FORGETS_MORE),  # 10 points below the twin
        (_acc(98.0), NO_BETTER),  # one example better than the original: within the tolerance
        (_acc(100.0), NO_BETTER),  # the original itself
        (_acc(80.0, retain=97.0), DAMAGES),  # forgets exactly, but retain 3 points below the twin
        (_acc(80.0, test=98.5), DAMAGES),  # test 1.5 points below
        (_acc(80.0, retain=99.5, test=99.5), WITHIN_NOISE),  # half a point below: within 1 point
    ],
)
def test_verdict_rule_on_constructed_numbers(unlearned, expected):
    assert verdict(ORIGINAL, unlearned, TWIN, n_forget=50) == expected


def test_verdict_tolerance_is_one_forget_example():
    # 4 points off the twin: within noise for 20 examples (5 points each), not for 100 (1 point each)
    assert verdict(ORIGINAL, _acc(84.0), TWIN, n_forget=20) == WITHIN_NOISE
    assert verdict(ORIGINAL, _acc(84.0), TWIN, n_forget=100) == FORGETS_LESS
    assert "2.0 points" in verdict_rule(50) and "later version" in verdict_rule(50)


def test_demo_request_is_a_fraction_with_every_canary():
    ids = [f"canary-{i:04d}" for i in range(20)] + [f"synthetic-train-{i:05d}" for i in range(980)]
    forget = demo_request(ids)
    assert len(forget) == 50 and forget == sorted(forget)
    assert sum(i.startswith("canary-") for i in forget) == 20
    ordinary = [int(i.rsplit("-", 1)[1]) for i in forget if not i.startswith("canary-")]
    assert min(ordinary) == 0 and max(ordinary) > 800  # spread over the set, not its head
    assert len(demo_request(ids, fraction=0.1)) == 100


def test_default_sizes_make_figures_that_mean_something():
    sizes = DemoSizes()
    n_forget = round(sizes.forget_fraction * (sizes.n_train + sizes.n_canaries))
    assert 100 / n_forget <= 2.5 and sizes.n_canaries <= n_forget


def test_demo_runs_at_reduced_sizes(tmp_path, capsys):
    from hf_unlearn.console import configure_output
    from hf_unlearn.runs.demo import run_demo

    configure_output()
    sizes = DemoSizes(n_train=60, n_canaries=4, n_test=40, forget_fraction=0.1, epochs=1, vocab_size=300)
    summary = run_demo(tmp_path, seed=0, with_s3t=False, sizes=sizes)
    saved = json.loads((tmp_path / "summary.json").read_text())
    assert saved["forget"]["count"] == 6 and saved["sizes"]["n_train"] == 60
    assert set(saved["unlearning"]) == {"amnesiac", "neggrad_plus", "per_sample_replay"}
    for figures in saved["unlearning"].values():
        assert figures["verdict"] in VERDICTS
        assert 0.0 <= figures["do_nothing"]["tow"] <= 1.0 and 0.0 <= figures["do_nothing"]["tow_mia"] <= 1.0
        assert figures["forget_acc"]["original"] is not None
    assert "one forget example" in saved["verdict_rule"] and summary["unlearning"] == saved["unlearning"]
    out, err = capsys.readouterr()
    for method, figures in saved["unlearning"].items():
        assert f"{method}" in out and figures["verdict"] in out
    assert out.count("do nothing (the original against the twin)") == 3
    assert "[hf-unlearn] 1/5 training" in err and "done in" in err
    labels = {m.group(1).strip() for line in re.split(r"[\r\n]", err) if (m := re.match(r"(.*?):?\s*\d+%\|", line))}
    assert labels and "" not in labels  # every bar drawn is labelled
    assert not labels & {"Loading weights", "Writing model shards", "Map", "Casting the dataset"}
    assert not any(
        text in err for text in ("Loading weights", "Casting the dataset", "Writing model shards", "tokenize:")
    )
    assert "{'loss'" not in out + err and "{'train_runtime'" not in out + err  # no Trainer log dicts
    assert "canary-0000" not in out + err and "canary-planted-" not in out + err  # never an id of a forgotten example
    assert out.count("canary exposure of the 4 forgotten canaries") == 3  # original / unlearned / twin each time
