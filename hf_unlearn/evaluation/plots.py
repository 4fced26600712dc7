"""PNG plots of the evaluation figures (matplotlib, Agg canvas, no pyplot global state).

Each figure has a builder that returns the ``matplotlib.figure.Figure`` (``accuracy_figure``,
``mia_figure``, ``verification_error_figure``, ``summary_figure``, ``group_bars_figure``) and a
``plot_*`` function that draws it and writes it atomically (``hf_unlearn.artifacts.atomic_write``)
and returns the path; :func:`plot_report` writes all of them for a report. Every title names the
method and the forget-set size when they are known; the PNG metadata holds the title
(``Title``) and the caption (``Description``). A model has one colour in every figure
(:func:`hf_unlearn.evaluation.plot_style.model_color`); every bar carries its value; the report's
``noise_floor`` (when there is one, see :func:`~hf_unlearn.evaluation.plot_style.noise_band`) is
drawn as a shaded band.
"""

from __future__ import annotations

import textwrap
from collections.abc import Mapping, Sequence
from pathlib import Path

from matplotlib.figure import Figure

from .plot_style import (
    bar_labels,
    draw_band,
    fmt,
    is_num,
    label,
    model_color,
    new_figure,
    noise_band,
    noise_label,
    plot_title,
    save_figure,
)

SPLITS = ("forget", "retain", "test")
ACC_KEYS = tuple(f"{s}_acc" for s in SPLITS)
MIA_AUC_CAPTION = (
    "Loss-MIA AUC: the chance that a forget example has a lower loss than a test example (forget = members, "
    "test = non-members). 0.5 = the forget set cannot be told from unseen data. Below 0.5 = the forget examples "
    "have a HIGHER loss than unseen test examples (e.g. canaries with random labels, which no model that skipped "
    "them gets right, or a method that pushed their loss up): compare with the retrain twin, not with 0.5."
)
SUMMARY_CAPTION = (
    "The retrain twin never saw the forget set: the unlearned model should sit next to it (inside the shaded "
    "retrain noise when shown), not at 0 or 100. A loss-MIA AUC below 0.5 means the forget examples have a higher "
    "loss than unseen test examples."
)


def _wrap(text: str, width_in: float) -> str:
    return "\n".join(textwrap.wrap(text, max(40, int(width_in * 15))))


def _check_models(metrics_by_model: Mapping[str, Mapping], keys: Sequence[str], what: str) -> None:
    if not metrics_by_model:
        raise ValueError(f"{what}: no models to plot")
    for name, m in metrics_by_model.items():
        missing = [k for k in keys if k not in m]
        if missing:
            raise KeyError(f"{what}: model {name!r} lacks {missing}")


def _grouped_bars(ax, categories, series, pct=False, colors=None, hatches=None, bands=None, band_label=None):
    """Bars for each series inside each category (missing values print ``n/a`` at the baseline);
    ``bands[i]`` (low, high) shades category ``i``."""
    names = list(series)
    width = 0.8 / max(len(names), 1)
    fontsize = 8 if len(names) <= 4 else 7
    for i, band in enumerate(bands or ()):
        draw_band(ax, i - 0.45, i + 0.45, band, band_label if band and band_label else None)
        band_label = None if band else band_label
    for k, name in enumerate(names):
        xs = [i - 0.4 + width * (k + 0.5) for i in range(len(categories))]
        vals = [float(v) if is_num(v) else 0.0 for v in series[name]]
        color = (colors or {}).get(name) or model_color(name)
        hatch = (hatches or {}).get(name)
        bars = ax.bar(xs, vals, width * 0.95, label=label(name), color=color, hatch=hatch, edgecolor="white", zorder=2)
        bar_labels(ax, bars, [fmt(v, pct) for v in series[name]], fontsize)
    ax.set_xticks(range(len(categories)), list(categories))
    ax.grid(axis="y", alpha=0.3)
    ax.set_axisbelow(True)


def _model_ticks(ax, names: Sequence[str]) -> None:
    """Model names under the bars, wrapped (not tilted) so that neighbours never touch."""
    ax.set_xticks(range(len(names)), [textwrap.fill(label(n), 13) for n in names])


