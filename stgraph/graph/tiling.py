"""Radius graphs of large samples, built tile by tile with bounded working memory.

A tile is a square of the (x, y) plane (a column in 3D): its *core* points are the
targets it builds edges for, its *halo* points (outside the core, within ``halo`` of the
square) are extra sources. With ``halo >= r`` every source of a core target is in core or
halo, so the per-tile graphs merged give exactly :func:`~stgraph.graph.radius_graph`; a
tile records its ``halo`` so that a larger ``r`` is refused rather than missing edges.
"""
from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from typing import NamedTuple

import torch

from .._validation import check_int
from ._exact import inflate, place_edges
from ._memory import allocate_output
from ._query import as_tensor, check_batch, check_graph_radius, check_positions, check_radius, make_query
from .radius import build_edges, resolve_backend

__all__ = ["Tile", "iter_tiles", "merge_tile_edges", "radius_graph_tile", "radius_graph_tiled"]

_MAX_TILE_KEYS = 2**62
#: Tiles a point may belong to on average (and a tile unit may gather): guards against
#: tiles far smaller than the halo, whose memberships would swamp memory or run for ever.
MAX_MEMBERSHIPS_PER_POINT = 100


class Tile(NamedTuple):
    """Point indices of one tile, each ascending; ``core`` and ``halo`` are disjoint.

    Attributes
    ----------
    core
        Indices of the points the tile builds edges for (targets).
    halo
        Indices of the other points within ``halo_width`` of the tile's square (sources).
    halo_width
        The ``halo`` the tile was built with by :func:`iter_tiles`: the largest radius
        its graph is exact for, so :func:`radius_graph_tile` refuses a larger ``r``.
        ``None`` (the default, for a tile built by hand as ``Tile(core=..., halo=...)``)
        means unknown: the caller vouches that ``halo`` holds every point within ``r``
        of the core, and no radius is refused. Give ``halo_width`` to have it checked.
    """

    core: torch.Tensor
    halo: torch.Tensor
    halo_width: float | None = None


def iter_tiles(pos, tile_size: float, halo: float) -> Iterator[Tile]:
    """Split points into square tiles of side ``tile_size`` with a halo of width ``halo``.

    Tile ``(a, b)`` covers ``a * tile_size <= x < (a + 1) * tile_size`` (likewise in y;
    z is not tiled). Every point is in the core of exactly one tile; the halo of a tile
    holds the other points of its square grown by ``halo`` on every side (so every
    point within distance ``halo`` of the square, and the corners beyond), with a
    margin of a few ulps that keeps the split exact under rounding. Tiles with an empty
    core are skipped. Each point lies in about ``(1 + 2 * halo / tile_size)**2`` tiles:
    use tiles much larger than the halo.

    Parameters
    ----------
    pos
        ``[N, 2]`` or ``[N, 3]`` coordinates (torch tensor or numpy array).
    tile_size
        Side of the square tiles, positive.
    halo
        Width of the halo, non-negative: use the graph's radius ``r``.

    Yields
    ------
    :class:`Tile` of index tensors on ``pos``'s device, with ``halo_width=halo``.

    Raises
    ------
    TypeError, ValueError
        When iterated: for ``pos`` as :func:`~stgraph.graph.radius_graph` refuses it, a
        ``tile_size`` not positive and finite, a ``halo`` negative or not finite, or a
        ``tile_size`` so small that the tiles would not fit in int64 keys or each point
        would lie in more than 100 tiles on average.
    """
    pos = check_positions(pos)
    tile_size = check_radius(tile_size, "tile_size")
    halo = check_radius(halo, "halo", allow_zero=True)
    if pos.shape[0] == 0:
        return
    xy = pos[:, :2].to(torch.float64)
    scaled = xy / tile_size
    width = inflate(halo, float(xy.abs().max())) / tile_size
    own, low, high = torch.floor(scaled), torch.floor(scaled - width), torch.floor(scaled + width)
    first = low.min(0).values
    extent = (high.max(0).values - first + 1).tolist()
    if not all(math.isfinite(e) for e in extent) or math.prod(extent) > _MAX_TILE_KEYS:
        raise ValueError(f"tile_size={tile_size} is too small for the extent of pos: too many tiles")
    rows = int(extent[1])
    own, low, high = ((t - first).to(torch.int64) for t in (own, low, high))
    # Expand (point, tile) memberships: each point touches a small rectangle of tiles.
    span = high - low + 1
    touched = span[:, 0] * span[:, 1]
    # Summed in float64: each point's count fits in int64 (the tile keys do), their sum may not.
    memberships = float(touched.sum(dtype=torch.float64))
    if memberships > MAX_MEMBERSHIPS_PER_POINT * xy.shape[0]:
        raise ValueError(
            f"tile_size={tile_size} is too small for halo={halo}: each point would lie in "
            f"{memberships / xy.shape[0]:.0f} tiles on average; use tiles much larger than the halo"
        )
    point = torch.repeat_interleave(torch.arange(xy.shape[0], device=xy.device), touched)
    step = torch.arange(point.numel(), device=xy.device) - torch.repeat_interleave(
        torch.cumsum(touched, 0) - touched, touched
    )
    tile_x = low[point, 0] + step // span[point, 1]
    tile_y = low[point, 1] + step % span[point, 1]
    key = tile_x * rows + tile_y
    is_core = (tile_x == own[point, 0]) & (tile_y == own[point, 1])
    order = torch.argsort(key, stable=True)  # points stay ascending within a tile
    key, point, is_core = (t.index_select(0, order) for t in (key, point, is_core))
    _, sizes = torch.unique_consecutive(key, return_counts=True)
    for members, core in zip(torch.split(point, sizes.tolist()), torch.split(is_core, sizes.tolist())):
        if bool(core.any()):
            yield Tile(core=members[core], halo=members[~core], halo_width=halo)


