"""PNG plots of the evaluation figures (matplotlib, Agg canvas, no pyplot global state).

Every function draws one figure, writes it atomically (``hf_unlearn.artifacts.atomic_write``:
a temporary file in the target folder, then a rename) and returns the path. Models are drawn in
the order of the dict given, normally ``original`` / ``unlearned`` / ``retrain_twin``; every bar
carries its value.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from ..artifacts import atomic_write

SPLITS = ("forget", "retain", "test")
MODEL_COLORS = {"original": "#8c8c8c", "unlearned": "#1f77b4", "retrain_twin": "#2ca02c"}
PALETTE = (
    "#1f77b4",
    "#ff7f0e",
    "#2ca02c",
    "#d62728",
    "#9467bd",
    "#8c564b",
    "#e377c2",
    "#7f7f7f",
    "#bcbd22",
    "#17becf",
)
LABELS = {
    "original": "original",
    "unlearned": "unlearned",
    "retrain_twin": "retrain twin",
    "tow": "ToW",
    "tow_mia": "ToW-MIA",
    "verification_error": "verification error",
}


def _label(name: str) -> str:
    return LABELS.get(name, name.replace("_", " "))


def _colors(names: Sequence[str]) -> dict[str, str]:
    out, free = {}, [c for c in PALETTE if c not in MODEL_COLORS.values()]
    for name in names:
        out[name] = MODEL_COLORS.get(name) or free[len(out) % len(free)]
    return out


def _num(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _fmt(v, pct: bool = False) -> str:
    if not _num(v):
        return "n/a"
    return f"{v:.1f}" if pct else f"{v:.3g}"


def _new_figure(width: float, height: float, ncols: int = 1):
    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    axes = [fig.add_subplot(1, ncols, i + 1) for i in range(ncols)]
    return fig, axes


def _save(fig: Figure, path) -> str:
    path = os.fspath(path)
    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=120))
    return path


def _grouped_bars(
    ax, categories: Sequence[str], series: Mapping[str, Sequence], pct: bool = False, colors=None
) -> None:
    """Bars for each series inside each category; missing values print ``n/a`` at the baseline."""
    names = list(series)
    colors = colors or _colors(names)
    width = 0.8 / max(len(names), 1)
    for k, name in enumerate(names):
        xs = [i - 0.4 + width * (k + 0.5) for i in range(len(categories))]
        vals = [float(v) if _num(v) else 0.0 for v in series[name]]
        bars = ax.bar(xs, vals, width * 0.95, label=_label(name), color=colors[name])
        ax.bar_label(bars, labels=[_fmt(v, pct) for v in series[name]], padding=2, fontsize=8)
    ax.set_xticks(range(len(categories)), list(categories))
    ax.grid(axis="y", alpha=0.3)
    ax.set_axisbelow(True)


def _model_ticks(ax, names: Sequence[str]) -> None:
    labels = [_label(n) for n in names]
    tilt = len(names) > 3 or max(len(x) for x in labels) > 14
    ax.set_xticks(range(len(names)), labels, rotation=20 if tilt else 0, ha="right" if tilt else "center")


def _check_models(metrics_by_model: Mapping[str, Mapping], keys: Sequence[str], what: str) -> None:
    if not metrics_by_model:
        raise ValueError(f"{what}: no models to plot")
    for name, m in metrics_by_model.items():
        missing = [k for k in keys if k not in m]
        if missing:
            raise KeyError(f"{what}: model {name!r} lacks {missing}")


def plot_accuracies(metrics_by_model: Mapping[str, Mapping], path) -> str:
    """Grouped bars of forget / retain / test accuracy (%), one bar per model.

    ``metrics_by_model`` maps a model name (``original``, ``unlearned``, ``retrain_twin`` ...) to
    a dict with ``forget_acc``, ``retain_acc``, ``test_acc`` (as :func:`evaluate_model` returns).
    """
    keys = [f"{s}_acc" for s in SPLITS]
    _check_models(metrics_by_model, keys, "plot_accuracies")
    fig, (ax,) = _new_figure(max(6.0, 1.6 + 1.2 * len(SPLITS) * max(1, len(metrics_by_model)) / 2), 4.2)
    series = {name: [m[k] for k in keys] for name, m in metrics_by_model.items()}
    _grouped_bars(ax, ["forget set", "retain set", "test set"], series, pct=True)
    ax.set_ylim(0, 112)
    ax.set_ylabel("accuracy (%)")
    ax.set_title("Accuracy by split\n(unlearning succeeds when the unlearned bars match the retrain twin's)")
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.08), ncol=len(series), frameon=False)
    return _save(fig, path)


def plot_mia(metrics_by_model: Mapping[str, Mapping], path) -> str:
    """Membership-inference figures per model: MIA efficacy, loss-threshold AUC, canary score.

    The canary panel is drawn when at least one model has a ``canary_score``.
    """
    _check_models(metrics_by_model, ["mia_efficacy", "mia_auc"], "plot_mia")
    names = list(metrics_by_model)
    panels = [
        (
            "mia_efficacy",
            "MIA efficacy (SVC attack)\nhigher = forget set looks unseen",
            "share of forget examples\ncalled non-members",
            None,
        ),
        ("mia_auc", "Loss-threshold MIA AUC, forget vs test\ndashed = chance (0.5)", "ROC AUC", 0.5),
    ]
    if any(_num(m.get("canary_score")) for m in metrics_by_model.values()):
        panels.append(
            (
                "canary_score",
                "Canary score: mean p(y|x)\ndashed = chance for 2 classes",
                "mean p(y|x) over canaries",
                0.5,
            )
        )
    fig, axes = _new_figure(max(7.0, 2.2 + 1.1 * len(names) * len(panels)), 4.4, ncols=len(panels))
    colors = _colors(names)
    for ax, (key, title, ylabel, ref) in zip(axes, panels):
        vals = [metrics_by_model[n].get(key) for n in names]
        bars = ax.bar(
            range(len(names)), [float(v) if _num(v) else 0.0 for v in vals], 0.7, color=[colors[n] for n in names]
        )
        ax.bar_label(bars, labels=[_fmt(v) for v in vals], padding=2, fontsize=8)
        _model_ticks(ax, names)
        if ref is not None:
            ax.axhline(ref, color="black", linestyle="--", linewidth=1, zorder=0.5)
        ax.set_ylim(0, 1.12)
        ax.set_ylabel(ylabel)
        ax.set_title(title, fontsize=10)
        ax.grid(axis="y", alpha=0.3)
        ax.set_axisbelow(True)
    fig.suptitle("Membership inference on the forget set (closer to the retrain twin is better)")
    return _save(fig, path)


def plot_verification_error(values: Mapping[str, float], path) -> str:
    """Horizontal bars of verification errors ``||w - w_retrain_twin||_2``, one per compared model.

    ``values`` maps a label (e.g. ``"unlearned"``, ``"original"``, ``"penalty 0.1"``) to its VE.
    """
    if not values:
        raise ValueError("plot_verification_error: no values to plot")
    names = list(values)
    fig, (ax,) = _new_figure(7.0, 1.6 + 0.5 * len(names))
    colors = _colors(names)
    nums = [float(values[n]) if _num(values[n]) else 0.0 for n in names]
    bars = ax.barh(range(len(names)), nums, 0.6, color=[colors[n] for n in names])
    ax.bar_label(bars, labels=[_fmt(values[n]) for n in names], padding=3, fontsize=9)
    ax.set_yticks(range(len(names)), [_label(n) for n in names])
    ax.invert_yaxis()
    ax.set_xlim(0, (max(nums) or 1.0) * 1.18)
    ax.set_xlabel("L2 distance of all trainable weights to the retrain twin (0 = identical)")
    ax.set_title("Verification error (Thudi et al.): lower is closer to exact retraining")
    ax.grid(axis="x", alpha=0.3)
    ax.set_axisbelow(True)
    return _save(fig, path)


def plot_group_bars(groups: Mapping[str, Mapping[str, float]], path, title: str, ylabel: str = "value") -> str:
    """Grouped bars: one cluster per outer key, one bar per inner key (e.g. per-group ToW / ToW-MIA).

    ``groups = {"low memorization": {"tow": 0.97, "tow_mia": 0.91}, "high ...": {...}}``; a series
    missing from a group prints ``n/a``.
    """
    if not groups:
        raise ValueError("plot_group_bars: no groups to plot")
    cats = list(groups)
    series_names: list[str] = []
    for g in groups.values():
        series_names += [s for s in g if s not in series_names]
    series = {s: [groups[c].get(s) for c in cats] for s in series_names}
    fig, (ax,) = _new_figure(max(6.0, 1.6 + 0.9 * len(cats) * max(1, len(series_names)) / 1.5), 4.2)
    _grouped_bars(ax, cats, series)
    nums = [float(v) for vals in series.values() for v in vals if _num(v)] or [0.0]
    lo, hi = min(0.0, min(nums)), max(0.0, max(nums))
    span = (hi - lo) or 1.0
    ax.set_ylim(lo - (0.12 * span if lo < 0 else 0.0), hi + 0.12 * span)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    if len(series_names) > 1:
        ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.08), ncol=len(series_names), frameon=False)
    return _save(fig, path)
