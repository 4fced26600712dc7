"""Recompute the forgetting report for saved models (the engine behind ``hf-unlearn evaluate``).

The run folder gives the data (checked against its recorded fingerprints) and the tokenizer; the
forgotten ids are resolved once, against the run's transcript. The unlearned folder's own
``report.json`` (when there is one) gives the method, its options and statistics.

Every folder read is verified first (a training run: ``verify_run`` on the files a load reads; any
other model folder, e.g. an ``unlearn`` output: ``artifacts.verify_folder``, all of it), the output
folder is checked before any work (never one of those; not empty -> ``overwrite``) and written
staged, renamed into place whole with its manifest (kind ``"evaluation"``).

The unlearned folder's private ``commitment_salt.json`` (when there is one) keys the new report's forget-set commitment, so
the commitment stays the one the unlearned model was published with (a new salt otherwise). The salt
is written, privately, beside the new ``report.json``.

A ``--twin`` saved by ``unlearn --retrain_twin`` (``OUT/twins/retrain_twin``, ``runs/twins.py``) is
used only for the forget set it was trained without (its salted commitment is checked against the
ids given); ``noise_twins`` K reuses the noise twins saved beside it for the same forget set and
retrains the others from the run's log.
"""

from __future__ import annotations

import json
from pathlib import Path

from .. import console
from ..artifacts import (
    COMMITMENT_SALT_FILE,
    MANIFEST_FILE,
    check_output_folder,
    new_salt,
    read_manifest,
    read_salt,
    staged_folder,
    verify_folder,
)
from ..data.canaries import canary_probe
from ..data.forget import ForgetRequest
from ..data.synthetic import CANARY_PREFIX
from ..evaluation.report import REPORT_FILE, build_report, split_for_evaluation, write_report
from . import twins as twin_store
from .run_folder import RUN_MANIFEST_KIND
from .unlearn import load_run, verify_run

OUTPUT_KIND = "evaluation"  # the manifest kind of an evaluate output folder


def verify_model_folder(folder: str | Path) -> None:
    """A model folder is read only once verified: a training run's model files against its manifest,
    any other folder (an ``unlearn`` output) whole; an ``IntegrityError`` names what is wrong."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"model folder not found: {folder}")
    if (folder / MANIFEST_FILE).is_file() and read_manifest(folder).get("kind") == RUN_MANIFEST_KIND:
        verify_run(folder)
    else:
        verify_folder(folder)


def evaluate_run(
    run_dir: str | Path,
    request: ForgetRequest,
    unlearned: str | Path,
    output_dir: str | Path,
    *,
    original: str | Path | None = None,
    twin: str | Path | None = None,
    method: str | None = None,
    retain_eval_max: int | None = 2000,
    overwrite: bool = False,
    noise_twins: int = 0,
) -> dict:
    """Evaluate original / unlearned / twin folders on the run's forget / retain / test splits; returns the report.
    ``noise_twins`` (K, with ``twin``): the retrain noise floor, from saved noise twins or retrained ones."""
    from ..models import load_classifier

    twin_store.check_noise_twins(noise_twins, twin is not None, flag="--twin")
    folders = {"original": original, "unlearned": unlearned, "retrain_twin": twin}
    read = [run_dir, *(v for v in folders.values() if v)]
    check_output_folder(output_dir, overwrite=overwrite, reads_from=read)
    for folder in read[1:]:
        verify_model_folder(folder)
    run = load_run(run_dir)
    forget_ids = request.resolve(run.trained_split())
    if twin is not None:
        check_saved_twin(Path(twin), run, forget_ids, noise_twins)
    with console.phase("loading the models"):
        labels, attn = run.model_args.num_labels, run.model_args.attn_implementation
        models = {
            k: load_classifier(v, num_labels=labels, attn_implementation=attn)[0].eval()
            for k, v in folders.items()
            if v
        }
    models["original"] = models.get("original", run.model)
    models = {k: models[k] for k in ("original", "unlearned", "retrain_twin") if k in models}
    previous = Path(unlearned) / REPORT_FILE
    old = json.loads(previous.read_text()) if previous.is_file() else {}
    salt_file = Path(unlearned) / COMMITMENT_SALT_FILE
    salt = read_salt(salt_file) if salt_file.is_file() else new_salt()
    splits = split_for_evaluation(run.tokenized["train"], run.tokenized["test"], forget_ids, retain_eval_max)
    twins, timings = None, dict(old.get("timings") or {})
    if twin is not None:
        saved_beside = [Path(twin).parent.parent] if Path(twin).parent.name == twin_store.TWINS_DIRNAME else []
        twins = twin_store.gather(
            run, forget_ids, noise_twins, candidates=saved_beside, given=models["retrain_twin"], timings=timings
        )
    with console.phase(f"evaluating {len(models)} models on the forget, retain and test splits"):
        report = _report(run, models, splits, forget_ids, method, dict(old, timings=timings), salt, twins)
    if twins is not None:
        report["twins"] = twins.section()
    if old.get("method_description") and (method is None or method == old.get("method")):
        report["method_description"] = old["method_description"]
    elif report["method"] != "unknown":
        report["method_description"] = _description(report["method"])
    with console.phase(f"writing report.json to {output_dir}"), staged_folder(output_dir, kind=OUTPUT_KIND) as out:
        write_report(report, out, salt=salt)
    return report


def check_saved_twin(folder: Path, run, forget_ids: list[str], noise_twins: int) -> None:
    """A twin saved by ``unlearn --retrain_twin`` must be the twin of this forget set and run; noise twins
    that are not saved beside it are retrained, which needs the run's log (both checked before any work)."""
    if read_manifest(folder).get("kind") == twin_store.TWIN_KIND:
        why = twin_store.why_not_reusable(folder, run, forget_ids)
        if why is not None:
            raise ValueError(f"--twin {folder}: {why}; give the twin of this forget set (or retrain it)")
    if noise_twins and run.log is None:
        raise ValueError("--noise_twins retrains from the run's unlearning log, and this run has none")


def _report(
    run, models: dict, splits: dict, forget_ids: list[str], method: str | None, old: dict, salt: bytes, twins=None
) -> dict:
    return build_report(
        models=models,
        tokenizer=run.tokenizer,
        splits=splits,
        forget_ids=forget_ids,
        method=method or old.get("method", "unknown"),
        method_args=old.get("method_args"),
        guarantee=old.get("guarantee", "approximate"),
        stats=old.get("stats"),
        base_model=run.base_model_name,
        dataset_source=run.data_args.dataset_name,
        train_fingerprint=run.meta.get("train_fingerprint"),
        canary_ids=[i for i in forget_ids if i.startswith(CANARY_PREFIX)] or None,
        canaries=canary_probe(run.data, run.data_args.canary_recipe(), run.data_args.max_length),
        log=run.log,
        seeds={"train": run.meta.get("seed")},
        timings=old.get("timings"),
        commitment_salt=salt,
        noise_twins=twins.noise if twins is not None else (),
        noise_seeds=twins.noise_seeds() if twins is not None else None,
    )


def _description(method: str) -> str | None:
    from ..methods import available_methods

    spec = available_methods().get(method)
    return spec.description if spec is not None else None
