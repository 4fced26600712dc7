"""Evidence of forgetting: metrics, model evaluation, plots (and the retrain twin and report).

- ``metrics``: the figures as pure functions (accuracy, verification error, ToW, ToW-MIA,
  SVC MIA-efficacy, loss-threshold MIA AUC, canary score).
- ``exposure``: canary exposure (Carlini et al., "The Secret Sharer"), ``exposure_section``.
- ``predict``: class probabilities of a model on tokenized splits, ``evaluate_model``, ``compare``.
- ``noise_floor``: noise twins (retrains under other seeds) against the twin; ``verdict``: the one
  rule in words (harm / no better than doing nothing / within the retrain noise); ``membership``:
  the per-example test with the noise twins as reference models.
- ``plots``: PNG figures a person would rather look at than read JSON (``plot_style``: the one
  colour of each model, titles, the noise band, PNG metadata).

Names are imported lazily, so ``hf_unlearn.evaluation.metrics`` does not pull in matplotlib.
"""

_LAZY = {
    # metrics.py
    "accuracy": "hf_unlearn.evaluation.metrics",
    "verification_error": "hf_unlearn.evaluation.metrics",
    "tow": "hf_unlearn.evaluation.metrics",
    "tow_mia": "hf_unlearn.evaluation.metrics",
    "svc_mia": "hf_unlearn.evaluation.metrics",
    "loss_threshold_mia_auc": "hf_unlearn.evaluation.metrics",
    "canary_score": "hf_unlearn.evaluation.metrics",
    # predict.py
    "predict_probs": "hf_unlearn.evaluation.predict",
    "true_class_confidence": "hf_unlearn.evaluation.predict",
    "per_example_loss": "hf_unlearn.evaluation.predict",
    "evaluate_model": "hf_unlearn.evaluation.predict",
    "compare": "hf_unlearn.evaluation.predict",
    # exposure.py
    "canary_exposure": "hf_unlearn.evaluation.exposure",
    "exposure_section": "hf_unlearn.evaluation.exposure",
    # plots.py
    "plot_accuracies": "hf_unlearn.evaluation.plots",
    "plot_mia": "hf_unlearn.evaluation.plots",
    "plot_verification_error": "hf_unlearn.evaluation.plots",
    "plot_group_bars": "hf_unlearn.evaluation.plots",
    "plot_summary": "hf_unlearn.evaluation.plots",
    "plot_report": "hf_unlearn.evaluation.plots",
    # plot_style.py
    "model_color": "hf_unlearn.evaluation.plot_style",
    "noise_band": "hf_unlearn.evaluation.plot_style",
    # noise_floor.py, verdict.py, membership.py
    "noise_floor_section": "hf_unlearn.evaluation.noise_floor",
    "judge": "hf_unlearn.evaluation.verdict",
    "membership_section": "hf_unlearn.evaluation.membership",
    # retrain.py, report.py: add their public names here.
}


def __getattr__(name):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'hf_unlearn.evaluation' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_LAZY))


__all__ = sorted(_LAZY)
