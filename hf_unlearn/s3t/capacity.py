"""Deletion capacity: how many uniform random deletions a system serves before every shard must
be retrained (S3T paper, section on budget): ``delta(S3T) ~ m*L*H(m*B')`` with ``B' = min(B, L)``
for cyclic orders, SISA (one order, slice checkpoints) ``m*L*H(m)``; H = harmonic number.
"""

from __future__ import annotations

import numpy as np


def harmonic(n: int) -> float:
    return float(sum(1.0 / k for k in range(1, int(n) + 1)))


def deletion_capacity_theory(num_shards: int, num_slices: int, budget: int) -> float:
    """``m * L * H(m * min(B, L))``; with B=1 this is SISA's ``m * L * H(m)``."""
    return num_shards * num_slices * harmonic(num_shards * min(budget, num_slices))


def simulate_deletions_served(shard, slc, orders, *, trials: int = 2000, seed: int = 0, replace: bool = False) -> dict:
    """Delete random examples of the real assignment (``shard[i]``, ``slc[i]``) until every
    shard has lost all its orders' prefixes; count the requests.

    ``replace=False`` (default): distinct ids, as real deletion requests are. ``replace=True``:
    each request draws an example uniformly from the whole training set, already-deleted ones
    included (a repeated request is served as a no-op): the model behind ``m*L*H(m*B')``, whose
    expectation this simulation then estimates without bias. Without replacement a hit slice
    has fewer ids left, so slices are exhausted slightly sooner and the mean is slightly lower.
    ``orders[j]`` lists shard j's slice orders. Returns mean, std, standard error and trials.
    """
    shard, slc = np.asarray(shard), np.asarray(slc)
    m = len(orders)
    position = [np.array([[list(o).index(s) for s in range(len(o))] for o in shard_orders]) for shard_orders in orders]
    rng = np.random.default_rng(seed)
    counts = np.empty(trials, dtype=np.int64)
    for t in range(trials):
        prefix = [np.full(len(orders[j]), len(orders[j][0])) for j in range(m)]
        draws = rng.integers(0, len(shard), size=len(shard) * 4) if replace else rng.permutation(len(shard))
        alive, served = m, len(draws)
        for step, row in enumerate(draws):
            j = shard[row]
            if not prefix[j].any():
                continue
            np.minimum(prefix[j], position[j][:, slc[row]], out=prefix[j])
            if not prefix[j].any():
                alive -= 1
                if alive == 0:
                    served = step + 1
                    break
        counts[t] = served
    return {
        "mean": float(counts.mean()),
        "std": float(counts.std(ddof=1)) if trials > 1 else 0.0,
        "stderr": float(counts.std(ddof=1) / np.sqrt(trials)) if trials > 1 else 0.0,
        "trials": trials,
    }
