"""Bring an existing SpatialData into the schema, and read the schema back as a DataFrame."""
from __future__ import annotations

from collections.abc import Collection

import numpy as np
import pandas as pd
import shapely
from spatialdata import SpatialData, transform
from spatialdata.models import TableModel, get_axes_names
from spatialdata.transformations import Identity, get_transformation, set_transformation

try:
    from spatialdata._core.validation import check_valid_name
except ImportError:  # spatialdata releases before the name rules accept any string

    def check_valid_name(name: str) -> None:
        """Accept ``name``: this spatialdata restricts no element name."""

from .._validation import check_bool, check_key, is_dask
from .._warnings import warn_user
from ._generic import read_transcripts
from ._points import as_id_strings, check_numeric
from ._schema import (
    CELL,
    CELL_SHAPES_KEY,
    GENE,
    IN_NUCLEUS,
    IS_CONTROL,
    NUCLEUS,
    NUCLEUS_SHAPES_KEY,
    POINTS_KEY,
    UNASSIGNED_IDS,
    X,
    Y,
    Z,
)

#: Kinds of SpatialData elements: their names share one namespace.
_ELEMENT_KINDS = ("images", "labels", "points", "shapes", "tables")
_BENTO_CELL, _BENTO_NUCLEUS, _BENTO_GENE = "cell_boundaries", "nucleus_boundaries", "feature_name"


