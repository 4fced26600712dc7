"""Model cards for unlearned models and for models trained to be unlearnable.

Cards are rendered with ``huggingface_hub.ModelCard.from_template`` from the Jinja templates in
``hf_unlearn/cards/templates/``; the evaluation figures also go into the card's ``model-index``
metadata (``ModelCardData(eval_results=[EvalResult(...)])``). Tables are built here with the
helpers of :mod:`hf_unlearn.cards.tables`, padded so that they read well as plain text too. Inputs
are scrubbed with :func:`strip_private` first, so a card can never show an example id or text even
if the caller passed one.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

from huggingface_hub import EvalResult, ModelCard, ModelCardData

from .. import __version__
from ..artifacts import atomic_write_text
from .judgement import judgement_context
from .privacy import SYSTEM_METHODS, strip_private
from .schema import ForgettingReport
from .tables import (
    NA,
    OFFLINE_BASES,
    _dataset_label,
    _forget_context,
    _get,
    _key,
    _kv_table,
    _num,
    _speedup,
    _tag,
    applicable_config,
    base_phrase,
    fmt,
    hub_id_or_none,
    is_random_init,
    md_table,
)

TEMPLATE_DIR = Path(__file__).resolve().parent / "templates"
UNLEARNED_TEMPLATE = TEMPLATE_DIR / "unlearned_model_card.md"
TRAINING_TEMPLATE = TEMPLATE_DIR / "trained_model_card.md"
EXACT_METHODS = ("s3t", "sisa", "retrain")

# (report key, label, split, metric type, formatter kind)
ACCURACY_METRICS = (
    ("forget_acc", "Forget accuracy (%)", "forget", "accuracy", "pct"),
    ("retain_acc", "Retain accuracy (%)", "retain", "accuracy", "pct"),
    ("test_acc", "Test accuracy (%)", "test", "accuracy", "pct"),
    ("mia_efficacy", "MIA efficacy (0-1)", "forget", "mia_efficacy", "unit"),
    ("mia_auc", "MIA AUC (loss threshold)", "forget", "mia_auc", "unit"),
    ("canary_score", "Canary score (mean p of true label)", "forget", "canary_score", "unit"),
    ("canary_exposure", "Canary exposure (bits, of log2 R)", "forget", "exposure", "unit"),
)
COMPARISONS = (
    ("tow", "ToW", "unit", "1 = same forget / retain / test accuracy as the retrain twin; lower is worse"),
    ("tow_mia", "ToW-MIA", "unit", "ToW with the forget-accuracy factor replaced by the MIA-efficacy gap"),
    (
        "verification_error",
        "Verification error",
        "sci",
        "L2 distance between the weights of this model and of the retrain twin (0 = identical)",
    ),
    (
        "tow_original",
        "ToW of doing nothing",
        "unit",
        "the original model against the retrain twin: what unlearning has to beat",
    ),
    ("tow_mia_original", "ToW-MIA of doing nothing", "unit", "the original model against the retrain twin"),
    (
        "verification_error_original",
        "Verification error of the original model",
        "sci",
        "L2 distance between the weights of the original model and of the retrain twin: the distance unlearning started from",
    ),
)
VARIANTS = (
    ("original", "Original", "original model before unlearning"),
    ("unlearned", "Unlearned", "this model"),
    ("retrain_twin", "Retrain twin", "retrain twin trained without the forget set"),
)
TIMINGS = {"unlearn_s": "Unlearning", "retrain_s": "Retraining the twin", "train_s": "Training"}
# one entry per recorder, named as the unlearning log's meta names them (UnlearnableTrainingArguments.recorders)
RECORDERS = {
    "transcript": "which example ids each optimizer step saw (and each one's weight in the step)",
    "deltas": "the parameter update of each optimizer step (for rolling back the steps that saw an example)",
    "per_sample": "each example's gradient on a fixed random subset of the parameters",
    "learning_events": "per example and step: true-class confidence, entropy and correctness "
    "(memorization proxies, for grouping a forget set by how memorized it is)",
    "error_proxy": 'the unlearning-error proxy of Thudi et al. ("Unrolling SGD") along training',
}
PENALTIES = {
    "sd_lambda": "weight of the SD loss: mean over the batch of the std of each example's logits "
    '(Thudi et al., "Unrolling SGD"); 0 = off',
    "sd_lambda_decay": "the SD weight is divided by this after each epoch (below 1: it rises)",
    "l2_init_mu": "weight of the squared L2 distance between the weights and the initial weights; 0 = off",
}


# ------------------------------------------------------------------------------- model-index


def eval_results(report: dict, model_name: str) -> list[EvalResult]:
    """One ``EvalResult`` per figure of the report: every model variant, split and comparison.

    ``metric_config`` names the model the figure belongs to (``original``, ``unlearned``,
    ``retrain_twin``) or ``comparison`` for figures that compare this model with the retrain twin;
    ``dataset_split`` is ``forget`` / ``retain`` / ``test``.
    """
    source = _get(report, "dataset", "source")
    dataset_type = _dataset_label(source)
    task = report.get("task") or "text-classification"
    known = {k: (split, mtype, label) for k, label, split, mtype, _ in ACCURACY_METRICS}
    out = []
    for variant, _, description in VARIANTS:
        metrics = _get(report, "metrics", variant) or {}
        for key, value in metrics.items():
            if not _num(value):
                continue
            split, mtype, label = known.get(key, (None, key, key))
            suffix = "" if variant == "unlearned" else f", {description}"
            out.append(
                EvalResult(
                    task_type=task,
                    dataset_type=dataset_type,
                    dataset_name=f"{dataset_type} ({split} set)" if split else dataset_type,
                    dataset_split=split,
                    metric_type=mtype,
                    metric_value=value,
                    metric_name=f"{label}{suffix}",
                    metric_config=variant,
                )
            )
    labels = {k: label for k, label, _, _ in COMPARISONS}
    for key, value in (report.get("comparison") or {}).items():
        if _num(value):
            out.append(
                EvalResult(
                    task_type=task,
                    dataset_type=dataset_type,
                    dataset_name=dataset_type,
                    metric_type=key,
                    metric_value=value,
                    metric_name=labels.get(key, key)
                    + ("" if key.endswith("_original") else " (this model vs retrain twin)"),
                    metric_config="comparison",
                )
            )
    return out


# ---------------------------------------------------------------------------------- sections


def _evaluation_table(report: dict) -> str:
    keys = [k for k, *_ in ACCURACY_METRICS]
    extra = sorted({k for v, *_ in VARIANTS for k in (_get(report, "metrics", v) or {}) if k not in keys})
    kinds = {k: kind for k, _, _, _, kind in ACCURACY_METRICS}
    labels = {k: label for k, label, *_ in ACCURACY_METRICS}
    rows = []
    for key in keys + extra:
        vals = [_get(report, "metrics", v, key) for v, *_ in VARIANTS]
        kind = kinds.get(key, "auto")
        gap = vals[1] - vals[2] if _num(vals[1]) and _num(vals[2]) else None
        gap_s = NA if gap is None else (f"{gap:+.1f}" if kind == "pct" else f"{gap:+.3f}")
        rows.append([labels.get(key, key)] + [fmt(v, kind) for v in vals] + [gap_s])
    return md_table(["Metric"] + [label for _, label, _ in VARIANTS] + ["Unlearned - twin"], rows, right=range(1, 5))


def _comparison_table(report: dict) -> str:
    comp = report.get("comparison") or {}
    rows = [[label, fmt(comp.get(key), kind), meaning] for key, label, kind, meaning in COMPARISONS]
    rows += [[k, fmt(v), ""] for k, v in comp.items() if k not in {c[0] for c in COMPARISONS}]
    return md_table(["Comparison with the retrain twin", "Value", "Meaning"], rows, right=[1])


def _finish(card: ModelCard) -> ModelCard:
    """Collapse the blank lines Jinja blocks leave behind; end with one newline."""
    return ModelCard(re.sub(r"\n{3,}", "\n\n", str(card)).rstrip() + "\n")


def _recorder_lines(names: Any) -> list[str]:
    """One line per recorder, each named once (a name given twice is listed once)."""
    if not isinstance(names, list):
        return []
    unique = list(dict.fromkeys(_key(n) for n in names))
    return [f"`{n}`: {RECORDERS[n]}" if n in RECORDERS else f"`{n}`" for n in unique]


def _common_context(report: dict, penalties: dict | None, recorders: Any) -> dict:
    base = report.get("base_model")
    source = _get(report, "dataset", "source")
    fps = _get(report, "dataset", "fingerprints") or {}
    return {
        "base_model": base or NA,
        "base_phrase": base_phrase(base),
        "random_init": is_random_init(base),
        "dataset": _dataset_label(source) if source else NA,
        "fingerprints_table": md_table(
            ["Split", "Fingerprint (sha256 of ids and labels in row order)"], [[k, f"`{v}`"] for k, v in fps.items()]
        )
        if fps
        else None,
        "seeds_table": _kv_table(["Seed", "Value"], report.get("seeds")),
        "versions_table": _kv_table(["Library", "Version"], report.get("versions")),
        "penalties_table": _kv_table(["Penalty", "Value"], penalties, PENALTIES),
        "recorders": _recorder_lines(recorders),
        "tokenizer_trained_here": base in OFFLINE_BASES,
        "hf_unlearn_version": report.get("hf_unlearn_version") or NA,
    }


def _card_data(
    report: dict,
    *,
    model_name: str,
    license: str | None,
    tags: list[str],
    results: list[EvalResult],
    base_model: str | None = None,
    lora: str | None = None,
) -> ModelCardData:
    """The card's metadata. ``lora`` (``"adapter"`` / ``"merged"``, with ``base_model`` the base's Hub id):
    an adapter repo is ``library_name: peft`` with ``base_model_relation: adapter``, as PEFT's own cards;
    a merged one is a ``transformers`` model whose relation to its base is ``finetune``."""
    source = _get(report, "dataset", "source")
    base = report.get("base_model")
    if license is None:
        license = report.get("license") or ("apache-2.0" if base in OFFLINE_BASES else None)
    hub_base = base_model or hub_id_or_none(base)
    relation = {"adapter": "adapter", "merged": "finetune"}.get(lora) if hub_base else None
    if lora:
        tags = [*tags, "lora"] + ([f"base_model:adapter:{hub_base}"] if lora == "adapter" and hub_base else [])
    return ModelCardData(
        model_name=model_name,
        base_model=hub_base,
        datasets=[d] if (d := hub_id_or_none(source)) else None,
        license=license,
        library_name="peft" if lora == "adapter" else "transformers",
        pipeline_tag=report.get("task") or "text-classification",
        tags=tags,
        metrics=["accuracy"] if results else None,
        eval_results=results or None,
        **({"base_model_relation": relation} if relation else {}),
    )


def _shown_config(report: dict) -> dict:
    """The report's configuration without the fields that do not apply to this run."""
    config = report.get("config") or {}
    return applicable_config(
        config,
        dataset=_get(report, "dataset", "source") or _get(config, "data", "dataset_name"),
        base=report.get("base_model") or _get(config, "model", "model_name_or_path"),
    )


