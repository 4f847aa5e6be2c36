"""The one edge predicate and edge order that every backend applies.

Predicate: ``j -> i`` is an edge iff ``d2 <= r * r`` where, in float64,
``d2 = dx * dx + dy * dy (+ dz * dz)`` summed in that order with ``dx = x_i - x_j`` (the
sign does not matter: negation is exact). Order: by target ``i``, then by source ``j``.
Nearest-``k``: a target keeps the ``k`` sources of smallest ``(d2, j)``.
"""
from __future__ import annotations

import numpy as np
import torch

from ._query import RadiusQuery

__all__ = [
    "inflate",
    "squared_distance",
    "distances",
    "segment_rank",
    "select_nearest",
    "edge_order",
    "exact_edges",
    "exact_pairs",
    "sorted_edges",
    "place_edges",
]

_MARGIN = 2.0**-40


def inflate(r: float, max_abs: float) -> float:
    """A search radius ``>= r`` that no rounding of coordinates up to ``max_abs`` can undercut.

    Any pair accepted by the float64 predicate is less than ``r * (1 + 2**-50)`` apart, and
    computing cell or tile indices ``floor(x / s)`` of coordinates up to ``max_abs`` moves
    them by less than ``max_abs * 2**-52 / s``. Searching (or sizing cells) with this radius
    therefore finds a superset of the exact edges, which the exact predicate then filters.
    """
    return r * (1.0 + _MARGIN) + max_abs * _MARGIN


def squared_distance(pos: torch.Tensor, target: torch.Tensor, source: torch.Tensor) -> torch.Tensor:
    """``d2`` of the predicate for each pair ``source[e] -> target[e]``; ``pos`` is float64."""
    d2 = None
    for dim in range(pos.shape[1]):
        # index_select on a contiguous column: much faster than pos[target, dim] on CPU.
        column = pos[:, dim].contiguous()
        diff = column.index_select(0, target) - column.index_select(0, source)
        d2 = diff * diff if d2 is None else d2 + diff * diff
    return d2


def segment_rank(group: torch.Tensor) -> torch.Tensor:
    """Position of each element inside its run of equal values of ``group`` (runs contiguous)."""
    _, lengths = torch.unique_consecutive(group, return_counts=True)
    starts = torch.cumsum(lengths, 0) - lengths
    return torch.arange(group.numel(), device=group.device) - torch.repeat_interleave(starts, lengths)


def select_nearest(group: torch.Tensor, d2: torch.Tensor, k: int) -> torch.Tensor:
    """Ascending indices of the ``k`` smallest ``(d2, position)`` of each contiguous group.

    With edges sorted by (target, source) this keeps each target's ``k`` nearest sources,
    ties going to the smaller source index, and the kept indices stay in that order.
    """
    by_distance = torch.argsort(d2, stable=True)
    order = by_distance.index_select(0, torch.argsort(group.index_select(0, by_distance), stable=True))
    return torch.sort(order[segment_rank(group.index_select(0, order)) < k]).values


def edge_order(group: torch.Tensor, source: torch.Tensor, d2: torch.Tensor, n: int, k: int | None) -> torch.Tensor:
    """Indices that order edges by (group, source), keeping each group's ``k`` nearest if ``k``.

    ``group`` identifies the target (the target itself or any value with a one-to-one
    map to it) and is, like ``source``, below ``n``.
    """
    order = torch.argsort(group * n + source)
    if k is not None:
        order = order.index_select(0, select_nearest(group.index_select(0, order), d2.index_select(0, order), k))
    return order


def exact_pairs(query: RadiusQuery, target: torch.Tensor, source: torch.Tensor):
    """``(target, source, d2)`` of the candidate pairs that pass the predicate (loops per query)."""
    target, source = target.to(query.device), source.to(query.device)
    d2 = squared_distance(query.pos, target, source)
    keep = d2 <= query.r2
    if not query.loop:
        keep &= target != source
    return target[keep], source[keep], d2[keep]


def sorted_edges(query: RadiusQuery, target: torch.Tensor, source: torch.Tensor, d2: torch.Tensor):
    """``(edge_index, dist)`` of exact edges in any order: sorted, nearest-``k`` applied."""
    order = edge_order(target, source, d2, query.num_nodes, query.max_num_neighbors)
    target, source, d2 = (t.index_select(0, order) for t in (target, source, d2))
    return torch.stack([source, target]), distances(d2, query.distance_dtype)


def exact_edges(query: RadiusQuery, target: torch.Tensor, source: torch.Tensor):
    """Edges and distances from a superset of candidate pairs (each pair listed at most once).

    The pairs may come from any device; the result is on the query's device.
    """
    return sorted_edges(query, *exact_pairs(query, target, source))


def distances(d2: torch.Tensor, dtype: torch.dtype | None) -> torch.Tensor | None:
    """Returned edge lengths: correctly rounded float64 ``sqrt(d2)``, then cast to ``dtype``.

    ``None`` when ``dtype`` is None (no distances asked for).
    """
    if dtype is None:
        return None
    if d2.device.type == "cpu":
        # torch.sqrt on CPU can be one ulp off in float64 (sqrt(61.0625) with torch 2.13 on
        # AVX-512); numpy's, like numba's math.sqrt and CUDA's double sqrt, is exact.
        return torch.from_numpy(np.sqrt(d2.numpy())).to(dtype)
    return torch.sqrt(d2).to(dtype)


def place_edges(
    edge_index: torch.Tensor,
    dist: torch.Tensor | None,
    offsets: torch.Tensor,
    target: torch.Tensor,
    source: torch.Tensor,
    values: torch.Tensor | None,
) -> None:
    """Write edges, grouped by target with ascending sources, at ``offsets[target] + rank``.

    Each target's edges must all be in this call; ``offsets`` is the exclusive cumulative
    sum of the per-target edge counts of the whole output.
    """
    where = offsets.index_select(0, target) + segment_rank(target)
    edge_index[0].index_copy_(0, where, source)
    edge_index[1].index_copy_(0, where, target)
    if dist is not None:
        dist.index_copy_(0, where, values)
