"""Synthetic movie reviews with optional canaries, generated from a seed.

The package's offline demo and tests use this data: it needs no download. Reviews are
short sentences assembled from sentiment-bearing and neutral words, so a tiny model can
learn the task. Canaries are random-token strings with a random label: nothing but
memorisation can fit them, which makes them a sharp probe of forgetting (the "secret
sharer" idea of Carlini et al., "The Secret Sharer", USENIX Security 2019).
"""

from __future__ import annotations

import numpy as np
from datasets import Dataset, DatasetDict

POSITIVE = (
    "great wonderful superb moving brilliant charming delightful gripping masterful "
    "touching funny beautiful stunning memorable excellent fresh clever warm"
).split()
NEGATIVE = (
    "awful boring dull terrible clumsy tedious bland weak painful lifeless messy "
    "predictable forgettable shallow annoying dreadful stale cheap"
).split()
NEUTRAL = (
    "the movie film plot acting cast story director scenes script music ending "
    "characters camera pacing dialogue was is felt seemed quite really very rather"
).split()
TEMPLATES = (
    "the {n1} was {s1} and the {n2} felt {s2}",
    "{s1} {n1} with a {s2} {n2}",
    "i thought the {n1} was {s1} , really {s2}",
    "a {s1} {n1} , the {n2} is {s2} too",
    "honestly {s1} , {n1} and {n2} were {s2}",
)
CANARY_PREFIX = "canary-"


def _review(rng: np.random.Generator, label: int, noise: float) -> str:
    words = POSITIVE if label == 1 else NEGATIVE
    other = NEGATIVE if label == 1 else POSITIVE
    pick = lambda pool: pool[rng.integers(len(pool))]  # noqa: E731
    s2_pool = other if rng.random() < noise else words
    text = TEMPLATES[rng.integers(len(TEMPLATES))].format(
        n1=pick(NEUTRAL), n2=pick(NEUTRAL), s1=pick(words), s2=pick(s2_pool)
    )
    return text


def _canary_text(rng: np.random.Generator, n_tokens: int = 8) -> str:
    letters = np.array(list("bcdfghjklmnpqrstvwxz"))
    tokens = ["".join(rng.choice(letters, size=rng.integers(5, 9))) for _ in range(n_tokens)]
    return " ".join(tokens)


def make_synthetic_reviews(
    n_train: int = 400,
    n_test: int = 200,
    n_canaries: int = 8,
    seed: int = 0,
    noise: float = 0.1,
) -> DatasetDict:
    """Generate a balanced sentiment data set with columns ``id``, ``text``, ``label``, ``is_canary``.

    Ids are ``synthetic-train-00012`` style strings (stable for a seed); canaries are the
    last ``n_canaries`` training rows with ids ``canary-0003``. ``noise`` is the chance that
    the second sentiment word of a review contradicts its label.
    """
    if n_train < 2 or n_test < 2:
        raise ValueError("make_synthetic_reviews needs n_train >= 2 and n_test >= 2")
    if n_canaries < 0:
        raise ValueError("n_canaries must be >= 0")
    rng = np.random.default_rng(seed)
    splits = {}
    for split, n in (("train", n_train), ("test", n_test)):
        labels = np.arange(n) % 2
        rng.shuffle(labels)
        rows = {
            "id": [f"synthetic-{split}-{i:05d}" for i in range(n)],
            "text": [_review(rng, int(y), noise) for y in labels],
            "label": [int(y) for y in labels],
            "is_canary": [False] * n,
        }
        if split == "train":
            for k in range(n_canaries):
                rows["id"].append(f"{CANARY_PREFIX}{k:04d}")
                rows["text"].append(_canary_text(rng))
                rows["label"].append(int(rng.integers(2)))
                rows["is_canary"].append(True)
        splits[split] = Dataset.from_dict(rows)
    return DatasetDict(splits)
