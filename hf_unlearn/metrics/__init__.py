"""The evaluation figures as ``evaluate.Metric`` modules, shipped inside the package.

``evaluate.load("accuracy")`` fetches its script from the Hub, which does not work offline;
these modules are loaded by local path instead (``HF_EVALUATE_OFFLINE=1`` is fine)::

    from hf_unlearn.metrics import load_metric
    tow = load_metric("tow")
    tow.compute(predictions=[90, 95, 85], references=[80, 95, 86])   # {"tow": 0.891}

Each module's ``_compute`` delegates to :mod:`hf_unlearn.evaluation.metrics`.
"""

from __future__ import annotations

from pathlib import Path

METRICS_DIR = Path(__file__).resolve().parent


def available_metrics() -> list[str]:
    """Names of the shipped modules: folders ``<name>/`` holding ``<name>.py``."""
    return sorted(p.name for p in METRICS_DIR.iterdir() if p.is_dir() and (p / f"{p.name}.py").is_file())


def metric_path(name: str) -> str:
    """Local folder of the metric module ``name`` (what ``evaluate.load`` takes)."""
    folder = METRICS_DIR / name
    if "/" in name or "\\" in name or not (folder / f"{name}.py").is_file():
        raise ValueError(f"unknown metric {name!r}; available: {available_metrics()}")
    return str(folder)


def load_metric(name: str, **kwargs):
    """``evaluate.load(metric_path(name), **kwargs)``: loads from the package, never from the Hub."""
    import evaluate

    return evaluate.load(metric_path(name), **kwargs)


__all__ = ["available_metrics", "load_metric", "metric_path"]
