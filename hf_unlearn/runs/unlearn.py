"""Unlearning a training run: the engine behind ``hf-unlearn unlearn`` and the demo.

``load_run`` opens a run folder and checks, before anything runs, that the data rebuilt from the
run file is the data the run was trained on (the fingerprints recorded in the log and the run
file) and that the model is the one the log recorded (its weights fingerprint, once).
``unlearn_run`` then resolves the deletion request once, against the log's transcript (the ids
the run really trained on), unlearns with a registered method, optionally builds the retrain
twin (and K noise twins: the retrain noise floor), and writes the unlearned model, ``report.json``,
plots and the twins (``OUT/twins/``, ``runs/twins.py``; reused by a later request on the same forget
set) to the output folder.

Folders: the output folder is checked before any work (not empty -> ``overwrite``; never the run
folder or inside it), assembled in a temporary sibling and renamed into place whole with its
``manifest.json`` (kind ``"unlearned"``), so a kill leaves the previous output or none, never a mix.
The run's files are never changed; they are verified (``runs.run_folder.verify_run_files``: every
file the load reads) before use. What ``unlearn`` writes into the run folder is private live state
no manifest lists: the request ledger (``requests.sqlite``, ``runs/stream.py``), the folder's lock
(held for the whole request: requests on one run are served one at a time) and the run's salt of
the ledger's commitments (``commitment_salt.json``).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

from .. import console
from ..artifacts import (
    BASE_MODEL_DIRNAME,
    BASE_MODEL_FILE,
    LOG_DIRNAME,
    MANIFEST_FILE,
    REQUEST_LEDGER_FILE,
    RUN_FILE,
    check_output_folder,
    folder_lock,
    load_or_create_salt,
    new_salt,
    read_manifest,
    staged_folder,
)
from ..cards.privacy import CONFIG_FILES, TOKENIZER_FILES
from ..data import exclude_train_ids, fingerprint_dataset
from ..data.forget import ForgetRequest
from ..evaluation.report import split_for_evaluation, write_report
from ..methods import get_method, unlearn
from ..methods.registry import method_config
from ..training.unlearning_log import UnlearningLog
from . import stream
from . import twins as twin_store
from .calibrate import AUTO, auto_method, chosen_by
from .config import DataArguments, ModelArguments, read_run_file
from .run_folder import verify_run_files
from .run_report import run_report

OUTPUT_KIND = "unlearned"  # the manifest kind of an unlearn output folder (``push`` publishes these)
MODEL_SUFFIXES = (".safetensors", ".bin", ".index.json")


class DatasetChangedError(ValueError):
    """The data rebuilt from a run file is not the data the run was trained on."""


@dataclass
class TrainedRun:
    """A training run folder, opened and checked: model, tokenizer, data (raw and tokenized), log."""

    run_dir: Path
    model: object
    tokenizer: object
    data: object
    tokenized: object
    log: UnlearningLog | None
    data_args: DataArguments
    model_args: ModelArguments
    extra: dict = field(default_factory=dict)
    base: object = None  # a LoRA run: its ``BaseModelRecord`` (``base_model.json``); None for a full model

    @property
    def base_model_name(self) -> str:
        """The base's name for reports: a LoRA base's Hub id (or name / path), else the run's model name."""
        if self.base is not None:
            return self.base.hub_id or self.base.name_or_path
        return self.model_args.model_name_or_path

    @property
    def meta(self) -> dict:
        return self.log.meta if self.log is not None else {}

    def trained_split(self):
        """The raw training split restricted to the ids of the log's transcript (all of it without a log)."""
        train = self.data["train"]
        if self.log is None:
            return train
        trained = self.log.train_ids()
        if len(trained) == len(train):
            return train
        return train.select([k for k, i in enumerate(train["id"]) if i in trained])


