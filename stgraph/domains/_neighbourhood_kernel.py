"""Compiled kernel of the distance-weighted neighbourhood gene counts.

The counts matrix has one row per transcript and a handful of genes per row, while
the within-cell graph it sums over has hundreds of edges per transcript (5 × 10⁷ on
the MERFISH sample at 3 µm). Summing each target's edges into a per-gene scratch row
writes the sparse result directly, with no edge-sized temporaries beyond the input.
"""
from __future__ import annotations

import numba
import numpy as np
import torch
from scipy import sparse

from .._sorting import stable_argsort


@numba.njit(cache=True)
def _is_sorted(values: np.ndarray) -> bool:
    for k in range(1, values.size):
        if values[k] < values[k - 1]:
            return False
    return True


@numba.njit(cache=True)
def _count_rows(start, src, dist, gene, n_genes, scale):
    """CSR ``(indptr, indices, data)`` of the counts; edges of target ``i`` are
    ``src[start[i]:start[i + 1]]``; ``w = exp(-scale * d**2)``."""
    n = gene.size
    last_row = np.full(n_genes, -1, np.int64)
    indptr = np.zeros(n + 1, np.int64)
    for i in range(n):  # first pass: distinct genes per row
        last_row[gene[i]] = i
        distinct = 1
        for e in range(start[i], start[i + 1]):
            j = src[e]
            if j != i and last_row[gene[j]] != i:
                last_row[gene[j]] = i
                distinct += 1
        indptr[i + 1] = indptr[i] + distinct
    indices = np.empty(indptr[n], np.int64)
    data = np.empty(indptr[n], np.float64)
    total = np.zeros(n_genes, np.float64)
    last_row[:] = -1
    for i in range(n):
        k = indptr[i]
        g = gene[i]
        last_row[g] = i
        total[g] = 1.0
        indices[k] = g
        k += 1
        for e in range(start[i], start[i + 1]):
            j = src[e]
            if j == i:
                continue
            g = gene[j]
            if last_row[g] != i:
                last_row[g] = i
                total[g] = 0.0
                indices[k] = g
                k += 1
            total[g] += np.exp(-scale * dist[e] * dist[e])
        row = indices[indptr[i]:k]
        row.sort()
        for p in range(indptr[i], k):
            data[p] = total[indices[p]]
    return indptr, indices, data


def weighted_gene_counts(
    src: np.ndarray, dst: np.ndarray, dist: np.ndarray, gene: np.ndarray, n_genes: int, bandwidth: float
) -> sparse.csr_matrix:
    """``(N, n_genes)`` CSR: 1 for each transcript's own gene plus ``exp(-d²/2σ²)`` for
    each neighbour's gene (edges ``src -> dst``, self-loops ignored)."""
    n = gene.size
    if not _is_sorted(dst):
        order = stable_argsort(torch.from_numpy(dst), n).numpy()
        src, dst, dist = src[order], dst[order], dist[order]
    start = np.zeros(n + 1, np.int64)
    np.cumsum(np.bincount(dst, minlength=n), out=start[1:])
    indptr, indices, data = _count_rows(start, src, dist, gene, n_genes, 0.5 / bandwidth**2)
    return sparse.csr_matrix((data, indices, indptr), shape=(n, n_genes))
