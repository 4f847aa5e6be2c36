"""Compiled cell-list backend (numba, CPU, multi-threaded over cells).

A counting pass gives each target's exact edge count; the output is allocated once at
the exclusive cumulative sum of those counts, and a fill pass writes each target's edges
into its own slice, sorted by source. The output is thus ordered by target without a
global sort, and its size is checked before it is allocated. Before counting, a graph
whose loose upper bound does not fit must pass the cheap lower bound
(``refuse_surely_too_large``): a radius far too large is refused without the quadratic count.
"""
from __future__ import annotations

import math

import numpy as np
import torch
from numba import njit, prange

from ._cells import cell_geometry
from ._memory import refuse_surely_too_large, require_fits
from ._query import RadiusQuery

__all__ = ["numba_grid_edges"]

# Neighbourhoods up to this size are insertion-sorted in place; larger ones use argsort.
_INSERTION_SORT_MAX = 64
# Targets whose output is written interleaved (see _write_hits).
_TARGETS_PER_GROUP = 8
# Cells per parallel work item: amortises the scratch allocations of a work item.
_CELLS_PER_BLOCK = 256


@njit(cache=True, parallel=True)
def _cell_keys(points, batch, size, first, dims, keys):
    """Cell key of every point: ``(..(batch * dims[0] + c0) * dims[1] + c1)..``, as in ``CellList``."""
    for i in prange(points.shape[0]):
        key = batch[i] if batch.shape[0] else 0
        for axis in range(points.shape[1]):
            cell = math.floor(np.float64(points[i, axis]) / size) - first[axis]
            key = key * dims[axis] + min(max(cell, 0), dims[axis] - 1)  # clamp: see build_cell_list
        keys[i] = key


@njit(cache=True, parallel=True)
def _sort_points(points, order, keys, xyz, sorted_keys):
    """Keys and float64 coordinates (padded to 3D with z = 0) in sorted order."""
    ndim = points.shape[1]
    for p in prange(order.shape[0]):
        i = order[p]
        sorted_keys[p] = keys[i]
        for axis in range(3):
            xyz[p, axis] = np.float64(points[i, axis]) if axis < ndim else 0.0


@njit(cache=True)
def _cell_starts(sorted_keys):
    """First sorted position of each run of equal keys, plus ``N`` at the end."""
    n = sorted_keys.shape[0]
    num_cells = 1
    for p in range(1, n):
        num_cells += sorted_keys[p] != sorted_keys[p - 1]
    starts = np.empty(num_cells + 1, np.int64)
    starts[0], starts[num_cells] = 0, n
    cell = 1
    for p in range(1, n):
        if sorted_keys[p] != sorted_keys[p - 1]:
            starts[cell] = p
            cell += 1
    return starts


@njit(cache=True)
def _neighbour_runs(key, dims, keys, coord, lo, hi):
    """Write the non-empty sorted-position runs of the 3**D neighbourhood of cell ``key``;
    return their number (``coord`` is scratch of length D).

    Same layout as ``CellList.neighbour_runs``: the three cells along the last axis have
    consecutive keys and form one run.
    """
    ndim = dims.shape[0]
    rest = key
    for axis in range(ndim - 1, -1, -1):
        coord[axis] = rest % dims[axis]
        rest //= dims[axis]
    batch = rest
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


@njit(cache=True)
def _num_blocks(cell_start):
    return (cell_start.shape[0] - 1 + _CELLS_PER_BLOCK - 1) // _CELLS_PER_BLOCK


@njit(cache=True)
def _block_scratch(block, cell_start, dims):
    """Cell range of a parallel work item, and its scratch for :func:`_neighbour_runs`."""
    first = block * _CELLS_PER_BLOCK
    stop = min(first + _CELLS_PER_BLOCK, cell_start.shape[0] - 1)
    num_runs = 3 ** (dims.shape[0] - 1)
    return first, stop, np.empty(dims.shape[0], np.int64), np.empty(num_runs, np.int64), np.empty(num_runs, np.int64)


