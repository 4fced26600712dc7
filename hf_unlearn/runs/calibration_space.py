"""What calibration searches: each method's few key settings, as concrete options for the run.

Search dimensions: ``steps`` is a share of the run's optimizer steps that the budget pays for (``max(1, round(share
x budget x T))`` steps, T the run's training steps); ``lr_factor`` multiplies the method's derived default learning
rate (``methods/base.default_learning_rate``); ``repair`` is amnesiac's repair steps as the same share (0: rollback
only); anything else is the method's own option (``alpha``, ``correction_scale``, ``early_stopping`` ...).
A method's config may carry its own ``SEARCH_SPACE``; it replaces the one here.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

from ..methods import get_method
from ..methods.base import default_learning_rate

SEARCH_SPACE: dict[str, dict[str, tuple]] = {
    "neggrad_plus": {"steps": (0.25, 0.5), "lr_factor": (1.0, 3.0), "alpha": (0.99, 0.95)},
    "scrub": {"steps": (0.25, 0.5), "lr_factor": (1.0, 3.0)},
    "finetune": {"steps": (0.5, 1.0), "lr_factor": (1.0, 3.0)},
    "neggrad": {"steps": (0.1, 0.25), "lr_factor": (1.0, 3.0)},
    "random_label": {"steps": (0.5, 1.0), "lr_factor": (1.0, 3.0)},
    "salun": {"steps": (0.5, 1.0), "lr_factor": (1.0, 3.0)},
    "l1_sparse": {"steps": (0.5, 1.0), "alpha": (1e-4, 1e-3)},
    "single_gradient": {"precondition": ("none", "adam"), "scale": (0.5, 1.0, 2.0, 4.0)},  # adam: Adam-trained runs
    "amnesiac": {"repair": (0.0, 0.5)},
    "ssd": {"alpha": (3.0, 10.0, 30.0)},
    "propagated_replay": {"exact_every": (10, 20, 50)},
    "per_sample_replay": {"correction_scale": (1.0,)},  # exact replay: larger scales never raised ToW (BENCHMARKS.md)
}


class CalibrationError(ValueError):
    """A calibration that cannot run (bad size, budget, method) or a missing/foreign ``calibration.json``."""


@dataclass
class Scope:
    """What the search's relative dimensions are relative to: the run's steps, the budget, the log."""

    train_steps: int
    budget: float
    log: object
    forget_batches: int


def search_space(method: str) -> dict[str, tuple]:
    """The method's search space: its config's ``SEARCH_SPACE`` class attribute, else :data:`SEARCH_SPACE`."""
    own = getattr(get_method(method).config_class, "SEARCH_SPACE", None)
    space = own if own is not None else SEARCH_SPACE.get(method)
    if space is None:
        raise CalibrationError(f"method {method!r} has no search space; calibratable: {', '.join(calibratable())}")
    return dict(space)


def calibratable() -> list[str]:
    from ..methods import available_methods

    return [n for n, s in available_methods().items() if n in SEARCH_SPACE or hasattr(s.config_class, "SEARCH_SPACE")]


def candidate_options(method: str, point: dict, scope: Scope) -> dict:
    """One point of the search space as the method's concrete options (see the module docstring)."""
    options, steps_for = {}, lambda share: max(1, round(share * scope.budget * scope.train_steps))
    for key, value in point.items():
        if key == "steps":
            n = steps_for(value)
            if method == "scrub":  # one forget pass of max-steps, then n retain min-steps
                options.update(epochs=1.0, msteps=1, max_steps=scope.forget_batches + n)
            else:
                options.update(epochs=float(n), max_steps=n)
        elif key == "lr_factor":
            base = default_learning_rate(get_method(method).config_class, scope.log)[0]
            options["learning_rate"] = float(f"{value * base:.6g}")
        elif key == "repair":
            options.update({"repair_steps": steps_for(value), "repair_epochs": 1.0} if value else {})
        else:
            options[key] = value
    return options


def candidates(methods: list[str], scope: Scope, space: dict | None = None) -> list[tuple[str, dict]]:
    """Every (method, options) of the grid over each method's space (``space`` overrides per method)."""
    out = []
    for method in methods:
        dims = dict((space or {}).get(method) or search_space(method))
        for values in itertools.product(*dims.values()):
            out.append((method, candidate_options(method, dict(zip(dims, values)), scope)))
    return out
