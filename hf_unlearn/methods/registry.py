"""The registry: the single list of unlearning methods, and ``unlearn`` that runs any of them.

Each method file registers itself with ``@register_method(name, config_class, ...)``; the
modules listed in ``METHOD_MODULES`` are imported on first use.
"""

from __future__ import annotations

import copy
import importlib
import time
from dataclasses import dataclass, fields
from typing import Callable

import torch

from ..data.forget import ForgetRequestError, check_ids_known
from ..training.unlearning_log import UnlearningLog
from .base import MethodConfig, MethodContext, UnlearnResult

METHOD_MODULES = (
    "amnesiac", "amnesiac_per_sample", "per_sample_replay", "single_gradient", "finetune", "neggrad", "neggrad_plus",
    "random_label", "salun", "scrub", "l1_sparse", "rum",
)


@dataclass
class MethodSpec:
    name: str
    fn: Callable
    config_class: type
    needs_log: bool
    guarantee: str
    summary: str


_METHODS: dict[str, MethodSpec] = {}


def register_method(name: str, config_class: type = MethodConfig, *, needs_log: bool = False,
                    guarantee: str = "approximate"):
    """Decorator: ``fn(model, forget, retain, config, log, ctx) -> dict`` becomes method ``name``."""

    def wrap(fn):
        if name in _METHODS and _METHODS[name].fn is not fn:
            raise ValueError(f"unlearning method {name!r} registered twice")
        summary = (fn.__doc__ or "").strip().splitlines()[0] if fn.__doc__ else ""
        _METHODS[name] = MethodSpec(name, fn, config_class, needs_log, guarantee, summary)
        return fn

    return wrap


def _load_all() -> None:
    for module in METHOD_MODULES:
        try:
            importlib.import_module(f"hf_unlearn.methods.{module}")
        except ModuleNotFoundError as exc:
            if exc.name != f"hf_unlearn.methods.{module}":
                raise


def available_methods() -> dict[str, MethodSpec]:
    _load_all()
    return dict(sorted(_METHODS.items()))


def get_method(name: str) -> MethodSpec:
    methods = available_methods()
    if name not in methods:
        raise KeyError(f"unknown unlearning method {name!r}; available: {', '.join(methods)}")
    return methods[name]


def make_config(spec: MethodSpec, method_args: dict):
    known = {f.name for f in fields(spec.config_class)}
    unknown = sorted(set(method_args) - known)
    if unknown:
        raise TypeError(f"method {spec.name!r} has no option(s) {unknown}; its options: {sorted(known)}")
    return spec.config_class(**method_args)


def unlearn(model: torch.nn.Module, forget, retain=None, method: str = "amnesiac", log=None, *,
            tokenizer=None, device: str | torch.device | None = None, inplace: bool = False,
            **method_args) -> UnlearnResult:
    """Forget ``forget`` (a tokenized ``Dataset`` with an ``id`` column) from ``model``.

    ``retain`` is the rest of the training data (needed by repair and the approximate
    methods); ``log`` is an ``UnlearningLog`` (or its run directory) for the log-based
    methods. The forget set must be non-empty, disjoint from ``retain`` and, with a log, part
    of the logged training data; a log from another model is refused. The model is copied
    unless ``inplace=True``. Returns the unlearned model and stats (``wall_time_s``,
    ``optimizer_steps``, ``log_bytes_read`` ...).
    """
    spec = get_method(method)
    config = make_config(spec, method_args)
    forget_ids = list(forget["id"]) if forget is not None else []
    if not forget_ids:
        raise ForgetRequestError("the forget set is empty: nothing to unlearn")
    if retain is not None:
        overlap = set(forget_ids).intersection(retain["id"])
        if overlap:
            raise ForgetRequestError(f"{len(overlap)} forget id(s) are also in the retain set, e.g. {sorted(overlap)[:5]}")
    if log is not None and not isinstance(log, UnlearningLog):
        log = UnlearningLog(log)
    if spec.needs_log and log is None:
        raise ValueError(f"method {method!r} needs the training run's unlearning log (log=run_dir)")
    if log is not None:
        check_ids_known(forget_ids, log.train_ids(), what="training data recorded in the log")
        log.check_model(model, state="final")
        log.bytes_read = 0
    if tokenizer is None:
        raise ValueError("unlearn needs tokenizer= (to batch the forget and retain sets)")
    work = model if inplace else copy.deepcopy(model)
    ctx = MethodContext(tokenizer=tokenizer, device=torch.device(device) if device else next(work.parameters()).device)
    start = time.perf_counter()
    stats = spec.fn(work, forget, retain, config, log, ctx) or {}
    stats = {"method": method, "guarantee": spec.guarantee, "forget_count": len(forget_ids), **stats}
    stats["wall_time_s"] = time.perf_counter() - start
    stats.setdefault("optimizer_steps", 0)
    stats["log_bytes_read"] = log.bytes_read if log is not None else 0
    for p in work.parameters():
        if not torch.isfinite(p).all():
            raise FloatingPointError(f"method {method!r} produced non-finite weights")
    work.eval()
    return UnlearnResult(model=work, stats=stats)
