"""Moved to :mod:`hf_unlearn.training.replay` (removed at integration)."""

from ..training.replay import retrain_twin, twin_arguments  # noqa: F401
