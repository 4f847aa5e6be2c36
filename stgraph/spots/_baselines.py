"""Per-gene spatial interpolation baselines for spot imputation.

All functions take observed positions ``(n, 2)`` (lattice units), observed values
``(n, g)`` and query positions ``(m, 2)`` and return ``(m, g)`` predictions.
Queries outside the convex hull of the observed spots (where Delaunay-based
interpolants are undefined) get the nearest observed spot's value.
"""
from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from scipy.interpolate import CloughTocher2DInterpolator
from scipy.spatial import Delaunay, QhullError, cKDTree


def nearest(pos: np.ndarray, values: np.ndarray, query: np.ndarray) -> np.ndarray:
    """Value of the nearest observed spot."""
    _, idx = cKDTree(pos).query(query, k=1)
    return values[idx]


def linear(pos: np.ndarray, values: np.ndarray, query: np.ndarray) -> np.ndarray:
    """Piecewise-linear interpolation on the Delaunay triangulation of observed spots."""
    return linear_weights(pos, query) @ values


def linear_weights(pos: np.ndarray, query: np.ndarray) -> sp.csr_matrix:
    """Sparse ``(m, n)`` barycentric weights of piecewise-linear interpolation.

    Each query inside the triangulation gets the barycentric coordinates of its
    triangle; queries outside (or every query, when fewer than three non-collinear
    spots allow no triangulation) get weight 1 on the nearest spot.
    """
    m = len(query)
    if m == 0:  # e.g. a training task whose hidden spots are all set aside for validation
        return sp.csr_matrix((0, len(pos)))
    _, near = cKDTree(pos).query(query, k=min(3, len(pos)))
    near = np.asarray(near).reshape(m, -1)
    rows, cols, weights = np.arange(m), near[:, 0], np.ones(m)
    try:
        tri = Delaunay(pos)
    except (QhullError, ValueError):
        return sp.csr_matrix((weights, (rows, cols)), shape=(m, len(pos)))
    simplex, bary = _locate(tri, query, near)
    inside = simplex >= 0
    rows = np.concatenate([np.repeat(np.flatnonzero(inside), 3), rows[~inside]])
    cols = np.concatenate([tri.simplices[simplex[inside]].ravel(), cols[~inside]])
    weights = np.concatenate([bary[inside].ravel(), weights[~inside]])
    return sp.csr_matrix((weights, (rows, cols)), shape=(m, len(pos)))


def _transforms(tri: Delaunay) -> np.ndarray:
    """Affine maps ``(n_simplex, 3, 2)`` to barycentric coordinates, as ``Delaunay.transform``.

    Computed in closed form: SciPy's property solves one LAPACK system per triangle,
    which is slow under thread contention. Degenerate triangles get non-finite maps.
    """
    corner = tri.points[tri.simplices]  # (s, 3, 2)
    edges = corner[:, :2, :] - corner[:, 2:, :]  # rows: a - c, b - c
    det = edges[:, 0, 0] * edges[:, 1, 1] - edges[:, 0, 1] * edges[:, 1, 0]
    with np.errstate(divide="ignore", invalid="ignore"):
        inverse = np.stack([
            np.stack([edges[:, 1, 1], -edges[:, 1, 0]], axis=-1),
            np.stack([-edges[:, 0, 1], edges[:, 0, 0]], axis=-1),
        ], axis=1) / det[:, None, None]
    return np.concatenate([inverse, corner[:, 2:, :]], axis=1)


def _barycentric(transforms: np.ndarray, simplices: np.ndarray, query: np.ndarray) -> np.ndarray:
    """Barycentric coordinates ``(..., 3)`` of ``query (..., 2)`` in ``simplices (...)``."""
    transform = transforms[simplices]
    offset = query - transform[..., 2, :]
    with np.errstate(invalid="ignore", over="ignore"):  # degenerate triangles carry inf / NaN maps
        b = transform[..., :2, 0] * offset[..., None, 0] + transform[..., :2, 1] * offset[..., None, 1]
        return np.concatenate([b, 1.0 - b.sum(axis=-1, keepdims=True)], axis=-1)


