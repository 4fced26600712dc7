"""RUM: refine the forget set by memorization, then unlearn each group with its own method.

Zhao, Triantafillou et al., "What makes unlearning hard and what to do about it" (NeurIPS
2024), with the cheap memorization proxies of Zhao & Triantafillou, "Scalability of
memorization-based machine unlearning" (2024). The forget set is split into K groups (default
3) by a proxy (``hf_unlearn.memorization``); the groups are unlearned in the order
low -> mid -> high memorization, each by any registered method (or ``none``) with its own
hyperparameters, on the model left by the previous step. At step k the retain set is the
original retain set plus the groups NOT yet processed::

    w_k = method_k(w_{k-1}; forget = G_k, retain = R u G_{k+1} u ... u G_K),   G_1 = lowest

it excludes every group processed so far, so it shrinks from step to step.

Presets (from the papers): ``salun`` = nothing -> finetune -> SalUn; ``neggrad_plus`` =
NegGrad+ x3 with alpha 0.99 / 0.97 / 0.97. In the ``salun`` preset the SalUn step repeats its
relabelled forget rows to at least 10% of the union (``forget_share=0.1``): the high group is a
third of the forget set and, left at one copy each, too small a share of the batches to move
(measured on IMDB, see ``benchmarks/rum.py``'s ``salun_share_sweep``). Any other registered
method name runs that method on every group (sequential per-group unlearning). Per-group
hyperparameters come from, in increasing priority: the method's defaults, the preset, the shared
fields of this config (``learning_rate``, ``epochs`` ... when set) and ``group_args``.

The proxy scores come from the run's recorded learning events (or a fallback, or holdout
retraining on ``unlearn(..., holdout=<held-out tokenized Dataset>)``), or are given as
``unlearn(..., memorization_scores={id: raw score})``: data are inputs, never options.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Mapping
from dataclasses import dataclass, field, fields

from datasets import concatenate_datasets

from .base import MethodContext, resolve_learning_rate
from .registry import get_method, method_config, register_method

NONE = "none"
PRESETS: dict[str, tuple[tuple[str, dict], ...]] = {
    "salun": ((NONE, {}), ("finetune", {}), ("salun", {"forget_share": 0.1})),
    "neggrad_plus": (
        ("neggrad_plus", {"alpha": 0.99}),
        ("neggrad_plus", {"alpha": 0.97}),
        ("neggrad_plus", {"alpha": 0.97}),
    ),
}
SHARED = ("learning_rate", "epochs", "batch_size", "max_steps", "weight_decay", "seed")


@dataclass
class RUMConfig:
    """RUM: proxy -> K memorization groups -> one method per group, low -> high.

    Options only: the held-out data of ``proxy=holdout_retraining`` and precomputed scores are
    inputs of ``unlearn`` (``holdout=``, ``memorization_scores=``), not fields here.
    """

    proxy: str = field(
        default="confidence",
        metadata={
            "help": "Memorization proxy: confidence, max_confidence, "
            "entropy, binary_accuracy or holdout_retraining (alias holdout)."
        },
    )
    preset: str | None = field(
        default="neggrad_plus",
        metadata={
            "help": f"Per-group methods: {', '.join(PRESETS)} or any registered method name (used for every group)."
        },
    )
    methods: list[str] | None = field(
        default=None,
        metadata={
            "help": "Per-group method names low -> high (a list "
            "or a comma string; 'none' skips a group); overrides preset."
        },
    )
    group_args: dict[str, dict] | list[dict] | None = field(
        default=None,
        metadata={"help": "Per-group hyperparameters: a list of dicts (low -> high) or a dict keyed by group name."},
    )
    num_groups: int = field(
        default=3, metadata={"help": "Number of memorization groups K (the named presets need 3)."}
    )
    learning_rate: float | None = field(
        default=None, metadata={"help": "If set: learning rate of every group's method."}
    )
    epochs: float | None = field(default=None, metadata={"help": "If set: epochs of every group's method."})
    batch_size: int | None = field(default=None, metadata={"help": "If set: batch size of every group's method."})
    max_steps: int | None = field(
        default=None, metadata={"help": "If set: max optimizer steps of every group's method."}
    )
    weight_decay: float | None = field(
        default=None, metadata={"help": "If set: weight decay of every group's method."}
    )
    seed: int | None = field(default=None, metadata={"help": "If set: seed of every group's method."})
    proxy_fallback: str | None = field(
        default=None,
        metadata={
            "help": "Without recorded learning events: 'replay' "
            "(retrain once with the recorder) or 'final_model' (one forward pass); default: error."
        },
    )
    holdout_args: dict | None = field(
        default=None,
        metadata={"help": "HoldoutConfig options for holdout retraining, e.g. {learning_rate: 1e-4, max_epochs: 20}."},
    )

    def __post_init__(self):
        from ..memorization.holdout import HoldoutConfig
        from ..memorization.proxies import FALLBACKS, get_proxy

        try:
            self.proxy = get_proxy(self.proxy).name
        except KeyError as exc:
            raise ValueError(exc.args[0]) from None
        if self.proxy_fallback is not None and self.proxy_fallback not in FALLBACKS:
            raise ValueError(
                f"RUMConfig: proxy_fallback must be one of {FALLBACKS} or None, got {self.proxy_fallback!r}"
            )
        if isinstance(self.methods, str):
            self.methods = [m.strip() for m in self.methods.split(",") if m.strip()]
        if self.methods is not None:
            self.methods = [str(m) for m in self.methods]
            self.num_groups = len(self.methods)
        if self.num_groups < 1:
            raise ValueError(f"RUMConfig: num_groups must be >= 1, got {self.num_groups}")
        if self.methods is None and self.preset is None:
            raise ValueError("RUMConfig: give preset= or methods=")
        if self.methods is None and self.preset in PRESETS and self.num_groups != len(PRESETS[self.preset]):
            raise ValueError(
                f"RUMConfig: preset {self.preset!r} has {len(PRESETS[self.preset])} groups, num_groups={self.num_groups}"
            )
        if self.holdout_args is not None:
            HoldoutConfig(**dict(self.holdout_args))  # validate early
        if self.group_args is not None and not isinstance(self.group_args, (list, tuple, Mapping)):
            raise TypeError("RUMConfig: group_args must be a list of dicts or a dict keyed by group name")
        plan(self)  # every group's method and options are checked here, before any work


@dataclass
class GroupStep:
    """What RUM runs on one group."""

    name: str
    method: str
    args: dict


def plan(config: RUMConfig) -> list[GroupStep]:
    """The per-group (method, arguments) RUM will run, low -> high; validated against the registry."""
    from ..memorization.refine import group_names

    names = group_names(config.num_groups)
    if config.methods is not None:
        base = [(m, {}) for m in config.methods]
        if config.preset in PRESETS and len(PRESETS[config.preset]) == len(base):
            base = [
                (m, dict(PRESETS[config.preset][k][1]) if PRESETS[config.preset][k][0] == m else {})
                for k, (m, _) in enumerate(base)
            ]
    elif config.preset in PRESETS:
        base = [(m, dict(a)) for m, a in PRESETS[config.preset]]
    else:
        get_method(config.preset)  # unknown name: UnknownMethodError listing the methods
        base = [(config.preset, {}) for _ in names]
    shared = {k: getattr(config, k) for k in SHARED if getattr(config, k) is not None}
    per_group = _group_args(config.group_args, names)
    steps = []
    for name, (method, args), extra in zip(names, base, per_group):
        if method == NONE:
            if extra:
                raise ValueError(f"RUM group {name!r} runs no method but has group_args {extra}")
            steps.append(GroupStep(name, NONE, {}))
            continue
        if method == "rum":
            raise ValueError("RUM cannot run RUM on a group")
        spec = get_method(method)
        known = {f.name for f in fields(spec.config_class)}
        merged = {**args, **{k: v for k, v in shared.items() if k in known}, **extra}
        method_config(spec, merged)  # unknown options / bad values fail before any work
        steps.append(GroupStep(name, method, merged))
    return steps


def _group_args(group_args, names) -> list[dict]:
    if group_args is None:
        return [{} for _ in names]
    if isinstance(group_args, Mapping):
        unknown = sorted(set(group_args) - set(names))
        if unknown:
            raise ValueError(f"RUM group_args names unknown group(s) {unknown}; groups: {list(names)}")
        return [dict(group_args.get(n) or {}) for n in names]
    if len(group_args) != len(names):
        raise ValueError(f"RUM group_args has {len(group_args)} entries for {len(names)} groups")
    return [dict(a or {}) for a in group_args]


def vanilla(config: RUMConfig) -> tuple[str, dict]:
    """The "vanilla" counterpart of a RUM config: the highest group's method and arguments on the whole
    forget set, without ``forget_share`` (it compensates for a group being a small part of the data)."""
    steps = [s for s in plan(config) if s.method != NONE]
    if not steps:
        raise ValueError("this RUM config runs no method at all")
    return steps[-1].method, {k: v for k, v in steps[-1].args.items() if k != "forget_share"}


def _union(parts):
    parts = [p for p in parts if p is not None and len(p)]
    if not parts:
        return None
    if len(parts) == 1:
        return parts[0]
    cols = [c for c in parts[0].column_names if all(c in p.column_names for p in parts[1:])]
    parts = [p.select_columns(cols) for p in parts]
    parts = [parts[0]] + [p if p.features == parts[0].features else p.cast(parts[0].features) for p in parts[1:]]
    return concatenate_datasets(parts)


def proxy_scores(model, forget, retain, config: RUMConfig, log, ctx: MethodContext):
    """The proxy scores RUM refines with: given (``ctx.memorization_scores``), recorded, fallback or
    holdout retraining on ``ctx.holdout``."""
    from ..memorization.holdout import HoldoutConfig
    from ..memorization.proxies import compute_proxy, given_scores

    given = getattr(ctx, "memorization_scores", None)
    if given is not None:
        return given_scores(config.proxy, given)
    if config.proxy == "holdout_retraining":
        holdout = getattr(ctx, "holdout", None)
        if holdout is None:
            raise ValueError(
                "proxy=holdout_retraining needs held-out data: unlearn(..., holdout=<tokenized Dataset "
                "the model never saw>)"
            )
        return compute_proxy(
            config.proxy,
            model=model,
            tokenizer=ctx.tokenizer,
            holdout=holdout,
            score_on=forget,
            holdout_config=HoldoutConfig(**dict(config.holdout_args or {})),
        )
    train = _union([forget, retain]) if config.proxy_fallback else None
    return compute_proxy(
        config.proxy, log=log, model=model, tokenizer=ctx.tokenizer, train=train, fallback=config.proxy_fallback
    )


def _run_group(model, k: int, step: GroupStep, group, subset, retain_k, log, ctx) -> dict:
    """Unlearn one memorization group with its method (in place); returns the group's record."""
    record = {
        "name": group.name,
        "level": k,
        "method": step.method,
        "args": dict(step.args),
        "ids": list(group.ids),
        "count": len(group),
        "retain_count": len(retain_k) if retain_k is not None else 0,
        "score_min": group.score_min,
        "score_max": group.score_max,
        "optimizer_steps": 0,
        "time_s": 0.0,
        "skipped": None,
    }
    if step.method == NONE or len(group) == 0:
        record["skipped"] = "method none" if step.method == NONE else "empty group"
        return record
    spec = get_method(step.method)
    t0 = time.perf_counter()
    config = resolve_learning_rate(method_config(spec, step.args), log)
    group_ctx = dataclasses.replace(ctx, forget=subset, notes={})
    inner = spec.fn(model, subset, retain_k, config, log, group_ctx) or {}
    inner = {**group_ctx.notes, **inner, "learning_rate": getattr(config, "learning_rate", None)}
    record["time_s"] = time.perf_counter() - t0
    record["optimizer_steps"] = int(inner.get("optimizer_steps", 0))
    record["stats"] = {key: v for key, v in inner.items() if isinstance(v, (int, float, str, bool)) or v is None}
    return record


