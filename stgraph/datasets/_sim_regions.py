"""Where each localization pattern puts molecules inside one simulated cell.

A pattern is a region of the cell, and molecules are drawn uniformly in it by
vectorised rejection sampling from its bounding box. With ``w`` the cell's edge
width (a fixed fraction of its equivalent radius):

- ``none``: the whole cell;
- ``nuclear``: the nucleus;
- ``nuclear_edge``: cell points within ``w / 2`` of the nuclear envelope, either side;
- ``cell_edge``: cell points within ``w`` of the membrane;
- ``cytoplasmic``: cell points outside the nucleus and farther than ``w`` from the
  membrane.
"""
from __future__ import annotations

from typing import Callable

import numpy as np
import shapely

#: Rounds of proposals before giving up on a region too small to hit.
_MAX_ROUNDS = 200
#: Points per block of the point-to-edge distance computation (bounds memory).
_CHUNK = 4096
#: Relative margin around a band's edges within which distances are computed exactly.
#: GEOS buffers deviate from exact offsets by about 1.5 % of the distance at most.
_BAND_TOLERANCE = 0.05


def distance_to_outline(xy: np.ndarray, vertices: np.ndarray) -> np.ndarray:
    """Euclidean distance from points ``(n, 2)`` to a closed polyline ``(m, 2)``."""
    start = vertices
    edge = np.roll(vertices, -1, axis=0) - start
    edge_sq = np.einsum("md,md->m", edge, edge)
    out = np.empty(len(xy))
    for lo in range(0, len(xy), _CHUNK):
        rel = xy[lo : lo + _CHUNK, None, :] - start[None]
        t = np.clip(np.einsum("nmd,md->nm", rel, edge) / edge_sq, 0.0, 1.0)
        gap = rel - t[..., None] * edge
        out[lo : lo + _CHUNK] = np.sqrt(np.einsum("nmd,nmd->nm", gap, gap).min(axis=1))
    return out


class NearOutline:
    """Exact test ``distance(p, outline) <= r`` for many points, mostly by buffers.

    Polygon buffers by ``+-r (1 -+ tol)`` settle almost every point with a cheap
    point-in-polygon test; only points within about ``tol * r`` of the band's edges
    get their exact distance to the outline.

    Parameters
    ----------
    vertices
        Polygon outline, shape ``(m, 2)``.
    r
        Band half-width: points at most ``r`` from the outline, on either side.
    """

    def __init__(self, vertices: np.ndarray, r: float):
        polygon = shapely.Polygon(vertices)
        self.vertices, self.r = vertices, r
        self._sure = [polygon.buffer(s * r * (1 - _BAND_TOLERANCE)) for s in (1, -1)]
        self._maybe = [polygon.buffer(s * r * (1 + _BAND_TOLERANCE)) for s in (1, -1)]
        for shape in self._sure + self._maybe:
            shapely.prepare(shape)

    def __call__(self, xy: np.ndarray) -> np.ndarray:
        """Boolean mask of the points ``(n, 2)`` within ``r`` of the outline."""
        x, y = xy[:, 0], xy[:, 1]
        sure = shapely.contains_xy(self._sure[0], x, y) & ~shapely.contains_xy(self._sure[1], x, y)
        maybe = shapely.contains_xy(self._maybe[0], x, y) & ~shapely.contains_xy(
            self._maybe[1], x, y
        )
        check = maybe & ~sure
        sure[check] = distance_to_outline(xy[check], self.vertices) <= self.r
        return sure


def rejection_sample(
    rng: np.random.Generator,
    n: int,
    bounds: tuple[float, float, float, float],
    accept: Callable[[np.ndarray], np.ndarray],
) -> np.ndarray:
    """Draw ``n`` points uniformly in ``{p in bounds : accept(p)}``.

    Proposals come in batches sized from the acceptance rate seen so far.

    Parameters
    ----------
    rng
        Random generator.
    n
        Number of points.
    bounds
        ``(xmin, ymin, xmax, ymax)`` containing the whole region.
    accept
        Maps points ``(k, 2)`` to a boolean mask ``(k,)``.

    Returns
    -------
    Points, shape ``(n, 2)``.
    """
    lo, hi = np.asarray(bounds[:2]), np.asarray(bounds[2:])
    found: list[np.ndarray] = []
    n_found, n_proposed, n_accepted = 0, 0, 0
    for _ in range(_MAX_ROUNDS):
        if n_found >= n:
            return np.concatenate(found)[:n] if found else np.empty((0, 2))
        rate = max(n_accepted / n_proposed, 0.01) if n_proposed else 0.25
        batch = int(1.2 * (n - n_found) / rate) + 16
        proposal = lo + rng.uniform(size=(batch, 2)) * (hi - lo)
        kept = proposal[accept(proposal)]
        found.append(kept)
        n_found += len(kept)
        n_proposed += batch
        n_accepted += len(kept)
    raise RuntimeError(f"region within {bounds} is too small to sample {n} points")


