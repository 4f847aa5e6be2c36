"""The transcript graph a tool runs on: the caller's, checked, or built from the data."""
from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd
from spatialdata import SpatialData
from torch_geometric.data import Data

from ..graph import transcript_graph
from ..graph._fields import check_graph_fields
from ..io import _schema as S
from ..io._spatialdata import points_element


def checked_graph(
    graph: Data,
    radius: float | None,
    fields: Sequence[str],
    sdata: SpatialData | None = None,
    points_key: str = S.POINTS_KEY,
    *,
    name: str = "graph",
) -> Data:
    """``graph`` after checking that it has ``fields``, agrees with ``radius`` and holds ``sdata``.

    Parameters
    ----------
    graph
        A transcript graph (:func:`stgraph.graph.transcript_graph`).
    radius
        The radius the caller passed too, or None.
    fields
        Fields the tool reads.
    sdata
        The data the tool writes into: the graph's nodes must be its transcripts
        (``point_index``, the row of each node, defaults to the node order) with the
        same genes and gene vocabulary. None skips this check.
    points_key
        Points element of ``sdata``.
    name
        The argument that gave ``graph``, for the errors.

    Raises
    ------
    TypeError
        If ``graph`` is not a :class:`torch_geometric.data.Data`.
    KeyError
        If ``sdata`` has no points element ``points_key``.
    ValueError
        If a field is missing, ``radius`` differs from the graph's ``radius``, or the
        graph was built from other transcripts than those of ``sdata``.
    """
    check_graph_fields(graph, fields, name)
    graph_radius = graph.get("radius")
    # Equal up to float32 rounding: np.float32(0.3) is the radius 0.3 to the user.
    if radius is not None and graph_radius is not None and not math.isclose(radius, graph_radius, rel_tol=1e-6):
        raise ValueError(f"radius={radius} differs from the graph's radius {graph_radius}: pass one of them")
    if sdata is not None:
        _check_graph_of(graph, sdata, points_key)
    return graph


def _check_graph_of(graph: Data, sdata: SpatialData, points_key: str) -> None:
    # Only the gene column is read: the check costs one column, not the whole frame.
    genes = pd.Series(points_element(sdata, points_key)[S.GENE].compute()).astype("category")
    hint = "the graph was not built from these transcripts; build it with stgraph.graph.transcript_graph(sdata, ...)"
    if graph.num_nodes != len(genes):
        raise ValueError(f"graph has {graph.num_nodes} nodes but points {points_key!r} have {len(genes)} rows: {hint}")
    names = [str(g) for g in genes.cat.categories]
    if list(graph.gene_names) != names:
        raise ValueError(f"the graph's gene vocabulary differs from that of points {points_key!r}: {hint}")
    point_index = graph.get("point_index")
    rows = np.arange(len(genes)) if point_index is None else np.asarray(point_index, dtype=np.int64)
    if rows.shape != (len(genes),) or not np.array_equal(np.sort(rows), np.arange(len(genes))):
        raise ValueError(f"the graph's point_index is not a permutation of the rows of points {points_key!r}: {hint}")
    if not np.array_equal(genes.cat.codes.to_numpy()[rows], graph.gene.numpy()):
        raise ValueError(f"the graph's genes differ from those of points {points_key!r}: {hint}")


def graph_for(
    sdata: SpatialData,
    radius: float | None,
    graph: Data | None,
    within: str,
    points_key: str,
    fields: Sequence[str] = ("gene", "edge_index", "cell", "gene_names"),
) -> Data:
    """``graph`` checked against ``sdata`` (:func:`checked_graph`), or the graph of ``sdata`` at ``radius``."""
    if graph is not None:
        return checked_graph(graph, radius, fields, sdata, points_key)
    if radius is None:
        raise ValueError("pass radius= (µm) to build the transcript graph, or graph=")
    return transcript_graph(sdata, radius, within=within, points_key=points_key)
