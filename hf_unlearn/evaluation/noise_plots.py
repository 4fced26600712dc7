"""The retrain noise floor as a figure: the method and doing nothing beside the noise twins' band.

For ToW and ToW-MIA (against the retrain twin) one panel each: a bar for the unlearned model, a bar
for "do nothing" (the original model), and the band the noise twins span against the same twin
(shaded from their lowest to their highest score, their mean as a line, each twin a dot). The
caption states the verdict rule (``verdict.NOISE_RULE``). Written as ``plots/noise_floor.png`` by
:func:`hf_unlearn.evaluation.plots.plot_report` when the report has a ``noise_floor``.
"""

from __future__ import annotations

from collections.abc import Mapping

from matplotlib.figure import Figure

from .plot_style import NOISE_COLOR, bar_labels, draw_band, fmt, model_color, new_figure, plot_title, save_figure
from .verdict import NOISE_RULE

PANELS = (("tow", "ToW against the retrain twin"), ("tow_mia", "ToW-MIA against the retrain twin"))


def noise_floor_figure(report: Mapping) -> Figure:
    """The figure of ``report["noise_floor"]`` (raises ``KeyError`` without one)."""
    floor = report["noise_floor"]
    comp = report.get("comparison") or {}
    import textwrap

    text = "Shaded: from the lowest to the highest score of the noise twins; line: their mean. Rule: " + NOISE_RULE
    caption = "\n".join(textwrap.wrap(text, 150))
    fig, axes = new_figure(10.0, 5.0, ncols=2, caption=caption)
    for ax, (key, title) in zip(axes, PANELS):
        spread = floor["against_twin"][key]
        names = ["unlearned", "original"]
        vals = [comp.get(key), comp.get(f"{key}_original")]
        draw_band(ax, -0.5, 2.5, (spread["min"], spread["max"]), f"retrain noise ({floor['n_twins']} noise twins)")
        ax.hlines(spread["mean"], -0.5, 2.5, colors=NOISE_COLOR, linewidth=2, zorder=0.6)
        pairs = [p[key] for p in floor.get("pairs") or []]
        ax.scatter([2.0] * len(pairs), pairs, color="#2ca02c", s=18, zorder=3, label="noise twins")
        bars = ax.bar([0, 1], [v or 0.0 for v in vals], 0.6, color=[model_color(n) for n in names], zorder=2)
        bar_labels(ax, bars, [fmt(v) for v in vals])
        ax.set_xticks([0, 1, 2], ["unlearned", "do nothing\n(original)", "noise twins"])
        lows = [v for v in [*vals, spread["min"], *pairs] if isinstance(v, (int, float))]
        ax.set_ylim(max(0.0, min(lows) - 0.05), 1.04)
        ax.set_title(title, fontsize=10)
        ax.grid(axis="y", alpha=0.3)
        ax.set_axisbelow(True)
    count = (report.get("forget") or {}).get("count")
    fig.suptitle(plot_title("the method and doing nothing against the retrain noise", report.get("method"), count))
    handles, labels = axes[0].get_legend_handles_labels()
    axes[0].figure.legend(handles, labels, loc="outside lower center", ncol=2, frameon=False, fontsize=8)
    return fig


def plot_noise_floor(report: Mapping, path) -> str:
    """Write :func:`noise_floor_figure` to ``path`` (PNG); returns the path."""
    return save_figure(noise_floor_figure(report), path)
