r"""Colocation quotients on a transcript graph, in two published forms.

Both compare the share of B among the neighbours of A transcripts with the share
of B in the cell. In a cell with ``N`` transcripts, ``N_A`` of gene A and
``N_B`` of gene B:

**Leslie & Kronenfeld (2011)**, generalised from nearest neighbours to the graph's
neighbourhoods: every A transcript ``i`` spreads one unit evenly over its
within-cell neighbours, :math:`C_{A\to B} = \sum_{i \in A} |\{j \in N(i): g_j =
B\}| / |N(i)|`, and

.. math:: \mathrm{CLQ}_{A\to B} = \frac{C_{A\to B} / N_A}{(N_B - [A = B]) / (N - 1)}.

With one nearest neighbour per transcript this is their original quotient (ties
split evenly); it is 1 in expectation under random labelling when no transcript
is isolated, and an A transcript is never its own neighbour, hence ``N - 1`` and
``N_A - 1``.

**Bento** (``bento.tl.coloc_quotient``, bento-tools 2.x) counts the A transcripts
that have *at least one* B neighbour, :math:`K_{A\to B}`, and divides by the
share of B among all transcripts:

.. math:: \mathrm{CLQ}^{\mathrm{Bento}}_{A\to B} = \frac{K_{A\to B} / N_A}{N_B / N}.

It saturates when neighbourhoods are large (``K <= N_A``) and its null value
grows with the neighbourhood size, so it ranks pairs within one graph but is not
centred on 1. Two departures from Bento's code: a transcript is not its own
neighbour (Bento's radius neighbourhoods hold the transcript itself, which makes
its A -> A quotient N / N_A whatever the pattern), and ``N`` counts every
transcript of the cell (Bento only those of genes with ``min_points`` molecules).

**Pooling over cells.** Per cell the quotient is observed / expected with the
expectation ``N_A (N_B - [A = B]) / (N - 1)`` (resp. ``N_A N_B / N``); the pooled
quotient is the ratio of the sums of numerators and expectations over every
cell that holds both genes.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ._edges import CellEdges
from ._observed import ObservedPairs
from ._shared import SharedCells, walk_shared_cells


@dataclass(frozen=True)
class Quotients:
    """Pooled quotients of each observed pair (Leslie-Kronenfeld and Bento)."""

    clq: np.ndarray
    clq_bento: np.ndarray


def _expected_shares(n: np.ndarray, a: np.ndarray, b: np.ndarray, same: np.ndarray):
    leslie = a * (b - same) / np.maximum(n - 1, 1)
    bento = a * b / np.maximum(n, 1)
    return leslie, bento


def _safe_divide(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    numerator = numerator.astype(np.float64)
    return np.divide(numerator, denominator, out=np.zeros_like(numerator), where=denominator > 0)


class ExpectedShares:
    """Expectations of both quotients of each pair, summed over the shared cells
    fed to :meth:`add` (see :func:`~stgraph.coloc._shared.walk_shared_cells`)."""

    def __init__(self, edges: CellEdges, observed: ObservedPairs):
        gene_a, gene_b = np.divmod(observed.pair, edges.n_genes)
        self._observed = observed
        self._same = (gene_a == gene_b).astype(np.float64)
        self._size = edges.cell_sizes()
        self._leslie = np.zeros(observed.n_pairs)
        self._bento = np.zeros(observed.n_pairs)

    def add(self, chunk: SharedCells) -> None:
        expect_l, expect_b = _expected_shares(
            self._size[chunk.cell], chunk.count_a, chunk.count_b, self._same[chunk.pair]
        )
        self._leslie += np.bincount(chunk.pair, weights=expect_l, minlength=self._leslie.size)
        self._bento += np.bincount(chunk.pair, weights=expect_b, minlength=self._bento.size)

    def quotients(self) -> Quotients:
        observed = self._observed
        return Quotients(
            clq=_safe_divide(observed.pooled(observed.share), self._leslie),
            clq_bento=_safe_divide(observed.pooled(observed.n_with_neighbour), self._bento),
        )


def per_cell_quotients(edges: CellEdges, observed: ObservedPairs) -> Quotients:
    """Leslie-Kronenfeld and Bento quotients of each observed (cell, pair)."""
    gene_a, gene_b = np.divmod(observed.pair[observed.row_pair], edges.n_genes)
    cell = observed.row_cell
    expect_l, expect_b = _expected_shares(
        edges.cell_sizes()[cell],
        edges.count_of(cell, gene_a),
        edges.count_of(cell, gene_b),
        (gene_a == gene_b).astype(np.float64),
    )
    return Quotients(
        clq=_safe_divide(observed.share, expect_l),
        clq_bento=_safe_divide(observed.n_with_neighbour, expect_b),
    )
