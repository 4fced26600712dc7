"""Plots a person reads: titles that name the method and the forget-set size (also in the PNG
metadata), one colour per model in every figure, the noise band when the report has one, the MIA
caption, no overlapping texts, and the summary figure the report writer adds for the card."""

from __future__ import annotations

import pytest
from matplotlib.collections import PolyCollection
from matplotlib.colors import to_hex
from matplotlib.figure import Figure
from matplotlib.legend import Legend
from PIL import Image

from hf_unlearn.evaluation import plots
from hf_unlearn.evaluation.plot_style import MODEL_COLORS, NOISE_COLOR, VANILLA_COLOR, model_color, text_overlaps


def _m(f, r, t, eff, auc, canary=None):
    return {
        "forget_acc": f,
        "retain_acc": r,
        "test_acc": t,
        "mia_efficacy": eff,
        "mia_auc": auc,
        "canary_score": canary,
    }


METRICS = {
    "original": _m(100.0, 100.0, 100.0, 0.0, 0.93, 0.993),
    "unlearned": _m(60.0, 100.0, 100.0, 0.8, 0.45, 0.485),
    "retrain_twin": _m(40.0, 100.0, 100.0, 0.2, 0.38, 0.261),
}
MORE = {
    **METRICS,
    "vanilla_neggrad_plus": _m(55.0, 98.0, 97.0, 0.6, 0.5, 0.5),
    "noise_twin_1": _m(45.0, 100.0, 99.0, 0.3, 0.41, 0.3),
}
NOISE = {
    "n_twins": 3,
    "metrics": {
        "forget_acc": {"mean": 42.0, "std": 6.0},
        "mia_auc": {"mean": 0.4, "std": 0.05, "min": 0.33, "max": 0.47},
    },
}
REPORT = {
    "method": "amnesiac",
    "forget": {"count": 25, "sha256": "0" * 64},
    "metrics": METRICS,
    "comparison": {"tow": 0.8, "tow_mia": 0.4, "verification_error": 2.5, "verification_error_original": 3.1},
}
BUILDERS = (plots.accuracy_figure, plots.mia_figure, plots.summary_figure)


def _png_text(path) -> dict:
    with Image.open(path) as im:
        return dict(im.text)


def test_every_title_names_the_method_and_the_forget_set_size(tmp_path):
    paths = plots.plot_report(REPORT, tmp_path / "plots")
    names = sorted(p.split("/")[-1] for p in map(str, paths))
    assert names == ["accuracy.png", "mia.png", "summary.png", "verification_error.png"]
    titles = {p.split("/")[-1]: _png_text(p)["Title"] for p in map(str, paths)}
    assert titles["accuracy.png"] == "amnesiac: accuracy on forget / retain / test (forget set: 25 examples)"
    for name, title in titles.items():
        assert title.startswith("amnesiac: ") and title.endswith("(forget set: 25 examples)"), name
    assert len(set(titles.values())) == 4
    # what is not known is left out, not printed as None
    bare = _png_text(plots.plot_accuracies(METRICS, tmp_path / "bare.png"))["Title"]
    assert bare == "Accuracy on forget / retain / test"
    one = plots.accuracy_figure(METRICS, method="finetune", forget_count=1).get_suptitle()
    assert one == "finetune: accuracy on forget / retain / test (forget set: 1 example)"


def _colours(fig: Figure) -> dict[str, set[str]]:
    """model label -> face colours of its bars, from the legend labels of grouped bars or the x ticks."""
    out: dict[str, set[str]] = {}
    for ax in fig.axes:
        ticks = [t.get_text().replace("\n", " ") for t in ax.get_xticklabels()]
        for container in ax.containers:
            patches = list(container.patches)
            if not container.get_label().startswith("_"):
                names = [container.get_label()] * len(patches)
            else:
                names = ticks
            for name, patch in zip(names, patches):
                out.setdefault(name, set()).add(to_hex(patch.get_facecolor()))
    return out


@pytest.mark.parametrize("metrics", [METRICS, MORE], ids=["three", "five"])
def test_one_colour_per_model_across_all_plots(metrics):
    seen: dict[str, set[str]] = {}
    for build in BUILDERS:
        for name, colours in _colours(build(metrics, method="rum", forget_count=25)).items():
            seen.setdefault(name, set()).update(colours)
    ve = plots.verification_error_figure({"unlearned": 2.5, "original": 3.1})
    for patch, tick in zip(ve.axes[0].patches, ve.axes[0].get_yticklabels()):
        seen.setdefault(tick.get_text(), set()).add(to_hex(patch.get_facecolor()))
    assert set(seen) == {n.replace("_", " ") for n in metrics}
    assert all(len(c) == 1 for c in seen.values()), seen
    assert len({next(iter(c)) for c in seen.values()}) == len(seen)  # distinct models, distinct colours
    assert seen["unlearned"] == {MODEL_COLORS["unlearned"]} and seen["original"] == {MODEL_COLORS["original"]}
    if "vanilla neggrad plus" in seen:
        assert seen["vanilla neggrad plus"] == {VANILLA_COLOR} and seen["noise twin 1"] == {NOISE_COLOR}


