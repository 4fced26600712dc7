"""Deletion requests as a stream (issue 16): ``unlearning_speed.py --sequential N``.

N disjoint requests of ``--request-frac`` of the training set each (default 0.2%) arrive one by one
on ONE trained run (momentum-free Adam, batch deltas logged). Each method serves them with three
strategies, and every final model is compared with the twin retrained without their union:

* ``one_request``        one request of the union, from the trained weights (the reference);
* ``sequential_union``   the ledger's rule: request k is served from the TRAINED weights on the union of
                         requests 1..k (what ``hf-unlearn unlearn`` does by default); its final model is
                         the union's, its cost the sum of the N calls;
* ``sequential_chain``   request k is served from the model that served request k-1, on request k's ids
                         only (retain = train minus the union so far), as a stream of independent
                         approximate unlearning calls would: the rule a user could choose for approximate
                         methods (``--sequential_strategy chain``). Not run for rollback: rolling back the
                         steps of request k from an output that already rolled back steps shared with an
                         earlier request subtracts their deltas twice.

Figures (one JSON line each): ``sequential/<method>/<strategy>/{tow, tow_mia, seconds, speedup_vs_retrain}``
(seconds: the methods' own work summed over the calls; speedup: the union twin's training time / that) and
``sequential/<method>/chain_minus_union_tow`` (the rule's margin: > 0 means chaining was better).
"""

from __future__ import annotations

import contextlib
import sys

SEQUENTIAL_METHODS = ("amnesiac", "amnesiac_repair", "neggrad_plus", "scrub", "finetune")
EXACT_LABELS = {"amnesiac", "amnesiac_repair"}  # rollback: served from the trained weights only


def request_sets(ids: list[str], n: int, frac: float, seed: int) -> list[list[str]]:
    """``n`` disjoint random requests of ``max(2, round(frac * len(ids)))`` ids each."""
    import numpy as np

    size = max(2, round(frac * len(ids)))
    picked = np.random.default_rng(seed + 777).choice(ids, n * size, replace=False).tolist()
    return [sorted(picked[k * size : (k + 1) * size]) for k in range(n)]


def _serve(model, s, a, union: list[str], ids: list[str], method: str, margs: dict, log):
    """One call of ``method`` forgetting ``ids`` from ``model``; retain = train minus ``union``."""
    from hf_unlearn.evaluation.report import split_for_evaluation
    from hf_unlearn.methods import unlearn

    splits = split_for_evaluation(s.train, s.test, union, retain_max=a.retain_eval, seed=a.seed)
    wanted = set(ids)
    forget = s.train.filter(lambda r: r["id"] in wanted)
    res = unlearn(model, forget, splits["retain_full"], method=method, log=log, tokenizer=s.tokenizer, **margs)
    return res.model, float(res.stats["wall_time_s"])


def run_strategies(label: str, method: str, margs: dict, model, s, a, requests, log) -> dict:
    """{strategy: (final model, seconds summed over its calls)} for one method."""
    union = sorted({i for r in requests for i in r})
    out = {"one_request": _serve(model, s, a, union, union, method, margs, log)}
    seconds, current = 0.0, model
    for k in range(len(requests)):
        so_far = sorted({i for r in requests[: k + 1] for i in r})
        current, sec = _serve(model, s, a, so_far, so_far, method, margs, log)
        seconds += sec
    out["sequential_union"] = (current, seconds)
    if label not in EXACT_LABELS:
        seconds, current = 0.0, model
        for k, ids in enumerate(requests):
            so_far = sorted({i for r in requests[: k + 1] for i in r})
            current, sec = _serve(current, s, a, so_far, ids, method, margs, None)
            seconds += sec
        out["sequential_chain"] = (current, seconds)
    return out


def run_sequential(s, a, tmp_root: str, cfg: dict, table, train_original, say, bench: str) -> None:
    """Train once (beta1 = 0) with ``train_original``, build the union's twin, run every method of ``table``
    with each strategy."""
    # long on purpose: the study's protocol and its figures, read top to bottom
    import tempfile

    from _common import emit

    from hf_unlearn.evaluation.predict import compare, evaluate_model
    from hf_unlearn.evaluation.report import split_for_evaluation
    from hf_unlearn.training import UnlearningLog
    from hf_unlearn.training.replay import retrain_twin

    run_dir = tempfile.mkdtemp(prefix="sequential-", dir=tmp_root)
    say(f"sequential: training the original ({len(s.train)} x {a.epochs:g} epochs, beta1 = 0)")
    model, _, _, _ = train_original(s, a, 0.0, run_dir)
    log = UnlearningLog(run_dir)
    requests = request_sets(list(s.train["id"]), a.sequential, a.request_frac, a.seed)
    union = sorted({i for r in requests for i in r})
    splits = split_for_evaluation(s.train, s.test, union, retain_max=a.retain_eval, seed=a.seed)
    scfg = dict(cfg, requests=a.sequential, ids_per_request=len(requests[0]), union=len(union))
    say(f"sequential: the twin without the union of {a.sequential} requests ({len(union)} ids)")
    with contextlib.redirect_stdout(sys.stderr):
        twin, trainer = retrain_twin(model, s.train, log, union, tokenizer=s.tokenizer, output_dir=run_dir + "-twin")
    twin_time = float(trainer.state.log_history[-1]["train_runtime"])
    emit(bench, "sequential/retrain_time", round(twin_time, 2), "s (the union's twin)", dict(scfg))
    twin_m = evaluate_model(twin, s.tokenizer, splits, seed=a.seed)
    for label, method, margs in table:
        if label not in SEQUENTIAL_METHODS:
            continue
        say(f"sequential: {label}")
        tows = {}
        for strategy, (final, seconds) in run_strategies(label, method, margs, model, s, a, requests, log).items():
            c = compare(evaluate_model(final, s.tokenizer, splits, seed=a.seed), twin_m)
            tows[strategy] = c["tow"]
            fcfg = dict(scfg, method=method, args=margs, call_seconds=round(seconds, 3))
            emit(bench, f"sequential/{label}/{strategy}/tow", round(c["tow"], 4), "ToW vs the union's twin", fcfg)
            emit(bench, f"sequential/{label}/{strategy}/tow_mia", round(c["tow_mia"], 4), "ToW-MIA vs twin", fcfg)
            emit(bench, f"sequential/{label}/{strategy}/seconds", round(seconds, 3), "s (methods' own work)", fcfg)
            speedup = twin_time / seconds if seconds > 0 else None
            emit(
                bench,
                f"sequential/{label}/{strategy}/speedup_vs_retrain",
                None if speedup is None else round(speedup, 2),
                "x (union twin time / summed method time)",
                fcfg,
            )
        if "sequential_chain" in tows:
            margin = tows["sequential_chain"] - tows["sequential_union"]
            emit(
                bench,
                f"sequential/{label}/chain_minus_union_tow",
                round(margin, 4),
                "ToW points (> 0: chaining from the last output beat re-serving the union)",
                dict(scfg, method=method),
            )
