"""SciPy ``cKDTree`` backend (CPU): tree pairs within an inflated radius, then the exact predicate."""
from __future__ import annotations

import numpy as np
import torch
from scipy.spatial import cKDTree

from ._exact import exact_pairs, inflate, sorted_edges
from ._query import RadiusQuery
from ._torch_grid import require_fits_cheaply

__all__ = ["kdtree_edges"]

# cKDTree sums squared distances between tree nodes, which overflow beyond this span.
_MAX_SPAN = 2.0**510


def _groups(batch: np.ndarray | None, n: int) -> list[np.ndarray]:
    if batch is None:
        return [np.arange(n)]
    order = np.argsort(batch, kind="stable")
    return np.split(order, np.flatnonzero(np.diff(batch[order])) + 1)


def kdtree_edges(query: RadiusQuery):
    if query.num_nodes:
        span = max(high - low for low, high in zip(*query.bounds))
        if span > _MAX_SPAN:
            raise ValueError(
                f"the kdtree backend cannot search coordinates spanning more than 2**510 "
                f"({_MAX_SPAN:.3g}) on an axis (scipy's cKDTree overflows), got a span of {span:.3g}; "
                "use backend='numba' or 'torch'"
            )
    require_fits_cheaply(query)
    pos = query.pos.cpu().numpy()
    radius = inflate(query.r, query.max_abs)
    pairs = [np.empty((0, 2), dtype=np.int64)]
    for members in _groups(None if query.batch is None else query.batch.cpu().numpy(), query.num_nodes):
        found = cKDTree(pos[members]).query_pairs(radius, output_type="ndarray")
        pairs.append(members[found])
    pairs = torch.from_numpy(np.concatenate(pairs))
    # The predicate is symmetric: filter each unordered pair once, then add both directions.
    first, second, d2 = exact_pairs(query, pairs[:, 0], pairs[:, 1])
    del pairs
    target, source, d2 = torch.cat([first, second]), torch.cat([second, first]), torch.cat([d2, d2])
    del first, second
    if query.loop:
        everyone = torch.arange(query.num_nodes, device=query.device)
        target, source = torch.cat([target, everyone]), torch.cat([source, everyone])
        d2 = torch.cat([d2, d2.new_zeros(query.num_nodes)])
    return sorted_edges(query, target, source, d2)