def _check_tile(tile, num_points: int, r: float, device: torch.device) -> Tile:
    """``tile`` as a :class:`Tile` of int64 tensors on ``device`` (that of ``pos``: a
    worker may have made the tile on another), after checking what :func:`_tile_edges`
    relies on: a halo at least ``r`` wide where its width is known, indices of points of
    ``pos``, no point twice in core and halo together."""
    if not (isinstance(tile, tuple) and len(tile) in (2, 3)):
        raise TypeError(
            f"tile must be a Tile (core, halo, halo_width) as made by iter_tiles, got {type(tile).__name__}"
        )
    tile = Tile(*tile)
    halo_width = _check_halo_width(tile.halo_width, r)
    parts = []
    for name, part in zip(Tile._fields, tile[:2]):
        part = as_tensor(part, f"tile.{name}")
        if part.dim() != 1 or part.dtype == torch.bool or part.is_floating_point() or part.is_complex():
            raise TypeError(
                f"tile.{name} must be a 1-D tensor of point indices, got {part.dtype} of shape {list(part.shape)}"
            )
        part = part.to(device=device, dtype=torch.int64)
        if part.numel() and (int(part.min()) < 0 or int(part.max()) >= num_points):
            raise ValueError(f"tile.{name} holds indices outside [0, {num_points}) (pos has {num_points} points)")
        parts.append(part)
    members = torch.sort(torch.cat(parts)).values
    if bool((members[1:] == members[:-1]).any()):  # a repeated point would get edges to itself
        raise ValueError("tile repeats points: a point is in the core or the halo of a tile, once")
    return Tile(*parts, halo_width)


def _check_halo_width(halo_width, r: float) -> float | None:
    """``halo_width`` as a float or None, after checking that it is at least ``r``.

    Compared as given, not inflated: :func:`iter_tiles` already grows the halo by the
    rounding margin of :func:`~stgraph.graph._exact.inflate`, which makes ``r == halo``
    exact and nothing beyond it guaranteed.
    """
    if halo_width is None:
        return None
    halo_width = check_radius(halo_width, "tile.halo_width", allow_zero=True)
    if r > halo_width:
        raise ValueError(
            f"r={r!r} is larger than the halo width {halo_width!r} the tile was built with: edges from "
            f"points beyond the halo would be missed; rebuild the tiles with "
            f"iter_tiles(pos, tile_size, halo) and halo >= {r!r}"
        )
    return halo_width


def _tile_edges(pos: torch.Tensor, r, tile: Tile, batch, backend: str, **query_options):
    """``(edge_index, dist or None)`` of :func:`radius_graph_tile` (``batch`` as :func:`check_batch` returns it)."""
    members = torch.sort(torch.cat([tile.core, tile.halo])).values
    is_core = torch.zeros(members.numel(), dtype=torch.bool, device=members.device)
    is_core[torch.searchsorted(members, tile.core)] = True
    tile_batch = None if batch is None else batch[members]
    query = make_query(pos[members], r, tile_batch, **query_options)
    edge_index, dist = build_edges(query, resolve_backend(backend, query.device))
    # members is ascending, so local (target, source) order is the global order.
    keep = is_core[edge_index[1]]
    return members[edge_index[:, keep]], None if dist is None else dist[keep]


