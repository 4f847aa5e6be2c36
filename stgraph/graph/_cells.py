"""Cell lists: points bucketed into cubic cells of side >= r, keyed by (batch, cell).

:func:`cell_geometry` (cell side, grid extent, int64-safe keys) is shared by every
cell-list code path. :class:`CellList` is the PyTorch one, built on the query's device:
the ``"torch"`` backend searches it, and the kd-tree and torch_cluster backends take a
cheap upper bound on the edge count from it; with cells small enough that neighbouring
cells hold only neighbours, the same bound is a lower bound (:func:`edge_lower_bound`).
The numba backend builds its own arrays with the same geometry and key layout
(``_numba_grid.py``).
"""
from __future__ import annotations

import dataclasses
import functools
import itertools
import math
from dataclasses import dataclass

import numpy as np
import torch

from ._exact import inflate
from ._query import RadiusQuery

__all__ = ["CellGeometry", "CellList", "build_cell_list", "cell_geometry", "edge_lower_bound", "expand_ranges"]

# Keys are batch * prod(dims) + cell index; keeping them below 2**62 leaves room for the
# +-1 neighbour offsets without int64 overflow.
_MAX_KEYS = 2**62
# Cells whose neighbour runs are looked up at once: bounds [cells, 3**(D-1)] temporaries.
CELLS_PER_LOOKUP = 1 << 16