def from_spatialdata(
    sdata: SpatialData,
    *,
    points_key: str = POINTS_KEY,
    gene: str | None = None,
    cell: str | None = None,
    nucleus: str | None = None,
    in_nucleus: str | None = None,
    z: str | None = None,
    pixel_size: float = 1.0,
    z_step: float | None = None,
    unassigned: Collection = UNASSIGNED_IDS,
    cell_shapes_key: str | None = CELL_SHAPES_KEY,
    nucleus_shapes_key: str | None = NUCLEUS_SHAPES_KEY,
    drop_controls: bool = False,
) -> SpatialData:
    """Standardise the transcripts of an existing SpatialData (e.g. Bento's) to the schema.

    ``sdata`` is not modified: a new object is returned. The points and the outlines
    are read in the coordinate system of the points (``global`` where they have one
    to it, else their only one), their transformations applied: points
    in pixels with a ``Scale`` to µm in ``global`` (and outlines with their own
    transformation there) come out in µm, with the identity to that system.

    Parameters
    ----------
    sdata
        The SpatialData holding the molecules as a points element.
    points_key
        Name of that points element.
    gene, cell, nucleus, in_nucleus
        Columns to map, as in :func:`stgraph.io.read_transcripts`. By default, the first
        present of: ``gene``, the element's ``feature_key``, ``feature_name`` for the gene;
        ``cell_id``, the element's ``instance_key``, ``cell_boundaries`` (Bento) for the
        cell; ``nucleus_id``, ``nucleus_boundaries`` (Bento) for the nucleus; ``in_nucleus``.
    z
        Column of the depth, for points whose coordinate axes are only x and y (e.g.
        ``global_z``, the z-plane of spatialdata-io's MERSCOPE points), in units of
        ``z_step``; it is no axis, so their transformation does not apply to it. By
        default the points' ``z`` axis where they have one, else none (2D).
    pixel_size, z_step, unassigned, drop_controls
        As in :func:`stgraph.io.read_transcripts`, in units of the points' coordinate
        system.
        Bento keeps the coordinates it was given: its MERFISH U2-OS sample is in image
        pixels of about 0.1 µm, so read it with ``pixel_size=0.1`` (as
        :func:`stgraph.datasets.merfish_u2os` does); with the default 1 every radius
        in µm would be a radius in pixels.
    cell_shapes_key, nucleus_shapes_key
        Shapes elements of ``sdata`` holding the cell / nucleus polygons or circles
        (copied as discs, as the tools read them; with a transformation to the
        points' coordinate system), copied as ``cell_boundaries`` /
        ``nucleus_boundaries`` scaled to µm. None
        copies none, as does the default name where ``sdata`` has no such element; any
        other name must be a shapes element of ``sdata``.

    Returns
    -------
    A new :class:`spatialdata.SpatialData` with the standardised ``transcripts`` (indexed
    as the points, except that points whose index repeats, as the partitions of
    spatialdata-io's MERSCOPE points each count from 0, keep their row order and are
    numbered 0, 1, ... afresh; see :func:`stgraph.io.read_transcripts`), the
    boundaries and copies of the tables of ``sdata`` (a table annotating the cell or
    nucleus shapes, or the points, then annotates them under their new names:
    ``cell_boundaries``, ``nucleus_boundaries``, ``transcripts``, its ``instance_key``
    column holding the ids as the strings they became there). Images, labels and the
    other points and shapes elements are carried over as they are where their
    coordinates are not rescaled: with ``pixel_size=1`` (e.g. a saved stgraph result),
    those without a z axis whatever ``z_step`` (which rescales z only, e.g. the 2D
    mosaics next to MERSCOPE points read with ``z=``), and those with one where
    ``z_step`` is None or 1. The others are not, since their coordinates would need
    rescaling to µm (a warning names them).

    Raises
    ------
    TypeError
        If ``sdata`` is not a SpatialData, ``drop_controls`` not a bool, or
        ``cell_shapes_key`` or ``nucleus_shapes_key`` neither a string nor None.
    KeyError
        If ``points_key`` is not a points element of ``sdata``.
    ValueError
        If no gene column is found (pass ``gene=``), ``z`` is given for points
        with a z axis, ``cell_shapes_key`` or
        ``nucleus_shapes_key`` is neither None, nor its default, nor a shapes element of
        ``sdata`` (naming the shapes elements there are), the points have several
        coordinate systems and none is ``global``, the outlines have no transformation
        to the points' coordinate system, or for the problems that
        :func:`stgraph.io.read_transcripts` refuses.

    Warns
    -----
    UserWarning
        Naming the images, labels, points and shapes of ``sdata`` not carried over.
    """
    check_spatialdata(sdata)
    drop_controls = check_bool("drop_controls", drop_controls)
    element = points_element(sdata, points_key)
    attrs = element.attrs.get("spatialdata_attrs", {})
    columns = list(element.columns)
    if z is not None and Z in get_axes_names(element):
        raise ValueError(
            f"z={z!r} names a depth column, but points {points_key!r} have a z axis already, which is their "
            "depth; leave z out"
        )
    system = _coordinate_system(element, points_key)
    frame = _points_in(element, _transformation_to(element, system, f"points {points_key!r}", points_key))
    shapes, renamed = {}, {points_key: POINTS_KEY}  # new name -> outlines; old name -> new name
    for name, key, argument in (
        (CELL_SHAPES_KEY, cell_shapes_key, "cell_shapes_key"),
        (NUCLEUS_SHAPES_KEY, nucleus_shapes_key, "nucleus_shapes_key"),
    ):
        outlines = optional_shapes(sdata, key, name, argument)
        if outlines is not None:
            shapes[name] = _polygons(_shapes_in(outlines, system, f"shapes {key!r}", points_key), key)
            renamed[key] = name
    result = read_transcripts(
        frame,
        x=X,
        y=Y,
        z=z or (Z if Z in columns else None),
        gene=gene or _first_present(columns, GENE, attrs.get("feature_key"), _BENTO_GENE, role="gene"),
        cell=cell or _first_present(columns, CELL, attrs.get("instance_key"), _BENTO_CELL),
        nucleus=nucleus or _first_present(columns, NUCLEUS, _BENTO_NUCLEUS),
        in_nucleus=in_nucleus or _first_present(columns, IN_NUCLEUS),
        pixel_size=pixel_size,
        z_step=z_step,
        unassigned=unassigned,
        drop_controls=drop_controls,
        cell_boundaries=shapes.get(CELL_SHAPES_KEY),
        nucleus_boundaries=shapes.get(NUCLEUS_SHAPES_KEY),
    )
    for written in (*result.points.values(), *result.shapes.values()):
        set_transformation(written, {system: Identity()}, set_all=True)
    for name, table in sdata.tables.items():
        result.tables[name] = _annotating(table.copy(), renamed)
    kept = set(renamed)
    if pixel_size == 1:
        kept |= _carry_over(sdata, result, taken=set(renamed) | set(renamed.values()),
                            with_z=z_step is None or z_step == 1)
    _warn_left_out(sdata, kept=kept)
    return result