def _legend_below(fig: Figure, axes) -> None:
    """One legend for the whole figure, under the axes (outside every axes, above any caption)."""
    seen: dict[str, object] = {}
    for ax in axes:
        for handle, text in zip(*ax.get_legend_handles_labels()):
            seen.setdefault(text, handle)
    if seen:
        axes[0].figure.legend(
            list(seen.values()), list(seen), loc="outside lower center", ncol=min(len(seen), 6), frameon=False
        )


def accuracy_figure(
    metrics_by_model: Mapping[str, Mapping], *, method=None, forget_count=None, noise_floor=None
) -> Figure:
    """Grouped bars of forget / retain / test accuracy (%), one bar per model.

    ``metrics_by_model`` maps a model name (``original``, ``unlearned``, ``retrain_twin`` ...) to
    a dict with ``forget_acc``, ``retain_acc``, ``test_acc`` (as :func:`evaluate_model` returns).
    """
    _check_models(metrics_by_model, ACC_KEYS, "plot_accuracies")
    width = max(7.0, 2.0 + 0.55 * len(SPLITS) * max(1, len(metrics_by_model)))
    fig, (ax,) = new_figure(width, 4.6)
    series = {name: [m[k] for k in ACC_KEYS] for name, m in metrics_by_model.items()}
    bands = [noise_band(noise_floor, k) for k in ACC_KEYS]
    _grouped_bars(
        ax, ["forget set", "retain set", "test set"], series, True, bands=bands, band_label=noise_label(noise_floor)
    )
    ax.set_ylim(0, 112)
    ax.set_ylabel("accuracy (%)")
    ax.set_title("unlearning succeeds when the unlearned bars match the retrain twin's", fontsize=9)
    fig.suptitle(plot_title("accuracy on forget / retain / test", method, forget_count))
    _legend_below(fig, [ax])
    return fig


def _mia_panels(metrics_by_model: Mapping[str, Mapping]) -> list[tuple]:
    panels = [
        (
            "mia_efficacy",
            "MIA efficacy (SVC attack)\nhigher = forget set looks unseen",
            "share of forget examples\ncalled non-members",
            None,
        ),
        ("mia_auc", "Loss-threshold MIA AUC, forget vs test\ndashed = 0.5, indistinguishable", "ROC AUC", 0.5),
    ]
    if any(is_num(m.get("canary_score")) for m in metrics_by_model.values()):
        panels.append(
            (
                "canary_score",
                "Canary score: mean p(y|x)\ndashed = chance for 2 classes",
                "mean p(y|x) over canaries",
                0.5,
            )
        )
    return panels


def mia_figure(metrics_by_model: Mapping[str, Mapping], *, method=None, forget_count=None, noise_floor=None) -> Figure:
    """Membership-inference figures per model: MIA efficacy, loss-threshold AUC, canary score.

    The canary panel is drawn when at least one model has a ``canary_score``; the caption says
    what an AUC below 0.5 means.
    """
    _check_models(metrics_by_model, ["mia_efficacy", "mia_auc"], "plot_mia")
    names = list(metrics_by_model)
    panels = _mia_panels(metrics_by_model)
    width = max(9.0, 2.4 + 1.0 * len(names) * len(panels))
    fig, axes = new_figure(width, 5.6, ncols=len(panels), caption=_wrap(MIA_AUC_CAPTION, width))
    for ax, (key, title, ylabel, ref) in zip(axes, panels):
        vals = [metrics_by_model[n].get(key) for n in names]
        draw_band(ax, -0.5, len(names) - 0.5, noise_band(noise_floor, key), noise_label(noise_floor))
        nums = [float(v) if is_num(v) else 0.0 for v in vals]
        bars = ax.bar(range(len(names)), nums, 0.7, color=[model_color(n) for n in names], zorder=2)
        bar_labels(ax, bars, [fmt(v) for v in vals])
        _model_ticks(ax, names)
        if ref is not None:
            ax.axhline(ref, color="black", linestyle="--", linewidth=1, zorder=0.5)
        ax.set_ylim(0, 1.12)
        ax.set_ylabel(ylabel)
        ax.set_title(title, fontsize=9.5)
        ax.grid(axis="y", alpha=0.3)
        ax.set_axisbelow(True)
    fig.suptitle(plot_title("membership inference on the forget set", method, forget_count))
    _legend_below(fig, axes)
    return fig


