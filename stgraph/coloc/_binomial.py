r"""Proximal-pairs binomial test (after InSTAnT, Kumar et al. 2024).

In a cell with ``N`` transcripts let ``P`` be the number of unordered transcript
pairs joined by an edge (proximal pairs; the graph is assumed symmetric, as a
radius graph is) and :math:`p = P / \binom{N}{2}` the chance that a random pair
of distinct transcripts is proximal. For genes A and B the number of proximal
(A, B) pairs is compared with

.. math:: k_{AB} \sim \mathrm{Binomial}(t_{AB}, p), \qquad
          t_{AB} = N_A N_B \;(A \ne B), \quad \binom{N_A}{2} \;(A = B),

giving a one-sided p-value :math:`P(K \ge k_{AB})` per cell.

**Pooled over cells** the counts and trials add up. The sum of binomials with
different ``p_c`` is Poisson-binomial; it is replaced by the binomial with the
same number of trials and the trial-weighted mean probability, which has the same
mean and a variance at least as large, so the pooled test is conservative.
"""
from __future__ import annotations

import numpy as np
from scipy import stats

from ._edges import CellEdges
from ._observed import ObservedPairs
from ._shared import shared_cells


def _trials(a: np.ndarray, b: np.ndarray, same: np.ndarray) -> np.ndarray:
    return np.where(same, a * (a - 1) / 2, a * b)


def _proximal_count(observed: ObservedPairs, same_row: np.ndarray) -> np.ndarray:
    # A symmetric graph lists an unordered (A, A) pair as two directed edges.
    return np.where(same_row, observed.n_edges / 2, observed.n_edges)


def proximal_probability(edges: CellEdges) -> np.ndarray:
    """Per-cell chance ``p`` that two distinct transcripts are proximal."""
    size = edges.cell_sizes()
    directed = np.bincount(edges.cell, minlength=edges.n_cells).astype(np.float64)
    pairs_in_cell = size * (size - 1)
    return np.divide(directed, pairs_in_cell, out=np.zeros_like(directed), where=pairs_in_cell > 0)


def _upper_tail(k: np.ndarray, trials: np.ndarray, p: np.ndarray) -> np.ndarray:
    return stats.binom.sf(np.ceil(k) - 1, np.round(trials), np.clip(p, 0.0, 1.0))


def pooled_binomial(edges: CellEdges, observed: ObservedPairs) -> np.ndarray:
    """One-sided binomial p-value of each observed pair, pooled over cells."""
    gene_a, gene_b = np.divmod(observed.pair, edges.n_genes)
    same = gene_a == gene_b
    p_cell = proximal_probability(edges)
    trials = np.zeros(observed.n_pairs)
    expected = np.zeros(observed.n_pairs)
    for chunk in shared_cells(gene_a, gene_b, edges.counts, edges.n_genes):
        t = _trials(chunk.count_a, chunk.count_b, same[chunk.pair])
        trials += np.bincount(chunk.pair, weights=t, minlength=observed.n_pairs)
        expected += np.bincount(chunk.pair, weights=t * p_cell[chunk.cell], minlength=observed.n_pairs)
    k = observed.pooled(_proximal_count(observed, same[observed.row_pair]))
    p_mean = np.divide(expected, trials, out=np.zeros_like(expected), where=trials > 0)
    return _upper_tail(k, trials, p_mean)


def per_cell_binomial(edges: CellEdges, observed: ObservedPairs) -> np.ndarray:
    """One-sided binomial p-value of each observed (cell, pair)."""
    gene_a, gene_b = np.divmod(observed.pair[observed.row_pair], edges.n_genes)
    cell = observed.row_cell
    same = gene_a == gene_b
    trials = _trials(edges.count_of(cell, gene_a), edges.count_of(cell, gene_b), same)
    return _upper_tail(_proximal_count(observed, same), trials, proximal_probability(edges)[cell])
