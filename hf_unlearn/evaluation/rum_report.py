"""RUM's report section: ToW and ToW-MIA of every memorization group against the retrain twin.

Zhao, Triantafillou et al. ("What makes unlearning hard and what to do about it", NeurIPS 2024)
report the tug-of-war scores overall and per memorization level: a method that does well on
low-memorization examples may fail on the highly memorized ones.
Each group is scored as a forget set of its own (its accuracy, and the SVC MIA-efficacy of
``hf_unlearn.evaluation.metrics.svc_mia`` applied to its examples) with the SAME retain and
test splits; each model's predictions are computed once and sliced per group.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path

import numpy as np

from . import metrics as M
from .predict import compare, predict_probs, true_class_confidence


def _groups_of(groups) -> dict[str, list[str]]:
    if hasattr(groups, "as_mapping"):
        return groups.as_mapping()
    if isinstance(groups, Mapping):
        return {str(k): list(v) for k, v in groups.items()}
    # a RUM stats["groups"] list
    return {g["name"]: list(g["ids"]) for g in groups}


def evaluate_groups(
    model,
    tokenizer,
    splits: Mapping,
    groups,
    *,
    canary_ids: Iterable[str] | None = None,
    seed: int = 0,
    batch_size: int = 64,
    include_all: bool = True,
) -> dict[str, dict]:
    """``{group: figures}`` of one model, each group being a forget set (plus ``"all"``: the whole forget split).

    Figures per group as :func:`hf_unlearn.evaluation.predict.evaluate_model`: ``forget_acc``,
    ``retain_acc``, ``test_acc`` (percent), ``mia_efficacy`` and ``canary_score`` (None without
    canaries in the group), plus ``count``. ``groups`` is a ``Refinement``, ``{name: ids}`` or
    RUM's ``stats["groups"]``; its ids must be in ``splits["forget"]``.
    """
    named = _groups_of(groups)
    forget = splits["forget"]
    probs, labels, conf = {}, {}, {}
    for s in ("forget", "retain", "test"):
        probs[s], labels[s] = predict_probs(model, splits[s], tokenizer, batch_size=batch_size)
        conf[s] = true_class_confidence(probs[s], labels[s])
    row_of = {i: r for r, i in enumerate(forget["id"])}
    retain_acc = M.accuracy(probs["retain"].argmax(1), labels["retain"])
    test_acc = M.accuracy(probs["test"].argmax(1), labels["test"])
    canaries = set(canary_ids or ())
    if include_all:
        named = {**named, "all": list(forget["id"])}
    out = {}
    for name, ids in named.items():
        missing = [i for i in ids if i not in row_of]
        if missing:
            raise KeyError(f"group {name!r}: {len(missing)} id(s) not in the forget split, e.g. {missing[:3]}")
        rows = np.asarray([row_of[i] for i in ids], dtype=np.int64)
        if rows.size == 0:
            out[name] = {
                "count": 0,
                "forget_acc": None,
                "retain_acc": retain_acc,
                "test_acc": test_acc,
                "mia_efficacy": None,
                "canary_score": None,
            }
            continue
        mask = np.asarray([i in canaries for i in ids], dtype=bool)
        out[name] = {
            "count": int(rows.size),
            "forget_acc": M.accuracy(probs["forget"][rows].argmax(1), labels["forget"][rows]),
            "retain_acc": retain_acc,
            "test_acc": test_acc,
            "mia_efficacy": M.svc_mia(conf["retain"], conf["test"], conf["forget"][rows], seed=seed),
            "canary_score": M.canary_score(conf["forget"][rows][mask]) if mask.any() else None,
        }
    return out


def group_comparison(model_groups: Mapping[str, dict], twin_groups: Mapping[str, dict]) -> dict[str, dict]:
    """``{group: {"tow", "tow_mia"}}`` of one model's :func:`evaluate_groups` against the twin's."""
    out = {}
    for name, m in model_groups.items():
        if m.get("count") and twin_groups.get(name, {}).get("count"):
            out[name] = compare(m, twin_groups[name])
        else:
            out[name] = {"tow": None, "tow_mia": None}
    return out


def rum_section(
    models: Mapping[str, object],
    tokenizer,
    splits: Mapping,
    groups,
    *,
    twin: str = "retrain_twin",
    summary: Mapping | None = None,
    canary_ids: Iterable[str] | None = None,
    seed: int = 0,
) -> dict:
    """The report's per-group section: figures of every model per group, ToW / ToW-MIA of each vs ``twin``.

    ``groups`` as in :func:`evaluate_groups` (ids are used, never written); ``summary`` adds
    scalars such as each group's method (e.g. :func:`group_summary` of RUM's stats).
    """
    named = _groups_of(groups)
    metrics = {
        name: evaluate_groups(m, tokenizer, splits, named, canary_ids=canary_ids, seed=seed)
        for name, m in models.items()
    }
    comparison = {}
    if twin in metrics:
        comparison = {name: group_comparison(metrics[name], metrics[twin]) for name in metrics if name != twin}
    return {
        "groups": dict(summary or {g: {"count": len(ids)} for g, ids in named.items()}),
        "metrics": metrics,
        "comparison": comparison,
    }


def group_summary(rum_stats: Mapping) -> dict[str, dict]:
    """Per-group scalars of RUM's stats (method, count, retain count, steps, time, score range; no ids)."""
    keep = (
        "level",
        "method",
        "count",
        "retain_count",
        "optimizer_steps",
        "time_s",
        "score_min",
        "score_max",
        "skipped",
    )
    return {g["name"]: {k: g.get(k) for k in keep} for g in rum_stats.get("groups", [])}