def verification_error_figure(values: Mapping[str, float], *, method=None, forget_count=None) -> Figure:
    """Horizontal bars of verification errors ``||w - w_retrain_twin||_2``, one per compared model.

    ``values`` maps a model name (``"unlearned"``, ``"original"``; coloured as that model) or any
    label (e.g. ``"penalty 0.1"``) to its VE.
    """
    if not values:
        raise ValueError("plot_verification_error: no values to plot")
    names = list(values)
    fig, (ax,) = new_figure(8.0, 2.0 + 0.5 * len(names))
    nums = [float(values[n]) if is_num(values[n]) else 0.0 for n in names]
    bars = ax.barh(range(len(names)), nums, 0.6, color=[model_color(n) for n in names], zorder=2)
    ax.bar_label(bars, labels=[fmt(values[n]) for n in names], padding=3, fontsize=9)
    ax.set_yticks(range(len(names)), [label(n) for n in names])
    ax.invert_yaxis()
    ax.set_xlim(0, (max(nums) or 1.0) * 1.2)
    ax.set_xlabel("L2 distance of all trainable weights to the retrain twin (0 = identical)")
    ax.set_title("Thudi et al.: lower is closer to exact retraining", fontsize=9)
    ax.grid(axis="x", alpha=0.3)
    ax.set_axisbelow(True)
    fig.suptitle(plot_title("verification error, weight distance to the retrain twin", method, forget_count))
    return fig


def summary_figure(
    metrics_by_model: Mapping[str, Mapping], *, method=None, forget_count=None, noise_floor=None
) -> Figure:
    """The one figure of the card: forget / retain / test accuracy and the two MIA figures, one bar per model."""
    _check_models(metrics_by_model, [*ACC_KEYS, "mia_efficacy", "mia_auc"], "plot_summary")
    n = max(1, len(metrics_by_model))
    width = max(10.0, 3.0 + 0.5 * n * 5)
    fig, (acc_ax, mia_ax) = new_figure(width, 5.0, ncols=2, caption=_wrap(SUMMARY_CAPTION, width))
    band = noise_label(noise_floor)
    acc = {name: [m[k] for k in ACC_KEYS] for name, m in metrics_by_model.items()}
    bands = [noise_band(noise_floor, k) for k in ACC_KEYS]
    _grouped_bars(acc_ax, ["forget", "retain", "test"], acc, True, bands=bands, band_label=band)
    acc_ax.set_ylim(0, 112)
    acc_ax.set_ylabel("accuracy (%)")
    acc_ax.set_title("accuracy by split", fontsize=10)
    mia_keys = ("mia_efficacy", "mia_auc")
    mia = {name: [m.get(k) for k in mia_keys] for name, m in metrics_by_model.items()}
    bands = [noise_band(noise_floor, k) for k in mia_keys]
    _grouped_bars(mia_ax, ["MIA efficacy", "loss-MIA AUC"], mia, bands=bands, band_label=band)
    mia_ax.hlines(0.5, 0.55, 1.45, colors="black", linestyles="--", linewidth=1, zorder=0.5)
    mia_ax.set_ylim(0, 1.12)
    mia_ax.set_ylabel("0-1")
    mia_ax.set_title("membership inference (AUC: dashed = 0.5, indistinguishable)", fontsize=10)
    fig.suptitle(plot_title("accuracy and membership inference vs the retrain twin", method, forget_count))
    _legend_below(fig, [acc_ax, mia_ax])
    return fig


