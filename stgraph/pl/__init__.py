"""stgraph.pl: plots of the results of :mod:`stgraph.tl`."""
from ._colocalization import colocalization_heatmap, colocalization_network
from ._domains import domains
from ._enhance import enhance
from ._localization import localization_composition, localization_transcripts

__all__ = [
    "colocalization_heatmap",
    "colocalization_network",
    "domains",
    "enhance",
    "localization_composition",
    "localization_transcripts",
]
