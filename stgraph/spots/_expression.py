"""Counts and their log1p(CP10k) transform for spot data."""
from __future__ import annotations

import numpy as np
import scipy.sparse as sp

CP10K = 1e4
#: The advice of :func:`read_counts` for data that are not raw counts (the console
#: command gives it in its own terms).
COUNTS_HINT = "Pass the layer with the raw counts as `layer=`"
#: What it adds where ``adata.raw`` is set.
RAW_HINT = ", or `adata.raw.to_adata()` if `adata.raw` holds them"


def read_counts(adata, layer: str | None = None) -> np.ndarray:
    """Dense ``float32`` copy of the raw counts in ``adata.X`` or ``adata.layers[layer]``
    (read into memory where ``adata`` is backed).

    Raises
    ------
    ValueError
        If the layer is missing, or the counts contain NaN / infinite, negative or
        non-integer values (normalised data), or are all zero.
    """
    matrix = _counts_matrix(adata, layer)
    dense = matrix.toarray() if sp.issparse(matrix) else np.asarray(matrix)
    dense = dense.astype(np.float32, copy=True)
    where = "X" if layer is None else f"layers[{layer!r}]"
    # scanpy's workflows keep the counts in raw before normalising X
    hint = COUNTS_HINT + (RAW_HINT if adata.raw is not None else "")
    if not np.isfinite(dense).all():
        raise ValueError(f"`adata.{where}` contains NaN or infinite values; raw counts are expected. {hint}.")
    if (dense < 0).any():
        raise ValueError(f"`adata.{where}` contains negative values; raw counts are expected. {hint}.")
    if not dense.any():
        raise ValueError(f"`adata.{where}` is all zero: there is no expression to enhance.")
    fractional = dense != np.round(dense)
    if fractional.any():
        raise ValueError(
            f"`adata.{where}` holds non-integer values (e.g. {dense[fractional][0]:g}; "
            f"{int(fractional.any(axis=1).sum())} of {len(dense)} spots), not raw counts: it looks normalised "
            f"or log-transformed. {hint}."
        )
    return dense


def spots_with_counts(adata, layer: str | None = None) -> np.ndarray:
    """Boolean mask of the spots with a count (a value other than 0, as in
    :func:`read_counts`'s check) in ``adata.X`` or ``adata.layers[layer]``, without
    making a sparse matrix dense.

    Raises
    ------
    ValueError
        If the layer is missing or ``adata.X`` is empty.
    """
    matrix = _counts_matrix(adata, layer)
    nonzero = (matrix if sp.issparse(matrix) else np.asarray(matrix)) != 0
    return np.asarray(nonzero.sum(axis=1)).ravel() > 0


def missing_layer(layer: str) -> str:
    """How :func:`read_counts` names a ``layer`` that ``adata.layers`` lacks (the console
    command names its flag)."""
    return f"Layer {layer!r} not found in `adata.layers`"


def _counts_matrix(adata, layer: str | None):
    """``adata.X`` or ``adata.layers[layer]``, in memory."""
    if layer is not None and layer not in adata.layers:
        raise ValueError(f"{missing_layer(layer)} ({list(adata.layers)}).")
    matrix = adata.X if layer is None else adata.layers[layer]
    if matrix is None:
        raise ValueError(f"`adata.X` is empty. {COUNTS_HINT}.")
    if hasattr(matrix, "to_memory"):  # a sparse X of a backed AnnData, still on disk
        matrix = matrix.to_memory()
    return matrix


def log1p_cp10k(counts: np.ndarray) -> np.ndarray:
    """``log1p(counts / total * 1e4)`` per spot; spots without counts stay all zero."""
    counts = np.asarray(counts, dtype=np.float32)
    total = counts.sum(axis=1, keepdims=True)
    scale = np.divide(CP10K, total, out=np.zeros_like(total), where=total > 0)
    return np.log1p(counts * scale)
