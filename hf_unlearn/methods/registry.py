"""The registry: the only list of unlearning methods, and ``unlearn`` that runs any of them.

A method is one module of this package that registers a function with
``@register_method(name, ConfigClass, guarantee=..., description=...)``. Every module of the
package (except ``base``, ``registry`` and private ``_`` modules) is imported the first time the
registry is read, so adding a file is all it takes to add a method; an error while importing one
propagates, and a name registered twice is an error. ``description`` is the method's text on the
model card (it cites the paper by its full title).

Options reach a method only through its typed config dataclass: :func:`method_config` converts
values given as strings (``"1e-4"``, ``"true"``, ``"none"``) by each field's type. Data a method
needs besides the forget and retain sets (RUM's held-out set and precomputed memorization scores)
are inputs of :func:`unlearn`, passed to the method in its context (:class:`MethodInputs`), never
config fields.
"""

from __future__ import annotations

import copy
import dataclasses
import importlib
import pkgutil
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import torch

from ..data.forget import ForgetRequestError, check_ids_known
from ..training.unlearning_log import UnlearningLog
from . import _options
from .base import MethodContext, UnlearnResult, default_learning_rate, resolve_learning_rate

GUARANTEES = ("exact", "approximate")
RUN_INPUTS = ("holdout", "memorization_scores")
_SKIP = {"base", "registry"}


class UnknownMethodError(KeyError):
    """No method is registered under this name."""

    def __str__(self) -> str:  # a KeyError would print its message in quotes
        return str(self.args[0]) if self.args else ""


class MethodOptionError(ValueError):
    """An option the method does not have, or a value that does not fit the option's type or range."""


@dataclass(frozen=True)
class MethodSpec:
    """One registered method: ``fn(model, forget, retain, config, log, ctx) -> stats dict``."""

    name: str
    fn: Callable
    config_class: type
    guarantee: str
    description: str
    needs_log: bool = False
    inputs: tuple[str, ...] = ()

    @property
    def summary(self) -> str:
        """One line for listings: the first line of the method function's docstring."""
        doc = (self.fn.__doc__ or self.description).strip()
        return doc.splitlines()[0] if doc else ""


@dataclass
class MethodInputs(MethodContext):
    """The context a registered method receives from :func:`unlearn`: tokenizer and device, plus the
    run's data inputs (``None`` when not given). Only methods registered with ``inputs=(...)`` naming
    them may be given these (``holdout`` also a method run with ``early_stopping``: its reference)."""

    memorization_scores: Mapping | None = None


_METHODS: dict[str, MethodSpec] = {}
_loaded = False


def register_method(
    name: str,
    config_class: type,
    *,
    guarantee: str,
    description: str,
    needs_log: bool = False,
    inputs: tuple[str, ...] = (),
):
    """Decorator: ``fn(model, forget, retain, config, log, ctx) -> dict`` becomes method ``name``.

    ``config_class`` is the method's options dataclass; ``guarantee`` is ``"exact"`` or
    ``"approximate"``; ``description`` is the model card's text about the method (with the paper's
    full title); ``needs_log`` marks methods that read the training run's unlearning log;
    ``inputs`` names the data inputs of :func:`unlearn` the method reads (from ``RUN_INPUTS``).
    """
    if guarantee not in GUARANTEES:
        raise ValueError(f"register_method({name!r}): guarantee must be one of {GUARANTEES}, got {guarantee!r}")
    if not dataclasses.is_dataclass(config_class):
        raise TypeError(f"register_method({name!r}): config_class must be a dataclass, got {config_class!r}")
    if not description or not description.strip():
        raise ValueError(f"register_method({name!r}): give the method's description (the model card's text)")
    unknown = sorted(set(inputs) - set(RUN_INPUTS))
    if unknown:
        raise ValueError(f"register_method({name!r}): unknown inputs {unknown}; known: {list(RUN_INPUTS)}")

    def wrap(fn):
        if name in _METHODS:
            raise ValueError(
                f"unlearning method {name!r} registered twice ({_METHODS[name].fn.__module__} and {fn.__module__})"
            )
        _METHODS[name] = MethodSpec(
            name, fn, config_class, guarantee, " ".join(description.split()), needs_log, tuple(inputs)
        )
        return fn

    return wrap


