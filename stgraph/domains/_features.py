r"""Per-transcript features for domain clustering.

**Neighbourhood composition.** Transcript ``i`` counts the genes around it with
Gaussian distance weights, itself included:

.. math:: c_{ig} = [g_i = g] + \sum_{j \in N(i)} e^{-d_{ij}^2 / 2\sigma^2} [g_j = g],

over its within-cell graph neighbours, with bandwidth ``sigma`` (default half the
graph radius). A subcellular domain is a place where some genes are denser *than
elsewhere in the same cell*, so the counts are compared with the cell's own
composition :math:`\pi_{cg}` (molecules of ``g`` in cell ``c`` over the cell's
molecules, with half a pseudo-count per gene) through Pearson residuals

.. math:: r_{ig} = \frac{c_{ig} - t_i \pi_{c(i) g}}{\sqrt{t_i \pi_{c(i) g}}},
          \qquad t_i = \sum_g c_{ig}.

This removes differences of expression between cells, which would otherwise
dominate the clustering. The residual matrix is dense, so it is never formed: its
leading principal components are computed by a truncated SVD of the implicit
operator (sparse part minus a rank-``n_cells`` part minus the column means).

**Encoder context.** A transcript's own encoder embedding is dominated by its
gene token, so clustering it groups transcripts by gene, not by place. What the
pretrained encoder knows of the *place* is what it predicts there when the
transcript's gene is hidden: the masked-gene head's distribution
:math:`p_{ig}` at transcript ``i`` computed with its token masked (see
:func:`stgraph.coloc._encode.masked_embeddings`), a learned estimate of the
neighbourhood composition. It is compared with the cell in the same way as
the counts (when the encoder ran on a graph of a smaller radius, the
predictions are first averaged over the same Gaussian neighbourhood as the
counts, which sets the scale of a domain),

.. math:: r_{ig} = \frac{p_{ig} - \bar p_{c(i) g}}{\sqrt{\pi_{c(i) g}}},

with :math:`\bar p_{cg}` the mean prediction over cell ``c``, and reduced to its
leading principal components. The ``(N, n_genes)`` matrix is held only when it
fits in :data:`PREDICTION_BYTES`; otherwise the predictions are recomputed, in
chunks of whole cells that give their cells' means themselves, from the ``(N, d)``
embeddings to accumulate the ``n_genes x n_genes`` Gram matrix and then to project:
the memory is that of one chunk and the Gram matrix, whatever the number of cells.

Each block is centred and scaled to unit mean squared row norm, so blocks weigh
equally whatever their width.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Callable

import numpy as np
from scipy import sparse
from scipy.sparse.linalg import LinearOperator, svds

from ._neighbourhood_kernel import weighted_gene_counts


def _check_bandwidth(bandwidth: float) -> None:
    if not bandwidth > 0:
        raise ValueError(f"bandwidth must be positive, got {bandwidth}")


def neighbourhood_weights(edge_index: np.ndarray, edge_dist: np.ndarray, n: int, bandwidth: float) -> sparse.csr_matrix:
    """``(N, N)`` Gaussian weights ``w_ij`` of each target ``i``'s neighbours ``j``, 1 on the diagonal.

    Parameters
    ----------
    edge_index
        ``(2, E)`` edges ``j -> i`` (row 0 source, row 1 target); pass the
        within-cell edges only. Self-loops are ignored.
    edge_dist
        ``(E,)`` edge lengths.
    n
        Number of transcripts.
    bandwidth
        Gaussian ``sigma`` of the distance weights.
    """
    _check_bandwidth(bandwidth)
    src, dst = np.asarray(edge_index, dtype=np.int64)
    keep = src != dst
    weight = np.exp(-0.5 * (np.asarray(edge_dist, dtype=np.float64)[keep] / bandwidth) ** 2)
    rows = np.concatenate([dst[keep], np.arange(n)])
    cols = np.concatenate([src[keep], np.arange(n)])
    return sparse.csr_matrix((np.concatenate([weight, np.ones(n)]), (rows, cols)), shape=(n, n))


def neighbourhood_counts(
    edge_index: np.ndarray,
    edge_dist: np.ndarray,
    gene: np.ndarray,
    n_genes: int,
    bandwidth: float,
) -> sparse.csr_matrix:
    """Distance-weighted gene counts ``(N, n_genes)`` of each transcript's neighbourhood.

    Row ``i`` is :func:`neighbourhood_weights` row ``i`` summed by gene: 1 for the
    transcript's own gene plus ``w_ij`` for each neighbour ``j``'s gene.

    Parameters
    ----------
    edge_index
        ``(2, E)`` edges ``j -> i`` (row 0 source, row 1 target); pass the
        within-cell edges only. Self-loops are ignored.
    edge_dist
        ``(E,)`` edge lengths.
    gene
        ``(N,)`` gene codes.
    n_genes
        Number of genes.
    bandwidth
        Gaussian ``sigma`` of the distance weights.
    """
    _check_bandwidth(bandwidth)
    src, dst = np.asarray(edge_index, dtype=np.int64)
    return weighted_gene_counts(src, dst, np.asarray(edge_dist), np.asarray(gene, dtype=np.int64), n_genes, bandwidth)


#: Memory for the predictions of one chunk of rows (float64), 256 MiB.
PREDICTION_BYTES = 1 << 28


def predicted_composition_components(
    embedding: np.ndarray,
    predict: Callable[[np.ndarray], np.ndarray],
    cell: np.ndarray,
    composition: CellComposition,
    n_components: int,
    weights: sparse.csr_matrix | None = None,
    chunk_size: int | None = None,
) -> np.ndarray:
    """Leading principal-component scores of the cell-relative predicted gene distributions.

    Parameters
    ----------
    embedding
        ``(N, d)`` masked embeddings of the transcripts in cells.
    predict
        Maps a ``(n, d)`` block of ``embedding`` to ``(n, n_genes)`` probabilities.
    cell
        ``(N,)`` cell code of each row (all ``>= 0``).
    composition
        Output of :func:`cell_composition`.
    n_components
        Number of components (capped by ``n_genes - 1`` and ``N - 1``).
    weights
        ``(N, N)`` neighbourhood weights (:func:`neighbourhood_weights`): when
        given, each transcript's prediction is replaced by the weighted mean of
        its neighbours' (itself included).
    chunk_size
        Rows predicted at a time, whole cells each (a cell with more rows is one chunk);
        default as many as fit in :data:`PREDICTION_BYTES` (then the predictions are
        computed once, not for each of the two passes over the rows).

    Returns
    -------
    ``(N, k)`` scores, columns by decreasing variance, signs fixed so that each
    column's largest absolute entry is positive.
    """
    n = embedding.shape[0]
    n_genes = composition.shape[1]
    k = min(n_components, n_genes - 1, n - 1)
    if k < 1:
        return np.zeros((n, 0))
    if chunk_size is None:
        chunk_size = max(1, PREDICTION_BYTES // (8 * n_genes))
    # Chunks of whole cells hold their cells' mean predictions themselves: no dense
    # (n_cells, n_genes) array of means (800 MB for 20,000 cells of a 5,000-gene panel).
    chunks = _whole_cell_chunks(cell, chunk_size)
    kept: dict[int, np.ndarray] = {}

    def predictions(rows: np.ndarray) -> np.ndarray:
        if weights is None:
            return np.asarray(predict(embedding[rows]), dtype=np.float64)
        block = weights[rows]
        # Only the neighbours of these rows are predicted: memory stays per chunk.
        seen = np.zeros(n, dtype=bool)
        seen[block.indices] = True
        column = np.cumsum(seen) - 1
        block = sparse.csr_matrix(
            (block.data, column[block.indices], block.indptr), shape=(block.shape[0], int(seen.sum()))
        )
        mean = block @ np.asarray(predict(embedding[seen]), dtype=np.float64)
        return mean / np.asarray(block.sum(axis=1))

    def residuals(i: int) -> np.ndarray:
        rows = chunks[i]
        p = kept[i] if i in kept else predictions(rows)
        if len(chunks) == 1:
            kept[i] = p
        # Zero mean within every cell, hence zero column means: no further centring.
        _, member = np.unique(cell[rows], return_inverse=True)
        members = sparse.csr_matrix((np.ones(len(rows)), (member, np.arange(len(rows)))))
        means = (members @ p) / np.asarray(members.sum(axis=1))
        return (p - means[member]) / composition.root_share_rows(cell[rows])

    gram = np.zeros((n_genes, n_genes))
    for i in range(len(chunks)):
        r = residuals(i)
        gram += r.T @ r
    values, vectors = np.linalg.eigh(gram)
    axes = vectors[:, np.argsort(-values)[:k]]
    scores = np.empty((n, k))
    for i, rows in enumerate(chunks):
        scores[rows] = residuals(i) @ axes
    return _positive_peaks(scores)


def _whole_cell_chunks(cell: np.ndarray, chunk_size: int) -> list[np.ndarray]:
    """Row indices grouped by cell, in chunks of whole cells of at most ``chunk_size``
    rows (a larger cell alone)."""
    order = np.argsort(cell, kind="stable")
    starts = np.flatnonzero(np.r_[True, np.diff(cell[order]) != 0])
    bounds = np.r_[starts, len(order)]
    chunks, first = [], 0
    for j in range(1, len(bounds)):
        # Close the chunk before the cell that would overflow it.
        if bounds[j] - bounds[first] > chunk_size and j - 1 > first:
            chunks.append(order[bounds[first]:bounds[j - 1]])
            first = j - 1
    if len(order):
        chunks.append(order[bounds[first]:])
    return chunks


@dataclass(frozen=True)
class CellComposition:
    r"""Share :math:`\pi_{cg} = (k_{cg} + 1/2) / (n_c + G / 2)` of each gene in each cell.

    Held as the sparse counts :math:`k_{cg}` and the cell totals, never as the dense
    ``(n_cells, n_genes)`` array: with 20,000 cells and a 5,000-gene panel that would be
    800 MB per copy. Most counts are 0, where
    :math:`\sqrt{\pi_{cg}} = \sqrt{1/2} / \sqrt{T_c}` (:math:`T_c = n_c + G/2`), so
    :math:`\sqrt{\pi} = D (\sqrt{1/2}\, \mathbf{1}\mathbf{1}^\top + S)` with
    :math:`D = \mathrm{diag}(T_c^{-1/2})` and ``S`` sparse on the non-zero counts;
    products with it cost one sparse product and a sum.

    Attributes
    ----------
    counts
        ``(n_cells, n_genes)`` molecules of each gene in each cell (CSR, ``float64``).
    total
        ``(n_cells,)`` :math:`T_c = n_c + G / 2`, the pseudo-counts included.
    """

    counts: sparse.csr_matrix
    total: np.ndarray

    @property
    def shape(self) -> tuple[int, int]:
        return self.counts.shape

    def toarray(self) -> np.ndarray:
        """The dense ``(n_cells, n_genes)`` shares (for small data and checks)."""
        return (self.counts.toarray() + 0.5) / self.total[:, None]

    def root_share_at(self, cell: np.ndarray, gene: np.ndarray) -> np.ndarray:
        r""":math:`\sqrt{\pi_{cg}}` at the pairs ``(cell[i], gene[i])``.

        Parameters
        ----------
        cell, gene
            Integer arrays of one length: cell codes in ``[0, n_cells)`` and gene codes
            in ``[0, n_genes)``.

        Returns
        -------
        ``(len(cell),)`` float64 roots of the shares.
        """
        count = np.asarray(self.counts[cell, gene]).ravel()
        return np.sqrt((count + 0.5) / self.total[cell])

    def root_share_rows(self, cell: np.ndarray) -> np.ndarray:
        r"""Dense ``(len(cell), n_genes)`` rows :math:`\sqrt{\pi_{c g}}` of the cells ``cell``.

        Parameters
        ----------
        cell
            Integer cell codes in ``[0, n_cells)``, repeats allowed (one row each).
        """
        return np.sqrt((self.counts[cell].toarray() + 0.5) / self.total[cell, None])

    def root_share_dot(self, v: np.ndarray) -> np.ndarray:
        r""":math:`\sqrt{\pi}\, v`, of length ``n_cells``.

        Parameters
        ----------
        v
            ``(n_genes,)`` vector.
        """
        return (_ROOT_HALF * v.sum() + self._excess @ v) / np.sqrt(self.total)

    def root_share_t_dot(self, w: np.ndarray) -> np.ndarray:
        r""":math:`\sqrt{\pi}^\top w`, of length ``n_genes``.

        Parameters
        ----------
        w
            ``(n_cells,)`` vector.
        """
        scaled = w / np.sqrt(self.total)
        return _ROOT_HALF * scaled.sum() + self._excess.T @ scaled

    @cached_property
    def _excess(self) -> sparse.csr_matrix:
        r"""``S``: :math:`\sqrt{k + 1/2} - \sqrt{1/2}` on the non-zero counts (kept: the
        SVD multiplies by it at every iteration)."""
        excess = self.counts.copy()
        excess.data = np.sqrt(excess.data + 0.5) - _ROOT_HALF
        return excess


_ROOT_HALF = np.sqrt(0.5)


def cell_composition(gene: np.ndarray, cell: np.ndarray, n_genes: int) -> CellComposition:
    """Share of each gene in each cell, half a pseudo-count per gene (a sparse
    :class:`CellComposition`; ``toarray()`` gives the dense ``(n_cells, n_genes)`` array).

    Parameters
    ----------
    gene
        ``(N,)`` gene code of each transcript, in ``[0, n_genes)``.
    cell
        ``(N,)`` cell code of each transcript (all ``>= 0``); ``n_cells`` is
        ``cell.max() + 1``, and a code with no transcript is a cell of pseudo-counts only.
    n_genes
        Number of genes ``G``: the columns, and ``G / 2`` pseudo-counts in every total.
    """
    n_cells = int(cell.max()) + 1 if cell.size else 0
    counts = sparse.csr_matrix((np.ones(cell.size), (cell, gene)), shape=(n_cells, n_genes))
    counts.sum_duplicates()
    return CellComposition(counts, np.asarray(counts.sum(axis=1)).ravel() + 0.5 * n_genes)


def composition_components(
    counts: sparse.spmatrix, cell: np.ndarray, composition: CellComposition, n_components: int, seed: int = 0
) -> np.ndarray:
    """Leading principal-component scores of the cell-relative Pearson residuals.

    Parameters
    ----------
    counts
        Output of :func:`neighbourhood_counts` for transcripts in cells.
    cell
        ``(N,)`` cell code of each row (all ``>= 0``).
    composition
        Output of :func:`cell_composition`.
    n_components
        Number of components (capped by the matrix size).
    seed
        Seed of the SVD's starting vector.

    Returns
    -------
    ``(N, k)`` scores ``U * s``, columns by decreasing singular value, signs fixed so
    that each column's largest absolute entry is positive.
    """
    counts = sparse.csr_matrix(counts, dtype=np.float64)
    n, n_genes = counts.shape
    k = min(n_components, n - 1, n_genes - 1)
    total = np.asarray(counts.sum(axis=1)).ravel()
    root_total = np.sqrt(total)
    # Sparse part: c_ig / sqrt(t_i pi_cg) on the non-zeros of counts.
    coo = counts.tocoo()
    scaled = sparse.csr_matrix(
        (coo.data / (root_total[coo.row] * composition.root_share_at(cell[coo.row], coo.col)), (coo.row, coo.col)),
        shape=counts.shape,
    )
    n_cells = composition.shape[0]
    column_mean = (
        np.asarray(scaled.sum(axis=0)).ravel()
        - composition.root_share_t_dot(np.bincount(cell, weights=root_total, minlength=n_cells))
    ) / n

    def matvec(v: np.ndarray) -> np.ndarray:
        v = v.ravel()
        return scaled @ v - root_total * composition.root_share_dot(v)[cell] - column_mean @ v

    def rmatvec(u: np.ndarray) -> np.ndarray:
        u = u.ravel()
        per_cell = np.bincount(cell, weights=root_total * u, minlength=n_cells)
        return scaled.T @ u - composition.root_share_t_dot(per_cell) - column_mean * u.sum()

    if k < 1:
        return np.zeros((n, 0))
    operator = LinearOperator((n, n_genes), matvec=matvec, rmatvec=rmatvec, dtype=np.float64)
    start = np.random.default_rng(seed).standard_normal(min(n, n_genes))
    u, s, _ = svds(operator, k=k, v0=start)
    order = np.argsort(-s)
    return _positive_peaks(u[:, order] * s[order])


def _positive_peaks(scores: np.ndarray) -> np.ndarray:
    """Flip columns so that each one's largest absolute entry is positive (SVD signs are arbitrary)."""
    flip = np.sign(scores[np.abs(scores).argmax(axis=0), np.arange(scores.shape[1])])
    return scores * np.where(flip == 0, 1.0, flip)


def standardised_block(block: np.ndarray) -> np.ndarray:
    """Centre the columns and scale to unit mean squared row norm.

    Parameters
    ----------
    block
        ``(N, k)`` features (e.g. component scores); not modified.

    Returns
    -------
    A new ``(N, k)`` array; only centred where every row equals the mean (scale 0).
    """
    centred = block - block.mean(axis=0)
    scale = np.sqrt((centred**2).sum(axis=1).mean()) if centred.size else 0.0
    return centred / scale if scale > 0 else centred
