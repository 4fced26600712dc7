"""A calibration in progress, kept so that a stopped ``hf-unlearn calibrate`` resumes where it stopped.

A calibration costs tens of retrains (``runs/calibrate.py``: the pseudo-request twins, then every candidate
setting on every pseudo-request). Stopped half-way (a crash, a pre-empted job, Ctrl-C) it would start over.
:class:`SearchProgress` keeps, as it goes, each pseudo-request's twin figures and retrain time (its twin model
is not kept: candidates are scored against the kept figures) and each candidate's result as it ends. A search
resumed from it does not retrain the twins and does not run a finished candidate again (the one it was running
is run again), and its choice is the one an unbroken search makes.

Costs are in retrains, and a retrain's time is that of the process measuring it: the same machine under another
load, or another machine, retrains at another speed. So each attempt has its own retrain unit. The first
measures it on the pseudo-request twins it retrains (their mean); a resumed attempt, which does not retrain
them, times a retrain again in its own process (:func:`time_a_retrain`: the first tenth of a twin's steps, at
least ``PACE_STEPS``, extrapolated to the run's steps). A candidate's cost is its time over its own attempt's
unit, and the calibration's cost in retrains adds up each attempt's time over its unit (``attempts``). Without
that, a search resumed on a quiet machine after twins timed under load once judged settings that cost 0.25 of
a retrain at 0.02, within a 0.05 budget.

:class:`RunProgress` keeps it in the run folder, ``RUN/calibration_progress.json`` (private: it never leaves
the run folder), written atomically after each step and removed once ``calibration.json`` is written. It
stands only for the same calibration: the same run (its training fingerprint), the same draw (the
pseudo-requests' salted commitments, never an id), methods, search space, budget and retain evaluation size.
A calibration started with other settings while one is in progress is refused in one line (``--restart``
discards the progress). What is read is verified first: its ``checksum`` (sha256 of the rest of its
content) must match, or the file is refused as damaged.
"""

from __future__ import annotations

import hashlib
import json
import math
import statistics
import time
from pathlib import Path

from ..artifacts import CALIBRATION_PROGRESS_FILE, IntegrityError, atomic_write_json
from .calibration_space import CalibrationError

REQUEST_KEYS = ("retrain_s", "twin_metrics", "do_nothing")  # a prepared pseudo-request, less its splits
PROGRESS_VERSION = 1
PACE_STEPS = 20  # the fewest steps a resumed attempt times to measure its retrain unit
KEY_WORDS = {  # what a calibration in progress stands for, as its refusal names it
    "progress_version": "progress format",
    "train_fingerprint": "training run",
    "draw": "pseudo-request draw (seed, size or number)",
    "methods": "method list",
    "space": "search space",
    "budget": "budget",
    "retain_eval_max": "retain evaluation size",
}


def candidate_key(method: str, options: dict) -> str:
    return json.dumps([method, options], sort_keys=True)


def plain(obj):
    """``obj`` as JSON reads it back (numpy and torch scalars as Python numbers): fresh and resumed alike."""
    return json.loads(json.dumps(obj, default=_number))


def _number(value):
    if hasattr(value, "item"):
        return value.item()
    raise TypeError(f"not JSON: {type(value).__name__}")


class SearchProgress:
    """``calibrate.search``'s progress: ``key`` (what it stands for) and what has been done under it.

    ``kept`` is a state this search may resume (the caller checked that it stands for ``key``), or None.
    Subclasses keep it: :meth:`write` is called with the whole state after each step. ``retrain_s`` is this
    attempt's retrain unit, known once :meth:`requests` returns.
    """

    def __init__(self, key: dict, kept: dict | None = None):
        self.state = kept if kept is not None else {**key, "seconds": 0.0, "requests": None, "results": []}
        self.state["attempts"] = [*earlier_attempts(self.state), {"seconds": 0.0, "retrain_s": None}]
        self.done = {candidate_key(r["method"], r["options"]): r for r in self.state["results"]}
        self.seconds_before = self.state["seconds"]
        self.start = time.perf_counter()
        self.retrain_s: float | None = None

    def requests(self, run, drawn: list[list], retain_eval_max: int) -> list[dict]:
        """The prepared pseudo-requests: their kept twin figures with the splits drawn again (this attempt's
        retrain unit timed again), or prepared now (the unit: their twins' mean retrain time)."""
        from ..evaluation.report import split_for_evaluation
        from . import calibrate as cal

        if self.state["requests"] is None:
            prepared = cal.prepare_requests(run, drawn, retain_eval_max)
            self.state["requests"] = [{k: r[k] for k in REQUEST_KEYS} for r in prepared]
            self._unit(statistics.fmean(r["retrain_s"] for r in prepared))
            return prepared
        train, test = run.tokenized["train"], run.tokenized["test"]
        kept = zip(drawn, self.state["requests"])
        prepared = [dict(r, splits=split_for_evaluation(train, test, ids, retain_eval_max)) for ids, r in kept]
        self._unit(time_a_retrain(run, drawn[0]))
        return prepared

    def _unit(self, retrain_s: float) -> None:
        self.retrain_s = self.state["attempts"][-1]["retrain_s"] = retrain_s
        self.save()

    def run_one(self, run, requests, method: str, options: dict, retrain_s: float, budget: float) -> dict:
        """The candidate's kept result, or ``calibrate.run_candidate``'s, kept before it is returned."""
        from . import calibrate as cal

        result = self.done.get(candidate_key(method, options))
        if result is None:
            result = plain(cal.run_candidate(run, requests, method, options, retrain_s, budget))
            self.state["results"].append(result)
            self.save()
        return result

    def seconds(self) -> float:
        """Seconds spent on this search, over every attempt."""
        return self.seconds_before + time.perf_counter() - self.start

    def retrains(self) -> float:
        """This search's cost in retrains, over every attempt (:func:`cost_in_retrains`)."""
        self._mark()
        return cost_in_retrains(self.state["attempts"])

    def _mark(self) -> None:
        """Bring the time so far, over every attempt and of this one, into the state."""
        self.state["seconds"] = self.seconds()
        self.state["attempts"][-1]["seconds"] = time.perf_counter() - self.start

    def save(self) -> None:
        self._mark()
        self.state = plain(self.state)
        self.write(self.state)

    def write(self, state: dict) -> None:
        """Keep ``state``; this class keeps nothing."""


