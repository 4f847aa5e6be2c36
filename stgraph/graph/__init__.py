"""Exact radius graphs of transcript coordinates.

:func:`radius_graph` connects every ordered pair of points at most ``r`` apart with one
float64 predicate shared by all backends, so results are identical whichever backend
builds them; :func:`radius_graph_tiled` builds the same graph tile by tile (map
:func:`radius_graph_tile` over :func:`iter_tiles` with Dask or ``torch.distributed``
and join the pieces with :func:`merge_tile_edges` to go beyond one machine).
"""
from ._memory import GraphTooLargeError
from .ordering import spatial_order
from .radius import BACKENDS, available_backends, radius_graph
from .tiling import Tile, iter_tiles, merge_tile_edges, radius_graph_tile, radius_graph_tiled
from .transcript import transcript_graph

__all__ = [
    "BACKENDS",
    "GraphTooLargeError",
    "Tile",
    "available_backends",
    "iter_tiles",
    "merge_tile_edges",
    "radius_graph",
    "radius_graph_tile",
    "radius_graph_tiled",
    "spatial_order",
    "transcript_graph",
]
