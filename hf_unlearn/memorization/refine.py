"""Refinement: split a forget set into K groups of increasing memorization by a proxy.

RUM (Zhao et al., "What makes unlearning hard and what to do about it", NeurIPS 2024) first
refines the forget set into homogeneous subsets, low -> mid -> high memorization, so that each
can be unlearned with the method that suits it. Here the forget ids are ranked by a proxy,
ORIENTED so that higher means more memorized (confidence-like proxies are negated: high
confidence = low memorization), ties broken by id, and cut into K groups of equal size (sizes
differ by at most one, the lower groups taking the extra ids).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from .proxies import ProxyScores, get_proxy, given_scores

GROUP_NAMES = {1: ("all",), 2: ("low", "high"), 3: ("low", "mid", "high")}


def group_names(k: int) -> tuple[str, ...]:
    """Names of K groups from low to high memorization (``low, mid, high`` for K = 3)."""
    if k < 1:
        raise ValueError(f"the number of groups must be >= 1, got {k}")
    return GROUP_NAMES.get(k) or tuple(f"level{i}" for i in range(k))


@dataclass
class MemorizationGroup:
    """One group: its name, rank (0 = least memorized), ids and range of RAW proxy scores."""

    name: str
    level: int
    ids: list[str]
    score_min: float | None = None
    score_max: float | None = None

    def __len__(self) -> int:
        return len(self.ids)


@dataclass
class Refinement:
    """The forget set split by ``proxy`` into groups ordered from low to high memorization."""

    proxy: str
    higher_is_more_memorized: bool
    groups: list[MemorizationGroup] = field(default_factory=list)
    source: str = "given"

    @property
    def names(self) -> list[str]:
        return [g.name for g in self.groups]

    def __getitem__(self, name: str) -> MemorizationGroup:
        for g in self.groups:
            if g.name == name:
                return g
        raise KeyError(f"no group {name!r}; groups: {self.names}")

    def as_mapping(self) -> dict[str, list[str]]:
        """``{group name: ids}`` in order low -> high."""
        return {g.name: list(g.ids) for g in self.groups}

    def group_of(self) -> dict[str, str]:
        """``{id: group name}``."""
        return {i: g.name for g in self.groups for i in g.ids}

    def summary(self) -> dict:
        """Counts and score ranges per group (never the ids)."""
        return {
            "proxy": self.proxy,
            "higher_is_more_memorized": self.higher_is_more_memorized,
            "source": self.source,
            "groups": {
                g.name: {"level": g.level, "count": len(g), "score_min": g.score_min, "score_max": g.score_max}
                for g in self.groups
            },
        }


def refine(
    forget_ids: Iterable[str],
    scores: ProxyScores | pd.Series | Mapping[str, float],
    k: int = 3,
    *,
    proxy: str | None = None,
    higher_is_more_memorized: bool | None = None,
) -> Refinement:
    """Split ``forget_ids`` into ``k`` equal-size groups by memorization, ordered low -> high.

    ``scores`` holds RAW proxy values per id: a :class:`ProxyScores` (which knows its direction),
    or a Series / mapping together with ``proxy=`` (a proxy name, giving the direction) or an
    explicit ``higher_is_more_memorized=``. Every forget id needs a finite score.
    """
    if not isinstance(scores, ProxyScores):
        if proxy is None and higher_is_more_memorized is None:
            raise ValueError(
                "refine: raw scores need proxy= (a proxy name) or higher_is_more_memorized= to know their direction"
            )
        if proxy is not None:
            scores = given_scores(proxy, scores)
        else:
            series = scores if isinstance(scores, pd.Series) else pd.Series(dict(scores), dtype=np.float64)
            return _split(
                list(forget_ids), series.astype(np.float64), k, "custom", bool(higher_is_more_memorized), "given"
            )
    if higher_is_more_memorized is not None and higher_is_more_memorized != scores.proxy.higher_is_more_memorized:
        raise ValueError(
            f"proxy {scores.proxy.name!r} has higher_is_more_memorized={scores.proxy.higher_is_more_memorized}"
        )
    return _split(
        list(forget_ids), scores.scores, k, scores.proxy.name, scores.proxy.higher_is_more_memorized, scores.source
    )


def _split(ids: list[str], raw: pd.Series, k: int, proxy: str, higher_more: bool, source: str) -> Refinement:
    names = group_names(k)
    ids = sorted(set(ids))
    if not ids:
        raise ValueError("refine: the forget set is empty")
    missing = [i for i in ids if i not in raw.index]
    if missing:
        raise KeyError(
            f"{len(missing)} forget id(s) have no {proxy} score, e.g. {missing[:5]} "
            "(were they part of the recorded training run?)"
        )
    values = raw.loc[ids].to_numpy(dtype=np.float64)
    if not np.isfinite(values).all():
        bad = [i for i, v in zip(ids, values) if not np.isfinite(v)]
        raise ValueError(f"{len(bad)} forget id(s) have a non-finite {proxy} score, e.g. {bad[:5]}")
    oriented = values if higher_more else -values
    order = sorted(range(len(ids)), key=lambda j: (oriented[j], ids[j]))  # least memorized first
    groups = []
    for level, (name, chunk) in enumerate(zip(names, np.array_split(np.asarray(order, dtype=np.int64), k))):
        chunk_ids = [ids[j] for j in chunk]
        vals = values[chunk] if len(chunk) else np.array([])
        groups.append(
            MemorizationGroup(
                name,
                level,
                chunk_ids,
                float(vals.min()) if vals.size else None,
                float(vals.max()) if vals.size else None,
            )
        )
    return Refinement(get_proxy(proxy).name if proxy != "custom" else proxy, higher_more, groups, source)
