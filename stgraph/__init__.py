"""stgraph: transcript-level spatial transcriptomics on PyTorch Geometric.

Namespaces follow scverse: :mod:`stgraph.io` (readers), :mod:`stgraph.datasets`
(sample and simulated data), :mod:`stgraph.graph` (radius graphs), :mod:`stgraph.nn`
(layers and encoder), :mod:`stgraph.tl` (tools) and :mod:`stgraph.pl` (plots). The
building blocks of the tools, :mod:`stgraph.models`, :mod:`stgraph.data`,
:mod:`stgraph.localization`, :mod:`stgraph.coloc`, :mod:`stgraph.domains` and
:mod:`stgraph.spots`, are attributes too; every namespace loads on first use.
"""
from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("stgraph")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.1.0"

import importlib  # noqa: E402

__all__ = ["datasets", "graph", "io", "nn", "pl", "tl", "__version__"]
# The building blocks the tools are made of (README, "What is in the package") are
# public too, for retraining and benchmarking: `stgraph.models.load_model(...)` must
# work after a bare `import stgraph`, not only once a tool has imported them.
_BUILDING_BLOCKS = frozenset({"coloc", "data", "domains", "localization", "models", "spots"})
_SUBMODULES = (frozenset(__all__) - {"__version__"}) | _BUILDING_BLOCKS


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
