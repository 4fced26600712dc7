"""The forgetting report: every figure for original / unlearned / retrain twin, as JSON + PNG plots.

``report.json`` (a :class:`~hf_unlearn.cards.schema.ForgettingReport`, ``schema_version`` 4)
records the method, its description and its arguments, the guarantee, the data set
fingerprints, the count of the forget ids and their salted commitment
(:func:`hf_unlearn.artifacts.forget_set_commitment`: HMAC-SHA256 keyed with a random 32-byte salt;
never the ids, the texts or any value computable from the ids alone),
seeds, timings, library versions and, per model, accuracy on forget / retain / test,
SVC MIA-efficacy, loss-threshold MIA AUC and canary score; against the twin, ToW, ToW-MIA
and the verification error ``||w_u - w_r||_2``; the "do nothing" baseline (the original model
against the twin: ``tow_original``, ``tow_mia_original``); with noise twins (retrains without the
forget set under other seeds) the retrain noise floor (``noise_floor.py``) and, with two or more,
the per-example membership test (``membership.py``); and the verdict in words (``verdict.py``,
the one rule the demo and the card share). The salt is private: :func:`write_report` writes it
beside ``report.json`` as ``commitment_salt.json`` (mode 0600), a file ``push`` never uploads.
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

from .. import __version__, console
from ..artifacts import REPORT_FILE, atomic_write_json, forget_set_commitment, library_versions, write_salt
from ..cards.schema import ForgettingReport
from ..data.loading import balanced_subset, fingerprint_dataset
from . import membership as _membership
from .exposure import exposure_section, with_canary_exposure
from .metrics import verification_error
from .noise_floor import noise_floor_section, noise_min
from .predict import compare, evaluate_model, predict_probs, true_class_confidence
from .verdict import judge


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


def build_report(  # long on purpose: one keyword argument per field of the report
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
    noise_twins: Sequence[object] = (),
    noise_seeds: Sequence[int] | None = None,
) -> dict:
    """Evaluate ``models`` (keys among ``original``, ``unlearned``, ``retrain_twin``) and assemble the report.

    Returns the dict of a :class:`~hf_unlearn.cards.schema.ForgettingReport`. ``commitment_salt``
    (required; :func:`hf_unlearn.artifacts.new_salt`, kept privately: pass it to :func:`write_report`)
    keys the forget set's public ``commitment``. ``noise_twins`` (retrains without the forget set under
    ``noise_seeds``) give ``noise_floor`` and, two or more, ``membership``; ``verdict`` needs all three models.
    ``canaries``: see :mod:`.exposure`.
    """
    forget_ids = sorted(set(forget_ids))
    eval_splits = {k: splits[k] for k in ("forget", "retain", "test")}
    metrics = {
        name: evaluate_model(m, tokenizer, eval_splits, canary_ids=canary_ids)
        for name, m in console.progress(models.items(), desc="evaluation", total=len(models))
    }
    exposure = exposure_section(models, tokenizer, canaries, forget_ids)  # None: no planted canary forgotten
    report = ForgettingReport(
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
    if "retrain_twin" in models:
        report.update(_noise_sections(models, metrics, list(noise_twins), noise_seeds, tokenizer, eval_splits))
    return report


def _noise_sections(models, metrics, noise_twins, seeds, tokenizer, splits) -> dict:
    """``noise_floor``, ``membership`` and ``verdict`` of a report with a retrain twin."""
    out = {}
    twin = metrics["retrain_twin"]
    if noise_twins:
        noise = [
            evaluate_model(m, tokenizer, splits)
            for m in console.progress(noise_twins, desc="evaluating the noise twins", total=len(noise_twins))
        ]
        out["noise_floor"] = noise_floor_section(twin, noise, metrics.get("unlearned"), seeds)
    out["membership"] = (
        membership_of(models, noise_twins, tokenizer, splits)
        if len(noise_twins) >= _membership.MIN_REFERENCE_MODELS
        else _membership.absent_section(len(noise_twins))
    )
    if "unlearned" in metrics and "original" in metrics:
        comp, nothing = compare(metrics["unlearned"], twin), compare(metrics["original"], twin)
        out["verdict"] = judge(
            metrics["original"],
            metrics["unlearned"],
            twin,
            tow=comp["tow"],
            tow_mia=comp["tow_mia"],
            nothing_tow=nothing["tow"],
            nothing_tow_mia=nothing["tow_mia"],
            noise_min=noise_min(out.get("noise_floor")),
            sizes={split: len(splits[split]) for split in ("retain", "test")},
        )
        out["verdict"]["do_nothing"] = nothing
    return out


def membership_of(models: Mapping, noise_twins: Sequence, tokenizer, splits: Mapping, seed: int = 0) -> dict:
    """The per-example membership test (:mod:`.membership`): each of ``models`` against ``noise_twins``
    as reference models, on the forget split and as many test examples (a seeded subset)."""
    import numpy as np

    test = splits["test"]
    n = min(len(splits["forget"]), len(test))
    test = test.select(sorted(np.random.default_rng(seed).choice(len(test), n, replace=False).tolist()))

    def confidences(model) -> tuple:
        return tuple(true_class_confidence(*predict_probs(model, ds, tokenizer)) for ds in (splits["forget"], test))

    refs = [confidences(m) for m in noise_twins]
    references = (np.stack([r[0] for r in refs]), np.stack([r[1] for r in refs]))
    return _membership.membership_section({k: confidences(m) for k, m in models.items()}, references)


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
    if "original" in models:  # the "do nothing" baseline: the original model against the twin
        nothing = compare(metrics["original"], metrics["retrain_twin"])
        comparison["tow_original"], comparison["tow_mia_original"] = nothing["tow"], nothing["tow_mia"]
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
    return "\n".join(lines + judgement_lines(report))


def judgement_lines(report: Mapping) -> list[str]:
    """The do-nothing baseline, the retrain noise floor, the membership test and the verdict, one line each."""
    comp, lines = report.get("comparison") or {}, []
    if comp.get("tow_original") is not None:
        lines.append(
            f"do nothing (the original against the twin): ToW {comp['tow_original']:.4f}  "
            f"ToW-MIA {comp['tow_mia_original']:.4f}"
        )
    floor = report.get("noise_floor") or {}
    if floor:
        tw = floor["against_twin"]
        lines.append(
            f"retrain noise ({floor['n_twins']} noise twins against the twin): "
            + "  ".join(f"{name} {_spread(tw[key])}" for key, name in (("tow", "ToW"), ("tow_mia", "ToW-MIA")))
        )
    membership = report.get("membership") or {}
    if membership.get("models"):
        figures = membership["models"]
        lines.append(
            f"membership test ({membership['reference_models']} reference models), forget examples flagged / AUC: "
            + ", ".join(f"{k} {v['flagged_fraction']:.2f} / {v['auc']:.2f}" for k, v in figures.items())
        )
    elif membership.get("absent"):
        lines.append(f"membership test: absent ({membership['absent']})")
    verdict = report.get("verdict") or {}
    if verdict.get("says"):
        lines.append(f"verdict: {verdict['says']}")
    return lines


def _spread(s: Mapping) -> str:
    return f"{s['mean']:.4f} (sd {s['sd']:.4f}, min {s['min']:.4f}, max {s['max']:.4f})"
