"""Calibration: choose a method and its settings for a run on pseudo-requests, never on a real request.

``hf-unlearn calibrate --run RUN --request_size 0.01 --budget 0.05`` answers "which method, with
which settings, forgets a request of this size best within this cost?" on the run itself:

1. draw ``pseudo_requests`` forget sets of ``request_size`` (a fraction of the training set, or a
   count) from the run's training examples, with ``seed``, disjoint from each other and from every
   id in the run's request ledger (``requests/ledger.py``: ids already forgotten are never drawn);
2. retrain each one's twin once (``runs.twins.build_twin``); the mean retrain time is the cost unit ("1 retrain");
3. run every candidate setting of every method (``calibration_space.SEARCH_SPACE``, or a method config's own)
   on every pseudo-request and score it against that request's twin (ToW, ToW-MIA: ``evaluation/predict.compare``);
   a candidate whose mean wall time exceeds ``budget`` x the mean retrain time is out, and stops unscored as
   soon as its time so far proves it;
4. choose the best mean ToW (4 decimals), then the best mean ToW-MIA, then the cheapest; write ``RUN/calibration.json``.

The search space and its dimensions are in ``runs/calibration_space.py``. ``calibration.json`` stores the concrete
options, so ``hf-unlearn unlearn --method auto`` runs that setting. A stopped calibration resumes at its next
candidate when started again with the same settings (``runs/calibration_progress.py``), which times a retrain
again in its own process: its candidates are judged, and its cost counted, in that unit.

Privacy: the pseudo-requests are named only by their count, their salted commitments and one keyed hash per id
(HMAC-SHA256 under the run's private ``commitment_salt.json``): never an id. The keyed hashes let ``unlearn --method
auto`` count how many ids of a real request were among the pseudo-requests. The rule: a real request is served
whatever it holds (a deletion request is never refused), and when it overlaps the pseudo-requests its report says
how many ids did, because its figures are then no independent check of the choice ("judge only on forget sets not
used to calibrate").
"""

from __future__ import annotations

import json
import math
import statistics
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from .. import __version__, console
from ..artifacts import (
    LOG_DIRNAME,
    IntegrityError,
    atomic_write_json,
    folder_lock,
    forget_set_commitment,
    load_or_create_salt,
)
from ..evaluation.predict import compare, evaluate_model
from ..evaluation.report import split_for_evaluation
from ..methods import get_method, unlearn
from ..requests.ledger import read_forgotten_ids
from .calibration_progress import RunProgress, SearchProgress
from .calibration_space import CalibrationError, Scope, calibratable, candidates, search_space

CALIBRATION_FILE = "calibration.json"
FORMAT_VERSION = 2  # 2: single_gradient's options name its precondition (its default became "auto")
# what an option a calibration of that format left out meant then: ``--method auto`` runs what was chosen
OPTIONS_LEFT_OUT = {1: {"single_gradient": {"precondition": "none"}}}
AUTO = "auto"
TOW_DECIMALS = 4


def request_count(request_size: float, n_available: int, pseudo_requests: int) -> int:
    """Ids per pseudo-request: a fraction in (0, 0.5] of the training set, or a whole count >= 1; the
    pseudo-requests together may take at most half of the examples that can be drawn."""
    if not math.isfinite(request_size) or request_size <= 0 or (0.5 < request_size < 1):
        raise CalibrationError(
            f"--request_size must be a fraction in (0, 0.5] of the training set or a whole count >= 1, "
            f"got {request_size:g}"
        )
    if request_size >= 1 and request_size != int(request_size):
        raise CalibrationError(f"--request_size {request_size:g}: a count must be a whole number")
    count = int(request_size) if request_size >= 1 else max(1, round(request_size * n_available))
    if count * pseudo_requests > n_available // 2:
        raise CalibrationError(
            f"--request_size {request_size:g} x --pseudo_requests {pseudo_requests} = {count * pseudo_requests} ids: "
            f"more than half of the {n_available} training examples that can be drawn; ask for fewer"
        )
    return count


def check_arguments(request_size: float, budget: float, pseudo_requests: int) -> None:
    """The one-line errors that need no run: budget, number of pseudo-requests, the size's range."""
    if not math.isfinite(budget) or budget <= 0:
        raise CalibrationError(f"--budget must be > 0 (a share of one retrain's time, e.g. 0.05), got {budget:g}")
    if pseudo_requests < 1:
        raise CalibrationError(f"--pseudo_requests must be >= 1, got {pseudo_requests}")
    request_count(request_size, 10**12, 1)  # the range alone; the run's size is checked once loaded


