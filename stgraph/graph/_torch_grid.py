"""Pure-PyTorch cell-list backend: runs wherever the query's tensors are (CPU or CUDA).

Two passes over bounded chunks of candidate pairs: the first counts each target's edges
exactly (so the output size is known and checked before it is allocated), the second
writes each chunk's edges at their final positions.
"""
from __future__ import annotations

import torch

from ._cells import CellList, build_cell_list
from ._exact import distances, edge_order, place_edges, squared_distance
from ._memory import allocate_output, refuse_surely_too_large, require_fits
from ._query import RadiusQuery

__all__ = ["torch_grid_edges", "require_fits_cheaply", "PAIRS_PER_CHUNK"]

# Candidate pairs expanded at once; about 60 bytes of temporaries each.
PAIRS_PER_CHUNK = 1 << 21


def _edges_of_chunk(cells: CellList, query: RadiusQuery, start: int, stop: int):
    """Sorted positions and ``d2`` of the edges whose targets lie in sorted positions ``start:stop``."""
    a, b = cells.candidate_pairs(start, stop)
    d2 = squared_distance(cells.pos, a, b)
    keep = d2 <= query.r2
    if not query.loop:
        keep &= a != b
    return a[keep], b[keep], d2[keep]


def _count_per_target(cells: CellList, query: RadiusQuery, chunks) -> torch.Tensor:
    counts = torch.zeros(query.num_nodes, dtype=torch.int64, device=cells.keys.device)
    for start, stop in chunks:
        a, _, _ = _edges_of_chunk(cells, query, start, stop)
        counts.index_add_(0, cells.order.index_select(0, a), torch.ones_like(a))
    if query.max_num_neighbors is not None:
        counts.clamp_(max=query.max_num_neighbors)
    return counts


def require_fits_cheaply(query: RadiusQuery) -> CellList:
    """Refuse a graph too large for memory before any edge is built; return the cell list.

    For backends that cannot count edges on their own: the cell list's candidate bound
    settles most cases, and only a bound that does not fit is refined: by the cheap lower
    bound, then by an exact count.
    """
    cells = build_cell_list(query)
    if not refuse_surely_too_large(query, cells.edge_bound(query.loop, query.max_num_neighbors)):
        counts = _count_per_target(cells, query, cells.chunks(PAIRS_PER_CHUNK))
        require_fits(int(counts.sum()), query.distance_dtype, query.device, query.max_memory)
    return cells


def torch_grid_edges(query: RadiusQuery):
    cells = build_cell_list(query)
    refuse_surely_too_large(query, cells.edge_bound(query.loop, query.max_num_neighbors))
    chunks = cells.chunks(PAIRS_PER_CHUNK)
    counts = _count_per_target(cells, query, chunks)
    offsets = torch.cumsum(counts, 0) - counts
    edge_index, dist = allocate_output(int(counts.sum()), query.distance_dtype, query.device, query.max_memory)
    n = query.num_nodes
    for start, stop in chunks:
        a, b, d2 = _edges_of_chunk(cells, query, start, stop)
        source = cells.order.index_select(0, b)
        order = edge_order(a, source, d2, n, query.max_num_neighbors)
        a, source, d2 = (t.index_select(0, order) for t in (a, source, d2))
        target = cells.order.index_select(0, a)
        place_edges(edge_index, dist, offsets, target, source, distances(d2, query.distance_dtype))
    return edge_index, dist
