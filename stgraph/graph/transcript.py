"""Transcript graphs: every molecule a node, edges to all molecules within a radius."""
from __future__ import annotations

import dataclasses
from typing import Literal

import numpy as np
import pandas as pd
import torch
from torch_geometric.data import Data

from ..io import _schema as S
from ..io import transcripts_frame
from ..io._points import check_numeric, flag_values
from ._query import check_graph_radius, check_positions, make_query
from .ordering import spatial_order
from .radius import build_edges, resolve_backend


def transcript_graph(
    data,
    radius: float,
    *,
    within: Literal["all", "cell"] = "all",
    max_num_neighbors: int | None = None,
    points_key: str = S.POINTS_KEY,
    backend: str = "auto",
    order: Literal["input", "spatial"] = "input",
) -> Data:
    """Build the radius graph of the transcripts of a sample.

    Parameters
    ----------
    data
        A :class:`spatialdata.SpatialData` with a points element in the stgraph
        schema (see :mod:`stgraph.io`), or a :class:`pandas.DataFrame` with the
        schema's columns (at least ``x``, ``y``, ``gene``).
    radius
        Radius in µm: molecule ``j`` is a neighbour of ``i`` when
        ``‖pos_i − pos_j‖ ≤ radius``, in 3D (x, y, z) when the points have ``z``
        (where every ``z`` is equal, the planar graph).
    within
        ``"all"`` connects every pair within the radius; ``"cell"`` keeps only
        pairs assigned to the same cell (unassigned molecules get no edges).
    max_num_neighbors
        Keep at most this many nearest in-range neighbours per molecule; equally near
        ones go to the smaller node index (as in :func:`~stgraph.graph.radius_graph`),
        so ``order="spatial"`` can keep another of two tied neighbours than ``"input"``.
    points_key
        Name of the points element when ``data`` is a SpatialData.
    backend
        Radius-graph backend, see :func:`stgraph.graph.radius_graph`.
    order
        ``"input"``: node ``i`` is row ``i`` of the points. ``"spatial"``: nodes are
        numbered along a Z-order curve (:func:`stgraph.graph.spatial_order` with cells
        of side ``radius``), so neighbours get close indices; ``point_index`` maps
        nodes back to rows. Files are often sorted by gene or field of view, and
        whole-graph attention over a million such nodes costs about twice as much
        per edge as in spatial order (``benchmarks/attention.py``).

    Returns
    -------
    :class:`torch_geometric.data.Data` with

    - ``gene`` (``LongTensor[N]``): index into ``gene_names``;
    - ``pos`` (``FloatTensor[N, 2 | 3]``): coordinates in µm;
    - ``edge_index`` (``LongTensor[2, E]``), source in row 0, sorted by target;
    - ``edge_dist`` (``FloatTensor[E]``): edge lengths in µm;
    - ``cell`` (``LongTensor[N]``): index into ``cell_names``, −1 if unassigned;
    - ``in_nucleus`` (``BoolTensor[N]``), only when the data tells;
    - ``is_control`` (``BoolTensor[N]``): control probes and blanks;
    - ``point_index`` (``LongTensor[N]``): row of each node in the points;
    - ``gene_names``, ``cell_names`` (lists of str) and ``radius`` (float).

    Edges and lengths are those of the points' coordinates in float64, exact as in
    :func:`~stgraph.graph.radius_graph`, not those of ``pos``: float32 spaces values
    0.008 µm apart at 1e5 µm from the origin (a global frame), 0.06 µm at 1e6 µm.

    Raises
    ------
    TypeError
        If a coordinate column of a DataFrame ``data`` is not numeric.
    ValueError
        For an unknown ``within`` or ``order``, a bad ``radius``, missing columns, a
        transcript without gene, non-finite coordinates, or ``is_control`` /
        ``in_nucleus`` values other than booleans or 0/1 (missing ones count as False).
    KeyError
        If ``data`` is a SpatialData without the points element ``points_key``.
    GraphTooLargeError
        (a ValueError) As in :func:`~stgraph.graph.radius_graph`: the edges would not
        fit in the memory available.
    """
    if within not in ("all", "cell"):
        raise ValueError(f"within must be 'all' or 'cell', got {within!r}")
    if order not in ("input", "spatial"):
        raise ValueError(f"order must be 'input' or 'spatial', got {order!r}")
    radius = check_graph_radius(radius, "radius")
    frame = _points_frame(data, points_key)
    axes = [S.X, S.Y] + ([S.Z] if S.Z in frame.columns else [])
    genes = frame[S.GENE].astype("category")
    if genes.isna().any():  # they would be gene -1, an index into no vocabulary
        raise ValueError(f"column {S.GENE!r} has {int(genes.isna().sum())} missing value(s): every node needs a gene")
    cells = frame[S.CELL].astype("category") if S.CELL in frame.columns else None
    if within == "cell" and cells is None:
        raise ValueError(f"within='cell' needs a {S.CELL!r} column in the transcripts")
    coords = torch.from_numpy(frame[axes].to_numpy(dtype=np.float64, copy=True))
    nodes = {
        "pos": check_positions(coords.to(torch.float32)),
        "gene": torch.from_numpy(genes.cat.codes.to_numpy(dtype=np.int64)),
        "cell": (
            torch.from_numpy(cells.cat.codes.to_numpy(dtype=np.int64))
            if cells is not None
            else torch.full((len(frame),), -1, dtype=torch.long)
        ),
        "is_control": _bool_column(frame, S.IS_CONTROL),
        "point_index": torch.arange(len(frame)),
    }
    if S.IN_NUCLEUS in frame.columns:
        nodes["in_nucleus"] = _bool_column(frame, S.IN_NUCLEUS)
    if order == "spatial" and len(frame):
        perm = spatial_order(coords, radius)
        nodes = {key: value.index_select(0, perm) for key, value in nodes.items()}
        coords = coords.index_select(0, perm)

    batch = _isolating_batch(nodes["cell"]) if within == "cell" else None
    edge_index, edge_dist = _exact_edges(coords, radius, batch, max_num_neighbors, backend)
    graph = Data(
        **nodes,
        edge_index=edge_index,
        edge_dist=edge_dist,
        gene_names=[str(g) for g in genes.cat.categories],
        cell_names=[str(c) for c in cells.cat.categories] if cells is not None else [],
        radius=float(radius),
    )
    return graph


