"""stgraph: transcript-level spatial transcriptomics on PyTorch Geometric.

Namespaces follow scverse: :mod:`stgraph.io` (readers), :mod:`stgraph.datasets`
(sample and simulated data), :mod:`stgraph.graph` (radius graphs), :mod:`stgraph.nn`
(layers and encoder), :mod:`stgraph.tl` (tools) and :mod:`stgraph.pl` (plots).
"""
from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("stgraph")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.1.0"

from . import datasets, graph, io, nn, pl, tl  # noqa: E402

__all__ = ["datasets", "graph", "io", "nn", "pl", "tl", "__version__"]
