"""Cell and nucleus geometry, per cell and per transcript (in the coordinates' unit)."""
from __future__ import annotations

from dataclasses import dataclass

import numba
import numpy as np
import pandas as pd
import shapely

from .._warnings import warn_user


@dataclass(frozen=True)
class CellGeometry:
    """Geometry of ``C`` cells, arrays aligned with :attr:`cell_ids`.

    Attributes
    ----------
    cell_ids
        Cell ids, in the order of every array below.
    cells, nuclei
        Outline geometries; ``nuclei`` holds ``None`` for a cell without a nucleus.
    centroid, nucleus_centroid
        ``(C, 2)`` area centroids (``nan`` for a missing nucleus).
    radius
        Bento's cell radius: mean distance from the centroid to the vertices of the
        outline's exterior ring (of every part; holes do not count).
    span
        Largest distance between two outline vertices.
    area, nucleus_area
        Areas (``0`` for a missing nucleus).
    inertia
        Mean squared distance to the centroid of a point drawn uniformly in the
        cell, so that the mean squared distance to any point ``c`` is
        ``inertia + |centroid - c|**2``.
    """

    cell_ids: pd.Index
    cells: np.ndarray
    nuclei: np.ndarray
    centroid: np.ndarray
    radius: np.ndarray
    span: np.ndarray
    area: np.ndarray
    inertia: np.ndarray
    nucleus_centroid: np.ndarray
    nucleus_area: np.ndarray

    @property
    def has_nucleus(self) -> np.ndarray:
        """``(C,)`` booleans: the cell has a nucleus of positive area."""
        return self.nucleus_area > 0

    @property
    def equivalent_radius(self) -> np.ndarray:
        """``(C,)`` radius of the disc of the same area, ``sqrt(area / pi)``."""
        return np.sqrt(self.area / np.pi)

    def __len__(self) -> int:
        return len(self.cell_ids)


def cell_geometry(cells: pd.Series, nuclei: pd.Series | None = None) -> CellGeometry:
    """Measure cell outlines and, where given, the nucleus of each cell.

    Parameters
    ----------
    cells
        Polygon per cell, indexed by cell id (e.g. the ``geometry`` column of the
        ``cell_boundaries`` shapes).
    nuclei
        Nucleus polygons, indexed by the id of their cell (a nucleus whose id is
        not a cell id is given to the cell holding most of its area). A cell with several
        nuclei gets their union; cells without one have no nucleus; nuclei in no
        cell are left out with a warning.

    Returns
    -------
    :class:`CellGeometry` of the cells, in the order of ``cells``.

    Raises
    ------
    ValueError
        If the cell ids repeat, or a cell has no polygon or one of zero area.
    """
    cell_ids = pd.Index(cells.index.astype(str))
    if cell_ids.has_duplicates:
        raise ValueError("cell outlines: the cell ids of the index are not unique")
    geoms = np.asarray(cells.values, dtype=object)
    if shapely.is_missing(geoms).any() or shapely.is_empty(geoms).any():
        raise ValueError("cell outlines: some cells have no polygon")
    area = shapely.area(geoms)
    if (area <= 0).any():
        raise ValueError("cell outlines: some polygons have zero area")
    centroid = shapely.get_coordinates(shapely.centroid(geoms))
    radius = np.empty(len(geoms))
    span = np.empty(len(geoms))
    inertia = np.empty(len(geoms))
    for i, geom in enumerate(geoms):
        vertices = shapely.get_coordinates(shapely.get_exterior_ring(shapely.get_parts(geom)))
        radius[i] = np.linalg.norm(vertices - centroid[i], axis=1).mean()
        hull = shapely.get_coordinates(shapely.convex_hull(geom))
        span[i] = np.sqrt(((hull[:, None] - hull[None]) ** 2).sum(-1).max())
        inertia[i] = _polar_inertia(geom, centroid[i])

    nucleus_geoms = nucleus_per_cell(nuclei, cell_ids, geoms)
    present = ~shapely.is_missing(nucleus_geoms)
    nucleus_area = np.zeros(len(geoms))
    nucleus_centroid = np.full((len(geoms), 2), np.nan)
    if present.any():
        nucleus_area[present] = shapely.area(nucleus_geoms[present])
        nucleus_centroid[present] = shapely.get_coordinates(shapely.centroid(nucleus_geoms[present]))
    return CellGeometry(
        cell_ids=cell_ids,
        cells=geoms,
        nuclei=nucleus_geoms,
        centroid=centroid,
        radius=radius,
        span=span,
        area=area,
        inertia=inertia,
        nucleus_centroid=nucleus_centroid,
        nucleus_area=nucleus_area,
    )