@dataclass(frozen=True)
class CellList:
    """Points sorted by cell key.

    Sorted position ``p`` holds point ``order[p]`` at ``pos[p]`` in the cell of key
    ``keys[p]``; occupied cell ``c`` spans sorted positions ``cell_start[c]`` to
    ``cell_start[c + 1]`` and has integer coordinates ``cell_coord[c]`` (``0 <= coord <
    dims``) in sample ``cell_batch[c]``. Key = ``(..(batch * dims[0] + c0) * dims[1] + c1)..``.
    """

    order: torch.Tensor
    keys: torch.Tensor
    pos: torch.Tensor
    cell_start: torch.Tensor
    cell_coord: torch.Tensor
    cell_batch: torch.Tensor
    dims: tuple[int, ...]

    @property
    def num_cells(self) -> int:
        return self.cell_coord.shape[0]

    def neighbour_runs(self, first: int, stop: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Sorted-position ranges ``[lo, hi)`` covering the 3**D neighbourhood of cells ``first:stop``.

        The three cells along the last axis have consecutive keys, so the neighbourhood is
        ``3**(D-1)`` contiguous runs; out-of-grid runs come back empty.
        """
        coord = self.cell_coord[first:stop]
        batch = self.cell_batch[first:stop]
        last = coord[:, -1]
        low_last = (last - 1).clamp(min=0)
        high_last = (last + 1).clamp(max=self.dims[-1] - 1)
        lows, highs = [], []
        for offset in itertools.product((-1, 0, 1), repeat=len(self.dims) - 1):
            key = batch
            inside = torch.ones_like(last, dtype=torch.bool)
            for axis, step in enumerate(offset):
                c = coord[:, axis] + step
                inside &= (c >= 0) & (c < self.dims[axis])
                key = key * self.dims[axis] + c
            key = key * self.dims[-1]
            lo = torch.searchsorted(self.keys, key + low_last)
            hi = torch.searchsorted(self.keys, key + high_last, right=True)
            lows.append(lo)
            highs.append(torch.where(inside, hi, lo))
        return torch.stack(lows, 1), torch.stack(highs, 1)

    @functools.cached_property
    def candidates_per_cell(self) -> torch.Tensor:
        """Points in each cell's neighbourhood (itself included): candidates of each of its points.

        Computed once: the edge bound and the chunks both need it.
        """
        counts = torch.empty(self.num_cells, dtype=torch.int64, device=self.keys.device)
        for first in range(0, self.num_cells, CELLS_PER_LOOKUP):
            stop = min(first + CELLS_PER_LOOKUP, self.num_cells)
            lo, hi = self.neighbour_runs(first, stop)
            counts[first:stop] = (hi - lo).sum(1)
        return counts

    def points_per_cell(self) -> torch.Tensor:
        return self.cell_start[1:] - self.cell_start[:-1]

    def edge_bound(self, loop: bool, max_num_neighbors: int | None) -> int:
        """An upper bound on the edge count (every candidate pair counted), cheap to get."""
        per_target = self.candidates_per_cell - (0 if loop else 1)
        if max_num_neighbors is not None:
            per_target = per_target.clamp(max=max_num_neighbors)
        return int((per_target * self.points_per_cell()).sum())

    def chunks(self, max_pairs: int) -> list[tuple[int, int]]:
        """Runs of targets ``[start, stop)`` (sorted positions) of at most ``max_pairs``
        candidate pairs each, cutting through cells where needed.

        A single target with more candidates than ``max_pairs`` forms a chunk on its own.
        """
        per_target = torch.repeat_interleave(self.candidates_per_cell, self.points_per_cell())
        pairs = torch.cumsum(per_target, 0).cpu()
        chunks, start, done = [], 0, 0
        while start < pairs.shape[0]:
            stop = int(torch.searchsorted(pairs, done + max_pairs, right=True))
            stop = max(stop, start + 1)
            chunks.append((start, stop))
            start, done = stop, int(pairs[stop - 1])
        return chunks

    def candidate_pairs(self, start: int, stop: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Sorted positions ``(a, b)`` of all candidate pairs whose target ``a`` is in ``start:stop``.

        Pairs come grouped by target (``a`` non-decreasing); each unordered neighbour pair
        appears in both directions and every point is paired with itself.
        """
        first = int(torch.searchsorted(self.cell_start, start, right=True)) - 1
        last = int(torch.searchsorted(self.cell_start, stop - 1, right=True))  # one past stop - 1's cell
        lo, hi = self.neighbour_runs(first, last)
        length = hi - lo
        sources = expand_ranges(lo.flatten(), length.flatten())  # each cell's candidates, cell after cell
        per_cell = length.sum(1)
        cell_offset = torch.cumsum(per_cell, 0) - per_cell
        # Targets of each cell within [start, stop): the first and last cells may be cut.
        npoints = self.cell_start[first + 1 : last + 1].clamp(max=stop) - self.cell_start[first:last].clamp(min=start)
        cell_of_target = torch.repeat_interleave(torch.arange(last - first, device=lo.device), npoints)
        targets = torch.arange(start, stop, device=lo.device)
        per_target = per_cell.index_select(0, cell_of_target)
        a = torch.repeat_interleave(targets, per_target)
        b = sources.index_select(0, expand_ranges(cell_offset.index_select(0, cell_of_target), per_target))
        return a, b


def expand_ranges(start: torch.Tensor, length: torch.Tensor) -> torch.Tensor:
    """Concatenation of ``arange(start[i], start[i] + length[i])`` over ``i``."""
    offset = torch.cumsum(length, 0) - length
    total = int(length.sum()) if length.numel() else 0
    return torch.arange(total, device=start.device) + torch.repeat_interleave(start - offset, length, output_size=total)


def _argsort(keys: torch.Tensor) -> torch.Tensor:
    if keys.device.type == "cpu":
        # numpy's argsort is several times faster than torch.sort on CPU (measured with
        # 10**6 int64 keys: 0.06 s vs 0.4 s on two threads); the order within a cell is free.
        return torch.from_numpy(np.argsort(keys.numpy()))
    return torch.argsort(keys)


@dataclass(frozen=True)
class CellGeometry:
    """Cells of side ``size``: point ``x`` is in cell ``floor(x / size) - first`` (per axis)."""

    size: float
    first: tuple[int, ...]
    dims: tuple[int, ...]


def cell_geometry(query: RadiusQuery, size: float | None = None) -> CellGeometry:
    """Cells of side ``>= size`` (default ``inflate(r, max_abs)``) whose keys (batch
    included) fit in int64."""
    low, high = query.bounds
    size = inflate(query.r, query.max_abs) if size is None else size
    while True:
        # floor(x / size) is monotone in x, so the extreme cells are those of the bounds.
        first = tuple(math.floor(value / size) for value in low)
        dims = tuple(math.floor(value / size) - start + 1 for value, start in zip(high, first))
        num_keys = query.num_batches * math.prod(dims)
        if num_keys <= _MAX_KEYS:
            return CellGeometry(size, first, dims)
        # A tiny r over a huge extent: coarser cells keep the keys in int64. Any cell side
        # >= r finds every edge; only the number of candidates grows.
        size *= max(2.0, (num_keys / _MAX_KEYS) ** (1 / len(dims)) * 1.01)


def build_cell_list(query: RadiusQuery, geometry: CellGeometry | None = None) -> CellList:
    """Bucket the query's points (``N >= 1``) into the cells of ``geometry`` (default
    :func:`cell_geometry`)."""
    geometry = cell_geometry(query) if geometry is None else geometry
    pos = query.pos
    cells = (torch.floor(pos / geometry.size) - pos.new_tensor(geometry.first)).to(torch.int64)
    # Rounding cannot put a point outside the grid, but a clamp keeps keys unaliased even if
    # a division differed by an ulp from the bounds'; moving a point by at most one cell
    # towards the inside never separates two cells that were adjacent.
    cells = torch.minimum(cells.clamp_(min=0), cells.new_tensor(geometry.dims) - 1)
    key = torch.zeros_like(cells[:, 0]) if query.batch is None else query.batch
    for axis, size in enumerate(geometry.dims):
        key = key * size + cells[:, axis]
    order = _argsort(key)
    keys = key.index_select(0, order)
    _, counts = torch.unique_consecutive(keys, return_counts=True)
    cell_start = torch.cat([counts.new_zeros(1), torch.cumsum(counts, 0)])
    first_points = order.index_select(0, cell_start[:-1])
    if query.batch is None:
        cell_batch = key.new_zeros(first_points.shape)
    else:
        cell_batch = query.batch.index_select(0, first_points)
    return CellList(
        order=order,
        keys=keys,
        pos=pos.index_select(0, order),
        cell_start=cell_start,
        cell_coord=cells.index_select(0, first_points),
        cell_batch=cell_batch,
        dims=geometry.dims,
    )


# Side of the lower-bound cells, relative to r / (2 sqrt(D)): the shrink absorbs every
# rounding (see edge_lower_bound), which holds for points few enough cells from the centre.
_SURE_SHRINK = 1.0 - 2.0**-20
_SURE_MAX_CELLS = 2.0**20


def edge_lower_bound(query: RadiusQuery) -> int:
    """Edges that surely exist: a lower bound on the edge count, as cheap as a cell list.

    Coordinates are measured from their coordinate-wise median ``c``, so that data far
    from the origin keeps its bound. With cells of side ``s = (1 - 2**-20) r / (2 sqrt(D))``,
    the points of a cell and of its 3**D neighbourhood are neighbours: for points with
    ``|x - c| <= 2**20 s``, the float64 cell indices ``floor((x - c) / s)`` are off by less
    than ``2**-52 * |x - c| / s <= 2**-32`` of a cell, so such points are less than
    ``2 s (1 + 2**-32)`` apart per axis, and ``d2`` stays below ``r * r`` after any
    rounding of the predicate (``r * r`` is a normal float64, see ``_query``). Every
    candidate pair of their cell list is then an edge, and :meth:`CellList.edge_bound`
    counts them. Points farther from ``c`` (or too far for int64 cell keys) are left out:
    the edges among a subset of the points (each target's capped at
    ``max_num_neighbors``) are a subset of all edges. Returns 0 when no point is near ``c``.
    """
    if query.num_nodes == 0:
        return 0
    dim = query.points.shape[1]
    size = query.r / (2.0 * math.sqrt(dim)) * _SURE_SHRINK
    # Also near enough for the keys of the cells within reach to fit in int64.
    reach = min(_SURE_MAX_CELLS, (_MAX_KEYS / query.num_batches) ** (1 / dim) / 2 - 2) * size
    shifted = query.pos - query.pos.median(dim=0).values
    near = (shifted.abs() <= reach).all(dim=1)
    batch = query.batch
    if not bool(near.all()):
        if not bool(near.any()):
            return 0
        shifted = shifted[near]
        batch = None if batch is None else batch[near]
    centred = dataclasses.replace(query, points=shifted, batch=batch)
    geometry = cell_geometry(centred, size)
    if geometry.size != size:
        return 0
    return build_cell_list(centred, geometry).edge_bound(query.loop, query.max_num_neighbors)