def _coordinate_system(points, points_key: str) -> str:
    """The coordinate system the result is given in: ``global`` where the points have
    one to it (the scverse convention for µm), else their only one.

    Raises
    ------
    ValueError
        If the points have several coordinate systems and none is ``global``.
    """
    systems = sorted(get_transformation(points, get_all=True))
    if "global" in systems or len(systems) == 1:
        return "global" if "global" in systems else systems[0]
    raise ValueError(
        f"points {points_key!r} have the coordinate systems {systems} and none is 'global': bring the data "
        "into one first, e.g. sdata.transform_to_coordinate_system(name)"
    )


def _transformation_to(element, system: str, what: str, points_key: str):
    """The transformation of ``element`` (called ``what`` in the message) to ``system``.

    Raises
    ------
    ValueError
        If ``element`` has none to ``system``.
    """
    transformations = get_transformation(element, get_all=True)
    if system not in transformations:
        raise ValueError(
            f"{what} have no transformation to {system!r}, the coordinate system of the points "
            f"{points_key!r}, so they would not align with them; it has {sorted(transformations)}"
        )
    return transformations[system]


def _points_in(points, transformation) -> pd.DataFrame:
    """The rows of the points element ``points`` with ``transformation`` applied to
    their coordinates (a new frame where it is not the identity).

    Applied here to the computed rows: :func:`spatialdata.transform` mixes the rows of
    points read from a store in several partitions (spatialdata 0.7).
    """
    frame = points.compute()
    if isinstance(transformation, Identity):
        return frame
    axes = list(get_axes_names(points))
    for axis in axes:
        check_numeric(frame[axis])
    matrix = transformation.to_affine_matrix(input_axes=axes, output_axes=axes)
    coordinates = frame[axes].to_numpy(dtype=np.float64) @ matrix[:-1, :-1].T + matrix[:-1, -1]
    return frame.assign(**dict(zip(axes, coordinates.T)))


def _shapes_in(shapes, system: str, what: str, points_key: str):
    """The shapes element ``shapes`` (not modified) in the coordinate system ``system``."""
    transformation = _transformation_to(shapes, system, what, points_key)
    return shapes if isinstance(transformation, Identity) else transform(shapes, to_coordinate_system=system)


def _polygons(shapes, key: str):
    """The outlines ``shapes`` (element ``key``), circles as the discs the tools read
    them as (:func:`outline_geometry`)."""
    discs = outline_geometry(shapes, key)
    return shapes if set(shapes.geom_type.dropna()) <= {"Polygon", "MultiPolygon"} else discs


def _carry_over(sdata: SpatialData, result: SpatialData, taken: set[str], *, with_z: bool) -> set[str]:
    """Put the images, labels, points and shapes of ``sdata`` whose names are not
    ``taken`` into ``result`` as they are (shapes copied); the names carried. Those
    with a z axis only ``with_z``.

    Only for points not rescaled by ``pixel_size``: the result is then in the points'
    coordinate system, where the other elements' own transformations align them with
    it as they did with the input. A ``z_step`` rescales the result's z alone, so
    only the elements with a z axis would no longer align (``with_z`` False).
    """
    carried = set()
    for kind in ("images", "labels", "points", "shapes"):
        for name, element in getattr(sdata, kind).items():
            if name in taken or (not with_z and Z in get_axes_names(element)):
                continue
            getattr(result, kind)[name] = element.copy() if kind == "shapes" else element
            carried.add(name)
    return carried


def _warn_left_out(sdata: SpatialData, kept: Collection[str]) -> None:
    """Warn naming the images, labels, points and shapes of ``sdata`` not in ``kept``."""
    left_out = {kind: [name for name in getattr(sdata, kind) if name not in kept]
                for kind in ("images", "labels", "points", "shapes")}
    listed = "; ".join(f"{kind} {names}" for kind, names in left_out.items() if names)
    if listed:
        warn_user(
            f"from_spatialdata does not carry over {listed}: their coordinates are not rescaled to "
            "the µm of the result, so they would not align with it"
        )


