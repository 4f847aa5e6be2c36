"""Compiled cell-list backend (numba, CPU, multi-threaded over cells).

A counting pass gives each target's exact edge count; the output is allocated once at
the exclusive cumulative sum of those counts, and a fill pass writes each target's edges
into its own slice, sorted by source. The output is thus ordered by target without a
global sort, and its size is checked before it is allocated.
"""
from __future__ import annotations

import math

import numpy as np
import torch
from numba import njit, prange

from ._cells import build_cell_list
from ._memory import require_fits
from ._query import RadiusQuery

__all__ = ["numba_grid_edges"]

# Segments up to this length are insertion-sorted in place; longer ones use argsort.
_INSERTION_SORT_MAX = 32


@njit(cache=True)
def _squared_distance(pos, a, b):
    diff = pos[a, 0] - pos[b, 0]
    d2 = diff * diff
    for dim in range(1, pos.shape[1]):
        diff = pos[a, dim] - pos[b, dim]
        d2 = d2 + diff * diff
    return d2


@njit(cache=True)
def _neighbour_runs(coord, batch, dims, keys, lo, hi):
    """Write the non-empty sorted-position runs of a cell's 3**D neighbourhood; return their number.

    Same layout as ``CellList.neighbour_runs``: the three cells along the last axis have
    consecutive keys and form one run.
    """
    ndim = coord.shape[0]
    last = coord[ndim - 1]
    low_last = max(last - 1, 0)
    high_last = min(last + 1, dims[ndim - 1] - 1)
    count = 0
    for combo in range(3 ** (ndim - 1)):
        key = batch
        inside = True
        rest = combo
        for axis in range(ndim - 1):
            c = coord[axis] + rest % 3 - 1
            rest //= 3
            if c < 0 or c >= dims[axis]:
                inside = False
                break
            key = key * dims[axis] + c
        if not inside:
            continue
        key = key * dims[ndim - 1]
        start = np.searchsorted(keys, key + low_last, side="left")
        stop = np.searchsorted(keys, key + high_last, side="right")
        if stop > start:
            lo[count] = start
            hi[count] = stop
            count += 1
    return count


@njit(cache=True)
def _scan(pos, order, a, lo, hi, num_runs, loop, r2, sources, d2s):
    """Edges into sorted position ``a``: their number, and (if ``sources`` is non-empty) the
    sources and ``d2`` written to ``sources``/``d2s``."""
    store = sources.shape[0] > 0
    count = 0
    for run in range(num_runs):
        for b in range(lo[run], hi[run]):
            if b == a and not loop:
                continue
            d2 = _squared_distance(pos, a, b)
            if d2 <= r2:
                if store:
                    sources[count] = order[b]
                    d2s[count] = d2
                count += 1
    return count


@njit(cache=True)
def _sort_by_source(sources, d2s, n):
    """Sort ``sources[:n]`` ascending, carrying ``d2s`` along (sources are distinct)."""
    if n <= _INSERTION_SORT_MAX:
        for i in range(1, n):
            s, d = sources[i], d2s[i]
            j = i - 1
            while j >= 0 and sources[j] > s:
                sources[j + 1] = sources[j]
                d2s[j + 1] = d2s[j]
                j -= 1
            sources[j + 1] = s
            d2s[j + 1] = d
    else:
        perm = np.argsort(sources[:n])
        sorted_sources = sources[perm]
        sorted_d2s = d2s[perm]
        sources[:n] = sorted_sources
        d2s[:n] = sorted_d2s


@njit(cache=True, parallel=True)
def _count_edges(pos, order, keys, cell_start, cell_coord, cell_batch, dims, r2, loop, counts):
    num_runs = 3 ** (pos.shape[1] - 1)
    nothing = np.empty(0, np.int64)
    nothing_f = np.empty(0, np.float64)
    for cell in prange(cell_start.shape[0] - 1):
        lo = np.empty(num_runs, np.int64)
        hi = np.empty(num_runs, np.int64)
        runs = _neighbour_runs(cell_coord[cell], cell_batch[cell], dims, keys, lo, hi)
        for a in range(cell_start[cell], cell_start[cell + 1]):
            counts[order[a]] = _scan(pos, order, a, lo, hi, runs, loop, r2, nothing, nothing_f)


@njit(cache=True, parallel=True)
def _fill_edges(
    pos, order, keys, cell_start, cell_coord, cell_batch, dims, r2, loop, k, counts, offsets, edges, dist, want_dist
):
    """Write each target's edges (its ``k`` nearest if ``k >= 0``) at ``offsets[target]``."""
    num_runs = 3 ** (pos.shape[1] - 1)
    for cell in prange(cell_start.shape[0] - 1):
        lo = np.empty(num_runs, np.int64)
        hi = np.empty(num_runs, np.int64)
        runs = _neighbour_runs(cell_coord[cell], cell_batch[cell], dims, keys, lo, hi)
        largest = 1
        for a in range(cell_start[cell], cell_start[cell + 1]):
            largest = max(largest, counts[order[a]])
        sources = np.empty(largest, np.int64)
        d2s = np.empty(largest, np.float64)
        for a in range(cell_start[cell], cell_start[cell + 1]):
            target = order[a]
            n = _scan(pos, order, a, lo, hi, runs, loop, r2, sources, d2s)
            _sort_by_source(sources, d2s, n)
            base = offsets[target]
            if 0 <= k < n:
                # Stable by distance over source-sorted candidates: ties go to the smaller
                # source; re-sorting the kept positions restores source order.
                kept = np.sort(np.argsort(d2s[:n], kind="mergesort")[:k])
                for q in range(k):
                    edges[0, base + q] = sources[kept[q]]
                    edges[1, base + q] = target
                    if want_dist:
                        dist[base + q] = math.sqrt(d2s[kept[q]])
            else:
                for q in range(n):
                    edges[0, base + q] = sources[q]
                    edges[1, base + q] = target
                    if want_dist:
                        dist[base + q] = math.sqrt(d2s[q])


def numba_grid_edges(query: RadiusQuery):
    cpu = torch.device("cpu")
    batch = None if query.batch is None else query.batch.to(cpu)
    cells = build_cell_list(query.pos.to(cpu), batch, query.num_batches, query.r, query.max_abs)
    arrays = (
        cells.pos.numpy(),
        cells.order.numpy(),
        cells.keys.numpy(),
        cells.cell_start.numpy(),
        np.ascontiguousarray(cells.cell_coord.numpy()),
        cells.cell_batch.numpy(),
        np.asarray(cells.dims, dtype=np.int64),
        query.r2,
        query.loop,
    )
    counts = np.empty(query.num_nodes, dtype=np.int64)
    _count_edges(*arrays, counts)
    k = query.max_num_neighbors
    kept = counts if k is None else np.minimum(counts, k)
    offsets = np.cumsum(kept) - kept
    num_edges = int(kept.sum())
    require_fits(num_edges, query.distance_dtype, query.device, query.max_memory)
    edges = np.empty((2, num_edges), dtype=np.int64)
    want_dist = query.distance_dtype is not None
    # float32 distances are written directly; other dtypes go through float64 and one
    # rounding by torch, as in the other backends.
    dist_np = np.float32 if query.distance_dtype == torch.float32 else np.float64
    dist = np.empty(num_edges if want_dist else 0, dtype=dist_np)
    _fill_edges(*arrays, -1 if k is None else k, counts, offsets, edges, dist, want_dist)
    edge_index = torch.from_numpy(edges).to(query.device)
    return edge_index, torch.from_numpy(dist).to(query.device, query.distance_dtype) if want_dist else None
