"""Mini-batches of transcript graphs: whole cells or spatial tiles with a context halo.

A *unit* is a small :class:`~torch_geometric.data.Data` cut from a transcript graph:
the induced subgraph on some nodes, with fields

- ``gene``, ``pos``, ``edge_index`` (sorted by target), ``edge_dist``, ``is_control``,
  ``cell`` as in the graph;
- ``origin`` ``[n, n_dims]``: the origin of the positional encoding, computed once
  on the whole graph so that a node gets the same origin in every unit;
- ``core`` ``[n]`` bool: the nodes the unit is responsible for (loss, evaluation);
- ``node`` ``[n]``: their indices in the whole graph.

*Cell units* hold one cell's transcripts (all core) and its within-cell edges.
*Tile units* hold the transcripts of one square tile of the x–y plane (core) plus
every transcript within ``halo`` µm of the tile (context). A message travels at most
one edge (≤ radius) per layer, so with ``halo >= n_layers * radius`` an encoder
gives the core nodes of a tile exactly the embeddings it gives them on the whole
graph. Batches are concatenations of units (:func:`collate_units`).
"""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import torch
from torch import Tensor
from torch_geometric.data import Batch, Data

from .._validation import check_int, check_real, check_seed
from ..graph._exact import inflate
from ..graph._fields import check_graph_fields
from ..graph.tiling import MAX_MEMBERSHIPS_PER_POINT
from ..nn.positional import transcript_origin


class IncomingEdges:
    """Edges of a graph grouped by target, for fast induced subgraphs.

    Parameters
    ----------
    edge_index
        ``[2, E]`` edges, row 0 source, row 1 target.
    num_nodes
        Number of nodes.
    """

    def __init__(self, edge_index: Tensor, num_nodes: int) -> None:
        target = edge_index[1]
        # Graphs of stgraph.graph are sorted by target already: no sort, and the sources
        # are a view (no copies of E-long arrays).
        if bool((target[1:] >= target[:-1]).all()):
            self._order = None
            self.source = edge_index[0]
        else:
            self._order = torch.argsort(target, stable=True)
            self.source = edge_index[0, self._order]
        counts = torch.bincount(target, minlength=num_nodes)
        self.ptr = torch.cat([counts.new_zeros(1), counts.cumsum(0)])
        self.num_nodes = num_nodes

    def induced(self, nodes: Tensor) -> tuple[Tensor, Tensor]:
        """Edges among ``nodes`` (sorted, unique).

        Returns the ``[2, e]`` edges relabelled to positions in ``nodes``, sorted by
        target, and their ``[e]`` ids in the original ``edge_index``.
        """
        slot, count = self.slots(nodes)
        # A binary search in the sorted nodes, not an N-long lookup table: that costs
        # O(N) per unit, which dominates on million-node graphs cut into many units.
        neighbour = self.source[slot]
        source = torch.searchsorted(nodes, neighbour).clamp_(max=nodes.numel() - 1)
        keep = nodes[source] == neighbour
        target = torch.repeat_interleave(torch.arange(nodes.numel()), count)
        return torch.stack([source[keep], target[keep]]), self.edge_ids(slot[keep])

    def edge_ids(self, slot: Tensor) -> Tensor:
        """Ids in the original ``edge_index`` of the edges at ``slot`` of :attr:`source`."""
        return slot if self._order is None else self._order[slot]

    def sources(self, nodes: Tensor) -> Tensor:
        """Source of every edge into ``nodes`` (with repeats), target by target."""
        return self.source[self.slots(nodes)[0]]

    def slots(self, nodes: Tensor) -> tuple[Tensor, Tensor]:
        """Positions in :attr:`source` of the edges into ``nodes``, and their number per node."""
        start = self.ptr[nodes]
        count = self.ptr[nodes + 1] - start
        offset = torch.arange(int(count.sum())) - torch.repeat_interleave(count.cumsum(0) - count, count)
        return torch.repeat_interleave(start, count) + offset, count


def _check_graph(graph: Data, fields: tuple[str, ...] = ("gene", "pos", "edge_index")) -> None:
    check_graph_fields(graph, fields)
    finite = torch.isfinite(graph.pos).all(dim=1)
    if not bool(finite.all()):  # it would place no tile and make its cell's origin NaN
        row = int(torch.nonzero(~finite)[0, 0])
        raise ValueError(
            f"the transcript graph's pos has {int((~finite).sum())} node(s) with NaN or infinite coordinates "
            f"(first: node {row}, {graph.pos[row].tolist()})"
        )


def node_origin(graph: Data, tile_size: float | None = None) -> Tensor:
    """Origin of every node: its cell's centroid, or for unassigned nodes the centre
    of their ``tile_size`` grid square (the graph centroid when ``tile_size`` is None)."""
    return transcript_origin(graph.pos, graph.get("cell"), tile_size=tile_size)


