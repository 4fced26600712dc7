"""Unlearning methods, one file each, behind ``unlearn(model, forget, retain, method=..., log=...)``.

The registry (``registry.py``) is the only list of methods: see ``available_methods()``.
"""

from .base import MethodConfig, MethodContext, UnlearnResult
from .registry import (
    MethodInputs,
    MethodOptionError,
    MethodSpec,
    UnknownMethodError,
    available_methods,
    describe_options,
    get_method,
    method_config,
    register_method,
    unlearn,
)

__all__ = [
    "MethodConfig",
    "MethodContext",
    "MethodInputs",
    "MethodOptionError",
    "MethodSpec",
    "UnknownMethodError",
    "UnlearnResult",
    "available_methods",
    "describe_options",
    "get_method",
    "method_config",
    "register_method",
    "unlearn",
]
