"""Iterate over the cells that hold both genes of each gene pair.

Expectations under within-cell relabelling, the binomial test and the pooled
CLQ are sums over the cells where *both* genes of a pair have molecules, not only
over the cells where the pair happens to share an edge. For each pair the gene
present in fewer cells drives the walk down its column of the sparse cells x genes
count table, and the other gene's count is looked up in each of those cells (a
compiled loop). The statistics that need these rows take them from one walk
(:func:`walk_shared_cells`). Work and memory are linear in ``sum over pairs of
min(cells of A, cells of B)``, processed in chunks, never a dense cells x genes x
genes array.
"""
from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numba
import numpy as np

from ._edges import CellEdges

#: Rows (pair, cell) materialised at once.
CHUNK_ROWS = 1 << 22


@dataclass(frozen=True)
class SharedCells:
    """One chunk of (pair, cell) rows where both genes are present.

    Attributes
    ----------
    pair
        Index of the pair in the caller's pair list.
    cell
        Cell code.
    count_a, count_b
        Molecules of the pair's first and second gene in the cell.
    """

    pair: np.ndarray
    cell: np.ndarray
    count_a: np.ndarray
    count_b: np.ndarray


@numba.njit(cache=True)
def _fill_rows(first, last, gene_a, gene_b, column_start, column_cell, column_count,
               row_start, row_gene, row_count, count_of_a, pair, cell, count_a, count_b):
    # The first gene's counts are scattered into the dense per-cell array
    # count_of_a until the first gene changes (pairs sorted by code change it once
    # per gene): the second gene's column is then walked with O(1) lookups. When the second gene is in more
    # cells, the first gene's column is walked instead, with a binary search of
    # the second gene in each cell's row.
    n_rows = 0
    scattered = -1
    for p in range(first, last):
        a, b = gene_a[p], gene_b[p]
        if a != scattered:
            if scattered >= 0:
                for at in range(column_start[scattered], column_start[scattered + 1]):
                    count_of_a[column_cell[at]] = 0
            for at in range(column_start[a], column_start[a + 1]):
                count_of_a[column_cell[at]] = column_count[at]
            scattered = a
        if column_start[b + 1] - column_start[b] <= column_start[a + 1] - column_start[a]:
            for at in range(column_start[b], column_start[b + 1]):
                c = column_cell[at]
                if count_of_a[c] > 0:
                    pair[n_rows], cell[n_rows] = p, c
                    count_a[n_rows], count_b[n_rows] = count_of_a[c], column_count[at]
                    n_rows += 1
            continue
        for at in range(column_start[a], column_start[a + 1]):
            c = column_cell[at]
            lo, hi = row_start[c], row_start[c + 1]
            while lo < hi:
                mid = (lo + hi) >> 1
                if row_gene[mid] < b:
                    lo = mid + 1
                else:
                    hi = mid
            if lo < row_start[c + 1] and row_gene[lo] == b:
                pair[n_rows], cell[n_rows] = p, c
                count_a[n_rows], count_b[n_rows] = column_count[at], row_count[lo]
                n_rows += 1
    if scattered >= 0:
        for at in range(column_start[scattered], column_start[scattered + 1]):
            count_of_a[column_cell[at]] = 0
    return n_rows


def shared_cells(
    gene_a: np.ndarray,
    gene_b: np.ndarray,
    counts: tuple[np.ndarray, np.ndarray, np.ndarray],
    n_genes: int,
    chunk_rows: int = CHUNK_ROWS,
) -> Iterator[SharedCells]:
    """Yield, chunk by chunk, every (pair, cell) where both genes have molecules.

    Rows come in the order of the pairs, and by ascending cell within a pair.

    Parameters
    ----------
    gene_a, gene_b
        Gene codes of the pairs.
    counts
        Sparse counts ``(cell, gene, count)`` sorted by ``cell * n_genes + gene``.
    n_genes
        Size of the gene code space.
    chunk_rows
        Upper bound on the rows of one chunk (a single pair may exceed it).
    """
    cell, gene, count = (np.ascontiguousarray(a, dtype=np.int64) for a in counts)
    n_cells = int(cell.max()) + 1 if cell.size else 0
    row_start = np.concatenate([[0], np.cumsum(np.bincount(cell, minlength=n_cells))])
    by_gene = np.argsort(gene, kind="stable")  # cells stay ascending within a gene
    n_cells_of = np.bincount(gene, minlength=n_genes)
    column_start = np.concatenate([[0], np.cumsum(n_cells_of)])
    column_cell, column_count = cell[by_gene], count[by_gene]

    gene_a = np.asarray(gene_a, dtype=np.int64)
    gene_b = np.asarray(gene_b, dtype=np.int64)
    walked = np.minimum(n_cells_of[gene_a], n_cells_of[gene_b])
    ends = np.cumsum(walked)
    count_of_a = np.zeros(n_cells, np.int64)
    first = 0
    while first < gene_a.size:
        base = ends[first - 1] if first else 0
        last = max(int(np.searchsorted(ends, base + chunk_rows, side="right")), first + 1)
        capacity = int(ends[last - 1] - base)
        rows = [np.empty(capacity, np.int64) for _ in range(4)]
        n_rows = _fill_rows(first, last, gene_a, gene_b, column_start, column_cell, column_count,
                            row_start, gene, count, count_of_a, *rows)
        yield SharedCells(*(r[:n_rows] for r in rows))
        first = last


def walk_shared_cells(edges: CellEdges, gene_a: np.ndarray, gene_b: np.ndarray,
                      *consumers: Callable[[SharedCells], None]) -> None:
    """Feed every chunk of :func:`shared_cells` over ``edges``' counts to each consumer.

    The statistics that sum over the shared cells take their chunks from one walk.
    """
    for chunk in shared_cells(gene_a, gene_b, edges.counts, edges.n_genes):
        for consume in consumers:
            consume(chunk)