def _load_all() -> None:
    """Import every method module of this package once (errors propagate: no method goes missing silently)."""
    global _loaded
    if _loaded:
        return
    package = importlib.import_module(__package__)
    for module in sorted(pkgutil.iter_modules(package.__path__), key=lambda m: m.name):
        if module.name not in _SKIP and not module.name.startswith("_"):
            importlib.import_module(f"{__package__}.{module.name}")
    _loaded = True


def available_methods() -> dict[str, MethodSpec]:
    """``{name: MethodSpec}`` of every registered method, sorted by name."""
    _load_all()
    return dict(sorted(_METHODS.items()))


def get_method(name: str) -> MethodSpec:
    """The method registered as ``name``; ``UnknownMethodError`` listing the available ones otherwise."""
    methods = available_methods()
    if name not in methods:
        raise UnknownMethodError(f"unknown unlearning method {name!r}; available: {', '.join(methods)}")
    return methods[name]


def _spec(spec_or_name) -> MethodSpec:
    return spec_or_name if isinstance(spec_or_name, MethodSpec) else get_method(spec_or_name)


def method_config(spec_or_name, options: Mapping[str, Any] | None = None):
    """The method's config dataclass built from ``options``, each value converted by its field's type.

    Values may be typed (``1e-4``) or strings from a command line (``"1e-4"``, ``"3e-4"``, ``"true"``,
    ``"none"``, ``"a,b"``). An unknown option, a value that does not fit the field's type, or one
    the config's own validation refuses is a ``MethodOptionError``.
    """
    spec = _spec(spec_or_name)
    options = dict(options or {})
    types = _options.field_types(spec.config_class)
    unknown = sorted(set(options) - set(types))
    if unknown:
        raise MethodOptionError(
            f"method {spec.name!r} has no option {', '.join(map(repr, unknown))}; its options: {', '.join(types)}"
        )
    values = {}
    for key, value in options.items():
        try:
            values[key] = _options.convert(value, types[key])
        except _options._Bad:
            raise MethodOptionError(
                f"method {spec.name!r}: option {key!r} got {value!r}, expected {_options.type_name(types[key])}"
            ) from None
    try:
        return spec.config_class(**values)
    except MethodOptionError:
        raise
    except (ValueError, TypeError) as exc:
        raise MethodOptionError(f"method {spec.name!r}: {exc}") from exc


def describe_options(spec_or_name) -> list[tuple[str, str, Any, str]]:
    """``[(option, type, default, help)]`` of a method's config, in field order (for ``--set`` help)."""
    spec = _spec(spec_or_name)
    types = _options.field_types(spec.config_class)
    rows = []
    for f in dataclasses.fields(spec.config_class):
        if f.name not in types:
            continue
        if f.default is not dataclasses.MISSING:
            default = f.default
        elif f.default_factory is not dataclasses.MISSING:
            default = f.default_factory()
        else:
            default = None
        rows.append((f.name, _options.type_name(types[f.name]), default, f.metadata.get("help", "")))
    return rows


def _check_request(spec: MethodSpec, forget, retain, log, model):
    """Refuse an empty forget set, one that overlaps ``retain`` or, with a log, ids the run never trained on."""
    forget_ids = list(forget["id"]) if forget is not None else []
    if not forget_ids:
        raise ForgetRequestError("the forget set is empty: nothing to unlearn")
    if retain is not None:
        overlap = set(forget_ids).intersection(retain["id"])
        if overlap:
            raise ForgetRequestError(
                f"{len(overlap)} forget id(s) are also in the retain set, e.g. {sorted(overlap)[:5]}"
            )
    if log is not None and not isinstance(log, UnlearningLog):
        log = UnlearningLog(log)
    if spec.needs_log and log is None:
        raise ValueError(f"method {spec.name!r} needs the training run's unlearning log (log=run_dir)")
    if log is not None:
        check_ids_known(forget_ids, log.train_ids(), what="training data recorded in the log")
        log.check_model(model, state="final")
        log.bytes_read = 0
    return forget_ids, log