def _guarantee(declared: Any, mkey: str) -> tuple[str, bool]:
    """The report's guarantee and False; or, when it names neither, the method's kind and True (inferred)."""
    if declared in ("exact", "approximate"):
        return declared, False
    return ("exact" if mkey in EXACT_METHODS else "approximate"), True


def render_card(
    report: dict,
    *,
    repo_id: str | None = None,
    license: str | None = None,
    layout: list[str] | None = None,
    summary_figure: str | None = None,
    base_model: str | None = None,
    lora: str | None = None,
) -> ModelCard:
    """The card of an unlearned model (or exact-unlearning system) from its ``report.json``.

    ``report``: a :class:`~hf_unlearn.cards.schema.ForgettingReport` or its dict. The method text
    is the report's ``method_description`` (the method registry's, or S3T/SISA's); a report
    without one (written before the schema) gets the method's name only. ``layout`` (one line per
    top-level folder) is shown for S3T/SISA system folders. ``summary_figure`` (``plots/summary.png``)
    is embedded in the Evaluation section. The base is named as it is (tiny-bert: randomly
    initialised); configuration fields that do not apply to the run are left out. ``lora``: a LoRA
    ``"adapter"`` on ``base_model`` (the base's Hub id) or ``"merged"`` into it (:func:`_card_data`).
    """
    if isinstance(report, ForgettingReport):
        report = report.to_dict()
    parsed = ForgettingReport.from_dict(strip_private(report)[0])
    report = parsed.to_dict()
    method, mkey = parsed.method, _key(parsed.method)
    guarantee, inferred = _guarantee(parsed.guarantee, mkey)
    default_name = f"{_tag(report.get('base_model') or 'model')}-unlearned-{_tag(method)}"
    model_name = (repo_id or "").split("/")[-1] or default_name
    results = eval_results(report, model_name)
    tags = ["hf-unlearn", "machine-unlearning", _tag(method), f"{guarantee}-unlearning", "text-classification"]
    data = _card_data(
        report, model_name=model_name, license=license, tags=tags, results=results, base_model=base_model, lora=lora
    )
    training, timings, forget = parsed.training or {}, parsed.timings or {}, parsed.forget or {}
    config = _shown_config(report)
    context = _common_context(report, training.get("penalties"), training.get("recorders"))
    context.update(
        title=repo_id or model_name,
        method=method,
        method_description=parsed.method_description or f"`{method}`",
        method_args_table=_kv_table(["Hyperparameter", "Value"], parsed.method_args),
        guarantee=guarantee,
        guarantee_inferred=inferred,
        system=mkey in SYSTEM_METHODS,
        layout=layout or [],
        **_forget_context(forget, parsed.requests),
        evaluation_table=_evaluation_table(report) if report.get("metrics") else None,
        comparison_table=_comparison_table(report) if report.get("comparison") else None,
        delta_dtype=training.get("delta_dtype"),
        timings_table=_kv_table(["Step", "Wall-clock time"], timings, names=TIMINGS, kind="s"),
        speedup=_speedup(timings),
        config_json=json.dumps(config, indent=2, sort_keys=True, default=str) if config else None,
        license_known=data.get("license") is not None,
        repo_id=repo_id,
        summary_figure=summary_figure,
        **{"lora": lora, "adapter_base": data.get("base_model"), "num_labels": _num_labels(report)},
        **judgement_context(report),
    )
    return _finish(ModelCard.from_template(data, template_path=str(UNLEARNED_TEMPLATE), **context))