def nucleus_per_cell(nuclei: pd.Series | None, cell_ids: pd.Index, cells: np.ndarray) -> np.ndarray:
    """Nucleus (multi)polygon of each cell (``None`` where absent).

    A nucleus whose id is not a cell id goes to the cell holding most of its area
    (one on the border between two cells, whose point on the surface lay on the
    border, was in none); several nuclei of one cell (a binucleated cell, or ids that
    are not cell ids) are merged into their union. Nuclei overlapping no cell are left
    out with a warning.
    """
    out = np.full(len(cell_ids), None, dtype=object)
    if nuclei is None:
        return out
    geoms = np.asarray(nuclei.values, dtype=object)
    usable = ~shapely.is_missing(geoms)
    usable[usable] = ~shapely.is_empty(geoms[usable])
    positions = cell_ids.get_indexer(nuclei.index.astype(str))
    unknown = np.flatnonzero(usable & (positions < 0))
    if len(unknown):
        nucleus, cell = shapely.STRtree(cells).query(geoms[unknown], predicate="intersects")
        overlap = shapely.area(shapely.intersection(geoms[unknown][nucleus], cells[cell]))
        # Per nucleus, its pair of largest overlap comes first.
        order = np.lexsort((-overlap, nucleus))
        first = order[np.r_[True, nucleus[order][1:] != nucleus[order][:-1]]] if len(order) else order
        first = first[overlap[first] > 0]
        positions[unknown[nucleus[first]]] = cell[first]
    unplaced = usable & (positions < 0)
    if unplaced.any():
        warn_user(
            f"{int(unplaced.sum())} nucleus outline(s) neither carry a cell id nor overlap a cell "
            f"(e.g. {list(nuclei.index[unplaced][:3])}); they are left out."
        )
    placed = usable & (positions >= 0)
    for position in np.unique(positions[placed]):
        own = geoms[placed & (positions == position)]
        out[position] = own[0] if len(own) == 1 else shapely.union_all(own)
    return out


def _polar_inertia(geom, about: np.ndarray) -> float:
    """Mean of ``|x - about|**2`` over the area of a (multi)polygon.

    Green's theorem over each ring: with ``c_i = x_i y_{i+1} - x_{i+1} y_i``,
    ``∫x² dA = Σ c_i (x_i² + x_i x_{i+1} + x_{i+1}²) / 12`` (same for y). Rings
    are oriented so that holes subtract.
    """
    total = 0.0
    area = 0.0
    for part in shapely.get_parts(shapely.orient_polygons(geom)):
        rings = [part.exterior, *part.interiors]
        for ring in rings:
            xy = shapely.get_coordinates(ring) - about
            x0, y0 = xy[:-1, 0], xy[:-1, 1]
            x1, y1 = xy[1:, 0], xy[1:, 1]
            cross = x0 * y1 - x1 * y0
            area += cross.sum() / 2
            total += (cross * (x0**2 + x0 * x1 + x1**2 + y0**2 + y0 * y1 + y1**2)).sum() / 12
    return total / area


@dataclass(frozen=True)
class TranscriptGeometry:
    """Per-transcript geometry relative to the transcript's own cell.

    Arrays have one entry per transcript; nucleus entries are ``0`` (and
    ``in_nucleus`` False) for cells without a nucleus.

    Attributes
    ----------
    cell_distance
        Distance to the cell outline.
    cell_offset
        Distance to the cell centroid.
    nucleus_distance
        Signed distance to the nucleus outline, negative inside the nucleus.
    nucleus_offset
        Distance to the nucleus centroid.
    in_nucleus
        Whether the transcript lies in the nucleus polygon.
    has_nucleus
        Whether the transcript's cell has a nucleus outline.
    in_cell
        Whether the transcript lies in its cell's polygon (molecules belong to a cell
        by their cell id, not by where they lie).
    """

    cell_distance: np.ndarray
    cell_offset: np.ndarray
    nucleus_distance: np.ndarray
    nucleus_offset: np.ndarray
    in_nucleus: np.ndarray
    has_nucleus: np.ndarray
    in_cell: np.ndarray