DESCRIPTION = (
    'RUM (Zhao, Triantafillou et al., "What makes unlearning hard and what to do about it", '
    "NeurIPS 2024): the forgotten examples are grouped by memorization level and unlearned group by group, "
    "lowest first, each group with its own method."
)


@register_method(
    "rum", RUMConfig, guarantee="approximate", description=DESCRIPTION, inputs=("holdout", "memorization_scores")
)
def rum(model, forget, retain, config: RUMConfig, log, ctx: MethodContext) -> dict:
    """Refine the forget set by a memorization proxy, unlearn the groups low -> high with per-group methods."""
    from ..memorization.refine import refine

    steps = plan(config)
    for s in steps:
        if s.method != NONE and get_method(s.method).needs_log and log is None:
            raise ValueError(
                f"RUM group {s.name!r} runs {s.method!r}, which needs the run's unlearning log (log=run_dir)"
            )
    start = time.perf_counter()
    scores = proxy_scores(model, forget, retain, config, log, ctx)
    proxy_s = time.perf_counter() - start
    refinement = refine(forget["id"], scores, k=config.num_groups)
    row_of = {i: r for r, i in enumerate(forget["id"])}
    subsets = [forget.select(sorted(row_of[i] for i in g.ids)) for g in refinement.groups]
    stats: dict = {
        "proxy": refinement.proxy,
        "proxy_source": scores.source,
        "proxy_time_s": proxy_s,
        "preset": config.preset if config.methods is None else None,
        "num_groups": config.num_groups,
        "optimizer_steps": 0,
    }
    groups = []
    for k, (step, group, subset) in enumerate(zip(steps, refinement.groups, subsets)):
        retain_k = _union([retain, *subsets[k + 1 :]])  # excludes every group processed so far
        record = _run_group(model, k, step, group, subset, retain_k, log, ctx)
        stats["optimizer_steps"] += record["optimizer_steps"]
        for key in ("method", "count", "retain_count", "optimizer_steps", "time_s", "score_min", "score_max"):
            stats[f"group_{group.name}_{key}"] = record[key]
        for key, v in (record.get("stats") or {}).items():
            if key != "optimizer_steps":
                stats[f"group_{group.name}_{key}"] = v
        groups.append(record)
    stats["groups"] = groups  # per-group ids for the per-group evaluation; reports keep scalars only
    return stats
