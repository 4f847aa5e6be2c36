"""stgraph.tl: tools that take the data object and write their results into it."""
from ._colocalization import colocalization
from ._domains import domains
from ._enhance import enhance
from ._localization import localization
from ._pretrain import pretrain

__all__ = ["colocalization", "domains", "enhance", "localization", "pretrain"]