def test_model_colour_is_fixed_by_name():
    assert model_color("retrain twin") == model_color("retrain_twin") == MODEL_COLORS["retrain_twin"]
    assert model_color("unlearned ToW-MIA") == MODEL_COLORS["unlearned"]
    assert model_color("vanilla_scrub") == VANILLA_COLOR and model_color("noise_twin_7") == NOISE_COLOR
    assert model_color("penalty 0.1") == model_color("penalty 0.1")  # stable, whatever else is plotted
    assert model_color("penalty 0.1") not in MODEL_COLORS.values()


def _bands(fig: Figure) -> list[tuple[float, float]]:
    out = []
    for ax in fig.axes:
        for coll in ax.collections:
            if not isinstance(coll, PolyCollection):  # the 0.5 reference segment is a LineCollection
                continue
            ys = coll.get_paths()[0].vertices[:, 1]
            out.append((round(float(ys.min()), 6), round(float(ys.max()), 6)))
    return out


def test_noise_floor_is_a_band_only_when_the_report_has_one():
    for build in BUILDERS:
        assert _bands(build(METRICS)) == [], build.__name__
    acc = plots.accuracy_figure(METRICS, noise_floor=NOISE)
    assert _bands(acc) == [(36.0, 48.0)]  # mean +- std of forget_acc; retain/test have no entry
    mia = plots.mia_figure(METRICS, noise_floor=NOISE)
    assert _bands(mia) == [(0.33, 0.47)]  # min..max when given
    summary = plots.summary_figure(METRICS, noise_floor=NOISE)
    assert sorted(_bands(summary)) == [(0.33, 0.47), (36.0, 48.0)]
    (box,) = summary.findobj(Legend)
    legend = [t.get_text() for t in box.get_texts()]
    assert legend[0] == "retrain noise (3 seeds)" and legend.count("retrain noise (3 seeds)") == 1


def test_mia_plot_has_a_caption_on_auc_below_one_half(tmp_path):
    meta = _png_text(plots.plot_mia(METRICS, tmp_path / "mia.png", method="amnesiac", forget_count=25))
    caption = " ".join(meta["Description"].split())
    assert "forget example has a lower loss than a test example" in caption
    assert "Below 0.5 = the forget examples have a HIGHER loss than unseen test examples" in caption
    drawn = " ".join(
        t.get_text() for t in plots.mia_figure(METRICS).texts + plots.mia_figure(METRICS).subfigs[1].texts
    )
    assert "Below 0.5" in drawn


@pytest.mark.parametrize("metrics", [METRICS, MORE], ids=["three", "five"])
def test_no_text_overlaps_another(metrics):
    for build in BUILDERS:
        for nf in (None, NOISE):
            fig = build(metrics, method="neggrad_plus", forget_count=250, noise_floor=nf)
            assert text_overlaps(fig) == [], build.__name__
    assert text_overlaps(plots.verification_error_figure({"unlearned": 2.5, "original": 3.1})) == []


def test_overlap_check_finds_an_overlap():
    fig = plots.accuracy_figure(METRICS)
    fig.axes[0].text(0, 100, "a label on top of a bar label", fontsize=12)
    assert text_overlaps(fig)


def test_report_writer_adds_the_summary_figure(tmp_path):
    from hf_unlearn.evaluation.report import write_report

    write_report(dict(REPORT, noise_floor=NOISE), tmp_path)
    summary = tmp_path / "plots" / "summary.png"
    assert summary.is_file()
    meta = _png_text(summary)
    assert meta["Title"].startswith("amnesiac: accuracy and membership inference") and "25 examples" in meta["Title"]
    assert "retrain twin" in meta["Description"]


def test_rum_group_plots_name_method_size_and_keep_model_colours(tmp_path):
    from hf_unlearn.evaluation.rum_report import plot_rum_groups

    def fig(n, acc):
        return {"count": n, "forget_acc": acc, "retain_acc": 99.0, "test_acc": 98.0, "mia_efficacy": 0.3}

    groups = {"low": fig(8, 90.0), "high": fig(17, 40.0), "all": fig(25, 56.0)}
    section = {
        "metrics": {m: groups for m in ("original", "unlearned", "retrain_twin")},
        "comparison": {"unlearned": {g: {"tow": 0.9, "tow_mia": 0.8} for g in groups}},
    }
    paths = plot_rum_groups(section, tmp_path, others={"vanilla_neggrad_plus": {g: {"tow": 0.7} for g in groups}})
    for p in paths:
        assert _png_text(p)["Title"].startswith("rum: ") and _png_text(p)["Title"].endswith(
            "(forget set: 25 examples)"
        )
    tow = plots.group_bars_figure(
        {"low": {"unlearned ToW": 0.9, "vanilla_x ToW": 0.7}}, "t", colors={"vanilla_x ToW": model_color("vanilla_x")}
    )
    colours = {c.get_label(): to_hex(c.patches[0].get_facecolor()) for c in tow.axes[0].containers}
    assert colours == {"unlearned ToW": MODEL_COLORS["unlearned"], "vanilla x ToW": VANILLA_COLOR}
