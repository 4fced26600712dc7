"""The report of one served request: every model evaluated, the run's facts, the twins' sections."""

from __future__ import annotations

from .. import console
from ..data.canaries import canary_probe
from ..data.synthetic import CANARY_PREFIX
from ..evaluation.report import build_report


def run_report(run, models, splits, forget_ids, spec, method_args, stats, timings, salt, twins=None):
    """Evaluate ``models`` and build the request's report (``twins``: the retrain and noise twins used)."""
    canaries = [i for i in forget_ids if i.startswith(CANARY_PREFIX)]
    with console.phase(f"evaluating {len(models)} models on the forget, retain and test splits"):
        report = _build_report(
            run, models, splits, forget_ids, spec, method_args, stats, timings, canaries, salt, twins
        )
    report["method_description"] = spec.description
    return report


def _build_report(
    run, models, splits, forget_ids, spec, method_args, stats, timings, canaries, salt, twins=None
) -> dict:
    return build_report(
        models=models,
        tokenizer=run.tokenizer,
        splits=splits,
        forget_ids=forget_ids,
        method=spec.name,
        method_args=method_args,
        guarantee=spec.guarantee,
        stats=stats,
        base_model=run.base_model_name,
        dataset_source=run.data_args.dataset_name,
        train_fingerprint=run.meta.get("train_fingerprint"),
        canary_ids=canaries or None,
        canaries=canary_probe(run.data, run.data_args.canary_recipe(), run.data_args.max_length),
        log=run.log,
        seeds={"train": run.meta.get("seed")},
        timings=timings,
        config={"data": vars(run.data_args), "model": vars(run.model_args)},
        commitment_salt=salt,
        noise_twins=twins.noise if twins is not None else (),
        noise_seeds=twins.noise_seeds() if twins is not None else None,
    )
