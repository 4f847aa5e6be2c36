"""Gene colocalization on a transcript graph.

:func:`score_pairs` is the model-free core: it takes a graph, an optional edge
weight (attention), genes and cells, and returns a :class:`ColocalizationResult`
with the attention (or uniform-weight) score, colocation quotients and the
proximal-pairs binomial test of every ordered gene pair joined by an edge.
"""
from ._fdr import benjamini_hochberg
from ._result import PAIR_COLUMNS, PER_CELL_COLUMNS, ColocalizationResult
from ._score import score_pairs

__all__ = [
    "ColocalizationResult",
    "PAIR_COLUMNS",
    "PER_CELL_COLUMNS",
    "benjamini_hochberg",
    "score_pairs",
]
