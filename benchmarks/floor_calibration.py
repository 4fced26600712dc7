"""The floor study's calibration on OTHER forget sets (``unlearning_speed.py --floor``), kept and topped up.

Per seed x forget set, ``runs/calibrate`` searches every calibratable method's grid on ``--pseudo-requests``
sets of the same size drawn outside both evaluation forget sets, and ``calibrate.choose`` picks the budget
best. With ``--work-dir`` the result is kept (``floor_cache``); when the search space later gains a method
(``per_sample_replay`` joined it), a kept calibration is *topped up*: only the methods it did not search
are searched, on the same pseudo-requests (the draw is seeded, and its digest is checked), and the two
results are merged by ``choose``'s own order (:func:`better_choice`). The study's figures then stand for the
whole search space without paying again for the part already searched. Every candidate's mean figures are
kept (``results``; calibrations kept before that hold only the choices).

A search in progress is kept too (:class:`KeptSearch`, ``<set>.calibration_progress.json``): the
pseudo-requests' twin figures and retrain times, and each candidate's result as it ends. On the tiny setting
at load 4 a 1% calibration takes hours; a study stopped in it resumes at the next candidate instead of from
the start (the candidate it was running is run again; the pseudo-request twins are not retrained). The
calibration's cost (``cost_retrains``) is the time of every attempt's finished parts.
"""

from __future__ import annotations

import contextlib
import hashlib
import sys

from floor_cache import plain

from hf_unlearn.runs.calibration_progress import SearchProgress

CHOICE_KEYS = ("method", "options", "tow_mean", "tow_mia_mean", "cost_fraction")
# what a kept calibration written before it listed its methods had searched: the space before per_sample_replay
SEARCHED_BEFORE_LISTED = (
    "amnesiac", "finetune", "l1_sparse", "neggrad", "neggrad_plus", "propagated_replay", "random_label", "salun",
    "scrub", "single_gradient", "ssd",
)  # fmt: skip
RESULT_KEYS = ("method", "options", "tow_mean", "tow_mia_mean", "tow_sd", "cost_fraction", "over_budget", "error")
PROGRESS = "calibration_progress"  # the kept part of a search in progress (KeptSearch)


def quick_space(methods: list[str]) -> dict:
    """--quick: the first value of every dimension of each method's search space (one setting each)."""
    from hf_unlearn.runs.calibrate import search_space

    return {m: {k: v[:1] for k, v in search_space(m).items()} for m in methods}


def study_methods(a) -> list[str]:
    """The calibratable methods the study runs (``--methods`` narrows them)."""
    from hf_unlearn.runs import calibrate as cal

    return [m for m in cal.calibratable() if a.floor_methods is None or m in a.floor_methods]


def draw_digest(drawn: list[list]) -> str:
    """sha256 over the pseudo-requests (ids sorted within each, in order): the same draw, checked on top-up."""
    return hashlib.sha256("\n".join(",".join(ids) for ids in drawn).encode()).hexdigest()


class KeptSearch(SearchProgress):
    """``calibrate.search``'s progress (``runs/calibration_progress.SearchProgress``), kept in ``cache`` (a
    ``floor_cache.SeedCache``, or None: nothing kept) and resumed from it when the same methods are searched
    on the same pseudo-requests."""

    def __init__(self, cache, fname: str, drawn: list[list], methods: list[str]):
        self.cache, self.fname = cache, fname
        key = {"draw_digest": draw_digest(drawn), "methods": list(methods)}
        kept = cache.read(fname, PROGRESS) if cache is not None else None
        super().__init__(key, kept if kept is not None and all(kept.get(k) == v for k, v in key.items()) else None)

    def write(self, state: dict) -> None:
        if self.cache is not None:
            self.cache.write(self.fname, PROGRESS, state)