def _annotating(table, renamed: dict[str, str]):
    """``table`` (a copy) annotating the elements under their new names: a table of
    the shapes ``cells`` must follow them to ``cell_boundaries``, its instance ids
    becoming id strings as the cell ids and outline labels did (``7`` -> ``"7"``)."""
    attrs = table.uns.get(TableModel.ATTRS_KEY)
    if not attrs or not attrs.get(TableModel.REGION_KEY):
        return table
    region = attrs[TableModel.REGION_KEY]
    regions = [region] if isinstance(region, str) else list(region)
    if not set(regions) & set(renamed):
        return table
    new_regions = [renamed.get(r, r) for r in regions]
    attrs[TableModel.REGION_KEY] = new_regions[0] if isinstance(region, str) else new_regions
    region_key = attrs[TableModel.REGION_KEY_KEY]
    values = table.obs[region_key].astype(str).replace(renamed)
    table.obs[region_key] = pd.Categorical(values)
    instance_key = attrs.get(TableModel.INSTANCE_KEY)
    if instance_key in table.obs:
        table.obs[instance_key] = _id_column(table.obs[instance_key])
    return table


def _id_column(column: pd.Series) -> np.ndarray | pd.Categorical:
    """The ids of ``column`` as id strings, categorical if it was."""
    strings = as_id_strings(pd.Index(column, name=column.name))
    return pd.Categorical(strings) if isinstance(column.dtype, pd.CategoricalDtype) else strings.to_numpy()


def points_element(sdata: SpatialData, points_key: str):
    """The points element ``sdata.points[points_key]``.

    Raises
    ------
    KeyError
        If there is none, naming the points elements there are.
    """
    if points_key not in sdata.points:
        raise KeyError(f"no points element {points_key!r}; the points are {list(sdata.points)}")
    return sdata.points[points_key]


def check_spatialdata(sdata) -> None:
    """Raise a TypeError unless ``sdata`` is a :class:`spatialdata.SpatialData`."""
    if not isinstance(sdata, SpatialData):
        got = type(sdata).__name__
        if is_dask(sdata):  # sdata.points[key] given for sdata
            got = f"a dask {got} (a points element?): pass the SpatialData that holds it"
        raise TypeError(f"expected a SpatialData, got {got}")


def transcripts_frame(sdata: SpatialData, points_key: str = POINTS_KEY) -> pd.DataFrame:
    """The transcripts of a standardised SpatialData as an in-memory DataFrame.

    Parameters
    ----------
    sdata
        Output of a :mod:`stgraph.io` reader, of :func:`stgraph.io.from_spatialdata` or of
        :func:`stgraph.datasets.merfish_u2os`.
    points_key
        Name of the points element.

    Returns
    -------
    A new DataFrame (changing it does not change ``sdata``), indexed as the points element,
    with at least ``x``, ``y`` (float64, µm, finite), ``gene`` (categorical), ``cell_id``
    (categorical, NaN = unassigned) and ``is_control`` (bool); ``z``, ``in_nucleus``,
    ``nucleus_id`` and platform columns where present.

    Raises
    ------
    TypeError
        If ``sdata`` is not a SpatialData.
    KeyError
        If ``points_key`` is not a points element of ``sdata``.
    ValueError
        If a schema column is missing or has the wrong type, or a coordinate is not finite.
    """
    check_spatialdata(sdata)
    # dask may hand back the very frame the element wraps: copy, so edits stay local
    frame = points_element(sdata, points_key).compute().copy()
    hint = "; standardise it with stgraph.io.from_spatialdata or read it with a stgraph.io reader"
    missing = [c for c in (X, Y, GENE, CELL, IS_CONTROL) if c not in frame]
    if missing:
        raise ValueError(f"points {points_key!r} lack the schema column(s) {missing}{hint}")
    for column in (X, Y, Z):
        if column in frame:
            if frame[column].dtype != np.float64:
                raise ValueError(f"column {column!r} must be float64, got {frame[column].dtype}{hint}")
            if not np.isfinite(frame[column].to_numpy()).all():
                raise ValueError(f"column {column!r} has non-finite coordinates")
    for column in (GENE, CELL, NUCLEUS):
        if column in frame and not isinstance(frame[column].dtype, pd.CategoricalDtype):
            raise ValueError(f"column {column!r} must be categorical, got {frame[column].dtype}{hint}")
    for column in (IS_CONTROL, IN_NUCLEUS):
        if column in frame and frame[column].dtype != bool:
            raise ValueError(f"column {column!r} must be bool, got {frame[column].dtype}{hint}")
    return frame


