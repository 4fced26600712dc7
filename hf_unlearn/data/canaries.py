"""Canaries planted in any data set, and the reference canaries their exposure is measured against.

A canary is a text of ``length`` words drawn at random, with a label drawn at random: nothing but
memorisation can fit it (Carlini, Liu, Erlingsson, Kos and Song, "The Secret Sharer: Evaluating and
Testing Unintended Memorization in Neural Networks", USENIX Security 2019). ``--canaries N`` adds N
of them to the TRAINING split (ids ``canary-planted-000`` ...); R *reference* canaries from the same
recipe are never trained on. Both are regenerated from the recipe alone (:class:`CanaryRecipe`: seed,
N, R, length) and the data set's test split, so a run folder stores the recipe, never the texts.

Words: the rare words of the test split's first 5,000 texts (in at most 1% of them, at least one;
3 to 15 letters), which carry little of the task's signal; when there are fewer than :data:`MIN_POOL`
(the synthetic reviews use a few dozen frequent words), made-up words of random consonants. Labels:
uniform over the labels of the test split. Planted canaries and references come from two separate
random streams of the same seed; a reference never repeats a planted canary or another reference.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass

import numpy as np
from datasets import Dataset, DatasetDict, concatenate_datasets

from .synthetic import CANARY_PREFIX

PLANTED_PREFIX = f"{CANARY_PREFIX}planted-"  # "canary-planted-007": a planted (trained) canary
REFERENCE_PREFIX = f"{CANARY_PREFIX}reference-"  # "canary-reference-042": never in any split
MIN_POOL = 64  # fewer rare words than this: made-up words instead
MADE_UP_WORDS = 2048  # draws of made-up words (a few repeat)
RARE_FRACTION = 0.01  # a rare word is in at most this fraction of the test texts (at least one)
_WORD = re.compile(r"\b[^\W\d_]{3,15}\b")
POOL_TEXTS = 5000  # the words come from the first texts of the test split
_CONSONANTS = np.array(list("bcdfghjklmnpqrstvwxz"))
_PLANTED_STREAM, _REFERENCE_STREAM = 0, 1


@dataclass(frozen=True)
class CanaryRecipe:
    """Everything that regenerates a run's canaries: ``count`` planted (N), ``references`` never trained
    on (R), ``length`` words each, drawn with ``seed``."""

    count: int
    references: int = 256
    length: int = 8
    seed: int = 0

    def ids(self) -> list[str]:
        """The planted canaries' ids, ``canary-planted-000`` ... (at least three digits)."""
        width = max(3, len(str(max(self.count - 1, 0))))
        return [f"{PLANTED_PREFIX}{k:0{width}d}" for k in range(self.count)]

    def record(self) -> dict:
        """What the run file keeps (private): the recipe, the count and the planted ids."""
        return {"count": self.count, "ids": self.ids(), "references": self.references, "length": self.length}


@dataclass(frozen=True)
class CanaryProbe:
    """The canaries one evaluation ranks: ``planted`` (the rows of the train split with a planted id:
    ``id``, ``text``, ``label``) and ``references`` (never trained on), with the ``recipe`` and the
    tokenizer's ``max_length``."""

    recipe: CanaryRecipe
    planted: Dataset
    references: Dataset
    max_length: int = 128


def canary_words(texts: list[str]) -> tuple[list[str], str]:
    """(the word pool, ``"rare words"`` or ``"made-up words"``) for canaries drawn from ``texts``."""
    texts = texts[:POOL_TEXTS]
    df = Counter(w for text in texts for w in set(_WORD.findall(str(text).lower())))
    cap = max(1, int(RARE_FRACTION * len(texts)))
    rare = sorted(w for w, n in df.items() if n <= cap)
    if len(rare) >= MIN_POOL:
        return rare, "rare words"
    rng = np.random.default_rng(0)  # the same made-up vocabulary for every data set
    made_up = sorted({"".join(rng.choice(_CONSONANTS, size=rng.integers(5, 9))) for _ in range(MADE_UP_WORDS)})
    return made_up, "made-up words"


