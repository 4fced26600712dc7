"""The offline demo: its forget request, the verdict rule it states, and a run at reduced sizes."""

import json
import re

from hf_unlearn.runs.demo import VERDICTS, DemoSizes, demo_request, verdict_rule


def test_the_demo_states_the_rule_the_report_and_card_use():
    from hf_unlearn.evaluation.verdict import RULE

    assert verdict_rule() == "verdict rule: " + RULE and "doing nothing" in RULE


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
    assert "doing nothing" in saved["verdict_rule"] and summary["unlearning"] == saved["unlearning"]
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
