"""What every plot of hf-unlearn shares: one colour per model, titles, the noise band, saving.

- :func:`model_color`: the ONE colour of a model in every figure (``original`` grey,
  ``unlearned`` blue, ``retrain_twin`` green, ``vanilla_*`` orange, noise twins light green, any
  other name a fixed colour derived from the name), so a reader learns it once.
- :func:`plot_title`: ``"amnesiac: accuracy on forget / retain / test (forget set: 50 examples)"``.
- :func:`noise_band`: the band of a figure from the report's ``noise_floor`` (see there for its shape).
- :func:`save_figure`: an atomic PNG write whose metadata holds the title (``Title``) and the
  caption (``Description``), so a test or a tool can read what a PNG shows.
- :func:`text_overlaps`: pairs of texts of a drawn figure whose boxes intersect (tests use it).
"""

from __future__ import annotations

import math
import os
import zlib
from collections.abc import Mapping

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.text import Text

from ..artifacts import atomic_write

MODEL_COLORS = {
    "original": "#7f7f7f",
    "unlearned": "#1f77b4",
    "retrain_twin": "#2ca02c",
}
VANILLA_COLOR = "#ff7f0e"  # ``vanilla_<method>``: RUM's one-method comparison
NOISE_COLOR = "#98df8a"  # noise twins (retrain twins with other seeds) and the noise band
OTHER_COLORS = ("#9467bd", "#8c564b", "#e377c2", "#bcbd22", "#17becf", "#d62728")
LABELS = {
    "original": "original",
    "unlearned": "unlearned",
    "retrain_twin": "retrain twin",
    "tow": "ToW",
    "tow_mia": "ToW-MIA",
    "verification_error": "verification error",
}
DPI = 120


def _key(name: str) -> str:
    return str(name).strip().lower().replace(" ", "_").replace("-", "_")


def model_color(name: str) -> str:
    """The colour of model ``name`` in every figure (a label that starts with a model's name, such as
    ``"unlearned ToW"``, gets that model's colour)."""
    key = _key(name)
    if key in MODEL_COLORS:
        return MODEL_COLORS[key]
    if key.startswith("vanilla"):
        return VANILLA_COLOR
    if key.startswith("noise"):
        return NOISE_COLOR
    for model, color in MODEL_COLORS.items():
        if key.startswith(model + "_"):
            return color
    return OTHER_COLORS[zlib.crc32(key.encode()) % len(OTHER_COLORS)]


def label(name: str) -> str:
    return LABELS.get(name, str(name).replace("_", " "))


def plot_title(what: str, method: str | None = None, forget_count: int | None = None) -> str:
    """``"METHOD: WHAT (forget set: N examples)"``; the parts not known are left out."""
    title = f"{method}: {what}" if method else what[:1].upper() + what[1:]
    if isinstance(forget_count, int) and not isinstance(forget_count, bool):
        title += f" (forget set: {forget_count} example{'' if forget_count == 1 else 's'})"
    return title