def group_bars_figure(groups, title: str, ylabel: str = "value", colors=None, hatches=None) -> Figure:
    """Grouped bars: one cluster per outer key, one bar per inner key (e.g. per-group ToW / ToW-MIA).

    ``groups = {"low memorization": {"tow": 0.97, "tow_mia": 0.91}, "high ...": {...}}``; a series
    missing from a group prints ``n/a``. ``colors`` / ``hatches`` map a series to its style (the
    default colour is the model's, :func:`model_color`).
    """
    if not groups:
        raise ValueError("plot_group_bars: no groups to plot")
    cats = list(groups)
    series_names: list[str] = []
    for g in groups.values():
        series_names += [s for s in g if s not in series_names]
    series = {s: [groups[c].get(s) for c in cats] for s in series_names}
    fig, (ax,) = new_figure(max(7.0, 2.0 + 0.6 * len(cats) * max(1, len(series_names))), 4.6)
    _grouped_bars(ax, cats, series, colors=colors, hatches=hatches)
    nums = [float(v) for vals in series.values() for v in vals if is_num(v)] or [0.0]
    lo, hi = min(0.0, min(nums)), max(0.0, max(nums))
    span = (hi - lo) or 1.0
    ax.set_ylim(lo - (0.12 * span if lo < 0 else 0.0), hi + 0.12 * span)
    ax.set_ylabel(ylabel)
    fig.suptitle(title)
    if len(series_names) > 1:
        _legend_below(fig, [ax])
    return fig


def plot_accuracies(metrics_by_model, path, *, method=None, forget_count=None, noise_floor=None) -> str:
    """Write :func:`accuracy_figure` to ``path`` (PNG); returns the path."""
    return save_figure(
        accuracy_figure(metrics_by_model, method=method, forget_count=forget_count, noise_floor=noise_floor), path
    )


def plot_mia(metrics_by_model, path, *, method=None, forget_count=None, noise_floor=None) -> str:
    """Write :func:`mia_figure` to ``path`` (PNG); returns the path."""
    return save_figure(
        mia_figure(metrics_by_model, method=method, forget_count=forget_count, noise_floor=noise_floor), path
    )


def plot_verification_error(values, path, *, method=None, forget_count=None) -> str:
    """Write :func:`verification_error_figure` to ``path`` (PNG); returns the path."""
    return save_figure(verification_error_figure(values, method=method, forget_count=forget_count), path)


def plot_summary(metrics_by_model, path, *, method=None, forget_count=None, noise_floor=None) -> str:
    """Write :func:`summary_figure` to ``path`` (PNG); returns the path."""
    return save_figure(
        summary_figure(metrics_by_model, method=method, forget_count=forget_count, noise_floor=noise_floor), path
    )


def plot_group_bars(groups, path, title: str, ylabel: str = "value", colors=None, hatches=None) -> str:
    """Write :func:`group_bars_figure` to ``path`` (PNG); returns the path."""
    return save_figure(group_bars_figure(groups, title, ylabel, colors, hatches), path)


def plot_report(report: Mapping, plots_dir) -> list[str]:
    """Every plot of a report in ``plots_dir``: ``accuracy.png``, ``mia.png``, ``summary.png``, with a
    verification error ``verification_error.png`` and with noise twins ``noise_floor.png``. Title parts come from ``report["method"]`` and
    ``report["forget"]["count"]``; the band from ``report["noise_floor"]`` when present."""
    metrics = {k: m for k, m in (report.get("metrics") or {}).items() if isinstance(m, Mapping)}
    if not metrics:
        return []
    out = Path(plots_dir)
    kw = {"method": report.get("method"), "forget_count": (report.get("forget") or {}).get("count")}
    nf = report.get("noise_floor")
    paths = [
        plot_accuracies(metrics, out / "accuracy.png", noise_floor=nf, **kw),
        plot_mia(metrics, out / "mia.png", noise_floor=nf, **kw),
        plot_summary(metrics, out / "summary.png", noise_floor=nf, **kw),
    ]
    comp = report.get("comparison") or {}
    ve = {
        m: comp.get(k) for m, k in (("unlearned", "verification_error"), ("original", "verification_error_original"))
    }
    ve = {m: v for m, v in ve.items() if v is not None}
    if ve:
        paths.append(plot_verification_error(ve, out / "verification_error.png", **kw))
    if nf and nf.get("against_twin"):  # the method and doing nothing beside the noise twins' ToW / ToW-MIA
        from .noise_plots import plot_noise_floor

        paths.append(plot_noise_floor(report, out / "noise_floor.png"))
    return paths
