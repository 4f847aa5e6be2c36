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

import importlib  # noqa: E402

__all__ = ["datasets", "graph", "io", "nn", "pl", "tl", "__version__"]
_SUBMODULES = frozenset(__all__) - {"__version__"}


def __getattr__(name: str):
    # Namespaces load on first use: the console command's --help, and any script
    # that needs one of them, does not pay for importing torch, PyG and spatialdata
    # all together (5 s).
    if name in _SUBMODULES:
        module = importlib.import_module(f".{name}", __name__)
        globals()[name] = module
        return module
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | _SUBMODULES)
