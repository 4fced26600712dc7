"""The forgetting report: every figure for original / unlearned / retrain twin, as JSON + PNG plots.

``report.json`` (a :class:`~hf_unlearn.cards.schema.ForgettingReport`, ``schema_version`` 2)
records the method, its description and its arguments, the guarantee, the data set
fingerprints, the count of the forget ids and their salted commitment
(:func:`hf_unlearn.artifacts.forget_set_commitment`: HMAC-SHA256 keyed with a random 32-byte salt;
never the ids, the texts or any value computable from the ids alone),
seeds, timings, library versions and, per model, accuracy on forget / retain / test,
SVC MIA-efficacy, loss-threshold MIA AUC and canary score; against the twin, ToW, ToW-MIA
and the verification error ``||w_u - w_r||_2``. The salt is private: :func:`write_report` writes it
beside ``report.json`` as ``commitment_salt.json`` (mode 0600), a file ``push`` never uploads.
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Iterable, Mapping
from pathlib import Path

from .. import __version__, console
from ..artifacts import REPORT_FILE, atomic_write_json, forget_set_commitment, library_versions, write_salt
from ..cards.schema import ForgettingReport
from ..data.loading import balanced_subset, fingerprint_dataset
from .exposure import exposure_section, with_canary_exposure
from .metrics import verification_error
from .predict import compare, evaluate_model


def split_for_evaluation(
    tokenized_train, tokenized_test, forget_ids: Iterable[str], retain_max: int | None = 2000, seed: int = 0
) -> dict:
    """forget / retain / test splits; the retain split is a balanced subset of at most ``retain_max`` rows."""
    forget = set(forget_ids)
    is_forget = [i in forget for i in tokenized_train["id"]]
    forget_ds = tokenized_train.select([k for k, f in enumerate(is_forget) if f])
    retain_ds = tokenized_train.select([k for k, f in enumerate(is_forget) if not f])
    return {
        "forget": forget_ds,
        "retain": balanced_subset(retain_ds, retain_max, seed) if retain_max else retain_ds,
        "test": tokenized_test,
        "retain_full": retain_ds,
    }


def build_report(
    *,
    models: Mapping[str, object],
    tokenizer,
    splits: Mapping[str, object],
    forget_ids: Iterable[str],
    method: str,
    method_description: str | None = None,
    method_args: Mapping | None = None,
    guarantee: str = "approximate",
    stats: Mapping | None = None,
    base_model: str | None = None,
    dataset_source: str | None = None,
    train_fingerprint: str | None = None,
    canary_ids: Iterable[str] | None = None,
    canaries=None,
    log=None,
    seeds: Mapping | None = None,
    timings: Mapping | None = None,
    config: Mapping | None = None,
    commitment_salt: bytes,
) -> dict:
    """Evaluate ``models`` (keys among ``original``, ``unlearned``, ``retrain_twin``) and assemble the report.

    Returns the dict of a :class:`~hf_unlearn.cards.schema.ForgettingReport`; ``method_description``
    is the registry's text for ``method`` (the card shows it). ``commitment_salt`` (required; 32
    random bytes from :func:`hf_unlearn.artifacts.new_salt`, kept privately with the output: pass it
    to :func:`write_report`) keys the forget set's public ``commitment``. ``canaries``: see :mod:`.exposure`.
    """
    forget_ids = sorted(set(forget_ids))
    eval_splits = {k: splits[k] for k in ("forget", "retain", "test")}
    metrics = {
        name: evaluate_model(m, tokenizer, eval_splits, canary_ids=canary_ids)
        for name, m in console.progress(models.items(), desc="evaluation", total=len(models))
    }
    exposure = exposure_section(models, tokenizer, canaries, forget_ids)  # None: no planted canary forgotten
    return ForgettingReport(
        hf_unlearn_version=__version__,
        method=method,
        method_description=method_description,
        method_args=dict(method_args or {}),
        guarantee=guarantee,
        base_model=base_model,
        task="text-classification",
        dataset={
            "source": dataset_source,
            "fingerprints": {"train": train_fingerprint, "test": fingerprint_dataset(splits["test"])},
            "evaluated_retain_examples": len(splits["retain"]),
        },
        forget=forget_section(forget_ids, commitment_salt),
        seeds=dict(seeds or {}),
        metrics=with_canary_exposure(metrics, exposure),
        comparison=_comparison(models, metrics),
        stats={k: v for k, v in (stats or {}).items() if isinstance(v, (int, float, str, bool)) or v is None},
        training=_training_section(log),
        timings=dict(timings or {}),
        config=dict(config or {}),
        versions=library_versions(),
        extra={"exposure": exposure} if exposure else {},
    ).to_dict()


def forget_section(forget_ids: Iterable[str], salt: bytes) -> dict:
    """``{count, commitment, request_date}``: the forget set named by its count and salted commitment only."""
    ids = sorted(set(forget_ids))
    return {
        "count": len(ids),
        "commitment": forget_set_commitment(ids, salt),
        "request_date": _dt.date.today().isoformat(),
    }


def _comparison(models: Mapping[str, object], metrics: dict) -> dict:
    """The unlearned model against the retrain twin (ToW, ToW-MIA, verification errors); {} without a twin."""
    twin = models.get("retrain_twin")
    if twin is None or "unlearned" not in models:
        return {}
    comparison = compare(metrics["unlearned"], metrics["retrain_twin"])
    comparison["verification_error"] = verification_error(models["unlearned"], twin)
    if "original" in models:
        comparison["verification_error_original"] = verification_error(models["original"], twin)
    return comparison


def _training_section(log) -> dict:
    """Penalties and recorders of the unlearning log the model was trained with ({} without a log)."""
    if log is None:
        return {}
    args = log.meta.get("training_args", {})
    return {
        "penalties": {k: args.get(k) for k in ("sd_lambda", "sd_lambda_decay", "l2_init_mu")},
        "recorders": log.meta.get("recorders"),
        "delta_dtype": log.meta.get("delta_dtype"),
        "per_sample_fraction": log.meta.get("per_sample_fraction"),
        "steps": len(log.steps()),
        "error_proxy": (log.error_proxy() or [None])[-1],
    }


def write_report(report: dict, out_dir: str | Path, plots: bool = True, *, salt: bytes | None = None) -> Path:
    """Write ``report.json`` and (with ``plots``) ``plots/accuracy.png``, ``mia.png``, ``summary.png`` (the
    card's figure) and ``verification_error.png`` (:func:`hf_unlearn.evaluation.plots.plot_report`).

    ``salt`` (the ``commitment_salt`` the report was built with) is written first, privately, as
    ``commitment_salt.json`` (mode 0600): with it and the ids, ``hf-unlearn verify-commitment``
    checks the report's commitment. It never goes into ``report.json``."""
    out = Path(out_dir)
    if salt is not None:
        write_salt(out, salt)
    atomic_write_json(out / REPORT_FILE, report)
    if plots and report.get("metrics"):
        from .plots import plot_report

        plot_report(report, out / "plots")
    return out / REPORT_FILE


def summary_table(report: dict) -> str:
    """A short plain-text table of the report for the terminal."""
    rows = [("model", "forget %", "retain %", "test %", "MIA eff.", "canary p")]
    for name, m in report["metrics"].items():
        fmt = lambda v, p=1: "n/a" if v is None else f"{v:.{p}f}"  # noqa: E731
        rows.append(
            (
                name,
                fmt(m["forget_acc"]),
                fmt(m["retain_acc"]),
                fmt(m["test_acc"]),
                fmt(m["mia_efficacy"], 3),
                fmt(m.get("canary_score"), 3),
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)) for r in rows]
    comp = report.get("comparison") or {}
    if comp:
        lines.append("ToW {tow:.4f}  ToW-MIA {tow_mia:.4f}  VE {verification_error:.4g}".format(**comp))
    return "\n".join(lines)
