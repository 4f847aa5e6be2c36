"""Per-transcript features for domain clustering.

Two blocks, each standardised and then scaled so that it carries the same total
variance whatever its width:

- **embedding**: the pretrained encoder's output for the transcript (optional);
- **composition**: the gene composition of the transcript's neighbourhood (itself
  and its within-cell graph neighbours), row-normalised to fractions and reduced
  to ``n_components`` dimensions by truncated SVD, so that a panel of thousands
  of genes never becomes a dense transcripts x genes array.
"""
from __future__ import annotations

import numpy as np
from scipy import sparse
from sklearn.decomposition import TruncatedSVD


def neighbourhood_composition(
    edge_index: np.ndarray, gene: np.ndarray, n_genes: int, cell: np.ndarray | None = None
) -> sparse.csr_matrix:
    """Sparse ``(N, n_genes)`` gene fractions of each transcript's neighbourhood.

    Parameters
    ----------
    edge_index
        ``(2, E)`` edges ``j -> i`` (row 0 source, row 1 target).
    gene
        ``(N,)`` gene codes in ``[0, n_genes)``.
    n_genes
        Number of genes.
    cell
        ``(N,)`` cell codes; when given, edges between different cells are ignored.

    Returns
    -------
    Row ``i`` holds the fraction of each gene among ``i`` and its neighbours.
    """
    n = gene.size
    src, dst = np.asarray(edge_index, dtype=np.int64)
    keep = src != dst
    if cell is not None:
        keep &= cell[src] == cell[dst]
    rows = np.concatenate([dst[keep], np.arange(n)])
    cols = gene[np.concatenate([src[keep], np.arange(n)])]
    counts = sparse.csr_matrix((np.ones(rows.size), (rows, cols)), shape=(n, n_genes))
    totals = np.asarray(counts.sum(axis=1)).ravel()
    return sparse.diags(1.0 / np.maximum(totals, 1.0)) @ counts


def _standardised_block(block: np.ndarray) -> np.ndarray:
    centred = block - block.mean(axis=0)
    scale = np.sqrt((centred**2).sum(axis=1).mean())
    return centred / scale if scale > 0 else centred


def domain_features(
    composition: sparse.spmatrix | None,
    embedding: np.ndarray | None = None,
    *,
    n_components: int = 20,
    seed: int = 0,
) -> np.ndarray:
    """Stack the standardised feature blocks of every transcript.

    Parameters
    ----------
    composition
        Output of :func:`neighbourhood_composition`, or None to use the embedding only.
    embedding
        ``(N, d)`` encoder embeddings, or None.
    n_components
        Truncated-SVD dimensions kept of the composition.
    seed
        Seed of the randomised SVD.

    Returns
    -------
    ``(N, n_features)`` float64 array; each block has unit mean squared norm per
    row, so the blocks weigh equally in Euclidean distances.
    """
    blocks = []
    if composition is not None:
        n_genes = composition.shape[1]
        k = min(n_components, n_genes - 1, composition.shape[0] - 1)
        if k >= 1:
            reduced = TruncatedSVD(n_components=k, random_state=seed).fit_transform(composition)
        else:
            reduced = composition.toarray()
        blocks.append(_standardised_block(reduced))
    if embedding is not None:
        blocks.append(_standardised_block(np.asarray(embedding, dtype=np.float64)))
    if not blocks:
        raise ValueError("give a composition, an embedding or both")
    if len({b.shape[0] for b in blocks}) != 1:
        raise ValueError("composition and embedding must have one row per transcript")
    return np.hstack(blocks)