def calibrate_other_sets(
    run, eval_ids: set[str], count: int, a, seed: int, say, methods, cache=None, fname=""
) -> dict:
    """Calibration of ``methods`` on ``--pseudo-requests`` sets of ``count`` ids drawn outside ``eval_ids``:
    the overall choice, each method's own best within the budget, and the cost in retrains; its progress
    kept in ``cache`` under ``fname`` as it goes (:class:`KeptSearch`)."""
    from hf_unlearn.runs import calibrate as cal

    drawn = cal.draw_pseudo_requests(list(run.tokenized["train"]["id"]), eval_ids, count, a.pseudo_requests, seed)
    used = {i for ids in drawn for i in ids}
    assert not used & eval_ids, "calibration drew an evaluation forget id"
    space = quick_space(methods) if a.quick else None
    kept = KeptSearch(cache, fname, drawn, methods)
    resumed = f"; resuming after {len(kept.done)} candidates" if kept.done else ""
    say(f"calibration: {a.pseudo_requests} pseudo-requests of {count} ids, {len(methods)} methods{resumed}")
    with contextlib.redirect_stdout(sys.stderr):
        _, results, retrain_s = cal.search(run, drawn, a.budget, methods, space, a.retain_eval, kept)
    best = cal.choose(results, a.budget)
    per_method = {m: cal.choose([r for r in results if r["method"] == m], a.budget) for m in methods}
    return {
        "choice": None if best is None else {k: best[k] for k in CHOICE_KEYS},
        "methods": list(methods),
        "per_method": {m: r["options"] for m, r in per_method.items() if r is not None},
        "cost_retrains": kept.seconds() / retrain_s,
        "retrain_s_mean": retrain_s,
        "candidates": len(results),
        "errors": sorted({f"{r['method']}: {r['error']}" for r in results if "error" in r}),
        "disjoint_from_eval": True,
        "draw_digest": draw_digest(drawn),
        "results": [{k: r[k] for k in RESULT_KEYS if k in r} for r in results],  # a later rule can choose again
    }


def better_choice(kept: dict | None, new: dict | None) -> dict | None:
    """The better of two choices by ``calibrate.choose``'s order: the higher mean ToW (4 decimals), then the
    higher mean ToW-MIA where both record it (choices kept before it was recorded do not), then the cheaper;
    ``kept`` on a tie."""
    from hf_unlearn.runs.calibrate import TOW_DECIMALS

    if kept is None or new is None:
        return kept if new is None else new
    with_mia = "tow_mia_mean" in kept and "tow_mia_mean" in new

    def key(c: dict) -> tuple:
        mia = (round(c["tow_mia_mean"], TOW_DECIMALS),) if with_mia else ()
        return (round(c["tow_mean"], TOW_DECIMALS), *mia, -c["cost_fraction"])

    return new if key(new) > key(kept) else kept


def top_up(kept: dict, new: dict) -> dict:
    """``kept`` merged with ``new`` (a search of the methods ``kept`` lacked, on the same pseudo-requests):
    the better choice, every method's own best, the candidates, errors and costs summed (each cost in its
    own search's retrain unit), and what the top-up itself searched and cost."""
    if kept.get("draw_digest") not in (None, new["draw_digest"]):
        raise SystemExit("floor: a kept calibration was drawn on other pseudo-requests; remove it to calibrate again")
    searched = list(kept.get("methods", SEARCHED_BEFORE_LISTED))
    return {
        "choice": better_choice(kept["choice"], new["choice"]),
        "methods": searched + [m for m in new["methods"] if m not in searched],
        "per_method": {**kept["per_method"], **new["per_method"]},
        "cost_retrains": kept["cost_retrains"] + new["cost_retrains"],
        "retrain_s_mean": kept["retrain_s_mean"],
        "candidates": kept["candidates"] + new["candidates"],
        "errors": sorted({*kept["errors"], *new["errors"]}),
        "disjoint_from_eval": kept["disjoint_from_eval"] and new["disjoint_from_eval"],
        "draw_digest": new["draw_digest"],
        "results": kept.get("results", []) + new["results"],
        "topped_up": {k: new[k] for k in ("methods", "cost_retrains", "retrain_s_mean", "candidates")},
    }


def calibration_for(run, fname: str, eval_ids: set[str], count: int, a, seed: int, say, cache) -> dict:
    """One seed x set's calibration: the kept one when it searched every method the study runs, the kept one
    topped up with the methods it did not search, or a new one; kept (``cache``) whole."""
    methods = study_methods(a)
    kept = cache.read(fname, "calibration")
    if kept is None:
        calib = calibrate_other_sets(run, eval_ids, count, a, seed, say, methods, cache, fname)
    else:
        searched = kept.get("methods", SEARCHED_BEFORE_LISTED)
        missing = [m for m in methods if m not in searched]
        if not missing:
            return kept
        say(f"{fname}: the kept calibration did not search {', '.join(missing)}; searching them now")
        calib = top_up(kept, calibrate_other_sets(run, eval_ids, count, a, seed, say, missing, cache, fname))
    calib = plain(calib)
    cache.write(fname, "calibration", calib)
    cache.remove(fname, PROGRESS)  # the search ended: its result is kept whole above
    return calib
