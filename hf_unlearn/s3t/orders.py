"""Slice orders: which B permutations of the L slices each shard trains.

- ``cyclic``: the rotations ``(b, b+1, ..., b-1)`` for b < B: B distinct first slices.
- ``bms``: bipartite-matching selection (S3T paper): orders grow one position at a time; at each
  position a maximum-weight matching (``scipy.optimize.linear_sum_assignment``) gives every
  order a distinct slice it has not used yet, weighted by the log-probability that the slice is
  never deleted, so slices with a low deletion prior come first.
- ``random``: B distinct random permutations, drawn per shard.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.optimize import linear_sum_assignment

Order = tuple[int, ...]


def cyclic_orders(num_slices: int, budget: int) -> list[Order]:
    if budget > num_slices:
        raise ValueError(f"only L={num_slices} cyclic orders exist, budget B={budget}")
    return [tuple((b + i) % num_slices for i in range(num_slices)) for b in range(budget)]


def random_orders(num_slices: int, budget: int, rng: np.random.Generator) -> list[Order]:
    if budget > math.factorial(num_slices):
        raise ValueError(f"budget B={budget} > L! = {math.factorial(num_slices)}")
    out: list[Order] = []
    while len(out) < budget:
        order = tuple(int(s) for s in rng.permutation(num_slices))
        if order not in out:
            out.append(order)
    return out


def bms_orders(num_slices: int, budget: int, prior=None) -> list[Order]:
    """Bipartite-matching selection against a per-slice deletion prior (uniform when None)."""
    L, B = num_slices, budget
    if B > L:
        raise ValueError(f"bms gives each position distinct slices across orders: budget B={B} must be <= L={L}")
    prior = np.full(L, 1.0 / L) if prior is None else np.asarray(prior, dtype=float)
    if prior.shape != (L,):
        raise ValueError(f"deletion prior needs L={L} values, got shape {prior.shape}")
    survive = np.log(np.clip(1.0 - prior, 1e-12, 1.0))
    orders: list[list[int]] = [[] for _ in range(B)]
    infeasible = -1e12
    for _ in range(L):
        weights = np.full((B, L), infeasible)
        for b, order in enumerate(orders):
            free = [s for s in range(L) if s not in order]
            weights[b, free] = survive[free]
        rows, cols = linear_sum_assignment(weights, maximize=True)
        for b, s in zip(rows, cols):
            if int(s) in orders[b]:  # no perfect matching: take this order's best free slice
                free = [x for x in range(L) if x not in orders[b]]
                s = max(free, key=lambda x: (survive[x], -x))
            orders[b].append(int(s))
    return [tuple(o) for o in orders]


def select_orders(config) -> list[list[Order]]:
    """Per shard, the B slice orders of ``config`` (an ``S3TConfig``)."""
    m, L, B = config.num_shards, config.num_slices, config.budget
    if config.order_selection == "cyclic":
        return [cyclic_orders(L, B) for _ in range(m)]
    if config.order_selection == "bms":
        return [bms_orders(L, B, config.deletion_prior) for _ in range(m)]
    return [random_orders(L, B, np.random.default_rng([config.seed, 7, j])) for j in range(m)]


def check_orders(orders: list[list[Order]], num_slices: int) -> None:
    for j, shard_orders in enumerate(orders):
        for order in shard_orders:
            if sorted(order) != list(range(num_slices)):
                raise ValueError(f"shard {j}: {order} is not a permutation of the {num_slices} slices")
        if len(set(shard_orders)) != len(shard_orders):
            raise ValueError(f"shard {j}: duplicate slice orders {shard_orders}")
