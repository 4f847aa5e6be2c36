"""Outline of each domain within each cell.

For every (cell, domain) with at least ``min_transcripts`` molecules the outline
is the concave hull (:func:`shapely.concave_hull`) of those molecules, with
``ratio`` between 0 (tightest) and 1 (convex hull), clipped to the cell boundary
when one is given (keeping the polygonal part: where a hull touches a concave cell
outline at a point or along an edge, the intersection holds that point or line too,
which shapes elements cannot store). Groups whose outline has no area (fewer than
three points, or all on a line) get no polygon.
"""
from __future__ import annotations

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from ..io._shapes import check_hull_arguments, concave_hulls
from ..io._spatialdata import polygonal

#: Columns of the domain shapes besides ``geometry``.
POLYGON_COLUMNS = ("cell_id", "domain", "n_transcripts")


def domain_polygons(
    xy: np.ndarray,
    cell_id: pd.Categorical,
    labels: np.ndarray,
    *,
    cell_boundaries: gpd.GeoSeries | None = None,
    ratio: float = 0.3,
    min_transcripts: int = 3,
) -> gpd.GeoDataFrame:
    """Concave hull of each domain's transcripts in each cell.

    Parameters
    ----------
    xy
        ``(N, 2)`` coordinates.
    cell_id
        Cell of each transcript (categorical, NaN = unassigned: left out).
    labels
        Domain code of each transcript.
    cell_boundaries
        Cell polygons indexed by cell id, to clip the hulls; None leaves them as they are.
    ratio
        Concave-hull ratio in ``[0, 1]``.
    min_transcripts
        Smallest group that gets an outline (a positive integer).

    Returns
    -------
    One row per outlined (cell, domain), columns :data:`POLYGON_COLUMNS` and
    ``geometry`` (a ``Polygon`` or ``MultiPolygon``), indexed ``"<cell_id>|<domain>"``.

    Raises
    ------
    TypeError, ValueError
        If ``ratio`` is not a number in ``[0, 1]`` or ``min_transcripts`` not a
        positive integer.
    """
    check_hull_arguments(ratio, min_transcripts)
    cell_id = pd.Categorical(cell_id)
    codes = np.asarray(cell_id.codes, dtype=np.int64)
    labels = np.asarray(labels, dtype=np.int64)
    n_domains = max(int(labels.max()) + 1 if labels.size else 0, 1)
    group = np.where(codes >= 0, codes * n_domains + labels, -1)
    groups, size, hulls = concave_hulls(xy, group, ratio=ratio, min_points=min_transcripts)
    cells = pd.Index(cell_id.categories)[groups // n_domains]
    if cell_boundaries is not None:
        outline = gpd.GeoSeries(cell_boundaries).reindex(cells)
        has_outline = ~outline.isna().to_numpy()
        hulls = polygonal(np.where(has_outline, shapely.intersection(hulls, outline.to_numpy()), hulls))
    areal = shapely.area(hulls) > 0 if hulls.size else np.zeros(0, bool)
    domain = groups % n_domains
    frame = gpd.GeoDataFrame(
        {
            "cell_id": cells[areal].astype(str),
            "domain": domain[areal],
            "n_transcripts": size[areal],
        },
        geometry=hulls[areal],
    )
    frame.index = pd.Index(
        [f"{c}|{d}" for c, d in zip(frame["cell_id"], frame["domain"])], name="domain_region"
    )
    return frame
