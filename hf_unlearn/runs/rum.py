"""RUM's per-group report section for ``runs/unlearn.py`` (no ids), optionally with the vanilla run.

Zhao et al., "What makes unlearning hard and what to do about it" (NeurIPS 2024): the forget set
is split by memorization; the section reports every model's figures per group, and with
``compare_vanilla`` the highest group's method run on the whole forget set for comparison.
"""

from __future__ import annotations

import time

from .. import console
from ..data.synthetic import CANARY_PREFIX
from ..evaluation.rum_report import group_summary, rum_section
from ..methods import get_method, unlearn
from ..methods.registry import method_config
from ..methods.rum import vanilla


def rum_section_of(run, splits, models, result, spec, options: dict, compare_vanilla: bool, timings: dict):
    """(the report's ``rum`` section, the vanilla run's per-group figures or None); ``timings`` gains ``vanilla_s``."""
    models = dict(models)
    vanilla_name = None
    if compare_vanilla:
        v_method, v_args = vanilla(method_config(spec, options))
        with console.phase(f"unlearning the whole forget set with {v_method} (vanilla, for comparison)"):
            start = time.perf_counter()
            v = unlearn(
                run.model,
                splits["forget"],
                splits["retain_full"],
                method=v_method,
                log=run.log if get_method(v_method).needs_log else None,  # checked by the RUM call already
                tokenizer=run.tokenizer,
                **v_args,
            )
            timings["vanilla_s"] = time.perf_counter() - start
        vanilla_name = f"vanilla_{v_method}"
        models[vanilla_name] = v.model
    canaries = [i for i in splits["forget"]["id"] if i.startswith(CANARY_PREFIX)]
    with console.phase(f"evaluating {len(models)} models per memorization group"):
        section = rum_section(
            models,
            run.tokenizer,
            splits,
            result.stats["groups"],
            summary=group_summary(result.stats),
            canary_ids=canaries or None,
        )
    section = {"proxy": result.stats.get("proxy"), "proxy_source": result.stats.get("proxy_source"), **section}
    others = {vanilla_name: section["comparison"][vanilla_name]} if vanilla_name and section["comparison"] else None
    return section, others