def cost_in_retrains(attempts: list[dict]) -> float:
    """Each attempt's seconds over its own retrain unit, summed; an attempt stopped before it knew its unit is
    counted in the next known one (the last known, after the last)."""
    total, pending, unit = 0.0, 0.0, None
    for attempt in attempts:
        pending += attempt["seconds"]
        unit = attempt["retrain_s"] or unit
        if attempt["retrain_s"]:
            total, pending = total + pending / unit, 0.0
    return total + (pending / unit if pending and unit else 0.0)


def earlier_attempts(state: dict) -> list[dict]:
    """The attempts a kept state records; one kept before they were (all its seconds, its twins' mean unit)."""
    if "attempts" in state:
        return list(state["attempts"])
    if not state["seconds"]:
        return []
    kept = state["requests"]
    return [
        {"seconds": state["seconds"], "retrain_s": statistics.fmean(r["retrain_s"] for r in kept) if kept else None}
    ]


def time_a_retrain(run, forget_ids: list[str]) -> float:
    """A retrain's time in this process, in seconds: the twin's retrain without ``forget_ids``, timed over its
    first tenth of steps (at least ``PACE_STEPS``) and extrapolated to the run's steps, as
    ``t(first step) + (t(last) - t(first)) / (n - 1) * (N - 1)`` (the setup and first step counted once)."""
    from transformers import TrainerCallback

    from ..training.replay import replayed

    total = len(run.log.steps())
    steps = min(total, max(PACE_STEPS, math.ceil(total / 10)))
    marks: list[float] = []

    class StepTimes(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            marks.append(time.perf_counter())

    start = time.perf_counter()
    with replayed(
        run.model, run.tokenized["train"], run.log, forget_ids, tokenizer=run.tokenizer,
        desc="timing a retrain", callbacks=[StepTimes()], max_steps=steps,
    ):  # fmt: skip
        pass
    if len(marks) < 2:
        return time.perf_counter() - start
    return marks[0] - start + (marks[-1] - marks[0]) / (len(marks) - 1) * (total - 1)


class RunProgress(SearchProgress):
    """A calibration's progress kept in its run folder (see the module docstring)."""

    def __init__(self, run_dir: str | Path, key: dict, restart: bool = False):
        self.path = Path(run_dir) / CALIBRATION_PROGRESS_FILE
        key = {"progress_version": PROGRESS_VERSION, **plain(key)}
        kept = None if restart else read_progress(self.path)
        if kept is not None:
            differ = [KEY_WORDS.get(k, k) for k in key if kept.get(k) != key[k]]
            if differ:
                raise CalibrationError(
                    f"{self.path} holds a calibration in progress with another {', '.join(differ)}; calibrate "
                    "with the same settings to resume it, or pass --restart to discard it"
                )
        super().__init__(key, kept)

    def write(self, state: dict) -> None:
        atomic_write_json(self.path, {**state, "checksum": checksum(state)})

    def remove(self) -> None:
        self.path.unlink(missing_ok=True)


def checksum(state: dict) -> str:
    text = json.dumps({k: v for k, v in state.items() if k != "checksum"}, sort_keys=True)
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


def read_progress(path: Path) -> dict | None:
    """The kept progress at ``path``, verified (its checksum), or None when there is none."""
    if not path.is_file():
        return None
    try:
        state = json.loads(path.read_text())
        damaged = not isinstance(state, dict) or state.get("checksum") != checksum(state)
    except (ValueError, UnicodeDecodeError):
        damaged = True
    if damaged:
        raise IntegrityError(f"{path} is damaged (its checksum does not match); pass --restart to discard it")
    return state