def _num_labels(report: dict) -> int:
    """The classes of the model, for the adapter's usage snippet (``num_labels`` of its config, else 2)."""
    config = report.get("config") or {}
    value = _get(config, "model", "num_labels") or config.get("num_labels")
    return value if isinstance(value, int) and value >= 2 else 2


def render_training_card(summary: dict, output_dir: str | os.PathLike) -> str:
    """Write the card of a model trained to be unlearnable (no deletion yet) to ``output_dir/README.md``.

    ``summary`` keys: ``base_model``, ``dataset`` {source, fingerprints}, ``penalties``
    {sd_lambda, sd_lambda_decay, l2_init_mu}, ``recorders``, ``delta_dtype``,
    ``per_sample_fraction``, ``seeds``, ``versions``, ``metrics`` (name -> value),
    ``num_train_examples``, ``epochs``; optional ``repo_id``, ``license``. The file is written
    atomically (temporary file + rename); returns its path.
    """
    summary, _ = strip_private(summary)
    repo_id = summary.get("repo_id")
    model_name = (repo_id or "").split("/")[-1] or f"{_tag(summary.get('base_model') or 'model')}-unlearnable"
    metrics = {k: v for k, v in (summary.get("metrics") or {}).items() if _num(v)}
    dataset_type = _dataset_label(_get(summary, "dataset", "source"))
    results = [
        EvalResult(
            task_type="text-classification",
            dataset_type=dataset_type,
            dataset_name=dataset_type,
            metric_type=k,
            metric_value=v,
            metric_name=k,
        )
        for k, v in metrics.items()
    ]
    recorders = summary.get("recorders") or []
    tags = ["hf-unlearn", "machine-unlearning", "unlearning-ready", "text-classification"]
    data = _card_data(summary, model_name=model_name, license=summary.get("license"), tags=tags, results=results)
    context = _common_context(summary, summary.get("penalties"), recorders)
    context.update(
        title=repo_id or model_name,
        hf_unlearn_version=summary.get("hf_unlearn_version") or __version__,
        delta_dtype=summary.get("delta_dtype"),
        per_sample_fraction=summary.get("per_sample_fraction"),
        num_train_examples=fmt(summary.get("num_train_examples")),
        epochs=fmt(summary.get("epochs")),
        metrics_table=md_table(["Metric", "Value"], [[k, fmt(v)] for k, v in metrics.items()], right=[1])
        if metrics
        else None,
        license_known=data.get("license") is not None,
        has_recorders=bool(recorders),
        repo_id=repo_id,
    )
    card = _finish(ModelCard.from_template(data, template_path=str(TRAINING_TEMPLATE), **context))
    return str(atomic_write_text(Path(output_dir) / "README.md", str(card)))