def plot_rum_groups(
    section: Mapping,
    out_dir: str | Path,
    model: str = "unlearned",
    others: Mapping[str, Mapping] | None = None,
    *,
    method: str | None = "rum",
    forget_count: int | None = None,
) -> list[str]:
    """PNG bars: ``plots/rum_tow_by_group.png`` (ToW and ToW-MIA per group of ``model``, and of
    ``others`` such as a vanilla run, given as ``{label: {group: {"tow", "tow_mia"}}}``) and
    ``plots/rum_forget_acc_by_group.png`` (forget accuracy per group of every model).

    Each model keeps its colour of every other plot (ToW-MIA bars are hatched); titles name
    ``method`` and the forget-set size (default: the section's ``"all"`` group count); each group
    is labelled with its number of examples.
    """
    from .plot_style import model_color, plot_title
    from .plots import plot_group_bars

    out = Path(out_dir) / "plots"
    metrics = section.get("metrics", {})
    counts = _group_counts(section)
    if forget_count is None:
        forget_count = counts.get("all")
    name = lambda g: f"{g}\n({counts[g]} examples)" if counts.get(g) is not None else g  # noqa: E731
    paths = []
    series = {model: section.get("comparison", {}).get(model, {})}
    series.update(others or {})
    groups = list(next(iter(series.values()), {}))
    kinds = (("tow", "ToW"), ("tow_mia", "ToW-MIA"))
    tow = {name(g): {f"{m} {k}": v.get(g, {}).get(key) for m, v in series.items() for key, k in kinds} for g in groups}
    if tow:
        colors = {f"{m} {k}": model_color(m) for m in series for _, k in kinds}
        hatches = {f"{m} ToW-MIA": "//" for m in series}
        title = plot_title(
            "ToW (plain) and ToW-MIA (hatched) per memorization group, 1 = as retraining", method, forget_count
        )
        paths.append(
            plot_group_bars(tow, out / "rum_tow_by_group.png", title, "score", colors=colors, hatches=hatches)
        )
    if metrics:
        first = next(iter(metrics.values()))
        acc = {name(g): {m: metrics[m][g]["forget_acc"] for m in metrics} for g in first}
        title = plot_title(
            "forget accuracy (%) per memorization group, closer to the twin is better", method, forget_count
        )
        paths.append(plot_group_bars(acc, out / "rum_forget_acc_by_group.png", title, ylabel="accuracy (%)"))
    return paths


def _group_counts(section: Mapping) -> dict:
    """``{group: count}`` from the section's figures (any model's), else from its summary."""
    for figures in (section.get("metrics") or {}).values():
        return {g: f.get("count") for g, f in figures.items()}
    return {g: s.get("count") for g, s in (section.get("groups") or {}).items()}