@njit(cache=True, parallel=True)
def _count_edges(xyz, order, keys, cell_start, dims, r2, loop, counts):
    for block in prange(_num_blocks(cell_start)):
        first, stop, coord, lo, hi = _block_scratch(block, cell_start, dims)
        for cell in range(first, stop):
            runs = _neighbour_runs(keys[cell_start[cell]], dims, keys, coord, lo, hi)
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


@njit(cache=True)
def _scan_hits(xyz, a, target, coords, index, m, r2, loop, hit_source, hit_d2):
    """Edges into sorted position ``a`` from the gathered neighbourhood, in source order:
    their number, and their sources and ``d2`` in ``hit_source``/``hit_d2``."""
    x, y, z = xyz[a, 0], xyz[a, 1], xyz[a, 2]
    n = 0
    for q in range(m):
        # Branch-free: always write, advance only on an edge.
        d2 = _squared_distance(x, y, z, coords, q)
        hit_source[n] = index[q]
        hit_d2[n] = d2
        n += (d2 <= r2) & (loop | (index[q] != target))
    return n


@njit(cache=True)
def _write_hits(targets, hits, offsets, k, hit_source, hit_d2, sources, dist, want_dist):
    """Write the hits of a group of targets (row ``t`` of ``hit_*`` for ``targets[t]``).

    The targets' output slices are far apart; writing them element by element in turn
    lets their cache misses overlap instead of queueing one slice after the other.
    """
    longest = 0
    for t in range(targets.shape[0]):
        n = hits[t]
        if 0 <= k < n:
            # Stable by distance over source-sorted hits: ties go to the smaller source;
            # sorting the kept positions restores source order.
            kept = np.sort(np.argsort(hit_d2[t, :n], kind="mergesort")[:k])
            base = offsets[targets[t]]
            for q in range(k):
                sources[base + q] = hit_source[t, kept[q]]
                if want_dist:
                    dist[base + q] = math.sqrt(hit_d2[t, kept[q]])
            hits[t] = 0
        longest = max(longest, hits[t])
    for q in range(longest):
        for t in range(targets.shape[0]):
            if q < hits[t]:
                slot = offsets[targets[t]] + q
                sources[slot] = hit_source[t, q]
                if want_dist:
                    dist[slot] = math.sqrt(hit_d2[t, q])


@njit(cache=True, parallel=True)
def _fill_sources(xyz, order, keys, cell_start, dims, r2, loop, k, offsets, sources, dist, want_dist):
    """Write each target's sources (its ``k`` nearest if ``k >= 0``), ascending, at ``offsets[target]``."""
    for block in prange(_num_blocks(cell_start)):
        first, stop, coord, lo, hi = _block_scratch(block, cell_start, dims)
        capacity = 0
        index = position = np.empty(0, np.int64)
        coords = np.empty((0, 3), np.float64)
        hit_source = np.empty((_TARGETS_PER_GROUP, 0), np.int64)
        hit_d2 = np.empty((_TARGETS_PER_GROUP, 0), np.float64)
        hits = np.empty(_TARGETS_PER_GROUP, np.int64)
        for cell in range(first, stop):
            runs = _neighbour_runs(keys[cell_start[cell]], dims, keys, coord, lo, hi)
            needed = 0
            for run in range(runs):
                needed += hi[run] - lo[run]
            if needed > capacity:
                capacity = 2 * needed
                index = np.empty(capacity, np.int64)
                position = np.empty(capacity, np.int64)
                coords = np.empty((capacity, 3), np.float64)
                hit_source = np.empty((_TARGETS_PER_GROUP, capacity), np.int64)
                hit_d2 = np.empty((_TARGETS_PER_GROUP, capacity), np.float64)
            m = _gather_by_index(xyz, order, lo, hi, runs, index, position, coords)
            for group in range(cell_start[cell], cell_start[cell + 1], _TARGETS_PER_GROUP):
                end = min(group + _TARGETS_PER_GROUP, cell_start[cell + 1])
                for a in range(group, end):
                    t = a - group
                    hits[t] = _scan_hits(xyz, a, order[a], coords, index, m, r2, loop, hit_source[t], hit_d2[t])
                _write_hits(order[group:end], hits, offsets, k, hit_source, hit_d2, sources, dist, want_dist)