def _exact_edges(coords: torch.Tensor, radius: float, batch, max_num_neighbors, backend: str):
    """Edges and float32 lengths of the radius graph of the float64 ``coords``.

    Built from the coordinates as read, not from their float32 ``pos``: in global
    frames (1e4 to 1e6 µm from the origin) float32 rounding moves molecules by up to
    0.03 µm, enough to add or drop edges near the radius. The lengths are the exact
    float64 ones rounded once to float32, the dtype of ``pos``.
    """
    query = make_query(coords, radius, batch, max_num_neighbors=max_num_neighbors, return_distance=True)
    query = dataclasses.replace(query, distance_dtype=torch.float32)
    return build_edges(query, resolve_backend(backend, query.device))


def _points_frame(data, points_key: str) -> pd.DataFrame:
    if isinstance(data, pd.DataFrame):
        missing = [c for c in (S.X, S.Y, S.GENE) if c not in data.columns]
        if missing:
            raise ValueError(
                f"transcript DataFrame lacks columns {missing}; map your columns with "
                "stgraph.io.read_transcripts(df, x=..., y=..., gene=...) first"
            )
        for axis in (S.X, S.Y, S.Z):
            if axis in data.columns:
                check_numeric(data[axis])
        return data
    return transcripts_frame(data, points_key=points_key)


def _isolating_batch(cell: torch.Tensor) -> torch.Tensor:
    """Batch ids equal to the cell, with every unassigned molecule alone in its batch."""
    batch = cell.clone()
    unassigned = batch < 0
    n_cells = int(batch.max()) + 1 if batch.numel() else 0
    batch[unassigned] = n_cells + torch.arange(int(unassigned.sum()))
    return batch


def _bool_column(frame: pd.DataFrame, column: str) -> torch.Tensor:
    """``frame[column]`` as a bool tensor (missing values False; all False without the column)."""
    if column not in frame.columns:
        return torch.zeros(len(frame), dtype=torch.bool)
    return torch.from_numpy(flag_values(frame[column], missing_false=True))