def radius_graph_tile(
    pos,
    r: float,
    tile: Tile,
    batch=None,
    *,
    loop: bool = False,
    max_num_neighbors: int | None = None,
    backend: str = "auto",
    return_distance: bool = False,
    max_memory: int | None = None,
):
    """The edges of :func:`~stgraph.graph.radius_graph` whose target is in ``tile.core``.

    Builds the graph of the tile's points only (core and halo, halo made with
    ``halo >= r``), in the global indexing of ``pos``. A plain function of its
    arguments, so it can be mapped over the tiles of :func:`iter_tiles` by any
    executor (Dask, ``torch.distributed``, a process pool) and the pieces merged by
    target. A tile travels by pickle with its ``halo_width``, so the check below
    holds on any worker.

    Parameters
    ----------
    pos
        ``[N, 2]`` or ``[N, 3]`` coordinates of all points, as in
        :func:`~stgraph.graph.radius_graph`; the tile's indices point into it.
    r
        Radius, as in :func:`~stgraph.graph.radius_graph`; at most ``tile.halo_width``.
    tile
        A :class:`Tile` of :func:`iter_tiles`, or a plain ``(core, halo)`` or
        ``(core, halo, halo_width)`` tuple of 1-D integer index tensors.
    batch
        Optional ``[N]`` sample id of every point of ``pos`` (not only the tile's), as
        in :func:`~stgraph.graph.radius_graph`.
    loop, max_num_neighbors, backend, return_distance
        As in :func:`~stgraph.graph.radius_graph`.
    max_memory
        Bytes the tile's output may take, as in :func:`~stgraph.graph.radius_graph`.

    Returns
    -------
    ``edge_index`` (``[2, E_tile]``, sorted by target then source) or, with
    ``return_distance=True``, ``(edge_index, dist)``.

    Raises
    ------
    TypeError, ValueError
        Before any search: for an ``r`` larger than ``tile.halo_width`` (the tile's
        halo would miss edges: build the tiles with ``halo >= r``), a ``tile`` that is
        not a pair of integer index tensors of points of ``pos`` holding no point twice
        (a :class:`Tile` of :func:`iter_tiles`), a ``tile.halo_width`` that is neither
        None nor a non-negative finite number, and for the arguments
        :func:`~stgraph.graph.radius_graph` refuses.
    GraphTooLargeError
        As in :func:`~stgraph.graph.radius_graph`, for the tile's edges.
    """
    pos = as_tensor(pos, "pos")
    r = check_graph_radius(r)
    edge_index, dist = _tile_edges(
        pos,
        r,
        _check_tile(tile, pos.shape[0], r, pos.device),
        check_batch(batch, pos),
        backend,
        loop=loop,
        max_num_neighbors=max_num_neighbors,
        return_distance=return_distance,
        max_memory=max_memory,
    )
    return (edge_index, dist) if return_distance else edge_index


def radius_graph_tiled(
    pos,
    r: float,
    tile_size: float,
    batch=None,
    *,
    loop: bool = False,
    max_num_neighbors: int | None = None,
    backend: str = "auto",
    return_distance: bool = False,
    max_memory: int | None = None,
):
    """:func:`~stgraph.graph.radius_graph`, built tile by tile: the identical result.

    Only one tile's search runs at a time, so the working memory is that of one tile
    plus the edges themselves (the pieces, then the merged output: about twice the
    output at the end). ``tile_size`` (in the units of ``pos``) trades the halo overhead
    (about ``4 r / tile_size`` of extra targets) against the memory of one tile.

    Parameters
    ----------
    pos, r, batch
        As in :func:`~stgraph.graph.radius_graph`.
    tile_size
        Side of the square tiles in the units of ``pos``, positive and finite, as in
        :func:`iter_tiles` (which is called with ``halo=r``).
    loop, max_num_neighbors, backend, return_distance
        As in :func:`~stgraph.graph.radius_graph`.
    max_memory
        Bytes each tile's output, and the merged output, may take, as in
        :func:`~stgraph.graph.radius_graph`.

    Returns
    -------
    As :func:`~stgraph.graph.radius_graph`: ``edge_index``, or ``(edge_index, dist)``
    with ``return_distance=True``.

    Raises
    ------
    TypeError, ValueError
        For the arguments :func:`~stgraph.graph.radius_graph` refuses and the
        ``tile_size`` :func:`iter_tiles` refuses.
    GraphTooLargeError
        As in :func:`~stgraph.graph.radius_graph`, for one tile or the merged output.
    """
    options = {
        "loop": loop,
        "max_num_neighbors": max_num_neighbors,
        "return_distance": return_distance,
        "max_memory": max_memory,
    }
    query = make_query(pos, r, batch, **options)
    resolve_backend(backend, query.device)
    pos = as_tensor(pos, "pos")
    batch = check_batch(batch, pos)
    pieces = (_tile_edges(pos, query.r, tile, batch, backend, **options) for tile in iter_tiles(pos, tile_size, query.r))
    edge_index, dist = merge_tile_edges(pieces, query.num_nodes, max_memory=max_memory)
    if query.num_nodes == 0:  # no tile, so no piece to take the device and dtype from
        edge_index = edge_index.to(query.device)
        dist = None if query.distance_dtype is None else torch.empty(0, dtype=query.distance_dtype, device=query.device)
    return (edge_index, dist) if return_distance else edge_index


