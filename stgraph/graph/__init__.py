"""Exact radius graphs of transcript coordinates.

:func:`radius_graph` connects every ordered pair of points at most ``r`` apart with one
float64 predicate shared by all backends, so results are identical whichever backend
builds them; :func:`radius_graph_tiled` builds the same graph tile by tile (map
:func:`radius_graph_tile` over :func:`iter_tiles` with Dask or ``torch.distributed``
and join the pieces with :func:`merge_tile_edges` to go beyond one machine).
:func:`transcript_graph` builds the graph of a sample's molecules and
:func:`to_anndata` lays it out as an AnnData for squidpy's graph functions.
"""
import importlib

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
    "to_anndata",
    "transcript_graph",
]

# name -> the module that defines it
_LAZY = {"to_anndata": "._anndata", "transcript_graph": ".transcript"}


def __getattr__(name: str):
    # transcript_graph reads SpatialData points through stgraph.io, which imports
    # spatialdata and dask (1.5 s), and to_anndata needs anndata;
    # radius_graph alone, as tl.enhance uses it, needs neither, so they load on first use.
    if name in _LAZY:
        function = getattr(importlib.import_module(_LAZY[name], __name__), name)
        globals()[name] = function
        return function
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