def draw_pseudo_requests(trained_ids: list[str], ledger_ids: set[str], count: int, k: int, seed: int) -> list[list]:
    """``k`` disjoint sets of ``count`` ids drawn with ``seed`` from ``trained_ids`` minus ``ledger_ids``."""
    pool = sorted(set(trained_ids) - set(ledger_ids))
    picked = np.random.default_rng(seed).choice(len(pool), count * k, replace=False)
    return [sorted(pool[int(i)] for i in picked[j * count : (j + 1) * count]) for j in range(k)]


def _score(model, tokenizer, splits) -> dict:
    return evaluate_model(model, tokenizer, {k: splits[k] for k in ("forget", "retain", "test")})


def _summary(scores: list[dict], times: list[float], retrain_s: float) -> dict:
    tows, mias = [s["tow"] for s in scores], [s["tow_mia"] for s in scores]
    return {
        "tow_mean": statistics.fmean(tows),
        "tow_mia_mean": statistics.fmean(mias),
        "tow_sd": statistics.stdev(tows) if len(tows) > 1 else 0.0,
        "cost_fraction": statistics.fmean(times) / retrain_s if times else 0.0,
    }


def run_candidate(run, requests: list[dict], method: str, options: dict, retrain_s: float, budget=None) -> dict:
    """One candidate on every pseudo-request: its mean figures, or the one-line error that stopped it. With
    ``budget``, once ``sum(times) / len(requests) / retrain_s > budget`` (later requests only add) it stops,
    unscored: ``over_budget``, that lower bound as ``cost_fraction`` (:func:`choose` could never pick it)."""
    scores, times = [], []
    holdout = run.tokenized["test"] if options.get("early_stopping") else None
    try:
        for req in requests:
            kw = {"holdout": holdout} if holdout is not None else {}
            result = unlearn(
                run.model, req["splits"]["forget"], req["splits"]["retain_full"], method=method, log=run.log,
                tokenizer=run.tokenizer, **kw, **options,
            )  # fmt: skip
            times.append(result.stats["wall_time_s"])
            bound = sum(times) / len(requests) / retrain_s
            if budget is not None and bound > budget:
                return {"method": method, "options": options, "over_budget": True, "cost_fraction": bound}
            scores.append(compare(_score(result.model, run.tokenizer, req["splits"]), req["twin_metrics"]))
    except IntegrityError:
        raise  # a damaged log or folder stops the calibration: it is never one candidate's failure
    except (ValueError, KeyError, FloatingPointError, RuntimeError) as exc:
        return {"method": method, "options": options, "error": f"{type(exc).__name__}: {_first_line(exc)}"}
    return {"method": method, "options": options, **_summary(scores, times, retrain_s)}


def _first_line(exc: Exception) -> str:
    return (str(exc).splitlines() or [""])[0][:300]


def choose(results: list[dict], budget: float) -> dict | None:
    """The best mean ToW (4 decimals), then ToW-MIA, then the cheapest, among candidates within ``budget``."""
    fit = [r for r in results if "error" not in r and "over_budget" not in r and r["cost_fraction"] <= budget]
    if not fit:
        return None
    return max(
        fit,
        key=lambda r: (
            round(r["tow_mean"], TOW_DECIMALS),
            round(r["tow_mia_mean"], TOW_DECIMALS),
            -r["cost_fraction"],
        ),
    )


def prepare_requests(run, drawn: list[list], retain_eval_max: int) -> list[dict]:
    """Each pseudo-request's splits, twin (timed) and the twin's and the original's figures."""
    from .twins import build_twin

    requests = []
    for ids in drawn:
        splits = split_for_evaluation(run.tokenized["train"], run.tokenized["test"], ids, retain_eval_max)
        twin, seconds = build_twin(run, ids)
        twin_metrics = _score(twin, run.tokenizer, splits)
        original = compare(_score(run.model, run.tokenizer, splits), twin_metrics)
        requests.append({"splits": splits, "retrain_s": seconds, "twin_metrics": twin_metrics, "do_nothing": original})
    return requests


