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


def __getattr__(name: str):
    # transcript_graph reads SpatialData points through stgraph.io, which imports
    # spatialdata and dask (1.5 s); radius_graph alone, as tl.enhance uses it, needs
    # neither, so that module loads on first use.
    if name == "transcript_graph":
        from .transcript import transcript_graph

        globals()[name] = transcript_graph
        return transcript_graph
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | {"transcript_graph"})