def _first_present(columns: list[str], *candidates: str | None, role: str | None = None) -> str | None:
    for candidate in candidates:
        if candidate is not None and candidate in columns:
            return candidate
    if role is not None:
        raise ValueError(f"cannot find the {role} column among {columns}; pass {role}=...")
    return None


def optional_shapes(
    sdata: SpatialData, key: str | None, default: str, argument: str, points_key: str | None = None
):
    """The shapes element ``sdata.shapes[key]``, or None where there is none to draw or use.

    None when ``key`` is None, or is the ``default`` name and absent (samples often
    come without nuclei, and a domain run can leave no outlines). Any other name must
    exist: a misspelt key would otherwise pass silently as "no outlines". With
    ``points_key``, the outlines must lie in the coordinates of those points
    (:func:`check_aligned`).

    Raises
    ------
    TypeError
        If ``key`` is neither a string nor None, naming ``argument``.
    ValueError
        If ``key`` is not ``default`` and not a shapes element, naming ``argument`` and
        listing the shapes elements there are, or the outlines do not align with the
        points ``points_key``.
    """
    # A list was refused as unhashable, an int as a missing element.
    if check_key(argument, key, optional=True) is None:
        return None
    if key not in sdata.shapes:
        if key == default:
            return None
        raise ValueError(
            f"sdata has no shapes element {argument}={key!r}; it has {sorted(sdata.shapes)} "
            f"(pass {argument}=None for none)"
        )
    if points_key is not None:
        check_aligned(sdata, key, points_key)
    return sdata.shapes[key]


def check_aligned(sdata: SpatialData, key: str, points_key: str) -> None:
    """Refuse the shapes ``key`` unless they share the coordinates of the points ``points_key``.

    The tools and plots compare outlines with molecules in the coordinates the elements
    store. Where the two have different transformations to a coordinate system
    (outlines in pixels with a ``Scale`` to µm next to points in µm, say), those
    coordinates do not align, and every molecule would be matched against the wrong
    part of its outline silently.

    Raises
    ------
    KeyError
        If ``points_key`` is not a points element of ``sdata``.
    ValueError
        If no coordinate system of the points is one of the shapes' with the same
        (x, y) transformation, naming both transformations.
    """
    to_points = get_transformation(points_element(sdata, points_key), get_all=True)
    to_shapes = get_transformation(sdata.shapes[key], get_all=True)
    shared = [system for system in to_points if system in to_shapes]
    if any(np.allclose(_planar_matrix(to_points[s]), _planar_matrix(to_shapes[s])) for s in shared):
        return
    if shared:
        system = "global" if "global" in shared else shared[0]
        differ = (
            f"have another transformation to {system!r} ({_described(to_shapes[system])}) than the points "
            f"{points_key!r} ({_described(to_points[system])})"
        )
    else:
        differ = f"share no coordinate system with the points {points_key!r} ({sorted(to_shapes)} and {sorted(to_points)})"
    raise ValueError(
        f"shapes {key!r} {differ}, so their stored coordinates do not align; bring both into one coordinate "
        f"system first, e.g. stgraph.io.from_spatialdata(sdata, points_key={points_key!r}, "
        "cell_shapes_key=..., nucleus_shapes_key=...), which applies the transformations"
    )


def _planar_matrix(transformation) -> np.ndarray:
    """The (x, y) affine matrix of ``transformation``."""
    return transformation.to_affine_matrix(input_axes=(X, Y), output_axes=(X, Y))


def _described(transformation) -> str:
    """``transformation`` in one line: its kind and (x, y) affine matrix."""
    return f"{type(transformation).__name__} {np.round(_planar_matrix(transformation)[:2], 6).tolist()}"