def search(run, drawn, budget: float, methods, space=None, retain_eval_max=2000, progress=None):
    """Steps 2-3 on the pseudo-requests ``drawn``: (their prepared requests, every candidate's result, the
    mean retrain time). ``run`` needs ``model``, ``tokenizer``, ``log`` and ``tokenized`` (train, test).
    ``progress`` (a ``calibration_progress.SearchProgress``) keeps what is done and resumes from it."""
    progress = progress if progress is not None else SearchProgress({})
    count, kept = len(drawn[0]), progress.state["requests"] is not None
    twins = "their figures kept from the calibration in progress" if kept else "retraining"
    with console.phase(f"{len(drawn)} pseudo-request twins ({count} examples each): {twins}"):
        requests = progress.requests(run, drawn, retain_eval_max)
    retrain_s = progress.retrain_s  # this attempt's unit (``calibration_progress``: a resumed one times it again)
    scope = Scope(len(run.log.steps()), budget, run.log, math.ceil(count / 32))  # 32: SCRUB's default forget batch
    grid = candidates(methods, scope, space)
    results, resumed = [], f" (resuming: {len(progress.done)} done)" if progress.done else ""
    with console.phase(
        f"trying {len(grid)} settings of {len(methods)} methods on each pseudo-request{resumed}"
    ) as step:
        for method, options in console.progress(grid, desc="calibration"):
            results.append(progress.run_one(run, requests, method, options, retrain_s, budget))
        over = sum("over_budget" in r for r in results)
        step.summary = f"{sum('error' not in r for r in results) - over} ran, {over} stopped over the budget"
    return requests, results, retrain_s


def calibrate_run(
    run_dir: str | Path,
    request_size: float,
    budget: float = 0.05,
    *,
    methods: list[str] | None = None,
    pseudo_requests: int = 3,
    seed: int = 0,
    retain_eval_max: int = 2000,
    space: dict | None = None,
    overwrite: bool = False,
    restart: bool = False,
) -> dict:
    """Calibrate the run in ``run_dir`` (see the module docstring); returns what ``calibration.json`` holds.

    ``space`` (``{method: {dimension: values}}``) replaces a method's search space (tests, quick runs). An
    existing ``calibration.json`` is replaced only with ``overwrite``; a calibration in progress with the same
    settings is resumed (``runs/calibration_progress.py``), or discarded with ``restart``.
    """
    from .unlearn import load_run

    check_arguments(request_size, budget, pseudo_requests)
    if (Path(run_dir) / CALIBRATION_FILE).exists() and not overwrite:
        raise CalibrationError(f"{Path(run_dir) / CALIBRATION_FILE} exists; pass --overwrite to calibrate again")
    methods = list(methods or calibratable())
    for method in methods:
        get_method(method) if space and method in space else search_space(method)  # unknown: an error now
    run = load_run(run_dir)
    if run.log is None:
        raise CalibrationError(f"{run_dir}: calibration retrains twins from the run's unlearning log; it has none")
    ledger_ids, _ = read_forgotten_ids(run_dir)
    trained = list(run.trained_split()["id"])
    count = request_count(request_size, len(set(trained) - ledger_ids), pseudo_requests)
    drawn = draw_pseudo_requests(trained, ledger_ids, count, pseudo_requests, seed)
    key = {"train_fingerprint": run.meta.get("train_fingerprint"), "methods": methods, "space": space}
    key.update(draw=_commitments(run_dir, drawn), budget=budget, retain_eval_max=retain_eval_max)
    progress = RunProgress(run_dir, key, restart)
    requests, results, retrain_s = search(run, drawn, budget, methods, space, retain_eval_max, progress)
    best = choose(results, budget)
    if best is None:
        raise CalibrationError(
            f"no setting of {', '.join(methods)} ran within --budget {budget:g} of a retrain; raise --budget "
            "(with --restart: the progress kept is for this budget)"
        )
    record = _record(run, drawn, requests, results, best, request_size, budget, seed, retrain_s)
    record["cost_retrains"] = progress.retrains()
    write_calibration(run_dir, record, drawn)
    progress.remove()
    return record


def _commitments(run_dir: str | Path, drawn: list[list], salt: bytes | None = None) -> list[str]:
    """The pseudo-requests' salted commitments (the run's salt, read under its lock unless given)."""
    if salt is None:
        with folder_lock(run_dir):
            salt = load_or_create_salt(run_dir)
    return [forget_set_commitment(ids, salt) for ids in drawn]


def _record(run, drawn, requests, results, best, request_size, budget, seed, retrain_s) -> dict:
    nothing = _summary([r["do_nothing"] for r in requests], [], retrain_s)
    return {
        "format_version": FORMAT_VERSION,
        "hf_unlearn_version": __version__,
        "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "train_fingerprint": run.meta.get("train_fingerprint"),
        "request_size": request_size,
        "request_count": len(drawn[0]),
        "pseudo_requests": len(drawn),
        "seed": seed,
        "budget": budget,
        "retrain_s_mean": retrain_s,
        "do_nothing": {k: nothing[k] for k in ("tow_mean", "tow_mia_mean", "tow_sd")},
        "candidates": results,
        "choice": {k: best[k] for k in ("method", "options", "tow_mean", "tow_mia_mean", "tow_sd", "cost_fraction")},
        "beats_do_nothing": best["tow_mean"] > nothing["tow_mean"],
    }