def sample_in_polygon(rng: np.random.Generator, vertices: np.ndarray, n: int) -> np.ndarray:
    """Draw ``n`` points uniformly inside the polygon with the given vertices."""
    polygon = shapely.Polygon(vertices)
    shapely.prepare(polygon)
    return rejection_sample(
        rng, n, polygon.bounds, lambda xy: shapely.contains_xy(polygon, xy[:, 0], xy[:, 1])
    )


class CellGeometry:
    """Outlines of one cell and its nucleus, and the regions of the five patterns.

    Parameters
    ----------
    cell
        Cell outline vertices, shape ``(m, 2)``.
    nucleus
        Nucleus outline vertices, or ``None`` for a cell without nucleus.
    edge_width
        Width ``w`` of the membrane band; the nuclear band is ``w / 2`` on each side.
    """

    def __init__(self, cell: np.ndarray, nucleus: np.ndarray | None, edge_width: float):
        self.cell_vertices = cell
        self.nucleus_vertices = nucleus
        self.cell = shapely.Polygon(cell)
        self.nucleus = None if nucleus is None else shapely.Polygon(nucleus)
        self.edge_width = edge_width
        self.near_membrane = NearOutline(cell, edge_width)
        self.near_envelope = None if nucleus is None else NearOutline(nucleus, edge_width / 2)
        shapely.prepare(self.cell)
        if self.nucleus is not None:
            shapely.prepare(self.nucleus)

    def in_cell(self, xy: np.ndarray) -> np.ndarray:
        """Whether points lie inside the cell."""
        return shapely.contains_xy(self.cell, xy[:, 0], xy[:, 1])

    def in_nucleus(self, xy: np.ndarray) -> np.ndarray:
        """Whether points lie inside the nucleus (all ``False`` without nucleus)."""
        if self.nucleus is None:
            return np.zeros(len(xy), dtype=bool)
        return shapely.contains_xy(self.nucleus, xy[:, 0], xy[:, 1])

    def _accept(self, pattern: str) -> Callable[[np.ndarray], np.ndarray]:
        if pattern == "none":
            return self.in_cell
        if pattern == "nuclear":
            return self.in_nucleus
        if pattern == "nuclear_edge":
            return lambda xy: self.in_cell(xy) & self.near_envelope(xy)
        if pattern == "cell_edge":
            return lambda xy: self.in_cell(xy) & self.near_membrane(xy)
        if pattern == "cytoplasmic":
            return lambda xy: self.in_cell(xy) & ~self.in_nucleus(xy) & ~self.near_membrane(xy)
        raise ValueError(f"unknown localization pattern {pattern!r}")

    def sample(self, rng: np.random.Generator, pattern: str, n: int) -> np.ndarray:
        """Draw ``n`` points uniformly in the region of ``pattern``.

        Raises
        ------
        ValueError
            For a nuclear pattern in a cell without nucleus.
        """
        if pattern in ("nuclear", "nuclear_edge") and self.nucleus is None:
            raise ValueError(f"pattern {pattern!r} needs a nucleus")
        if pattern == "nuclear":
            bounds = self.nucleus.bounds
        elif pattern == "nuclear_edge":
            bounds = self.nucleus.buffer(self.edge_width / 2).bounds
        else:
            bounds = self.cell.bounds
        return rejection_sample(rng, n, bounds, self._accept(pattern))

    def scatter_near(
        self, rng: np.random.Generator, anchors: np.ndarray, n: int, sigma: float
    ) -> np.ndarray:
        """Draw ``n`` points at random anchors plus isotropic Gaussian offsets.

        Offsets that leave the cell are drawn again; a point whose offsets keep
        leaving the cell (after many tries) is put on its anchor.

        Parameters
        ----------
        rng
            Random generator.
        anchors
            Candidate centres inside the cell, shape ``(k, 2)``, ``k >= 1``.
        n
            Number of points.
        sigma
            Standard deviation of each offset coordinate.
        """
        centre = anchors[rng.integers(len(anchors), size=n)]
        out = centre.copy()
        todo = np.arange(n)
        for _ in range(_MAX_ROUNDS):
            if len(todo) == 0:
                break
            trial = centre[todo] + rng.normal(scale=sigma, size=(len(todo), 2))
            ok = self.in_cell(trial)
            out[todo[ok]] = trial[ok]
            todo = todo[~ok]
        return out