def transcript_geometry(xy: np.ndarray, cell: np.ndarray, geometry: CellGeometry) -> TranscriptGeometry:
    """Distances of each transcript to its cell's outline, centroid and nucleus.

    Parameters
    ----------
    xy
        ``(N, 2)`` coordinates.
    cell
        ``(N,)`` position of each transcript's cell in ``geometry`` (all valid).
    geometry
        Output of :func:`cell_geometry`.
    """
    cell_distance, in_cell = outline_distance(xy, cell, geometry.cells)
    cell_offset = np.linalg.norm(xy - geometry.centroid[cell], axis=1)
    has_nucleus = geometry.has_nucleus[cell]
    nucleus_distance = np.zeros(len(xy))
    nucleus_offset = np.zeros(len(xy))
    in_nucleus = np.zeros(len(xy), dtype=bool)
    if has_nucleus.any():
        idx = np.flatnonzero(has_nucleus)
        dist, inside = outline_distance(xy[idx], cell[idx], geometry.nuclei)
        in_nucleus[idx] = inside
        nucleus_distance[idx] = np.where(inside, -dist, dist)
        nucleus_offset[idx] = np.linalg.norm(xy[idx] - geometry.nucleus_centroid[cell[idx]], axis=1)
    return TranscriptGeometry(
        cell_distance=cell_distance,
        cell_offset=cell_offset,
        nucleus_distance=nucleus_distance,
        nucleus_offset=nucleus_offset,
        in_nucleus=in_nucleus,
        has_nucleus=has_nucleus,
        in_cell=in_cell,
    )


def outline_distance(xy: np.ndarray, owner: np.ndarray, polygons: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distance of each point to the outline of its polygon, and whether it is inside.

    Same values as ``shapely.distance(point, polygon.boundary)`` and (away from the
    outline itself) ``shapely.contains_xy``, without building point objects: every
    ring (exteriors and holes of all parts) is a list of segments, scanned by a
    compiled loop; inside means an odd number of crossings of a ray towards +x.

    Parameters
    ----------
    xy
        ``(N, 2)`` coordinates.
    owner
        ``(N,)`` index into ``polygons`` of each point's polygon (not ``None``).
    polygons
        (Multi)polygons.
    """
    starts, ends, offsets = [], [], [0]
    for polygon in polygons:
        count = 0
        if polygon is not None:
            for part in shapely.get_parts(polygon):
                for ring in (part.exterior, *part.interiors):
                    coords = np.asarray(ring.coords)[:, :2]
                    starts.append(coords[:-1])
                    ends.append(coords[1:])
                    count += len(coords) - 1
        offsets.append(offsets[-1] + count)
    a = np.concatenate(starts) if starts else np.zeros((0, 2))
    b = np.concatenate(ends) if ends else np.zeros((0, 2))
    distance = np.empty(len(xy))
    inside = np.empty(len(xy), dtype=np.bool_)
    _outline_distance(
        np.ascontiguousarray(xy[:, 0], dtype=np.float64), np.ascontiguousarray(xy[:, 1], dtype=np.float64),
        owner.astype(np.int64), np.asarray(offsets, dtype=np.int64), a[:, 0].copy(), a[:, 1].copy(),
        b[:, 0].copy(), b[:, 1].copy(), distance, inside,
    )
    return distance, inside


@numba.njit(cache=True, nogil=True)
def _outline_distance(x, y, owner, offsets, ax, ay, bx, by, distance, inside):  # pragma: no cover - compiled
    for i in range(x.shape[0]):
        best = np.inf
        crossings = 0
        for s in range(offsets[owner[i]], offsets[owner[i] + 1]):
            dx = bx[s] - ax[s]
            dy = by[s] - ay[s]
            length2 = dx * dx + dy * dy
            t = 0.0
            if length2 > 0:
                t = min(max(((x[i] - ax[s]) * dx + (y[i] - ay[s]) * dy) / length2, 0.0), 1.0)
            px = ax[s] + t * dx - x[i]
            py = ay[s] + t * dy - y[i]
            best = min(best, px * px + py * py)
            if (ay[s] > y[i]) != (by[s] > y[i]) and x[i] < ax[s] + (y[i] - ay[s]) * dx / dy:
                crossings += 1
        distance[i] = np.sqrt(best)
        inside[i] = crossings % 2 == 1
