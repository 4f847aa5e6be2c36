"""stgraph.tl: tools that take the data object and write their results into it."""
from ._pretrain import pretrain

__all__ = ["pretrain"]