def _check_inputs(spec: MethodSpec, config, given: dict) -> None:
    """Data inputs only for the methods that read them (``holdout`` also under ``early_stopping``, which needs it)."""
    stops_early = bool(getattr(config, "early_stopping", False))
    accepted = set(spec.inputs) | ({"holdout"} if stops_early else set())
    extra = sorted(k for k, v in given.items() if v is not None and k not in accepted)
    if extra:
        raise MethodOptionError(f"method {spec.name!r} does not take {', '.join(extra)}")
    if stops_early and given.get("holdout") is None:
        raise MethodOptionError(
            f"method {spec.name!r}: early_stopping needs held-out examples the run never trained on (holdout=)"
        )


def unlearn(
    model: torch.nn.Module,
    forget,
    retain=None,
    method: str = "amnesiac",
    log=None,
    *,
    tokenizer=None,
    device: str | torch.device | None = None,
    inplace: bool = False,
    holdout=None,
    memorization_scores: Mapping | None = None,
    **options,
) -> UnlearnResult:
    """Forget ``forget`` (a tokenized ``Dataset`` with an ``id`` column) from ``model``.

    ``retain`` is the rest of the training data (needed by repair and the approximate methods);
    ``log`` is an ``UnlearningLog`` (or its run directory) for the log-based methods. ``options``
    are the method's options (see :func:`describe_options`; strings are converted). ``holdout``
    (a tokenized held-out ``Dataset``) and ``memorization_scores`` (``{id: raw proxy score}``) are
    data for the methods that read them (RUM). The forget set must be non-empty, disjoint from
    ``retain`` and, with a log, part of the logged training data; a log from another model is
    refused. The model is copied unless ``inplace=True``. Returns the unlearned model and stats
    (``method``, ``guarantee``, ``wall_time_s``, ``optimizer_steps``, ``log_bytes_read`` ...).
    """
    spec = get_method(method)
    config = method_config(spec, options)
    given = {"holdout": holdout, "memorization_scores": memorization_scores}
    _check_inputs(spec, config, given)
    forget_ids, log = _check_request(spec, forget, retain, log, model)
    lr_given = getattr(config, "learning_rate", None) is not None
    config = resolve_learning_rate(config, log)
    if tokenizer is None:
        raise ValueError("unlearn needs tokenizer= (to batch the forget and retain sets)")
    work = model if inplace else copy.deepcopy(model)
    ctx = MethodInputs(
        tokenizer=tokenizer,
        device=torch.device(device) if device else next(work.parameters()).device,
        forget=forget,
        **given,
    )
    start = time.perf_counter()
    stats = spec.fn(work, forget, retain, config, log, ctx) or {}
    stats = {"method": method, "guarantee": spec.guarantee, "forget_count": len(forget_ids), **ctx.notes, **stats}
    if getattr(config, "learning_rate", None) is not None and getattr(config, "USES_LEARNING_RATE", True):
        stats["learning_rate"] = config.learning_rate
        stats["learning_rate_rule"] = "given" if lr_given else default_learning_rate(type(config), log)[1]
    stats["wall_time_s"] = time.perf_counter() - start
    stats.setdefault("optimizer_steps", 0)
    stats["log_bytes_read"] = log.bytes_read if log is not None else 0
    for p in work.parameters():
        if not torch.isfinite(p).all():
            raise FloatingPointError(f"method {method!r} produced non-finite weights")
    work.eval()
    return UnlearnResult(model=work, stats=stats)
