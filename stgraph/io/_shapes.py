"""Cell and nucleus boundary polygons: from vertex tables or WKB, into ``ShapesModel``."""
from __future__ import annotations

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from spatialdata.models import ShapesModel
from spatialdata.transformations import Identity

from .._validation import check_int, check_real
from ._points import as_id_strings


def polygons_from_vertices(
    table: pd.DataFrame, *, id_column: str, x: str, y: str, part_column: str | None = None
) -> gpd.GeoSeries:
    """One polygon per id from a table of vertices listed in ring order.

    Parameters
    ----------
    table
        One row per vertex; the rows of one ring are consecutive (as in Xenium's
        ``*_boundaries.parquet``). Rings need not repeat their first vertex.
    id_column, x, y
        Columns of the id and of the vertex coordinates.
    part_column
        Column telling apart several rings of the same id (Xenium's ``label_id`` where a
        cell has several nuclei); ids with several rings get a ``MultiPolygon``.

    Returns
    -------
    Geometries indexed by id (strings), in order of first appearance.

    Raises
    ------
    ValueError
        If the table lacks a column, a ring has fewer than 3 vertices, or a vertex
        is NaN or infinite (naming the ids).
    """
    missing = [c for c in (id_column, x, y, part_column) if c is not None and c not in table]
    if missing:
        raise ValueError(f"boundary table lacks the column(s) {missing}; it has {list(table.columns)}")
    keys = [id_column] if part_column is None else [id_column, part_column]
    ring_of_vertex = table.groupby(keys, sort=False).ngroup().to_numpy()
    counts = np.bincount(ring_of_vertex)
    if counts.min() < 3:
        raise ValueError(f"boundary table has a ring with {counts.min()} vertices; a polygon needs 3")
    order = np.argsort(ring_of_vertex, kind="stable")
    coords = table[[x, y]].to_numpy(dtype=np.float64)[order]
    _check_finite_vertices(coords, pd.Index(table[id_column].to_numpy()[order]))
    rings = shapely.polygons(shapely.linearrings(coords, indices=ring_of_vertex[order]))
    ring_ids = as_id_strings(pd.Index(table[id_column].to_numpy()[order][np.cumsum(counts) - 1], name=id_column))
    return _one_geometry_per_id(pd.Series(rings, index=ring_ids))


def check_hull_arguments(ratio: float, min_transcripts: int, ratio_name: str = "ratio") -> None:
    """Raise naming the first invalid setting of the outlines drawn with
    :func:`concave_hulls`: ``ratio`` a number in [0, 1] (called ``ratio_name`` in the
    message), ``min_transcripts`` a positive integer."""
    if not 0.0 <= check_real(ratio_name, ratio, allow_zero=True) <= 1.0:
        raise ValueError(f"{ratio_name} must lie in [0, 1], got {ratio!r}")
    check_int("min_transcripts", min_transcripts)