def _locate(tri: Delaunay, query: np.ndarray, near: np.ndarray, eps: float = 1e-9):
    """Containing triangle (-1 outside) and barycentric coordinates of each query.

    Candidates are the triangles around the query's nearest spots; the few queries
    none of them contains are checked against every triangle. (SciPy's
    ``find_simplex`` walk can take seconds on exact lattices, whose many co-circular
    points make the triangulation degenerate.)
    """
    m, n_simplex = len(query), len(tri.simplices)
    owner = np.repeat(np.arange(n_simplex), 3)
    by_vertex = tri.simplices.ravel().argsort(kind="stable")
    vertex = tri.simplices.ravel()[by_vertex]
    start = np.searchsorted(vertex, np.arange(len(tri.points) + 1))
    degree = np.diff(start)
    slot = np.arange(len(vertex)) - start[vertex]
    incident = np.full((len(tri.points), max(degree.max(), 1)), -1)
    incident[vertex, slot] = owner[by_vertex]
    candidates = incident[near].reshape(m, -1)
    transforms = _transforms(tri)
    bary = _barycentric(transforms, np.maximum(candidates, 0), query[:, None, :])
    hit = (candidates >= 0) & (bary >= -eps).all(axis=-1)
    first = hit.argmax(axis=1)
    simplex = np.where(hit.any(axis=1), candidates[np.arange(m), first], -1)
    coords = bary[np.arange(m), first]
    chunk = max(1, 2_000_000 // n_simplex)
    missing = np.flatnonzero(simplex < 0)
    for lo in range(0, len(missing), chunk):
        idx = missing[lo: lo + chunk]
        b_all = _barycentric(transforms, np.arange(n_simplex)[None, :], query[idx, None, :])
        hit_all = (b_all >= -eps).all(axis=-1)
        found = hit_all.any(axis=1)
        best = hit_all.argmax(axis=1)
        simplex[idx[found]] = best[found]
        coords[idx[found]] = b_all[np.flatnonzero(found), best[found]]
    return simplex, coords


def cubic(pos: np.ndarray, values: np.ndarray, query: np.ndarray) -> np.ndarray:
    """Clough–Tocher piecewise-cubic C1 interpolation."""
    return _delaunay(CloughTocher2DInterpolator, pos, values, query)


def gaussian_knn(
    pos: np.ndarray, values: np.ndarray, query: np.ndarray, *, k: int = 6, sigma: float = 1.0
) -> np.ndarray:
    """Mean of the ``k`` nearest observed spots weighted by ``exp(-d² / 2σ²)``.

    The weights are taken relative to the nearest spot's (the same after normalising),
    so they never all underflow, however far ``query`` lies from the spots.
    """
    k = min(k, len(pos))
    dist, idx = cKDTree(pos).query(query, k=k)
    dist, idx = dist.reshape(len(query), k), idx.reshape(len(query), k)
    weight = np.exp(-0.5 * (dist**2 - dist[:, :1] ** 2) / sigma**2)
    weight /= weight.sum(axis=1, keepdims=True)
    return np.einsum("mk,mkg->mg", weight, values[idx])


def low_rank(values: np.ndarray, rank: int) -> np.ndarray:
    """Rank-``rank`` truncated-SVD reconstruction (uncentred) of a spots × genes matrix."""
    rank = min(rank, *values.shape)
    u, s, vt = np.linalg.svd(values.astype(np.float64), full_matrices=False)
    return ((u[:, :rank] * s[:rank]) @ vt[:rank]).astype(values.dtype)


def _delaunay(interpolator, pos, values, query):
    try:
        out = interpolator(pos, values)(query)
    except (QhullError, ValueError):  # fewer than 3 or collinear spots: no triangulation
        return nearest(pos, values, query)
    outside = np.isnan(out).any(axis=1)
    if outside.any():
        out[outside] = nearest(pos, values, query[outside])
    return out
