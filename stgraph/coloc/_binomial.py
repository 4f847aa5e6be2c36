r"""Proximal-pairs binomial test (after InSTAnT, Kumar et al. 2024).

In a cell with ``N`` transcripts let ``P`` be the number of unordered transcript
pairs joined by an edge in either direction (proximal pairs: on a radius graph
every edge runs both ways, on a one-way graph such as a k-nearest-neighbour one a
pair counts once all the same) and :math:`p = P / \binom{N}{2}` the chance that a
random pair of distinct transcripts is proximal. For genes A and B the number of proximal
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

from dataclasses import dataclass

import numpy as np
from scipy import stats

from ._edges import CellEdges, lookup_sorted
from ._observed import ObservedPairs
from ._shared import SharedCells, walk_shared_cells


def _trials(a: np.ndarray, b: np.ndarray, same: np.ndarray) -> np.ndarray:
    return np.where(same, a * (a - 1) / 2, a * b)


@dataclass(frozen=True)
class ProximalPairs:
    """Unordered proximal transcript pairs counted per observed (cell, pair) row
    (``per_row``, aligned with :attr:`ObservedPairs.row_pair`), per observed pair
    over all cells (``per_pair``, aligned with :attr:`ObservedPairs.pair`; it also
    counts cells in which the pair is joined only by edges of the other direction)
    and per cell (``per_cell``)."""

    per_row: np.ndarray
    per_pair: np.ndarray
    per_cell: np.ndarray


def _runs(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distinct values of ``keys``, sorted, and how often each occurs."""
    # With return_counts NumPy 2 sorts; its plain np.unique hashes, ~15x slower on
    # millions of distinct keys.
    keys, counts = np.unique(keys, return_counts=True)
    return keys, counts.astype(np.float64)


def proximal_pairs(edges: CellEdges, observed: ObservedPairs) -> ProximalPairs:
    """Count the unordered pairs joined by at least one within-cell edge.

    Each pair is counted once whatever the edges between its two transcripts (one
    way, both ways, repeated), for both ordered gene pairs it belongs to.
    """
    n, n_genes = max(edges.gene.size, 1), edges.n_genes
    joined, _ = _runs(np.minimum(edges.src, edges.dst) * n + np.maximum(edges.src, edges.dst))
    lo, hi = np.divmod(joined, n)
    cell = edges.cell_of[lo]

    def unordered(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return np.minimum(a, b) * n_genes + np.maximum(a, b)

    n_pair_codes = n_genes**2
    cell_pair, count = _runs(cell * n_pair_codes + unordered(edges.gene[lo], edges.gene[hi]))
    pair_code, in_pair = np.unique(cell_pair % n_pair_codes, return_inverse=True)
    pair_count = np.bincount(in_pair, weights=count, minlength=pair_code.size)
    gene_a, gene_b = np.divmod(observed.pair, n_genes)
    observed_pair = unordered(gene_a, gene_b)
    return ProximalPairs(
        per_row=lookup_sorted(cell_pair, count, observed.row_cell * n_pair_codes + observed_pair[observed.row_pair]),
        per_pair=lookup_sorted(pair_code, pair_count, observed_pair),
        per_cell=np.bincount(cell, minlength=edges.n_cells).astype(np.float64),
    )


def proximal_probability(edges: CellEdges, proximal: ProximalPairs) -> np.ndarray:
    """Per-cell chance ``p`` that two distinct transcripts are proximal."""
    size = edges.cell_sizes()
    pairs_in_cell = size * (size - 1) / 2
    return np.divide(
        proximal.per_cell, pairs_in_cell, out=np.zeros_like(pairs_in_cell), where=pairs_in_cell > 0
    )


def _upper_tail(k: np.ndarray, trials: np.ndarray, p: np.ndarray) -> np.ndarray:
    return stats.binom.sf(np.ceil(k) - 1, np.round(trials), np.clip(p, 0.0, 1.0))


class PooledTrials:
    """Trials and expected proximal pairs of each pair, summed over the shared cells
    fed to :meth:`add` (see :func:`~stgraph.coloc._shared.walk_shared_cells`)."""

    def __init__(self, edges: CellEdges, observed: ObservedPairs, proximal: ProximalPairs):
        gene_a, gene_b = np.divmod(observed.pair, edges.n_genes)
        self._same = gene_a == gene_b
        self._p_cell = proximal_probability(edges, proximal)
        self._k = proximal.per_pair
        self._trials = np.zeros(observed.n_pairs)
        self._expected = np.zeros(observed.n_pairs)

    def add(self, chunk: SharedCells) -> None:
        t = _trials(chunk.count_a, chunk.count_b, self._same[chunk.pair])
        self._trials += np.bincount(chunk.pair, weights=t, minlength=self._trials.size)
        self._expected += np.bincount(
            chunk.pair, weights=t * self._p_cell[chunk.cell], minlength=self._expected.size
        )

    def pval(self) -> np.ndarray:
        """One-sided binomial p-value of each pair, pooled over cells."""
        trials, expected = self._trials, self._expected
        p_mean = np.divide(expected, trials, out=np.zeros_like(expected), where=trials > 0)
        return _upper_tail(self._k, trials, p_mean)


def per_cell_binomial(edges: CellEdges, observed: ObservedPairs, proximal: ProximalPairs) -> np.ndarray:
    """One-sided binomial p-value of each observed (cell, pair)."""
    gene_a, gene_b = np.divmod(observed.pair[observed.row_pair], edges.n_genes)
    cell = observed.row_cell
    same = gene_a == gene_b
    trials = _trials(edges.count_of(cell, gene_a), edges.count_of(cell, gene_b), same)
    return _upper_tail(proximal.per_row, trials, proximal_probability(edges, proximal)[cell])
