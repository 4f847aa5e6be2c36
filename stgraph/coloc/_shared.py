"""Iterate over the cells that hold both genes of each gene pair.

Expectations under within-cell relabelling, the binomial test and the pooled
CLQ are sums over the cells where *both* genes of a pair have molecules, not only
over the cells where the pair happens to share an edge. The sparse cells x genes
count table is walked column by column: for each pair the gene present in fewer
cells drives the walk and the other gene's count is looked up by binary search.
Work and memory are linear in ``sum over pairs of min(cells of A, cells of B)``,
processed in chunks, never a dense cells x genes x genes array.
"""
from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

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


def shared_cells(
    gene_a: np.ndarray,
    gene_b: np.ndarray,
    counts: tuple[np.ndarray, np.ndarray, np.ndarray],
    n_genes: int,
    chunk_rows: int = CHUNK_ROWS,
) -> Iterator[SharedCells]:
    """Yield, chunk by chunk, every (pair, cell) where both genes have molecules.

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
    cell, gene, count = counts
    key = cell * n_genes + gene
    by_gene = np.argsort(gene, kind="stable")  # cells stay ascending within a gene
    col_cell, col_count = cell[by_gene], count[by_gene]
    n_cells_of = np.bincount(gene, minlength=n_genes)
    start_of = np.concatenate([[0], np.cumsum(n_cells_of)[:-1]])

    a_drives = n_cells_of[gene_a] <= n_cells_of[gene_b]
    driver = np.where(a_drives, gene_a, gene_b)
    other = np.where(a_drives, gene_b, gene_a)
    length = n_cells_of[driver]
    ends = np.cumsum(length)
    first = 0
    while first < gene_a.size:
        base = ends[first - 1] if first else 0
        last = max(int(np.searchsorted(ends, base + chunk_rows, side="right")), first + 1)
        pairs = np.arange(first, last)
        rows = np.repeat(pairs, length[pairs])
        offset = np.arange(rows.size) - np.repeat(ends[pairs] - length[pairs] - base, length[pairs])
        at = start_of[driver[rows]] + offset
        row_cell = col_cell[at]
        driver_count = col_count[at]
        wanted = row_cell * n_genes + other[rows]
        hit = np.minimum(np.searchsorted(key, wanted), key.size - 1)
        found = key[hit] == wanted
        other_count = count[hit]
        rows, row_cell = rows[found], row_cell[found]
        driver_count, other_count = driver_count[found], other_count[found]
        drives = a_drives[rows]
        yield SharedCells(
            pair=rows,
            cell=row_cell,
            count_a=np.where(drives, driver_count, other_count),
            count_b=np.where(drives, other_count, driver_count),
        )
        first = last
