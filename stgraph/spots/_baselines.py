"""Per-gene spatial interpolation baselines for spot imputation.

All functions take observed positions ``(n, 2)`` (lattice units), observed values
``(n, g)`` and query positions ``(m, 2)`` and return ``(m, g)`` predictions.
Queries outside the convex hull of the observed spots (where Delaunay-based
interpolants are undefined) get the nearest observed spot's value.
"""
from __future__ import annotations

import numpy as np
from scipy.interpolate import CloughTocher2DInterpolator, LinearNDInterpolator
from scipy.spatial import QhullError, cKDTree


def nearest(pos: np.ndarray, values: np.ndarray, query: np.ndarray) -> np.ndarray:
    """Value of the nearest observed spot."""
    _, idx = cKDTree(pos).query(query, k=1)
    return values[idx]


def linear(pos: np.ndarray, values: np.ndarray, query: np.ndarray) -> np.ndarray:
    """Piecewise-linear interpolation on the Delaunay triangulation of observed spots."""
    return _delaunay(LinearNDInterpolator, pos, values, query)


def cubic(pos: np.ndarray, values: np.ndarray, query: np.ndarray) -> np.ndarray:
    """Clough–Tocher piecewise-cubic C1 interpolation."""
    return _delaunay(CloughTocher2DInterpolator, pos, values, query)


def gaussian_knn(
    pos: np.ndarray, values: np.ndarray, query: np.ndarray, *, k: int = 6, sigma: float = 1.0
) -> np.ndarray:
    """Mean of the ``k`` nearest observed spots weighted by ``exp(-d² / 2σ²)``."""
    k = min(k, len(pos))
    dist, idx = cKDTree(pos).query(query, k=k)
    dist, idx = dist.reshape(len(query), k), idx.reshape(len(query), k)
    weight = np.exp(-0.5 * (dist / sigma) ** 2)
    weight /= weight.sum(axis=1, keepdims=True)
    return np.einsum("mk,mkg->mg", weight, values[idx])


def low_rank(values: np.ndarray, rank: int) -> np.ndarray:
    """Rank-``rank`` truncated-SVD reconstruction (uncentred) of a spots × genes matrix."""
    rank = min(rank, *values.shape)
    u, s, vt = np.linalg.svd(values.astype(np.float64), full_matrices=False)
    return ((u[:, :rank] * s[:rank]) @ vt[:rank]).astype(values.dtype)


def low_rank_linear(pos: np.ndarray, values: np.ndarray, query: np.ndarray, *, rank: int = 10) -> np.ndarray:
    """Low-rank denoising of the observed matrix, then linear interpolation."""
    return linear(pos, low_rank(values, rank), query)


def _delaunay(interpolator, pos, values, query):
    try:
        out = interpolator(pos, values)(query)
    except (QhullError, ValueError):  # fewer than 3 or collinear spots: no triangulation
        return nearest(pos, values, query)
    outside = np.isnan(out).any(axis=1)
    if outside.any():
        out[outside] = nearest(pos, values, query[outside])
    return out
