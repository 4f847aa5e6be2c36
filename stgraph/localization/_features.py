"""Per-transcript input features of the localization models.

Lengths are divided by the cell's equivalent radius ``sqrt(area / pi)``, so the
features do not depend on the unit of the coordinates or on the size of the cell.
"""
from __future__ import annotations

import numpy as np
import shapely

from ._geometry import CellGeometry, TranscriptGeometry, transcript_geometry

#: Columns of :func:`token_features`.
TOKEN_FEATURES = (
    "membrane_distance",
    "centroid_distance",
    "nucleus_distance",
    "nucleus_centroid_distance",
    "in_nucleus",
    "has_nucleus",
    "envelope_to_membrane",
)
#: Columns of :func:`token_features` that need the nucleus outline.
NUCLEUS_TOKEN_FEATURES = (
    "nucleus_distance",
    "nucleus_centroid_distance",
    "in_nucleus",
    "has_nucleus",
    "envelope_to_membrane",
)


def token_features(tg: TranscriptGeometry, cell: np.ndarray, geometry: CellGeometry) -> np.ndarray:
    """``(N, len(TOKEN_FEATURES))`` float32 features of each transcript.

    ``envelope_to_membrane`` is the relative position between the nuclear envelope
    (0) and the membrane (1) of a molecule outside the nucleus, 0 inside or without
    nucleus; ``nucleus_distance`` is signed (negative inside).
    """
    scale = geometry.equivalent_radius[cell]
    outside = tg.has_nucleus & ~tg.in_nucleus
    gap = np.clip(tg.nucleus_distance, 0.0, None) + tg.cell_distance
    with np.errstate(invalid="ignore", divide="ignore"):
        between = np.where(outside & (gap > 0), np.clip(tg.nucleus_distance, 0.0, None) / gap, 0.0)
    return np.stack(
        [
            tg.cell_distance / scale,
            tg.cell_offset / scale,
            tg.nucleus_distance / scale,
            tg.nucleus_offset / scale,
            tg.in_nucleus,
            tg.has_nucleus,
            between,
        ],
        axis=1,
    ).astype(np.float32)


def reference_points(
    geometry: CellGeometry, per_cell: int = 256, cells: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Points of a regular grid inside each cell, about ``per_cell`` of them.

    They show the model what a uniformly spread gene looks like in that cell.
    ``cells`` (positions) limits them to those cells; default every cell.

    Returns
    -------
    xy, cell
        Coordinates and cell position of every reference point.
    """
    xs, of_cell = [], []
    for c in range(len(geometry.cells)) if cells is None else cells:
        polygon = geometry.cells[c]
        step = np.sqrt(geometry.area[c] / per_cell)
        minx, miny, maxx, maxy = polygon.bounds
        gx, gy = np.meshgrid(np.arange(minx + step / 2, maxx, step), np.arange(miny + step / 2, maxy, step))
        gx, gy = gx.ravel(), gy.ravel()
        inside = shapely.contains_xy(polygon, gx, gy)
        if not inside.any():
            gx, gy = geometry.centroid[c, :1], geometry.centroid[c, 1:]
            inside = np.ones(1, dtype=bool)
        xs.append(np.stack([gx[inside], gy[inside]], axis=1))
        of_cell.append(np.full(int(inside.sum()), c))
    if not xs:
        return np.zeros((0, 2)), np.zeros(0, dtype=np.int64)
    return np.concatenate(xs), np.concatenate(of_cell)


def reference_features(
    geometry: CellGeometry, per_cell: int = 256, cells: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`token_features` of :func:`reference_points` (of ``cells``, default all),
    and their cell positions."""
    xy, cell = reference_points(geometry, per_cell, cells)
    return token_features(transcript_geometry(xy, cell, geometry), cell, geometry), cell