def outline_geometry(shapes, key: str):
    """The outlines of shapes element ``key`` (a GeoDataFrame) as polygons.

    SpatialData also stores outlines as circles (points with a ``radius`` column,
    e.g. Xenium's cell circles of spatialdata-io); they become discs (64-gon
    approximations), since as points they would have no area to hold molecules.

    Invalid polygons (a self-intersecting ring, say: a bow tie's shapely area is that
    of its larger lobe minus its smaller one) are repaired with
    :func:`shapely.make_valid`, keeping their polygonal part, with a warning; the
    element itself is left as it is.

    Raises
    ------
    ValueError
        If ``key`` holds other geometries than polygons, multipolygons, or circles
        with a positive finite radius (missing geometries pass as missing).

    Warns
    -----
    UserWarning
        Naming the invalid polygons repaired (how many, examples and why).
    """
    geometry = shapes.geometry
    kinds = set(geometry.geom_type.dropna())
    if kinds <= {"Polygon", "MultiPolygon"}:
        return _repaired(geometry, key)
    if kinds == {"Point"} and "radius" in shapes.columns:
        radius = pd.to_numeric(shapes["radius"], errors="coerce").to_numpy(dtype=float)
        present = ~geometry.isna().to_numpy()
        if not (np.isfinite(radius[present]).all() and (radius[present] > 0).all()):
            raise ValueError(f"shapes element {key!r} holds circles whose radius is not a positive finite number")
        return geometry.buffer(np.where(present, radius, 0.0), quad_segs=16)
    raise ValueError(
        f"shapes element {key!r} holds {sorted(kinds)} geometries: outlines must be polygons, multipolygons "
        "or circles (points with a 'radius' column)"
    )


def _repaired(geometry, key: str):
    """``geometry`` with its invalid polygons made valid (see :func:`outline_geometry`)."""
    values = np.asarray(geometry.values, dtype=object)
    invalid = ~shapely.is_missing(values)
    invalid[invalid] = ~shapely.is_valid(values[invalid])
    if not invalid.any():
        return geometry
    examples = {str(i): shapely.is_valid_reason(g) for i, g in zip(geometry.index[invalid][:3], values[invalid][:3])}
    warn_user(
        f"shapes element {key!r}: {int(invalid.sum())} invalid polygon(s) (e.g. {examples}), repaired with "
        "shapely.make_valid"
    )
    repaired = geometry.copy()
    repaired[invalid] = polygonal(shapely.make_valid(values[invalid]))
    return repaired


def polygonal(geometries: np.ndarray) -> np.ndarray:
    """The polygonal part of each geometry: an intersection of polygons, or a
    repaired polygon, can hold lines or points where outlines touch, which shapes
    elements cannot store."""
    mixed = shapely.get_type_id(geometries) == shapely.GeometryType.GEOMETRYCOLLECTION
    if not mixed.any():
        return geometries
    out = geometries.copy()
    for i in np.flatnonzero(mixed):
        parts = shapely.get_parts(geometries[i])
        out[i] = shapely.union_all(parts[shapely.area(parts) > 0])
    return out


def check_element_name(sdata: SpatialData, key: str, argument: str, kind: str = "shapes") -> None:
    """Refuse a name under which SpatialData would not store a new ``kind`` element.

    SpatialData restricts the characters of element names and names its elements
    uniquely across images, labels, points, shapes and tables, ignoring case: a tool
    writing under a refused name would fail only after its other results were
    written. An existing element of ``kind`` named ``key`` passes (it is replaced).

    Parameters
    ----------
    sdata
        The SpatialData object.
    key
        The name of the element to write.
    argument
        Name of the argument that gave ``key``, for the message.
    kind
        Kind of the element: ``"shapes"`` or ``"tables"`` (an attribute of ``sdata``).

    Raises
    ------
    TypeError
        If ``key`` is not a string.
    ValueError
        Naming ``argument``, if ``key`` is not a valid element name, or another
        element (of another kind, or one whose name differs only in case) holds it.
    """
    check_key(argument, key)
    try:
        check_valid_name(key)
    except ValueError as error:
        raise ValueError(f"{argument}={key!r} is not a valid SpatialData element name: {error}") from None
    if key in getattr(sdata, kind):
        return
    for other in _ELEMENT_KINDS:
        for name in getattr(sdata, other):
            if name == key:
                raise ValueError(
                    f"{argument}={key!r} is the name of one of sdata's {other}; SpatialData names must "
                    "be unique across element types, choose another name"
                )
            if name.lower() == key.lower():
                raise ValueError(
                    f"{argument}={key!r} differs only in case from sdata's {other} element {name!r}; "
                    "SpatialData names must be unique ignoring case, choose another name"
                )
