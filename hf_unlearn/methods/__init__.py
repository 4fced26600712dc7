"""Unlearning methods, one file each, behind ``unlearn(model, forget, retain, method=..., log=...)``."""

from .base import MethodConfig, MethodContext, UnlearnResult
from .registry import available_methods, get_method, register_method, unlearn

__all__ = ["MethodConfig", "MethodContext", "UnlearnResult", "available_methods", "get_method", "register_method", "unlearn"]
