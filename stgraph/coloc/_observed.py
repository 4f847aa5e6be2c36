"""Edge sums of the gene pairs observed in each cell.

Everything is grouped at the (cell, pair) level first, over the pairs that occur
on at least one within-cell edge, and pooled over cells from there; memory is
linear in the number of edges.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ._edges import CellEdges, row_normalised


@dataclass(frozen=True)
class ObservedPairs:
    """Per (cell, pair) sums over the within-cell edges.

    Attributes
    ----------
    pair
        Sorted codes ``gene_a * n_genes + gene_b`` of the observed pairs, ``(P,)``.
    row_pair, row_cell
        Pair index (into ``pair``) and cell of each observed (cell, pair), ``(Q,)``.
    share
        Sum over the edges ``j -> i`` with ``gene[i] = A``, ``gene[j] = B`` in the
        cell of :func:`~stgraph.coloc._edges.row_normalised` (each target spreads
        one unit over its distinct within-cell neighbours): the Leslie-Kronenfeld
        numerator.
    n_with_neighbour
        A transcripts with at least one B neighbour: Bento's numerator.
    mass
        Sum of the given edge weights (equal to ``share`` when none are given).
    """

    pair: np.ndarray
    row_pair: np.ndarray
    row_cell: np.ndarray
    share: np.ndarray
    n_with_neighbour: np.ndarray
    mass: np.ndarray

    @property
    def n_pairs(self) -> int:
        return self.pair.size

    def pooled(self, values: np.ndarray) -> np.ndarray:
        """Sum a per (cell, pair) quantity over cells."""
        return np.bincount(self.row_pair, weights=values, minlength=self.n_pairs).astype(np.float64)

    def n_cells(self) -> np.ndarray:
        """Cells in which each pair occurs on an edge."""
        return np.bincount(self.row_pair, minlength=self.n_pairs)


def observe_pairs(edges: CellEdges, weight: np.ndarray | None = None) -> ObservedPairs:
    """Group the within-cell edges by (cell, ordered gene pair).

    Parameters
    ----------
    edges
        Within-cell edges.
    weight
        Edge weights for ``mass``; None uses the row-normalised unit weights.
    """
    n_pair_codes = edges.n_genes**2
    if edges.n_cells and n_pair_codes > np.iinfo(np.int64).max // edges.n_cells:
        raise ValueError("too many cells x genes^2 to encode (cell, pair) in 64 bits")
    share_weight = row_normalised(edges)
    mass_weight = share_weight if weight is None else weight
    key = edges.cell * n_pair_codes + edges.pair
    row_key, inverse = np.unique(key, return_inverse=True)
    n_rows = row_key.size

    def per_row(values: np.ndarray) -> np.ndarray:
        return np.bincount(inverse, weights=values, minlength=n_rows).astype(np.float64)

    # Bento counts A transcripts with >= 1 B neighbour: flag the first edge of each
    # (target, neighbour gene) combination.
    combination = edges.dst * edges.n_genes + edges.gene[edges.src]
    order = np.argsort(combination, kind="stable")
    first = np.ones(order.size, dtype=bool)
    first[1:] = combination[order[1:]] != combination[order[:-1]]
    flag = np.zeros(order.size)
    flag[order[first]] = 1.0

    pair, row_pair = np.unique(row_key % n_pair_codes, return_inverse=True)
    return ObservedPairs(
        pair=pair,
        row_pair=row_pair,
        row_cell=row_key // n_pair_codes,
        share=per_row(share_weight),
        n_with_neighbour=per_row(flag),
        mass=per_row(mass_weight),
    )
