"""stgraph.tl: tools that take the data object and write their results into it.

Each tool loads on first use: ``stgraph.tl.enhance`` on spots does not pay for
importing what only the transcript tools need (spatialdata, dask, the coloc and
domain modules; 2 s of the 5 s that importing every tool took).
"""
import importlib

# tool name -> the module that defines it
_TOOLS = {
    "colocalization": "._colocalization",
    "domains": "._domains",
    "enhance": "._enhance",
    "localization": "._localization",
    "pretrain": "._pretrain",
}
__all__ = sorted(_TOOLS)


def __getattr__(name: str):
    if name in _TOOLS:
        tool = getattr(importlib.import_module(_TOOLS[name], __name__), name)
        globals()[name] = tool
        return tool
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_TOOLS))