@njit(cache=True, parallel=True)
def _fill_targets(offsets, kept, targets):
    for i in prange(offsets.shape[0]):
        for e in range(offsets[i], offsets[i] + kept[i]):
            targets[e] = i


def _empty(shape, dtype: torch.dtype) -> np.ndarray:
    """An uninitialised array allocated by torch: numpy advises huge pages for large arrays,
    and fresh huge pages were up to 6x slower to fault in than 4 KiB pages on the virtual
    machine where benchmarks/radius_graph.py ran (0.2 s vs 1.5 s per 160 MB, first touch)."""
    return torch.empty(shape, dtype=dtype).numpy()


def _cell_sorted_points(query: RadiusQuery):
    """``(xyz, order, keys, cell_start, dims)``: the numba counterpart of ``build_cell_list``,
    fused into a few passes because large temporaries are what costs most on the CPU."""
    points = query.points.cpu()
    if points.dtype not in (torch.float32, torch.float64):
        points = points.to(torch.float64)  # exact for float16/bfloat16
    points = np.ascontiguousarray(points.numpy())
    geometry = cell_geometry(query)
    dims = np.asarray(geometry.dims, dtype=np.int64)
    batch = np.empty(0, np.int64) if query.batch is None else query.batch.cpu().numpy()
    keys = _empty(query.num_nodes, torch.int64)
    _cell_keys(points, batch, geometry.size, np.asarray(geometry.first, dtype=np.int64), dims, keys)
    order = np.argsort(keys)
    xyz = _empty((query.num_nodes, 3), torch.float64)
    sorted_keys = _empty(query.num_nodes, torch.int64)
    _sort_points(points, order, keys, xyz, sorted_keys)
    return xyz, order, sorted_keys, _cell_starts(sorted_keys), dims


def numba_grid_edges(query: RadiusQuery):
    xyz, order, keys, cell_start, dims = _cell_sorted_points(query)
    k = query.max_num_neighbors
    # Loose upper bound from one pass over the cells: each target has at most 3**D cells
    # of candidates.
    per_target = 3 ** dims.shape[0] * int(np.diff(cell_start).max()) - (0 if query.loop else 1)
    refuse_surely_too_large(query, query.num_nodes * (per_target if k is None else min(per_target, k)))
    arrays = (xyz, order, keys, cell_start, dims, query.r2, query.loop)
    counts = _empty(query.num_nodes, torch.int64)
    _count_edges(*arrays, counts)
    kept = counts if k is None else np.minimum(counts, k)
    offsets = np.cumsum(kept, out=_empty(query.num_nodes, torch.int64))
    offsets -= kept
    num_edges = int(offsets[-1] + kept[-1])
    require_fits(num_edges, query.distance_dtype, query.device, query.max_memory)
    edge_index = torch.empty(2, num_edges, dtype=torch.int64)
    want_dist = query.distance_dtype is not None
    # float32 distances are written directly; other dtypes go through float64 and one
    # rounding by torch, as in the other backends.
    dist_dtype = torch.float32 if query.distance_dtype == torch.float32 else torch.float64
    dist = torch.empty(num_edges if want_dist else 0, dtype=dist_dtype)
    _fill_sources(*arrays, -1 if k is None else k, offsets, edge_index[0].numpy(), dist.numpy(), want_dist)
    _fill_targets(offsets, kept, edge_index[1].numpy())
    return edge_index.to(query.device), dist.to(query.device, query.distance_dtype) if want_dist else None
