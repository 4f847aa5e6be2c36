"""Within-cell edges of a transcript graph and their gene pairs.

Every colocalization statistic of :mod:`stgraph.coloc` is a sum over the directed
edges ``j -> i`` (row 0 source ``j``, row 1 target ``i``) whose two ends lie in the
same cell. An edge contributes to the *ordered* gene pair ``(gene[i], gene[j])``:
the target's gene first, because the target is the transcript that looks at (gives
attention to) its neighbour.

Pairs are encoded as the integer ``gene_a * n_genes + gene_b`` so that only the
pairs that occur on some edge are ever materialised.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np

from .._validation import check_codes, check_non_negative


@dataclass(frozen=True)
class CellEdges:
    """Directed within-cell edges with the cell, pair code and weight of each.

    Attributes
    ----------
    src, dst
        Source ``j`` and target ``i`` of each edge, ``int64``.
    cell
        Cell code of both ends.
    pair
        ``gene[dst] * n_genes + gene[src]``.
    weight
        Edge weight, ``float64``.
    gene
        Gene code of every transcript (``-1``: left out).
    cell_of
        Cell code of every transcript (``-1``: unassigned or left out).
    n_genes, n_cells
        Sizes of the gene and cell code spaces.
    """

    src: np.ndarray
    dst: np.ndarray
    cell: np.ndarray
    pair: np.ndarray
    weight: np.ndarray
    gene: np.ndarray
    cell_of: np.ndarray
    n_genes: int
    n_cells: int

    @cached_property
    def counts(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Sparse cells x genes molecule counts as ``(cell, gene, count)``, sorted."""
        kept = self.cell_of >= 0
        key = self.cell_of[kept] * self.n_genes + self.gene[kept]
        key, count = np.unique(key, return_counts=True)
        return key // self.n_genes, key % self.n_genes, count.astype(np.float64)

    def cell_sizes(self) -> np.ndarray:
        """Number of transcripts (left-out ones excluded) in each cell."""
        kept = self.cell_of >= 0
        return np.bincount(self.cell_of[kept], minlength=self.n_cells).astype(np.float64)

    def count_of(self, cell: np.ndarray, gene: np.ndarray) -> np.ndarray:
        """Molecules of ``gene`` in ``cell`` (element-wise)."""
        counts = self.counts
        return lookup_sorted(counts[0] * self.n_genes + counts[1], counts[2], cell * self.n_genes + gene)


def lookup_sorted(keys: np.ndarray, values: np.ndarray, wanted: np.ndarray) -> np.ndarray:
    """``values`` at the positions of ``wanted`` in the sorted ``keys``; 0 where absent."""
    if not keys.size:
        return np.zeros(wanted.size)
    at = np.minimum(np.searchsorted(keys, wanted), keys.size - 1)
    return np.where(keys[at] == wanted, values[at], 0.0)


def cell_edges(
    edge_index,
    gene,
    cell=None,
    weight=None,
    *,
    n_genes: int | None = None,
) -> CellEdges:
    """Keep the edges whose ends share a cell and encode their gene pairs.

    Parameters
    ----------
    edge_index
        ``(2, E)`` integer array (or tensor), row 0 source ``j``, row 1 target ``i``.
    gene
        ``(N,)`` gene code of every transcript; ``-1`` leaves a transcript out.
    cell
        ``(N,)`` cell code of every transcript, ``-1`` for unassigned; None puts all
        transcripts in one cell.
    weight
        ``(E,)`` non-negative edge weights; None gives every edge weight 1.
    n_genes
        Size of the gene code space; default ``gene.max() + 1``.

    Returns
    -------
    The within-cell edges; self-loops and edges touching a left-out transcript are
    dropped.
    """
    gene = check_codes("gene", gene, missing=True)
    n = gene.size
    cell = np.zeros(n, np.int64) if cell is None else check_codes("cell", cell, missing=True)
    if cell.size != n:
        raise ValueError(f"cell has {cell.size} entries but gene has {n}")
    edge_index = np.asarray(edge_index)
    if edge_index.ndim != 2 or edge_index.shape[0] != 2:
        raise ValueError(f"edge_index must have shape (2, E), got {edge_index.shape}")
    if edge_index.size and not np.issubdtype(edge_index.dtype, np.integer):
        raise TypeError(f"edge_index must hold integers, got dtype {edge_index.dtype}")
    edge_index = edge_index.astype(np.int64, copy=False)
    if edge_index.size and (edge_index.min() < 0 or edge_index.max() >= n):
        raise ValueError(f"edge_index refers to transcripts outside [0, {n})")
    n_edges = edge_index.shape[1]
    if weight is None:
        weight = np.ones(n_edges)
    else:
        weight = np.asarray(weight, dtype=np.float64)
        if weight.shape != (n_edges,):
            raise ValueError(f"weight must have shape ({n_edges},), got {weight.shape}")
        weight = check_non_negative("weight", weight)
    max_gene = int(gene.max()) + 1 if n else 0
    if n_genes is None:
        n_genes = max_gene
    elif n_genes < max_gene:
        raise ValueError(f"n_genes={n_genes} but gene codes go up to {max_gene - 1}")
    cell_of = np.where(gene >= 0, cell, -1)
    n_cells = int(cell_of.max()) + 1 if n else 0

    src, dst = edge_index
    keep = (src != dst) & (cell_of[src] >= 0) & (cell_of[src] == cell_of[dst])
    src, dst, weight = src[keep], dst[keep], weight[keep]
    return CellEdges(
        src=src,
        dst=dst,
        cell=cell_of[dst],
        pair=gene[dst] * n_genes + gene[src],
        weight=weight,
        gene=gene,
        cell_of=cell_of,
        n_genes=int(n_genes),
        n_cells=n_cells,
    )


def row_normalised(edges: CellEdges) -> np.ndarray:
    """Unit weights divided by each target's number of distinct within-cell
    neighbours (``sum_j w_ij = 1``); a repeated edge ``j -> i`` weighs 0 after its
    first copy, so that a neighbour counts once however often it is listed."""
    if not edges.dst.size:
        return np.zeros(0)
    edge = edges.dst * edges.gene.size + edges.src
    order = np.argsort(edge, kind="stable")
    first = np.ones(edge.size, dtype=bool)
    first[order[1:]] = edge[order[1:]] != edge[order[:-1]]
    degree = np.bincount(edges.dst[first], minlength=edges.gene.size).astype(np.float64)
    return first / degree[edges.dst]

