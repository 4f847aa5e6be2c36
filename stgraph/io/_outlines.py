"""Cell and nucleus outlines drawn around the transcripts, for data that lack them.

Many exports assign molecules to cells (and flag nuclear ones) without shipping the
segmentation polygons: the CosMx transcript file, Xenium bundles without
``cell_boundaries.parquet``, tables from other pipelines. The tools that need
outlines (``tl.localization``, the domain polygons) can then run on concave hulls of
each cell's molecules.
"""
from __future__ import annotations

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from spatialdata import SpatialData, deepcopy
from spatialdata.transformations import get_transformation

from .._validation import check_bool, check_real
from ._schema import CELL, CELL_SHAPES_KEY, IN_NUCLEUS, NUCLEUS_SHAPES_KEY, POINTS_KEY, X, Y
from ._shapes import check_hull_arguments, concave_hulls, shapes_element
from ._spatialdata import (
    check_element_name,
    check_spatialdata,
    optional_shapes,
    outline_geometry,
    polygonal,
    transcripts_frame,
)

_KINDS = {"cell": CELL_SHAPES_KEY, "nucleus": NUCLEUS_SHAPES_KEY}


def outlines_from_transcripts(
    sdata: SpatialData,
    points_key: str = POINTS_KEY,
    *,
    kind: str = "cell",
    key: str | None = None,
    cell_key: str | None = CELL_SHAPES_KEY,
    nucleus_key: str | None = NUCLEUS_SHAPES_KEY,
    ratio: float = 0.3,
    buffer: float = 0.5,
    min_transcripts: int = 3,
    overwrite: bool = False,
    copy: bool = False,
) -> SpatialData | None:
    """Draw cell or nucleus outlines around the molecules assigned to each cell.

    The outline of a cell is the concave hull (:func:`shapely.concave_hull`) of its
    molecules, grown by ``buffer`` (arcs of 8 segments per quarter circle); for ``kind="nucleus"`` it is that of the cell's
    molecules flagged ``in_nucleus``, clipped to the cell's outline in ``cell_key``
    when the data have one. The buffer puts the molecules that span the hull
    inside it rather than on its edge, so every molecule used lies strictly inside
    its outline. Where the data have nucleus outlines (``nucleus_key``), a cell's
    outline also holds its nucleus: the union of the two, bridged by their concave
    hull where they do not meet (Xenium's measured nuclei reached outside the hulls
    of 67 of the lung sample's 135 cells that have one). Hulls are planar: ``z`` is not used.

    These are estimates, not segmentations: a hull of the molecules is smaller than
    the cell (no molecule lies on the membrane), so distances to the membrane and
    the ``cell_edge`` pattern read less than with measured outlines.

    Parameters
    ----------
    sdata
        Standardised data (a :mod:`stgraph.io` reader's output) whose points carry
        ``cell_id`` and, for nuclei, ``in_nucleus``.
    points_key
        Name of the points element.
    kind
        ``"cell"`` or ``"nucleus"``.
    key
        Shapes element written; default ``"cell_boundaries"`` or
        ``"nucleus_boundaries"``, the names the tools read.
    cell_key
        Cell outlines that nucleus outlines are clipped to (cells without one there
        are not clipped); None, or the default name absent from the data, clips
        nothing; another name must exist. Not used for ``kind="cell"``.
    nucleus_key
        Nucleus outlines, indexed by cell id, that cell outlines are grown to hold
        (cells without one there are drawn from their molecules alone); None, or the
        default name absent from the data, uses none; another name must exist. Not
        used for ``kind="nucleus"``.
    ratio
        Concave-hull ratio in ``[0, 1]``: 0 the tightest hull, 1 the convex hull.
    buffer
        Distance, in the points' units (µm from the stgraph readers), by which the
        hulls grow; ``0`` keeps the bare hulls (then groups whose molecules are
        collinear get no outline).
    min_transcripts
        Fewest molecules of a cell (of its nucleus) that get an outline.
    overwrite
        Replace an existing shapes element ``key``; by default that is refused, so
        no outline is lost.
    copy
        Return a new SpatialData instead of writing into ``sdata``.

    Returns
    -------
    ``None``, or the copy if ``copy=True``. Written: ``shapes[key]``, one polygon per
    outlined cell indexed by cell id (nuclei too, as ``tl.localization`` reads them),
    with the column ``n_transcripts`` and the coordinate transformations of the
    points.

    Raises
    ------
    TypeError
        If ``sdata`` is not a SpatialData, or a setting has the wrong type.
    KeyError
        If ``points_key`` is not a points element.
    ValueError
        For an unknown ``kind``, settings out of range, points without
        ``in_nucleus`` for nuclei, a ``cell_key`` or ``nucleus_key`` other than the
        default that is not a shapes element, outlines there that are neither
        polygons nor circles or have another transformation than the points (they
        would not align), a ``key`` that is not a valid element name or names
        another element (a table, points, one differing only in case), an existing
        ``key`` without ``overwrite=True``, no molecule assigned to a cell, or no cell
        with enough molecules to outline.

    Examples
    --------
    >>> import stgraph
    >>> sdata = stgraph.datasets.merfish_u2os()
    >>> stgraph.io.outlines_from_transcripts(sdata, kind="cell", key="cell_hulls")
    >>> len(sdata.shapes["cell_hulls"])
    15
    """
    check_spatialdata(sdata)
    if kind not in _KINDS:
        raise ValueError(f"kind must be one of {list(_KINDS)}, got {kind!r}")
    check_hull_arguments(ratio, min_transcripts)
    check_real("buffer", buffer, allow_zero=True)
    overwrite = check_bool("overwrite", overwrite)
    copy = check_bool("copy", copy)
    key = _KINDS[kind] if key is None else key
    check_element_name(sdata, key, "key")
    if key in sdata.shapes and not overwrite:
        raise ValueError(f"sdata already has a shapes element {key!r}; pass overwrite=True to replace it")
    points = transcripts_frame(sdata, points_key)
    cells = pd.Categorical(points[CELL])
    group = np.asarray(cells.codes, dtype=np.int64)
    if (group < 0).all():  # else refused below as cells too small, which misleads
        raise ValueError(
            f"no molecule of {points_key!r} is assigned to a cell ({CELL!r} is empty): outlines are drawn "
            "around each cell's molecules"
        )
    if kind == "nucleus":
        if IN_NUCLEUS not in points:
            raise ValueError(f"points {points_key!r} have no {IN_NUCLEUS!r} column to outline nuclei from")
        group = np.where(points[IN_NUCLEUS].to_numpy(), group, -1)
    codes, sizes, hulls = concave_hulls(
        points[[X, Y]].to_numpy(), group, ratio=ratio, min_points=min_transcripts
    )
    if buffer > 0:
        hulls = shapely.buffer(hulls, buffer, quad_segs=8)
    ids = pd.Index(cells.categories[codes].astype(str))
    if kind == "nucleus":
        cell_outline = _outlines_of(sdata, cell_key, CELL_SHAPES_KEY, "cell_key", ids, points_key)
        if cell_outline is not None:
            hulls = np.where(shapely.is_missing(cell_outline), hulls, shapely.intersection(hulls, cell_outline))
    else:
        nucleus = _outlines_of(sdata, nucleus_key, NUCLEUS_SHAPES_KEY, "nucleus_key", ids, points_key)
        if nucleus is not None:
            hulls = _holding(hulls, nucleus, ratio)
    hulls = polygonal(hulls)
    areal = shapely.area(hulls) > 0
    if not areal.any():
        raise ValueError(
            f"no cell of {points_key!r} has {min_transcripts} or more "
            f"{'nuclear ' if kind == 'nucleus' else ''}molecules spanning an area to outline"
        )
    frame = gpd.GeoDataFrame({"n_transcripts": sizes[areal]}, geometry=hulls[areal], index=ids[areal])
    transformations = get_transformation(sdata.points[points_key], get_all=True)
    if copy:
        sdata = deepcopy(sdata)
    sdata.shapes[key] = shapes_element(frame, scale=1.0, index_name=CELL, transformations=transformations)
    return sdata if copy else None