def is_num(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def fmt(v, pct: bool = False) -> str:
    if not is_num(v):
        return "n/a"
    return f"{v:.1f}" if pct else f"{v:.3g}"


def noise_band(noise_floor: Mapping | None, key: str) -> tuple[float, float] | None:
    """``(low, high)`` of figure ``key`` (``forget_acc``, ``mia_auc`` ...) in ``noise_floor``, or None.

    ``noise_floor`` is the report's ``noise_floor`` section, the spread of each figure over
    retrain twins trained with other seeds (how much a figure moves when nothing but the seed
    changes)::

        {"n_twins": 3,                                   # optional
         "metrics": {"forget_acc": {"mean": 41.0, "sd": 6.2},   # "std" is read too
                     "mia_auc": {"mean": 0.48, "std": 0.03, "min": 0.45, "max": 0.52}, ...}}

    The band is ``[min, max]`` when both are given, else ``[mean - sd, mean + sd]``. A figure
    without an entry (or a report without ``noise_floor``) has no band.
    """
    if not isinstance(noise_floor, Mapping):
        return None
    entry = (noise_floor.get("metrics") or {}).get(key)
    if not isinstance(entry, Mapping):
        return None
    if is_num(entry.get("min")) and is_num(entry.get("max")):
        return float(entry["min"]), float(entry["max"])
    sd = entry.get("sd", entry.get("std"))
    if is_num(entry.get("mean")) and is_num(sd):
        return float(entry["mean"]) - float(sd), float(entry["mean"]) + float(sd)
    return None


def noise_label(noise_floor: Mapping | None) -> str:
    n = noise_floor.get("n_twins") if isinstance(noise_floor, Mapping) else None
    return f"retrain noise ({n} seeds)" if is_num(n) else "retrain noise"


def draw_band(ax, x0: float, x1: float, band: tuple[float, float] | None, with_label: str | None = None) -> None:
    """Shade ``band`` (low, high) between ``x0`` and ``x1`` behind the bars."""
    if band is None:
        return
    lo, hi = band
    ax.fill_between([x0, x1], [lo, lo], [hi, hi], color=NOISE_COLOR, alpha=0.35, lw=0, zorder=0.4, label=with_label)


def new_figure(width: float, height: float, ncols: int = 1, caption: str | None = None):
    """(figure, axes); with ``caption``, a strip under the axes holds it (``Description`` in the PNG)."""
    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    panel = fig
    if caption:
        lines = caption.count("\n") + 1
        strip = 0.2 + 0.17 * lines
        panel, bottom = fig.subfigures(2, 1, height_ratios=[height - strip, strip])
        bottom.text(0.5, 0.5, caption, ha="center", va="center", fontsize=8.5, color="#333333")
        fig._hf_caption = caption
    axes = [panel.add_subplot(1, ncols, i + 1) for i in range(ncols)]
    return fig, axes


def bar_labels(ax, bars, texts, fontsize: int = 8) -> None:
    """Value labels above bars, on a white box so that a reference line or band never crosses them."""
    ax.bar_label(
        bars,
        labels=texts,
        padding=2,
        fontsize=fontsize,
        zorder=4,
        bbox={"boxstyle": "square,pad=0.1", "facecolor": "white", "edgecolor": "none", "alpha": 0.85},
    )


def save_figure(fig: Figure, path) -> str:
    """Write ``fig`` as a PNG atomically, its title and caption in the PNG metadata; returns the path."""
    path = os.fspath(path)
    meta = {"Title": fig.get_suptitle(), "Software": "hf-unlearn"}
    if getattr(fig, "_hf_caption", None):
        meta["Description"] = fig._hf_caption
    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=DPI, metadata=meta))
    return path


def text_overlaps(fig: Figure, tolerance: float = 1.0) -> list[tuple[str, str]]:
    """Pairs of visible, non-empty texts of ``fig`` whose boxes overlap by more than ``tolerance`` pixels."""
    renderer = fig.canvas.get_renderer()
    fig.draw_without_rendering()
    hidden = set()  # tick labels outside the view limits are not drawn
    for ax in fig.axes:
        for axis in (ax.xaxis, ax.yaxis):
            lo, hi = sorted(axis.get_view_interval())
            for tick in axis.get_major_ticks() + axis.get_minor_ticks():
                if not lo - 1e-9 <= tick.get_loc() <= hi + 1e-9:
                    hidden.update({id(tick.label1), id(tick.label2)})
    boxes = []
    for t in fig.findobj(Text):
        if t.get_visible() and t.get_text().strip() and id(t) not in hidden:
            boxes.append((t.get_text(), t.get_window_extent(renderer)))
    out = []
    for i, (a, ba) in enumerate(boxes):
        for b, bb in boxes[i + 1 :]:
            w = min(ba.x1, bb.x1) - max(ba.x0, bb.x0)
            h = min(ba.y1, bb.y1) - max(ba.y0, bb.y0)
            if w > tolerance and h > tolerance:
                out.append((a, b))
    return out