def load_run(run_dir: str | Path) -> TrainedRun:
    """Open ``run_dir``; raises ``DatasetChangedError`` if a split is not the one the run was trained on."""
    from transformers import AutoTokenizer

    from ..models import BaseModelRecord, load_classifier, tokenize_dataset

    console.ensure_configured()
    run_dir = Path(run_dir)
    with console.phase(f"loading the run {run_dir}") as step:
        verify_run(run_dir)
        data_args, model_args, extra = read_run_file(run_dir)
        log = UnlearningLog(run_dir) if (run_dir / LOG_DIRNAME).is_dir() else None
        data = trained_data(data_args.load(), log)
        check_fingerprints(data, data_args, log, extra.get("fingerprints") or {})
        tokenizer = AutoTokenizer.from_pretrained(run_dir, trust_remote_code=False)
        model, is_lora = load_classifier(
            run_dir, num_labels=model_args.num_labels, attn_implementation=model_args.attn_implementation
        )
        model.eval()
        tokenized = tokenize_dataset(data, tokenizer, data_args.max_length)
        step.summary = f"{len(data['train'])} training examples" + (", unlearning log found" if log else "")
    base = BaseModelRecord.read(run_dir) if is_lora else None
    return TrainedRun(run_dir, model, tokenizer, data, tokenized, log, data_args, model_args, extra, base)


def model_files(folder: str | Path, listed=()) -> list[str]:
    """The files a model + tokenizer load reads from ``folder`` (and the run file): those present and those
    ``listed`` in its manifest, so a missing one and an added one are both noticed. A LoRA folder's load
    also reads ``base_model.json`` and every file of ``base_model/`` (the frozen base saved beside it)."""
    folder = Path(folder)
    names = {*CONFIG_FILES, *TOKENIZER_FILES, RUN_FILE, BASE_MODEL_FILE}
    present = {p.name for p in folder.iterdir() if p.is_file()}
    top = present | {rel for rel in listed if "/" not in rel}
    base_dir = folder / BASE_MODEL_DIRNAME
    base = {f"{BASE_MODEL_DIRNAME}/{p.name}" for p in base_dir.iterdir()} if base_dir.is_dir() else set()
    base |= {rel for rel in listed if rel.startswith(f"{BASE_MODEL_DIRNAME}/")}
    return sorted(n for n in top if n in names or n.endswith(MODEL_SUFFIXES)) + sorted(base)


