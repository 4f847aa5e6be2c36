"""``torch_cluster`` backend (optional dependency): its radius search, then the exact predicate.

``torch_cluster.radius_graph`` keeps an arbitrary subset when a target has more than
``max_num_neighbors`` neighbours, so it is asked for all of them (the cell list bounds
each target's neighbour count) and the nearest-``k`` rule is applied afterwards.
"""
from __future__ import annotations

import torch

from ._exact import exact_edges, inflate
from ._query import RadiusQuery
from ._torch_grid import require_fits_cheaply

__all__ = ["torch_cluster_edges", "import_torch_cluster"]


def import_torch_cluster():
    """The ``torch_cluster`` module, or a ValueError saying how to install it."""
    try:
        import torch_cluster
    except (ImportError, OSError) as error:  # OSError: installed but built for another torch
        raise ValueError(
            f"backend='torch_cluster' needs the torch-cluster package, which cannot be imported ({error}); "
            "install it (pip install 'stgraph[cluster]') or use another backend"
        ) from error
    return torch_cluster


def torch_cluster_edges(query: RadiusQuery):
    torch_cluster = import_torch_cluster()
    cells = require_fits_cheaply(query)
    # Every neighbour within the inflated radius (the cell side) lies in the target's
    # 3**D cells, so this cap never drops one.
    cap = int(cells.candidates_per_cell.max())
    pos, batch, back = query.pos, query.batch, None
    if batch is not None and bool((batch[1:] < batch[:-1]).any()):
        back = torch.argsort(batch, stable=True)  # torch_cluster needs batch sorted
        pos, batch = pos.index_select(0, back), batch.index_select(0, back)
    source, target = torch_cluster.radius_graph(
        pos, inflate(query.r, query.max_abs), batch, loop=True, max_num_neighbors=cap, flow="source_to_target"
    )
    if back is not None:
        source, target = back.index_select(0, source), back.index_select(0, target)
    return exact_edges(query, target, source)
