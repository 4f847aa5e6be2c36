"""The check that a transcript graph has the fields a function reads, in one wording for all of them."""
from __future__ import annotations

from collections.abc import Sequence

from torch_geometric.data import Data


def check_graph_fields(graph: Data, fields: Sequence[str], name: str = "graph") -> Data:
    """``graph`` after checking that it is a :class:`torch_geometric.data.Data` with ``fields``.

    Parameters
    ----------
    graph
        A transcript graph (:func:`stgraph.graph.transcript_graph`).
    fields
        Fields the caller reads.
    name
        The argument that gave ``graph``, for the errors.

    Raises
    ------
    TypeError
        If ``graph`` is not a :class:`torch_geometric.data.Data`.
    ValueError
        If a field is missing or None.
    """
    if not isinstance(graph, Data):
        raise TypeError(
            f"{name} must be a torch_geometric Data (stgraph.graph.transcript_graph), got {type(graph).__name__}"
        )
    missing = [field for field in fields if graph.get(field) is None]
    if missing:
        raise ValueError(f"{name} lacks the field(s) {missing}; build it with stgraph.graph.transcript_graph")
    return graph