def merge_tile_edges(pieces: Iterable, num_nodes: int, *, max_memory: int | None = None):
    """Merge the outputs of :func:`radius_graph_tile` into one graph sorted by target.

    Parameters
    ----------
    pieces
        The ``(edge_index, dist)`` results (``return_distance=True``) or the bare
        ``edge_index`` results of :func:`radius_graph_tile` for every tile of one
        :func:`iter_tiles` split, in any order, e.g. gathered from Dask workers. A
        piece whose edges are not sorted by target is sorted (target, then source).
    num_nodes
        Number of points.
    max_memory
        Byte budget of the output, as in :func:`~stgraph.graph.radius_graph`.

    Returns
    -------
    ``(edge_index, dist)``, ``dist`` None when the pieces hold no distances: the
    graph of :func:`~stgraph.graph.radius_graph` on all points.

    Raises
    ------
    TypeError, ValueError
        If ``num_nodes`` is not a non-negative integer, a piece's ``edge_index`` is not
        a ``[2, E]`` integer tensor with nodes in ``[0, num_nodes)``, two pieces hold
        edges of the same target (a tile passed twice, or tiles of two splits), the
        pieces mix results with and without distances or distances of several dtypes,
        or a piece's distances are not one per edge.
    GraphTooLargeError
        If the merged edges would need more than ``max_memory``, as in
        :func:`~stgraph.graph.radius_graph`.
    """
    num_nodes = check_int("num_nodes", num_nodes, minimum=0)
    kept = []
    counts = None
    for piece in pieces:
        edge_index, dist = piece if isinstance(piece, tuple) else (piece, None)
        _check_piece(edge_index, num_nodes)
        if dist is not None and (not isinstance(dist, torch.Tensor) or dist.shape != (edge_index.shape[1],)):
            shape = list(dist.shape) if isinstance(dist, torch.Tensor) else type(dist).__name__
            raise ValueError(
                f"a piece's distances must be a [E] tensor, one per edge ({edge_index.shape[1]}), got {shape}"
            )
        if counts is None:
            counts = torch.zeros(num_nodes, dtype=torch.int64, device=edge_index.device)
        # Work in the piece's targets only: a pass over all num_nodes per piece would cost
        # (number of tiles) x (number of points).
        if not bool((edge_index[1, 1:] >= edge_index[1, :-1]).all()):
            # Not from radius_graph_tile, which sorts by target, then source: the edges
            # are placed by runs of one target, so sort them the same way.
            order = torch.argsort(edge_index[1] * num_nodes + edge_index[0])
            edge_index, dist = edge_index[:, order], None if dist is None else dist[order]
        target, per_target = torch.unique_consecutive(edge_index[1], return_counts=True)
        if bool((counts[target] > 0).any()):  # each target is in the core of one tile
            raise ValueError(
                "two pieces hold edges of the same target: pass each tile of one iter_tiles split once"
            )
        counts[target] = per_target
        kept.append((edge_index, dist))
    if not kept:
        return torch.zeros(2, 0, dtype=torch.int64), None
    with_dist = {dist is not None for _, dist in kept}
    if len(with_dist) != 1:
        raise ValueError("pieces mix results with and without distances")
    dtypes = {dist.dtype for _, dist in kept if dist is not None}
    if len(dtypes) > 1:
        raise ValueError(
            f"pieces hold distances of several dtypes {sorted(map(str, dtypes))}: build every tile from "
            "positions of one dtype"
        )
    distance_dtype = dtypes.pop() if dtypes else None
    edge_index, dist = allocate_output(int(counts.sum()), distance_dtype, counts.device, max_memory)
    offsets = torch.cumsum(counts, 0) - counts
    while kept:
        (source, target), values = kept.pop()
        place_edges(edge_index, dist, offsets, target, source, values)
    return edge_index, dist


def _check_piece(edge_index, num_nodes: int) -> None:
    """Raise unless ``edge_index`` is a ``[2, E]`` integer tensor of nodes in ``[0, num_nodes)``."""
    if not isinstance(edge_index, torch.Tensor) or edge_index.dim() != 2 or edge_index.shape[0] != 2:
        shape = list(edge_index.shape) if isinstance(edge_index, torch.Tensor) else type(edge_index).__name__
        raise ValueError(f"each piece's edge_index must be a [2, E] tensor, got {shape}")
    if edge_index.dtype == torch.bool or edge_index.is_floating_point() or edge_index.is_complex():
        raise TypeError(f"each piece's edge_index must hold integer node indices, got {edge_index.dtype}")
    if edge_index.numel() and (int(edge_index.min()) < 0 or int(edge_index.max()) >= num_nodes):
        raise ValueError(
            f"a piece has edges of nodes outside [0, {num_nodes}): num_nodes must be the number of points"
        )