def _draw(recipe: CanaryRecipe, stream: int, n: int, pool: np.ndarray, labels: np.ndarray, skip=()):
    """``n`` (text, label) pairs of ``stream``; texts in ``skip`` or already drawn are drawn again."""
    rng = np.random.default_rng([recipe.seed, 0xCA4A, stream])
    seen, out = set(skip), []
    while len(out) < n:
        text = " ".join(rng.choice(pool, size=recipe.length))
        label = int(rng.choice(labels))
        if text not in seen:
            seen.add(text)
            out.append((text, label))
    return out


def make_canaries(recipe: CanaryRecipe, data: DatasetDict) -> tuple[Dataset, Dataset]:
    """(planted, references) as datasets of ``id``, ``text``, ``label`` for ``data``'s test split."""
    pool, _ = canary_words(list(data["test"]["text"]))
    pool = np.asarray(pool, dtype=object)
    labels = np.asarray(sorted({int(y) for y in data["test"]["label"]}), dtype=np.int64)
    planted = _draw(recipe, _PLANTED_STREAM, recipe.count, pool, labels)
    refs = _draw(recipe, _REFERENCE_STREAM, recipe.references, pool, labels, skip={t for t, _ in planted})
    width = max(3, len(str(recipe.references - 1)))
    ref_ids = [f"{REFERENCE_PREFIX}{k:0{width}d}" for k in range(recipe.references)]
    return _rows(recipe.ids(), planted), _rows(ref_ids, refs)


def _rows(ids: list[str], pairs: list[tuple[str, int]]) -> Dataset:
    return Dataset.from_dict({"id": ids, "text": [t for t, _ in pairs], "label": [y for _, y in pairs]})


def plant_canaries(data: DatasetDict, recipe: CanaryRecipe | None) -> DatasetDict:
    """``data`` with ``recipe.count`` canaries appended to its train split (every other split as it
    was) and an ``is_canary`` column (True for them; the synthetic reviews' own canaries keep theirs).
    An id that the train split already holds is a ``ValueError``; no recipe or N = 0: ``data``."""
    if recipe is None or recipe.count == 0:
        return data
    from .loading import DatasetFormatError

    planted, _ = make_canaries(recipe, data)
    train = data["train"]
    clash = set(planted["id"]) & set(train["id"])
    if clash:
        raise DatasetFormatError(
            f"--canaries {recipe.count}: the train split already has id(s) like {sorted(clash)[0]!r}; "
            f"rename the ids starting with {PLANTED_PREFIX!r}"
        )
    out = DatasetDict({name: _with_canary_column(split) for name, split in data.items()})
    rows = {**planted.to_dict(), "is_canary": [True] * len(planted)}
    planted = Dataset.from_dict({k: rows[k] for k in out["train"].column_names}, features=out["train"].features)
    out["train"] = concatenate_datasets([out["train"], planted])
    return out


def _with_canary_column(split: Dataset) -> Dataset:
    return split if "is_canary" in split.column_names else split.add_column("is_canary", [False] * len(split))


def canary_probe(data: DatasetDict, recipe: CanaryRecipe | None, max_length: int = 128) -> CanaryProbe | None:
    """The planted canaries that ``data``'s train split holds and the recipe's references, or ``None``
    without a recipe (a run trained without ``--canaries``)."""
    if recipe is None or recipe.count == 0:
        return None
    _, references = make_canaries(recipe, data)
    wanted = set(recipe.ids())
    train = data["train"]
    rows = [k for k, i in enumerate(train["id"]) if i in wanted]
    planted = train.select(rows).select_columns(["id", "text", "label"])
    return CanaryProbe(recipe=recipe, planted=planted, references=references, max_length=max_length)