def concave_hulls(
    xy: np.ndarray, group: np.ndarray, *, ratio: float, min_points: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Concave hull (:func:`shapely.concave_hull`) of the points of each group, in one
    vectorised shapely call.

    Parameters
    ----------
    xy
        ``(N, 2)`` coordinates.
    group
        ``(N,)`` non-negative integer group of each point; ``-1`` leaves a point out.
    ratio
        Concave-hull ratio, from 0 (tightest) to 1 (convex hull).
    min_points
        Smallest group that gets a hull.

    Returns
    -------
    groups, sizes, hulls
        The groups with at least ``min_points`` points (ascending), their sizes and
        their hulls; a hull has no area when its points are fewer than three or collinear.
    """
    group = np.asarray(group, dtype=np.int64)
    kept = np.flatnonzero(group >= 0)
    order = kept[np.argsort(group[kept], kind="stable")]
    unique, size = np.unique(group[order], return_counts=True)
    big = size >= min_points
    in_big = np.repeat(big, size)
    members = np.searchsorted(unique[big], group[order][in_big])
    points = shapely.multipoints(np.asarray(xy, dtype=np.float64)[order][in_big], indices=members)
    hulls = shapely.concave_hull(points, ratio=ratio) if points.size else points
    return unique[big], size[big], hulls


def polygons_from_wkb(ids: pd.Series, wkb: pd.Series) -> gpd.GeoSeries:
    """One geometry per id from WKB blobs; the union where an id has several (z-planes)."""
    with np.errstate(invalid="ignore"):  # NaN vertices warn here; _one_geometry_per_id refuses them by id
        geometries = shapely.from_wkb(wkb.to_numpy())
    return _one_geometry_per_id(pd.Series(geometries, index=as_id_strings(pd.Index(ids.to_numpy()))))


def _one_geometry_per_id(parts: pd.Series) -> gpd.GeoSeries:
    _check_finite(parts.to_numpy(), parts.index)  # before the union: GEOS fails on NaN / inf vertices
    if not parts.index.has_duplicates:
        return gpd.GeoSeries(parts.to_numpy(), index=parts.index)
    # identical copies (the same outline on every z-plane) need no union
    wkb = shapely.to_wkb(parts.to_numpy())
    parts = parts[~pd.DataFrame({"id": parts.index, "wkb": wkb}).duplicated().to_numpy()]
    repeated = parts.index.duplicated(keep=False)
    single = parts[~repeated]
    merged = parts[repeated].groupby(level=0, sort=False).agg(lambda g: shapely.union_all(g.to_numpy()))
    geometries = pd.concat([single, merged])
    order = pd.Index(parts.index.unique())
    return gpd.GeoSeries(geometries.reindex(order).to_numpy(), index=order)


def _check_finite(geometries: np.ndarray, ids: pd.Index) -> None:
    """:func:`_check_finite_vertices` of the vertices of ``geometries``, named by their ``ids``."""
    coords, which = shapely.get_coordinates(geometries, return_index=True)
    _check_finite_vertices(coords, ids[which])


def _check_finite_vertices(coords: np.ndarray, ids: pd.Index) -> None:
    """Raise a ValueError naming the outlines (``ids``, one per row of the ``(n, 2)``
    ``coords``) with a NaN or infinite vertex: they have no area or extent to measure in."""
    offending = ids[~np.isfinite(coords).all(axis=1)].unique()
    if len(offending):
        raise ValueError(
            f"{len(offending)} boundaries have non-finite vertex coordinates (NaN or inf), "
            f"ids {as_id_strings(offending)[:5].tolist()}"
        )


def shapes_element(
    geometries: gpd.GeoSeries | gpd.GeoDataFrame,
    *,
    scale: float,
    index_name: str,
    transformations: dict | None = None,
) -> gpd.GeoDataFrame:
    """A ``ShapesModel`` GeoDataFrame indexed by id strings, coordinates multiplied by ``scale``.

    The input is not modified; extra columns of a GeoDataFrame are kept, its own
    coordinate transformations are not (the coordinates are those of the points).
    ``transformations`` (coordinate system -> transformation) default to the identity
    to ``global``.

    Raises
    ------
    TypeError
        If ``geometries`` is neither a GeoSeries nor a GeoDataFrame.
    ValueError
        For repeated ids, no geometry, missing geometries, geometries that are not
        polygons, or vertices that are NaN or infinite (naming the ids).
    """
    if isinstance(geometries, gpd.GeoSeries):
        frame = gpd.GeoDataFrame(geometry=geometries.copy())
    elif isinstance(geometries, gpd.GeoDataFrame):
        frame = geometries.copy()
        if frame.geometry.name != "geometry":
            frame = frame.rename_geometry("geometry")
    else:
        raise TypeError(f"boundaries must be a GeoSeries or GeoDataFrame, got {type(geometries).__name__}")
    frame.index = as_id_strings(pd.Index(frame.index))
    if frame.index.has_duplicates:
        raise ValueError(f"boundary ids are not unique: {frame.index[frame.index.duplicated()][:5].tolist()}")
    if len(frame) == 0:
        raise ValueError("boundaries hold no geometry")
    missing = frame.index[frame.geometry.isna().to_numpy()]
    if len(missing):
        raise ValueError(f"{len(missing)} boundaries have no geometry (None), ids {missing[:5].tolist()}")
    kinds = set(frame.geometry.geom_type)
    if not kinds <= {"Polygon", "MultiPolygon"}:
        raise ValueError(f"boundaries must be polygons, got {sorted(kinds)}")
    _check_finite(frame.geometry.to_numpy(), frame.index)
    if scale != 1.0:
        frame["geometry"] = shapely.transform(frame.geometry.to_numpy(), lambda xy: xy * scale)
    frame.index.name = index_name
    # ShapesModel.parse would keep the transformations a parsed input carries
    frame.attrs.pop("transform", None)
    return ShapesModel.parse(frame, transformations=transformations or {"global": Identity()})