def _make_unit(graph: Data, edges: IncomingEdges, origin: Tensor, nodes: Tensor, core: Tensor) -> Data:
    edge_index, edge_id = edges.induced(nodes)
    pos = graph.pos[nodes]
    if graph.get("edge_dist") is not None:
        edge_dist = graph.edge_dist[edge_id]
    else:
        edge_dist = (pos[edge_index[0]] - pos[edge_index[1]]).norm(dim=-1)
    n = nodes.numel()
    unit = Data(
        gene=graph.gene[nodes],
        pos=pos,
        edge_index=edge_index,
        edge_dist=edge_dist,
        origin=origin[nodes],
        core=core,
        node=nodes,
        num_nodes=n,
    )
    for field in ("is_control", "cell"):
        value = graph.get(field)
        if value is not None:
            unit[field] = value[nodes]
    if unit.get("is_control") is None:
        unit.is_control = torch.zeros(n, dtype=torch.bool)
    return unit


def _allowed_mask(graph: Data, allowed: Tensor | None) -> Tensor:
    if allowed is None:
        return torch.ones(graph.num_nodes, dtype=torch.bool)
    if allowed.shape != (graph.num_nodes,) or allowed.dtype != torch.bool:
        raise ValueError(f"allowed must be a bool tensor of shape [{graph.num_nodes}]")
    return allowed


def cell_units(graph: Data, allowed: Tensor | None = None) -> list[Data]:
    """One unit per cell: its transcripts and the edges among them.

    Unassigned transcripts (``cell == -1``) belong to no unit.

    Parameters
    ----------
    graph
        Transcript graph with a ``cell`` field.
    allowed
        ``[N]`` bool; nodes outside it are left out of every unit.

    Returns
    -------
    The units, by increasing cell index.

    Raises
    ------
    TypeError
        If ``graph`` is not a :class:`torch_geometric.data.Data`.
    ValueError
        If the graph lacks ``gene``, ``pos``, ``edge_index`` or ``cell``, a position
        is NaN or infinite, or ``allowed`` is not a ``[N]`` bool tensor.
    """
    _check_graph(graph, ("gene", "pos", "edge_index", "cell"))
    allowed = _allowed_mask(graph, allowed)
    edges = IncomingEdges(graph.edge_index, graph.num_nodes)
    origin = node_origin(graph)
    cell = torch.where(allowed, graph.cell, torch.full_like(graph.cell, -1))
    order = torch.argsort(cell, stable=True)
    ids, counts = torch.unique_consecutive(cell[order], return_counts=True)
    units = []
    for cell_id, nodes in zip(ids.tolist(), torch.split(order, counts.tolist())):
        if cell_id >= 0:
            units.append(_make_unit(graph, edges, origin, nodes, torch.ones(nodes.numel(), dtype=torch.bool)))
    return units


