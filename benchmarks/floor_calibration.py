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
import math
import sys

from floor_cache import plain

from hf_unlearn.runs.calibration_progress import SearchProgress

CHOICE_KEYS = ("method", "options", "tow_mean", "tow_mia_mean", "cost_fraction")
# what a kept calibration written before it listed its methods had searched: the space before per_sample_replay
SEARCHED_BEFORE_LISTED = (
    "amnesiac", "finetune", "l1_sparse", "neggrad", "neggrad_plus", "propagated_replay", "random_label", "salun",
    "scrub", "single_gradient", "ssd",
)  # fmt: skip
# the search space of calibrations kept before they recorded theirs (``spaces``): the space until 2026-12-02,
# when single_gradient gained ``precondition``
SPACE_BEFORE_RECORDED = {
    "neggrad_plus": {"steps": [0.25, 0.5], "lr_factor": [1.0, 3.0], "alpha": [0.99, 0.95]},
    "scrub": {"steps": [0.25, 0.5], "lr_factor": [1.0, 3.0]},
    "finetune": {"steps": [0.5, 1.0], "lr_factor": [1.0, 3.0]},
    "neggrad": {"steps": [0.1, 0.25], "lr_factor": [1.0, 3.0]},
    "random_label": {"steps": [0.5, 1.0], "lr_factor": [1.0, 3.0]},
    "salun": {"steps": [0.5, 1.0], "lr_factor": [1.0, 3.0]},
    "l1_sparse": {"steps": [0.5, 1.0], "alpha": [1e-4, 1e-3]},
    "single_gradient": {"scale": [0.5, 1.0, 2.0, 4.0]},
    "amnesiac": {"repair": [0.0, 0.5]},
    "ssd": {"alpha": [3.0, 10.0, 30.0]},
    "propagated_replay": {"exact_every": [10, 20, 50]},
    "per_sample_replay": {"correction_scale": [1.0]},
}
RESULT_KEYS = ("method", "options", "tow_mean", "tow_mia_mean", "tow_sd", "cost_fraction", "over_budget", "error")
PROGRESS = "calibration_progress"  # the kept part of a search in progress (KeptSearch)


def quick_space(methods: list[str]) -> dict:
    """--quick: the first value of every dimension of each method's search space (one setting each)."""
    from hf_unlearn.runs.calibrate import search_space

    return {m: {k: v[:1] for k, v in search_space(m).items()} for m in methods}


def study_space(methods: list[str], quick: bool) -> dict:
    """Each method's search space as the study searches it now (JSON form: lists)."""
    from hf_unlearn.runs.calibrate import search_space

    full = {m: search_space(m) for m in methods}
    return plain({m: {k: v[:1] for k, v in dims.items()} for m, dims in full.items()} if quick else full)


def kept_space(kept: dict, method: str, quick: bool) -> dict | None:
    """The space a kept calibration searched for ``method``: recorded, else the space before it was recorded."""
    if "spaces" in kept:
        return kept["spaces"].get(method)
    dims = SPACE_BEFORE_RECORDED.get(method)
    return None if dims is None else {k: v[:1] for k, v in dims.items()} if quick else dims


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
        "cost_retrains": kept.retrains(),
        "retrain_s_mean": retrain_s,
        "candidates": len(results),
        "errors": sorted({f"{r['method']}: {r['error']}" for r in results if "error" in r}),
        "disjoint_from_eval": True,
        "draw_digest": draw_digest(drawn),
        "results": [{k: r[k] for k in RESULT_KEYS if k in r} for r in results],  # a later rule can choose again
        "spaces": study_space(list(methods), a.quick),  # a method whose space changes later is searched again
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


def space_size(dims: dict | None) -> int:
    """How many settings a method's search space holds (0 for none)."""
    return math.prod(len(v) for v in dims.values()) if dims else 0


def top_up(kept: dict, new: dict, replaced: tuple = ()) -> dict:
    """``kept`` merged with ``new`` (a search of the methods ``kept`` lacked, or ``replaced``: those whose space
    changed, searched again whole, on the same pseudo-requests): the better choice, every method's own best,
    the candidates, errors and costs summed (each cost in its own search's retrain unit), and what each top-up
    itself searched and cost (``topped_up``, a list, oldest first). A replaced method's kept figures and choice
    are dropped for the new ones: its space grew (single_gradient's ``precondition``) and still holds the old
    settings, so its new best is at least its old best, and a kept overall choice of it stays the overall best."""
    if kept.get("draw_digest") not in (None, new["draw_digest"]):
        raise SystemExit("floor: a kept calibration was drawn on other pseudo-requests; remove it to calibrate again")
    searched = list(kept.get("methods", SEARCHED_BEFORE_LISTED))
    choice = kept["choice"] if (kept["choice"] or {}).get("method") not in replaced else None
    kept_spaces = kept.get("spaces") or {m: kept_space(kept, m, False) for m in searched}
    return {
        "choice": better_choice(choice, new["choice"]),
        "methods": searched + [m for m in new["methods"] if m not in searched],
        "per_method": {**{m: o for m, o in kept["per_method"].items() if m not in replaced}, **new["per_method"]},
        "cost_retrains": kept["cost_retrains"] + new["cost_retrains"],
        "retrain_s_mean": kept["retrain_s_mean"],
        "candidates": kept["candidates"] - sum(space_size(kept_spaces.get(m)) for m in replaced) + new["candidates"],
        "errors": sorted({*kept["errors"], *new["errors"]}),
        "disjoint_from_eval": kept["disjoint_from_eval"] and new["disjoint_from_eval"],
        "draw_digest": new["draw_digest"],
        "results": [r for r in kept.get("results", []) if r["method"] not in replaced] + new["results"],
        "spaces": {**kept_spaces, **new.get("spaces", {})},
        "topped_up": [
            *earlier_top_ups(kept),
            {k: new[k] for k in ("methods", "cost_retrains", "retrain_s_mean", "candidates")},
        ],
    }


def earlier_top_ups(kept: dict) -> list[dict]:
    """The top-ups a kept calibration already had, oldest first (kept before 2026-12-02 16:30 UTC as one dict:
    the latest only)."""
    earlier = kept.get("topped_up")
    return [] if earlier is None else [earlier] if isinstance(earlier, dict) else list(earlier)


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
        now = study_space(methods, getattr(a, "quick", False))
        changed = [m for m in methods if m in searched and kept_space(kept, m, getattr(a, "quick", False)) != now[m]]
        if not missing and not changed:
            return kept
        why = [f"did not search {', '.join(missing)}"] if missing else []
        why += [f"searched {', '.join(changed)} in another space"] if changed else []
        say(f"{fname}: the kept calibration {' and '.join(why)}; searching them now")
        new = calibrate_other_sets(run, eval_ids, count, a, seed, say, missing + changed, cache, fname)
        calib = top_up(kept, new, tuple(changed))
    calib = plain(calib)
    cache.write(fname, "calibration", calib)
    cache.remove(fname, PROGRESS)  # the search ended: its result is kept whole above
    return calib
