"""End-to-end unlearning of a training run: the engine behind ``hf-unlearn unlearn`` and the demo.

``unlearn_run`` validates the deletion request against the run's training split BEFORE
anything is written, unlearns with a registered method, optionally builds the retrain twin,
and writes the unlearned model, ``report.json`` and plots to the output folder.
"""

from __future__ import annotations

import time
from pathlib import Path

from transformers import AutoModelForSequenceClassification, AutoTokenizer

from .data.forget import ForgetRequest
from .data.synthetic import CANARY_PREFIX
from .evaluation.report import build_report, split_for_evaluation, write_report
from .methods import get_method, unlearn
from .models import tokenize_dataset
from .run_config import read_run_file
from .training.log_store import LOG_DIRNAME
from .training.unlearning_log import UnlearningLog


def load_run(run_dir: str | Path):
    """The trained model, tokenizer, tokenized data and log of a training run folder."""
    run_dir = Path(run_dir)
    data_args, model_args, extra = read_run_file(run_dir)
    tokenizer = AutoTokenizer.from_pretrained(run_dir, trust_remote_code=False)
    kwargs = {"attn_implementation": model_args.attn_implementation} if model_args.attn_implementation else {}
    model = AutoModelForSequenceClassification.from_pretrained(run_dir, trust_remote_code=False, **kwargs)
    model.eval()
    data = data_args.load()
    tokenized = tokenize_dataset(data, tokenizer, data_args.max_length)
    log = UnlearningLog(run_dir) if (run_dir / LOG_DIRNAME).is_dir() else None
    return {"model": model, "tokenizer": tokenizer, "data": data, "tokenized": tokenized, "log": log,
            "data_args": data_args, "model_args": model_args, "extra": extra}


def unlearn_run(
    run_dir: str | Path,
    request: ForgetRequest,
    method: str,
    output_dir: str | Path,
    *,
    method_args: dict | None = None,
    with_twin: bool = True,
    retain_eval_max: int | None = 2000,
    run=None,
    twin=None,
    compare_vanilla: bool = False,
) -> dict:
    """Forget ``request`` from the run in ``run_dir`` with ``method``; returns the report.

    ``run`` (from :func:`load_run`) and ``twin`` (an already built twin model for the same
    forget set) may be passed to share work between several methods. With ``method="rum"`` the
    report gains a ``rum`` section (per memorization group: counts, methods, figures of every
    model, ToW / ToW-MIA against the twin) and ``plots/rum_*.png``; ``compare_vanilla`` also runs
    the highest group's method on the whole forget set and compares it group by group.
    """
    from .evaluation.retrain import retrain_twin

    method_args = dict(method_args or {})
    spec = get_method(method)  # unknown method: error before any work
    run = run or load_run(run_dir)
    train = run["tokenized"]["train"]
    forget_ids = request.resolve(run["data"]["train"])  # validation: nothing written on failure
    splits = split_for_evaluation(train, run["tokenized"]["test"], forget_ids, retain_eval_max)
    timings = {}
    run_args = dict(method_args)
    if method == "rum" and _wants_holdout(method_args) and "holdout" not in method_args:
        run_args["holdout"] = run["tokenized"]["test"]  # held-out data the model never trained on
        method_args["holdout"] = "test split"  # what the report records (not the data set)
    start = time.perf_counter()
    result = unlearn(run["model"], splits["forget"], splits["retain_full"], method=method, log=run["log"],
                     tokenizer=run["tokenizer"], **run_args)
    timings["unlearn_s"] = time.perf_counter() - start
    models = {"original": run["model"], "unlearned": result.model}
    if with_twin and twin is None:
        if run["log"] is None:
            raise ValueError("the retrain twin needs the run's unlearning log")
        start = time.perf_counter()
        twin, _ = retrain_twin(run["model"], train, run["log"], forget_ids, tokenizer=run["tokenizer"])
        timings["retrain_s"] = time.perf_counter() - start
    if twin is not None:
        models["retrain_twin"] = twin
    canaries = [i for i in forget_ids if i.startswith(CANARY_PREFIX)]
    meta = run["log"].meta if run["log"] is not None else {}
    report = build_report(
        models=models, tokenizer=run["tokenizer"], splits=splits, forget_ids=forget_ids, method=method,
        method_args=method_args, guarantee=spec.guarantee, stats=result.stats, base_model=run["model_args"].model,
        dataset_source=run["data_args"].dataset, train_fingerprint=meta.get("train_fingerprint"),
        canary_ids=canaries or None, log=run["log"], seeds={"train": meta.get("seed")}, timings=timings,
        config={"data": vars(run["data_args"]), "model": vars(run["model_args"])},
    )
    vanilla_comparison = None
    if method == "rum" and result.stats.get("groups"):
        report["rum"], vanilla_comparison = _rum_section(run, splits, models, result, spec, run_args, canaries,
                                                         compare_vanilla, timings)
        report["timings"].update(timings)
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    result.model.save_pretrained(out)
    run["tokenizer"].save_pretrained(out)
    write_report(report, out)
    if "rum" in report:
        from .memorization.evaluation import plot_rum_groups

        plot_rum_groups(report["rum"], out, model="unlearned", others=vanilla_comparison)
    report["_twin"] = twin  # for callers that reuse it; never serialised
    return report


def _wants_holdout(method_args: dict) -> bool:
    from .memorization.proxies import get_proxy

    return get_proxy(method_args.get("proxy", "confidence")).needs == "holdout"


def _rum_section(run, splits, models, result, spec, run_args, canaries, compare_vanilla, timings):
    """RUM's per-group report section (no ids), optionally with the vanilla run of the same method."""
    from .memorization.evaluation import group_summary, rum_section
    from .methods.registry import make_config
    from .methods.rum import vanilla

    models = dict(models)
    vanilla_name = None
    if compare_vanilla:
        v_method, v_args = vanilla(make_config(spec, run_args))
        start = time.perf_counter()
        v = unlearn(run["model"], splits["forget"], splits["retain_full"], method=v_method, log=run["log"],
                    tokenizer=run["tokenizer"], **v_args)
        timings["vanilla_s"] = time.perf_counter() - start
        vanilla_name = f"vanilla_{v_method}"
        models[vanilla_name] = v.model
    section = rum_section(models, run["tokenizer"], splits, result.stats["groups"], summary=group_summary(result.stats),
                          canary_ids=canaries or None)
    section = {"proxy": result.stats.get("proxy"), "proxy_source": result.stats.get("proxy_source"), **section}
    others = {vanilla_name: section["comparison"][vanilla_name]} if vanilla_name and section["comparison"] else None
    return section, others
