"""Outline of each domain within each cell.

For every (cell, domain) with at least ``min_transcripts`` molecules the outline
is the concave hull (:func:`shapely.concave_hull`) of those molecules, with
``ratio`` between 0 (tightest) and 1 (convex hull), clipped to the cell boundary
when one is given. Groups whose hull has no area (fewer than three points, or all
on a line) get no polygon. All hulls are built in one vectorised shapely call.
"""
from __future__ import annotations

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from .._validation import check_int, check_real

#: Columns of the domain shapes besides ``geometry``.
POLYGON_COLUMNS = ("cell_id", "domain", "n_transcripts")


def check_polygon_arguments(ratio: float, min_transcripts: int, ratio_name: str = "ratio") -> None:
    """Raise naming the first invalid argument of :func:`domain_polygons`: ``ratio`` a
    number in [0, 1] (called ``ratio_name`` in the message), ``min_transcripts`` a
    positive integer."""
    if not 0.0 <= check_real(ratio_name, ratio, allow_zero=True) <= 1.0:
        raise ValueError(f"{ratio_name} must lie in [0, 1], got {ratio!r}")
    check_int("min_transcripts", min_transcripts)


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
    ``geometry``, indexed ``"<cell_id>|<domain>"``.

    Raises
    ------
    TypeError, ValueError
        If ``ratio`` is not a number in ``[0, 1]`` or ``min_transcripts`` not a
        positive integer.
    """
    check_polygon_arguments(ratio, min_transcripts)
    cell_id = pd.Categorical(cell_id)
    codes = np.asarray(cell_id.codes, dtype=np.int64)
    labels = np.asarray(labels, dtype=np.int64)
    kept = codes >= 0
    n_domains = int(labels.max()) + 1 if labels.size else 0
    group = codes[kept] * max(n_domains, 1) + labels[kept]
    order = np.argsort(group, kind="stable")
    group_sorted = group[order]
    unique, size = np.unique(group_sorted, return_counts=True)
    big = size >= min_transcripts
    in_big = np.repeat(big, size)
    members = np.searchsorted(unique[big], group_sorted[in_big])
    points = shapely.multipoints(np.asarray(xy, dtype=np.float64)[kept][order][in_big], indices=members)
    hulls = shapely.concave_hull(points, ratio=ratio) if points.size else points
    cells = pd.Index(cell_id.categories)[unique[big] // max(n_domains, 1)]
    if cell_boundaries is not None:
        outline = gpd.GeoSeries(cell_boundaries).reindex(cells)
        has_outline = ~outline.isna().to_numpy()
        hulls = np.where(has_outline, shapely.intersection(hulls, outline.to_numpy()), hulls)
    areal = shapely.area(hulls) > 0 if hulls.size else np.zeros(0, bool)
    domain = unique[big] % max(n_domains, 1)
    frame = gpd.GeoDataFrame(
        {
            "cell_id": cells[areal].astype(str),
            "domain": domain[areal],
            "n_transcripts": size[big][areal],
        },
        geometry=hulls[areal],
    )
    frame.index = pd.Index(
        [f"{c}|{d}" for c, d in zip(frame["cell_id"], frame["domain"])], name="domain_region"
    )
    return frame