def _outlines_of(sdata: SpatialData, key: str | None, default: str, argument: str, ids: pd.Index, points_key: str):
    """The outline in ``shapes[key]`` of each cell id of ``ids`` (None where it has none;
    circles as discs), or None where there are no such outlines (:func:`optional_shapes`;
    they must align with the points ``points_key``)."""
    shapes = optional_shapes(sdata, key, default, argument, points_key)
    if shapes is None:
        return None
    # Outlines indexed by integers match the string cell ids of the points.
    by_id = pd.Series(outline_geometry(shapes, key).to_numpy(), index=shapes.index.astype(str))
    outlines = by_id.reindex(ids)
    return np.where(outlines.isna(), None, outlines.to_numpy())  # reindex fills NaN, not a geometry


def _holding(hulls: np.ndarray, nuclei: np.ndarray, ratio: float) -> np.ndarray:
    """Each hull grown to hold its nucleus (None: no nucleus): their union, bridged by
    the concave hull of both where they do not meet (a cell is one piece)."""
    has = ~shapely.is_missing(nuclei)
    out = hulls.copy()
    union = shapely.union(hulls[has], nuclei[has])
    apart = shapely.get_type_id(union) == shapely.GeometryType.MULTIPOLYGON
    union[apart] = shapely.union(shapely.concave_hull(union[apart], ratio=ratio), union[apart])
    out[has] = union
    return out