def verify_run(run_dir: str | Path) -> dict:
    """Verify, before any use, every file :func:`load_run` reads from ``run_dir`` against its manifest
    (an ``IntegrityError`` names a missing, damaged or added file, or the missing manifest). Returns it."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise FileNotFoundError(f"run folder not found: {run_dir}")
    listed = read_manifest(run_dir)["files"] if (run_dir / MANIFEST_FILE).is_file() else {}
    return verify_run_files(run_dir, model_files(run_dir, listed))


def trained_data(data, log: UnlearningLog | None):
    """``data`` as the run trained on it. A run that excluded forgotten ids (``--exclude_ledger``,
    ``--exclude_ids_files``: its log's meta records them) trained on the rebuilt train split minus
    them: it is restricted to the ids of the log's recorded order (every row trained on; the row order
    kept), which :func:`check_fingerprints` then confirms. The excluded rows never reach a method,
    the retain split or the twin."""
    if log is None or not (log.meta.get("excluded_ledgers") or log.meta.get("excluded_ids")):
        return data
    trained = {i for batches in log.recorded_order().values() for batch in batches for i in batch}
    return exclude_train_ids(data, set(data["train"]["id"]) - trained)[0]


def check_fingerprints(data, data_args: DataArguments, log: UnlearningLog | None, recorded: dict) -> None:
    """Each split must hash (ids and labels in row order) to the fingerprint recorded at training time."""
    expected = dict(recorded)
    if log is not None and log.meta.get("train_fingerprint"):
        expected["train"] = log.meta["train_fingerprint"]  # the log's record is the one training wrote
    for split, fingerprint in sorted(expected.items(), key=lambda kv: kv[0] != "train"):  # train first
        if split in data and fingerprint and fingerprint_dataset(data[split]) != fingerprint:
            raise DatasetChangedError(
                f"the {split} split of {data_args.dataset_name!r} is not the one this run was trained on "
                f"(its ids, labels or their order changed: fingerprint {fingerprint[:12]}... recorded, "
                f"{fingerprint_dataset(data[split])[:12]}... now). Restore the data the run was trained on "
                f"(the run file's dataset_name, max_*_samples and dataset_seed) or train the run again."
            )


def unlearn_run(  # long on purpose: the one entry of every request, its checks before work and its ledger
    run_dir: str | Path,
    request: ForgetRequest,
    method: str,
    output_dir: str | Path,
    *,
    method_args: dict | None = None,
    with_twin: bool = True,
    retain_eval_max: int | None = 2000,
    run: TrainedRun | None = None,
    twin=None,
    compare_vanilla: bool = False,
    overwrite: bool = False,
    request_id: str | None = None,
    strategy: str | None = None,
    noise_twins: int = 0,
) -> dict:
    """Serve the deletion request ``request`` on the run in ``run_dir`` with ``method``; returns the report.

    Every request goes through the run's request ledger (``runs/stream.py``), under the run folder's
    lock: ``request_id`` (None: a fresh ``req-...``) is recorded before any work, and the output
    honours the union of every request recorded so far: ``strategy`` ``"union"`` (default: from the
    trained weights) or ``"chain"`` (approximate methods: from the last served output). A request id
    already served returns ``{"already_served": True, "request": ...}``, writing nothing. ``method="auto"``:
    the calibrated choice (``runs/calibrate.py``). ``method_args``: the method's options. ``run`` (:func:`load_run`)
    and ``twin`` (a twin built for the same forget set) share work between methods. ``method="rum"``: the report's
    ``rum`` section and ``plots/rum_*.png``; ``compare_vanilla`` compares the top group's method per group.
    ``output_dir`` must be empty or absent unless ``overwrite``, and apart from ``run_dir`` (checked first).
    ``noise_twins`` (K, with the twin): the noise floor. The twins are saved in ``output_dir/twins/`` and
    reused by a later request on the same forget set (``runs/twins.py``).
    """
    console.ensure_configured()
    method, method_args, auto = auto_method(run_dir, method_args) if method == AUTO else (method, method_args, None)
    spec = get_method(method)  # unknown method or option: an error before any work
    options = typed_options(spec, method_args or {})
    strategy = stream.check_strategy(spec, strategy)
    fresh, request_id = request_id is None, request_id or stream.new_request_id()
    if stream.served_row(run_dir, request_id) is None:  # a replay writes nothing: its output stays as it is
        check_output_folder(output_dir, overwrite=overwrite, reads_from=[run_dir], flag="--overwrite")
    twin_store.check_noise_twins(noise_twins, with_twin)
    run = run or load_run(run_dir)
    if with_twin and (twin is None or noise_twins) and run.log is None:
        raise ValueError("the retrain twin needs the run's unlearning log (train with `hf-unlearn train`)")
    trained = run.trained_split()
    ids = request.resolve(trained)  # the one validation: nothing written on failure
    with folder_lock(run_dir):  # from here on, one request at a time on the run (the replay check again)
        ledger, previous = stream.open_request(Path(run_dir), run.meta.get("train_fingerprint"), request_id, ids)
        with ledger:
            if previous is not None and previous["status"] == "served":
                return stream.already_served(previous)
            plan = stream.plan_request(
                ledger, previous, request_id, ids, set(trained["id"]), spec, options, strategy, run_dir
            )
            if fresh:
                console.say(f"request id: {request_id} (recorded in {Path(run_dir) / REQUEST_LEDGER_FILE})")
            try:
                report = serve(
                    run,
                    plan,
                    spec,
                    options,
                    output_dir,
                    with_twin,
                    twin,
                    retain_eval_max,
                    compare_vanilla,
                    noise_twins,
                    auto,
                )
            except Exception as exc:
                stream.mark_failed(plan, exc)
                raise
            stream.mark_served(plan, output_dir)
    return report


def serve(
    run, plan, spec, options, output_dir, with_twin, twin, retain_eval_max, compare_vanilla, noise_k=0, auto=None
):
    """Unlearn the plan's forget set, build the twins (without the union), evaluate and write the output.
    ``auto``: the calibration record ``--method auto`` chose from (the report says how the choice was made)."""
    method, forget_ids = spec.name, list(plan.forget_ids)
    splits = split_for_evaluation(run.tokenized["train"], run.tokenized["test"], forget_ids, retain_eval_max)
    inputs = rum_inputs(run, method, options)
    timings = {}
    result, timings["unlearn_s"] = run_method(run, splits, method, {**inputs, **options}, plan=plan)
    models = {"original": run.model, "unlearned": result.model}
    twins = None
    if with_twin or twin is not None:
        candidates = twin_store.candidates(plan, output_dir) if with_twin else ()
        twins = twin_store.gather(
            run, forget_ids, noise_k if with_twin else 0, candidates=candidates, given=twin, timings=timings
        )
        models["retrain_twin"] = twin = twins.twin
    recorded = {**options, **({"holdout": "test split"} if "holdout" in inputs else {})}
    if "learning_rate" in result.stats:  # the value used, also when derived from the run's learning rate
        recorded.setdefault("learning_rate", result.stats["learning_rate"])
    if auto is not None:
        recorded["chosen_by"] = chosen_by(auto, forget_ids, load_or_create_salt(run.run_dir))
    salt = new_salt()  # keys the report's forget-set commitment; kept privately in the OUTPUT folder only
    report = run_report(run, models, splits, forget_ids, spec, recorded, result.stats, timings, salt, twins)
    report["requests"] = plan.section(salt)
    if twins is not None:
        report["twins"] = {**twins.section(), "saved": [f"{twin_store.TWINS_DIRNAME}/{n}" for n in twins.models]}
    others = None
    if method == "rum" and result.stats.get("groups"):
        from .rum import rum_section_of

        report["rum"], others = rum_section_of(run, splits, models, result, spec, options, compare_vanilla, timings)
        report["timings"].update(timings)
    with console.phase(f"writing the unlearned model and report.json to {output_dir}"):
        save = (lambda out: twin_store.save_twins(out, twins, run, forget_ids, salt)) if twins is not None else None
        write_outputs(Path(output_dir), result.model, run.tokenizer, report, others, salt=salt, run=run, extra=save)
    report["_twin"] = twin  # for callers that reuse it; never serialised
    return report


def run_method(run: TrainedRun, splits: dict, method: str, kwargs: dict, *, plan=None):
    """(the method's result, seconds): ``method`` on the forget split, under one phase line. With a
    ``plan`` (``runs/stream.py``) the method starts where the plan's strategy says."""
    model, log, forget = stream.starting_point(run, splits, plan) if plan else (run.model, run.log, splits["forget"])
    with console.phase(f"unlearning {len(forget)} examples with {method}") as step:
        start = time.perf_counter()
        result = unlearn(
            model,
            forget,
            splits["retain_full"],
            method=method,
            log=log,
            tokenizer=run.tokenizer,
            **kwargs,
        )
        step.summary = steps_summary(result.stats)
    return result, time.perf_counter() - start


def typed_options(spec, options: dict) -> dict:
    """The given options converted by the method's config types (``"1e-4"`` -> ``0.0001``); unknown ones raise."""
    config = method_config(spec, dict(options))
    return {key: getattr(config, key) for key in options}


def rum_inputs(run: TrainedRun, method: str, options: dict) -> dict:
    """RUM's held-out data when its proxy needs one, and early stopping's reference: the run's test split,
    which the model never trained on."""
    if getattr(method_config(method, dict(options)), "early_stopping", False):
        return {"holdout": run.tokenized["test"]}
    if method != "rum":
        return {}
    from ..memorization.proxies import get_proxy

    config = method_config(method, dict(options))
    return {"holdout": run.tokenized["test"]} if get_proxy(config.proxy).needs == "holdout" else {}


def steps_summary(stats: dict) -> str:
    """``"40 optimizer steps"`` (and the steps replayed, when a method reports them) for a phase line."""
    parts = []
    for key, (one, many) in {
        "optimizer_steps": ("optimizer step", "optimizer steps"),
        "steps_replayed": ("step replayed", "steps replayed"),
    }.items():
        n = stats.get(key)
        if isinstance(n, int) and not isinstance(n, bool):
            parts.append(f"{n} {one if n == 1 else many}")
    return ", ".join(parts)


def write_outputs(
    dest: Path,
    model,
    tokenizer,
    report: dict,
    others=None,
    *,
    salt: bytes | None = None,
    run: TrainedRun | None = None,
    extra=None,
) -> None:
    """Assemble model, tokenizer, ``report.json`` and plots (and what ``extra(folder)`` writes: the twins)
    beside ``dest``; rename them into place whole."""
    with staged_folder(dest, kind=OUTPUT_KIND) as out:
        write_output_files(out, model, tokenizer, report, others, salt=salt, run=run)
        if extra is not None:
            extra(out)


def write_output_files(
    out: Path, model, tokenizer, report: dict, others=None, *, salt: bytes | None = None, run: TrainedRun | None = None
) -> None:
    """Every file of an unlearn output, written into ``out`` (a staged folder). The model of a LoRA ``run``
    is its adapter, ``base_model.json`` and (a base saved in the run folder) a copy of ``base_model/``."""
    twin_store.save_model(out, model, tokenizer, run)
    write_report(report, out, salt=salt)
    if "rum" in report:
        from ..evaluation.rum_report import plot_rum_groups

        plot_rum_groups(report["rum"], out, model="unlearned", others=others)