def tile_units(
    graph: Data, tile_size: float, halo: float, allowed: Tensor | None = None
) -> list[Data]:
    """One unit per non-empty square tile of side ``tile_size`` µm, with a context halo.

    Tiles form a grid anchored at x = y = 0 (so unassigned transcripts get the
    tile centres of :func:`node_origin` as origin).

    Parameters
    ----------
    graph
        Transcript graph.
    tile_size
        Side of the tiles in µm.
    halo
        Width in µm of the context band around each tile (widened by a few ulps so
        that rounding drops no node on a border, and by one rounding step of ``pos``'s
        dtype, for edges built from the unrounded coordinates); ``n_layers * radius``
        makes core embeddings exact.
    allowed
        ``[N]`` bool; nodes outside it are neither core nor context of any unit.

    Returns
    -------
    The units, one per tile holding an allowed node.

    Raises
    ------
    TypeError, ValueError
        If ``graph`` is not a :class:`torch_geometric.data.Data` (TypeError), ``tile_size``
        is not a finite number > 0, ``halo`` not a finite number >= 0,
        ``tile_size`` is so much smaller than ``halo`` that a unit would gather more
        than 100 tiles, the graph lacks ``gene``, ``pos`` or ``edge_index``, a node's position is NaN
        or infinite, or ``allowed`` is not a ``[N]`` bool tensor.
    """
    _check_graph(graph)
    tile_size = check_real("tile_size", tile_size)
    halo = check_real("halo", halo, allow_zero=True)
    allowed = _allowed_mask(graph, allowed)
    edges = IncomingEdges(graph.edge_index, graph.num_nodes)
    origin = node_origin(graph, tile_size)
    xy = graph.pos[:, :2].to(torch.float64).numpy()
    keys = np.floor(xy / tile_size).astype(np.int64)
    candidates = np.flatnonzero(allowed.numpy())
    members: dict[tuple[int, int], np.ndarray] = {}
    order = np.lexsort((keys[candidates, 1], keys[candidates, 0]))
    sorted_nodes = candidates[order]
    tile_keys, starts = np.unique(keys[sorted_nodes], axis=0, return_index=True)
    for key, nodes in zip(map(tuple, tile_keys), np.split(sorted_nodes, starts[1:])):
        members[key] = nodes
    # floor(x / tile_size) and the tile bounds k * tile_size round differently: a node
    # can lie an ulp outside its own tile, and a neighbour exactly halo away an ulp
    # outside the halo. A margin of a few ulps keeps both in the unit. And pos may be
    # the coordinates rounded (transcript_graph's float32 of the float64 it built the
    # edges from): a neighbour within the radius lies up to a rounding step farther.
    max_abs = float(np.abs(xy).max()) if len(xy) else 0.0
    margin = inflate(halo + torch.finfo(graph.pos.dtype).eps * max_abs, max_abs)
    reach = math.ceil(margin / tile_size)
    # Each unit looks up the (2 reach + 1)^2 tiles around its own, and each node is
    # copied into as many units: with tiles far smaller than the halo this never ends.
    gathered = (2 * reach + 1) ** 2
    if gathered > MAX_MEMBERSHIPS_PER_POINT:
        raise ValueError(
            f"tile_size={tile_size} is too small for halo={halo}: each unit would gather the transcripts of "
            f"{gathered} tiles; use tiles much larger than the halo (in stgraph.tl.pretrain, n_layers * radius)"
        )
    units = []
    for (kx, ky), core_nodes in members.items():
        near = [
            members[(kx + dx, ky + dy)]
            for dx in range(-reach, reach + 1)
            for dy in range(-reach, reach + 1)
            if (kx + dx, ky + dy) in members
        ]
        pool = np.concatenate(near)
        low = np.array([kx, ky]) * tile_size - margin
        high = np.array([kx + 1, ky + 1]) * tile_size + margin
        inside = np.all((xy[pool] >= low) & (xy[pool] <= high), axis=1)
        nodes = torch.from_numpy(np.sort(pool[inside]))
        core = torch.from_numpy(np.isin(nodes.numpy(), core_nodes))
        units.append(_make_unit(graph, edges, origin, nodes, core))
    return units


def epoch_order(n_units: int, epoch: int, seed: int) -> Tensor:
    """The seeded permutation of units for one epoch (independent of any global RNG)."""
    return torch.from_numpy(np.random.default_rng([seed, epoch]).permutation(n_units))


def batch_indices(n_units: int, step: int, batch_size: int, seed: int) -> list[int]:
    """Indices of the units in the mini-batch of global step ``step``.

    Each epoch visits every unit once in the order :func:`epoch_order`, in
    ``ceil(n_units / batch_size)`` batches; a step's batch depends only on
    ``(step, batch_size, seed)``, which makes resumed training follow the same path.

    Parameters
    ----------
    n_units
        Number of units (graphs) to draw from, at least 1.
    step
        Global optimisation step, counted from 0 across epochs: step ``s`` is batch
        ``s % ceil(n_units / batch_size)`` of epoch ``s // ceil(n_units / batch_size)``.
    batch_size
        Units per batch, at least 1; the last batch of an epoch holds the remainder.
    seed
        Seed of the per-epoch permutations, an integer in ``[0, 2**32 - 1]``.

    Returns
    -------
    The unit indices of the batch, at most ``batch_size`` of them.

    Raises
    ------
    ValueError
        If ``n_units < 1``, ``batch_size < 1``, ``step`` is negative, or ``seed`` is
        negative or above ``2**32 - 1``.
    TypeError
        If ``n_units``, ``step``, ``batch_size`` or ``seed`` is not an integer.
    """
    if check_int("n_units", n_units, minimum=0) < 1:
        raise ValueError("no units to draw batches from")
    step = check_int("step", step, minimum=0)
    batch_size = check_int("batch_size", batch_size)
    seed = check_seed(seed)
    per_epoch = math.ceil(n_units / batch_size)
    epoch, i = divmod(step, per_epoch)
    return epoch_order(n_units, epoch, seed)[i * batch_size : (i + 1) * batch_size].tolist()


def collate_units(units: Sequence[Data]) -> Batch:
    """Concatenate units into one disconnected graph (a PyG :class:`~torch_geometric.data.Batch`).

    Parameters
    ----------
    units
        The :class:`~torch_geometric.data.Data` units to join, e.g. those of
        :func:`cell_units` or :func:`tile_units` picked by :func:`batch_indices`;
        any sequence or iterable, not modified.

    Raises
    ------
    ValueError
        If ``units`` is empty: a batch of no unit would have no fields at all.
    """
    units = list(units)
    if not units:
        raise ValueError("collate_units needs at least one unit, got none")
    return Batch.from_data_list(units)