def write_calibration(run_dir: str | Path, record: dict, drawn: list[list]) -> Path:
    """``RUN/calibration.json``, written atomically under the run folder's lock, with the pseudo-requests
    named by salted commitments and keyed per-id hashes (the run's private salt), never by their ids."""
    with folder_lock(run_dir):
        salt = load_or_create_salt(run_dir)
        record["pseudo_request_commitments"] = _commitments(run_dir, drawn, salt)
        record["pseudo_request_id_hashes"] = sorted(id_hash(i, salt) for ids in drawn for i in ids)
        return atomic_write_json(Path(run_dir) / CALIBRATION_FILE, record)


def id_hash(example_id: str, salt: bytes) -> str:
    """One id's keyed hash: the salted commitment of the one-id set (HMAC-SHA256 under the run's salt)."""
    return forget_set_commitment([example_id], salt)


def read_calibration(run_dir: str | Path, train_fingerprint: str | None = None) -> dict:
    """``RUN/calibration.json``; a one-line ``CalibrationError`` when absent, unreadable or another run's."""
    path = Path(run_dir) / CALIBRATION_FILE
    if not path.is_file():
        raise CalibrationError(
            f"--method auto needs {path}: run `hf-unlearn calibrate --run {run_dir} --request_size ...` first"
        )
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
        record["choice"]["method"], record["choice"]["options"]  # noqa: B018 (the fields auto needs)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise CalibrationError(
            f"{path} is damaged ({exc.__class__.__name__}): run `hf-unlearn calibrate` again"
        ) from None
    recorded = record.get("train_fingerprint")
    if train_fingerprint and recorded and recorded != train_fingerprint:
        raise CalibrationError(f"{path} was made for another training run: run `hf-unlearn calibrate` again")
    return record


def overlap_count(record: dict, forget_ids, salt: bytes) -> int:
    """How many of ``forget_ids`` were among the calibration's pseudo-requests (by their keyed hashes)."""
    hashes = set(record.get("pseudo_request_id_hashes") or ())
    return sum(id_hash(i, salt) in hashes for i in set(forget_ids))


def size_words(record: dict) -> str:
    size = record["request_size"]
    return f"{size * 100:g}% of the training set" if size < 1 else f"{int(size)} examples"


def chosen_by(record: dict, forget_ids=(), salt: bytes | None = None) -> str:
    """The card's line on how the method and its settings were chosen, and how many of ``forget_ids``
    (the request served) were among the pseudo-requests when there were any (``salt``: the run's)."""
    overlap = overlap_count(record, forget_ids, salt) if salt is not None else 0
    line = (
        f"calibration on {record['pseudo_requests']} pseudo-requests of {size_words(record)} "
        f"({record['request_count']} examples each) within {record['budget']:g} of a retrain's cost "
        f"(calibration cost {record.get('cost_retrains', float('nan')):.1f} retrains)"
    )
    if overlap:
        line += (
            f"; {overlap} of this request's examples were in those pseudo-requests, so these figures are "
            "not an independent check of the choice"
        )
    return line


def auto_method(run_dir: str | Path, method_args: dict | None) -> tuple[str, dict, dict]:
    """``--method auto``: (the calibrated method, its options, the calibration record), before any work."""
    if method_args:
        raise CalibrationError(
            f"--method auto runs the calibrated settings; drop {', '.join(sorted(method_args))} or name the method"
        )
    meta = Path(run_dir) / LOG_DIRNAME / "meta.json"  # verified later by load_run; read here to refuse early
    fingerprint = json.loads(meta.read_text(encoding="utf-8")).get("train_fingerprint") if meta.is_file() else None
    record = read_calibration(run_dir, fingerprint)
    method, options = record["choice"]["method"], chosen_options(record)
    console.say(f"--method auto: {method} {options} (chosen by {chosen_by(record)})")
    return method, options, record


def chosen_options(record: dict) -> dict:
    """The choice's options as the method reads them now: an option whose default changed since the record's
    format (:data:`OPTIONS_LEFT_OUT`) is given the value it had when the choice was made."""
    method, version = record["choice"]["method"], int(record.get("format_version", 1))
    then = {}
    for format_version, left_out in sorted(OPTIONS_LEFT_OUT.items(), reverse=True):
        if version <= format_version:
            then.update(left_out.get(method, {}))
    return {**then, **record["choice"]["options"]}
