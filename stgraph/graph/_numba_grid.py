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

# Neighbourhoods up to this size are insertion-sorted in place; larger ones use argsort.
_INSERTION_SORT_MAX = 64
# Cells per parallel work item: amortises the scratch allocations of a work item.
_CELLS_PER_BLOCK = 256


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


@njit(cache=True, inline="always")
def _squared_distance(x, y, z, points, q):
    """``d2`` of the predicate between ``(x, y, z)`` and ``points[q]``.

    Points are ``[M, 3]``: 2D points are padded with z = 0, and adding ``0.0 * 0.0`` to
    ``d2`` is exact, so 2D and 3D share this code without changing the predicate.
    """
    dx = x - points[q, 0]
    dy = y - points[q, 1]
    dz = z - points[q, 2]
    d2 = dx * dx
    d2 = d2 + dy * dy
    return d2 + dz * dz


@njit(cache=True, parallel=True)
def _count_edges(xyz, order, keys, cell_start, cell_coord, cell_batch, dims, r2, loop, counts):
    num_cells = cell_start.shape[0] - 1
    num_runs = 3 ** (cell_coord.shape[1] - 1)
    for block in prange((num_cells + _CELLS_PER_BLOCK - 1) // _CELLS_PER_BLOCK):
        lo = np.empty(num_runs, np.int64)
        hi = np.empty(num_runs, np.int64)
        for cell in range(block * _CELLS_PER_BLOCK, min((block + 1) * _CELLS_PER_BLOCK, num_cells)):
            runs = _neighbour_runs(cell_coord[cell], cell_batch[cell], dims, keys, lo, hi)
            for a in range(cell_start[cell], cell_start[cell + 1]):
                x, y, z = xyz[a, 0], xyz[a, 1], xyz[a, 2]
                n = 0
                for run in range(runs):
                    for b in range(lo[run], hi[run]):
                        if _squared_distance(x, y, z, xyz, b) <= r2 and (loop or b != a):
                            n += 1
                counts[order[a]] = n


@njit(cache=True)
def _sort_by_index(index, position, m):
    """Sort ``index[:m]`` ascending (values distinct), carrying ``position`` along."""
    if m <= _INSERTION_SORT_MAX:
        for i in range(1, m):
            key, value = index[i], position[i]
            j = i - 1
            while j >= 0 and index[j] > key:
                index[j + 1] = index[j]
                position[j + 1] = position[j]
                j -= 1
            index[j + 1] = key
            position[j + 1] = value
    else:
        perm = np.argsort(index[:m])
        index[:m] = index[perm]
        position[:m] = position[perm]


@njit(cache=True)
def _gather_by_index(xyz, order, lo, hi, num_runs, index, position, coords):
    """Copy a cell's neighbourhood into ``index``/``coords``, sorted by point index; return its size.

    All targets of the cell scan this buffer, so their sources come out sorted for free.
    """
    m = 0
    for run in range(num_runs):
        for b in range(lo[run], hi[run]):
            index[m] = order[b]
            position[m] = b
            m += 1
    _sort_by_index(index, position, m)
    for q in range(m):
        b = position[q]
        coords[q, 0] = xyz[b, 0]
        coords[q, 1] = xyz[b, 1]
        coords[q, 2] = xyz[b, 2]
    return m


@njit(cache=True, parallel=True)
def _fill_sources(
    xyz, order, keys, cell_start, cell_coord, cell_batch, dims, r2, loop, k, offsets, sources, dist, want_dist
):
    """Write each target's sources (its ``k`` nearest if ``k >= 0``), ascending, at ``offsets[target]``."""
    num_cells = cell_start.shape[0] - 1
    num_runs = 3 ** (cell_coord.shape[1] - 1)
    for block in prange((num_cells + _CELLS_PER_BLOCK - 1) // _CELLS_PER_BLOCK):
        lo = np.empty(num_runs, np.int64)
        hi = np.empty(num_runs, np.int64)
        capacity = 0
        index = position = hit_source = np.empty(0, np.int64)
        hit_d2 = np.empty(0, np.float64)
        coords = np.empty((0, 3), np.float64)
        for cell in range(block * _CELLS_PER_BLOCK, min((block + 1) * _CELLS_PER_BLOCK, num_cells)):
            runs = _neighbour_runs(cell_coord[cell], cell_batch[cell], dims, keys, lo, hi)
            needed = 0
            for run in range(runs):
                needed += hi[run] - lo[run]
            if needed > capacity:
                capacity = 2 * needed
                index, position, hit_source = np.empty(capacity, np.int64), np.empty(capacity, np.int64), np.empty(capacity, np.int64)
                hit_d2 = np.empty(capacity, np.float64)
                coords = np.empty((capacity, 3), np.float64)
            m = _gather_by_index(xyz, order, lo, hi, runs, index, position, coords)
            for a in range(cell_start[cell], cell_start[cell + 1]):
                target = order[a]
                x, y, z = xyz[a, 0], xyz[a, 1], xyz[a, 2]
                n = 0
                for q in range(m):
                    # Branch-free: always write, advance only on an edge.
                    d2 = _squared_distance(x, y, z, coords, q)
                    hit_source[n] = index[q]
                    hit_d2[n] = d2
                    n += (d2 <= r2) & (loop | (index[q] != target))
                base = offsets[target]
                if 0 <= k < n:
                    # Stable by distance over source-sorted hits: ties go to the smaller
                    # source; sorting the kept positions restores source order.
                    kept = np.sort(np.argsort(hit_d2[:n], kind="mergesort")[:k])
                    for q in range(k):
                        sources[base + q] = hit_source[kept[q]]
                        if want_dist:
                            dist[base + q] = math.sqrt(hit_d2[kept[q]])
                else:
                    for q in range(n):
                        sources[base + q] = hit_source[q]
                    if want_dist:
                        for q in range(n):
                            dist[base + q] = math.sqrt(hit_d2[q])


@njit(cache=True, parallel=True)
def _fill_targets(offsets, kept, targets):
    for i in prange(offsets.shape[0]):
        targets[offsets[i] : offsets[i] + kept[i]] = i


def numba_grid_edges(query: RadiusQuery):
    cpu = torch.device("cpu")
    batch = None if query.batch is None else query.batch.to(cpu)
    cells = build_cell_list(query.pos.to(cpu), batch, query.num_batches, query.r, query.max_abs)
    xyz = np.zeros((query.num_nodes, 3))
    xyz[:, : cells.pos.shape[1]] = cells.pos.numpy()
    arrays = (
        xyz,
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
    _fill_sources(*arrays, -1 if k is None else k, offsets, edges[0], dist, want_dist)
    _fill_targets(offsets, kept, edges[1])
    edge_index = torch.from_numpy(edges).to(query.device)
    return edge_index, torch.from_numpy(dist).to(query.device, query.distance_dtype) if want_dist else None
