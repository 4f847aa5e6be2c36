"""Read any transcript table given a column mapping."""
from __future__ import annotations

from collections.abc import Collection, Iterator, Mapping
from contextlib import contextmanager
from os import PathLike
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
from anndata import AnnData
from spatialdata import SpatialData
from spatialdata.models import PointsModel

from .._validation import check_bool, check_real, is_dask
from .._warnings import warn_user
from ._duplicates import planar_duplicates
from ._points import standardise_points
from ._schema import (
    CELL,
    CELL_SHAPES_KEY,
    GENE,
    NUCLEUS,
    NUCLEUS_SHAPES_KEY,
    POINTS_KEY,
    UNASSIGNED_IDS,
    X,
    Y,
)
from ._shapes import shapes_element

#: Points column of the molecules flagged by ``duplicate_distance``.
DUPLICATE = "duplicate"


@contextmanager
def naming_file(path: Path) -> Iterator[None]:
    """Prefix the ValueError or TypeError raised while reading ``path`` with the file.

    A platform folder holds several tables, and the column checks of
    :func:`standardise_points` or :func:`~._shapes.polygons_from_vertices` see only
    a frame: without the file the user cannot tell which table to fix.
    """
    try:
        yield
    except (ValueError, TypeError) as err:
        # the base class: subclasses (UnicodeDecodeError, ...) take other arguments
        kind = ValueError if isinstance(err, ValueError) else TypeError
        raise kind(f"{path}: {err}") from err


def read_transcripts(
    table: str | PathLike | pd.DataFrame,
    *,
    x: str,
    y: str,
    gene: str,
    z: str | None = None,
    cell: str | None = None,
    nucleus: str | None = None,
    in_nucleus: str | None = None,
    pixel_size: float = 1.0,
    z_step: float | None = None,
    unassigned: Collection = UNASSIGNED_IDS,
    cell_boundaries: gpd.GeoSeries | gpd.GeoDataFrame | None = None,
    nucleus_boundaries: gpd.GeoSeries | gpd.GeoDataFrame | None = None,
    drop_controls: bool = False,
    duplicate_distance: float = 0.0,
    drop_duplicates: bool = False,
) -> SpatialData:
    """Read a transcript table with any column names into the stgraph schema.

    Parameters
    ----------
    table
        A :class:`pandas.DataFrame` (not modified; a dask one is refused: compute it
        first) or the path of a ``.csv``, ``.csv.gz``,
        ``.tsv`` or ``.parquet`` file, one row per molecule.
    x, y
        Columns of the coordinates, in units of ``pixel_size`` micrometres.
    gene
        Column of the gene (feature) names.
    z
        Column of the depth, in units of ``z_step`` micrometres.
    cell, nucleus
        Columns of the id of the containing cell / nucleus. Missing values and the values in
        ``unassigned`` mean "none". Ids become strings; a CSV / TSV file's id columns are
        read as text, so ``007`` stays ``"007"``, and ids all written as integral
        decimals give the integers (``12.0`` gives ``"12"``). Float ids of 2**53 or
        more are refused: a float cannot hold every integer there.
    in_nucleus
        Column of booleans (or 0/1): the molecule lies in a nucleus. Without it but with
        ``nucleus``, ``in_nucleus`` is whether ``nucleus_id`` is set.
    pixel_size
        Micrometres per unit of ``x`` and ``y`` (1 when they are already in µm).
    z_step
        Micrometres per unit of ``z``; ``None`` means the same as ``pixel_size``. For a
        z-plane index, the distance between planes.
    unassigned
        Id values meaning "not in a cell / nucleus" (a list or other collection, not a
        single string), compared as the ids are: ``[0]``, ``[0.0]`` and ``["0"]`` all
        mean the id ``"0"``.
    cell_boundaries, nucleus_boundaries
        Polygons indexed by cell / nucleus id, in the units of ``x`` and ``y``; stored as the
        shapes ``cell_boundaries`` / ``nucleus_boundaries`` (scaled to µm).
    drop_controls
        Remove control probes (``is_control``) instead of only flagging them.
    duplicate_distance
        µm in the plane within which a molecule of the same gene in an earlier row
        makes a molecule a ``duplicate`` (a second call of one molecule, as in data
        flattened from a z-stack); 0, the default, adds no ``duplicate`` column.
    drop_duplicates
        Remove the molecules flagged ``duplicate`` instead of only flagging them.

    Returns
    -------
    :class:`spatialdata.SpatialData` with the points ``transcripts``: columns ``x``, ``y``
    (``z``) in µm, ``gene`` (categorical), ``cell_id`` (categorical, NaN = unassigned),
    ``in_nucleus`` and ``nucleus_id`` where known, ``is_control``, then every other column of
    the table. A boolean ``is_control`` column in the table adds to the name-based flags.
    With ``duplicate_distance`` > 0, a boolean ``duplicate`` column: of a group of
    copies the first row is kept unflagged (after ``drop_controls``). The index is the
    table's, rows sorted by it where it is not increasing; an index with repeats (tables
    concatenated) orders nothing: the rows keep their order, numbered 0, 1, ... afresh,
    and a named index becomes a column of its name.

    Raises
    ------
    TypeError
        For ``table`` that is neither a pandas DataFrame (a dask one is named as such)
        nor a path, a column argument
        (``x``, ``gene``, ...) that is not a string, a coordinate column that is not
        numeric (or is boolean or complex), ``unassigned`` that is no collection (a single string, a number,
        None), boundaries that are not a GeoSeries / GeoDataFrame,
        ``drop_controls`` or ``drop_duplicates`` that is not a bool, or
        ``duplicate_distance`` that is not a number.
    FileNotFoundError
        If ``table`` is a path to no file.
    ValueError
        For a file of another format, a table without rows, missing columns, column
        labels that appear more than once, the same column given for two of ``x``, ``y``, ``z``, columns named like a schema
        column (``x``, ``gene``, ``cell_id``, ...) but not mapped to it, non-finite
        coordinates, missing genes or empty / blank gene names, float ids of magnitude 2**53 or more,
        ``in_nucleus`` / ``is_control`` values other than booleans or 0/1, a
        non-positive scale, a negative or non-finite ``duplicate_distance``,
        ``drop_duplicates`` with ``duplicate_distance`` 0, a table already holding a
        ``duplicate`` column when one is to be added, an index with repeats named
        like a column, nothing left after
        ``drop_controls``, or boundaries
        with repeated ids, missing geometries, geometries that are not polygons or
        NaN / infinite vertices (naming the ids).

    Warns
    -----
    UserWarning
        When some ``cell_boundaries`` are indexed by ids that no transcript's ``cell``
        holds (how many, with examples): those outlines hold no molecule. When the
        molecules of the cells (those with 10 or more) span a median outside 1 to 300 µm
        at ``pixel_size``: the coordinates are then likely in other units (image
        pixels), and every radius in µm would be one in those units.
    """
    drop_controls = check_bool("drop_controls", drop_controls)
    drop_duplicates = check_bool("drop_duplicates", drop_duplicates)
    duplicate_distance = check_real("duplicate_distance", duplicate_distance, allow_zero=True)
    if drop_duplicates and duplicate_distance == 0:
        raise ValueError("drop_duplicates=True needs a duplicate_distance > 0 (in µm) to find the duplicates")
    pixel_size = check_real("pixel_size", pixel_size)
    z_step = pixel_size if z_step is None else check_real("z_step", z_step)
    frame = standardise_points(
        _load_table(table, id_columns=[c for c in (cell, nucleus) if isinstance(c, str)]),
        x=x,
        y=y,
        gene=gene,
        z=z,
        cell=cell,
        nucleus=nucleus,
        in_nucleus=in_nucleus,
        pixel_size=pixel_size,
        z_step=z_step,
        unassigned=unassigned,
        drop_controls=drop_controls,
    )
    warn_implausible_cell_size(frame, pixel_size)
    if duplicate_distance > 0:
        if DUPLICATE in frame:
            raise ValueError(
                f"the table has a {DUPLICATE!r} column already; rename it to flag duplicates with duplicate_distance"
            )
        frame[DUPLICATE] = planar_duplicates(frame, duplicate_distance)
        if drop_duplicates:
            frame = frame[~frame[DUPLICATE]]
    sdata = assemble(
        frame,
        cell_boundaries=cell_boundaries,
        nucleus_boundaries=nucleus_boundaries,
        scale=pixel_size,
    )
    if cell_boundaries is not None:
        outlines = sdata.shapes[CELL_SHAPES_KEY].index
        unmatched = outlines[~outlines.isin(frame[CELL].cat.categories)]
        if len(unmatched):
            warn_user(
                f"{len(unmatched)} of {len(outlines)} cell_boundaries match no cell id of the transcripts "
                f"(e.g. {unmatched[:5].tolist()}); index them by the ids of "
                + (f"the {cell!r} column" if cell is not None else "a cell column (pass cell=...)")
            )
    return sdata


#: Median span (µm) of the cells' molecules outside which the coordinates are taken
#: not to be in µm: cells are about 5 to 100 µm across.
PLAUSIBLE_CELL_SPAN = (1.0, 300.0)
#: Molecules a cell needs for its span to count.
SPAN_MOLECULES = 10


def warn_implausible_cell_size(frame: pd.DataFrame, pixel_size: float) -> None:
    """Warn when the cells of the standardised points ``frame`` (µm) span a median
    outside :data:`PLAUSIBLE_CELL_SPAN`: coordinates in pixels (or mm) read without
    the right ``pixel_size`` make every radius in µm one in other units, silently."""
    cells = frame[CELL]
    if not cells.notna().any():
        return
    grouped = frame[[X, Y]].groupby(cells, observed=True)
    extent = grouped.max() - grouped.min()
    span = np.hypot(extent[X], extent[Y])[grouped.size() >= SPAN_MOLECULES]
    if span.empty:
        return
    median = float(span.median())
    low, high = PLAUSIBLE_CELL_SPAN
    if not low <= median <= high:
        warn_user(
            f"the molecules of a cell span a median of {median:.3g} µm ({len(span)} cells with "
            f"{SPAN_MOLECULES} or more molecules) at pixel_size={pixel_size:g} (µm per coordinate unit), outside "
            f"the {low:g} to {high:g} µm a cell spans: if the coordinates are image pixels or in another unit, "
            "give pixel_size, the µm per unit (stgraph run: --pixel-size)"
        )


def assemble(
    points: pd.DataFrame,
    *,
    cell_boundaries: gpd.GeoSeries | gpd.GeoDataFrame | None = None,
    nucleus_boundaries: gpd.GeoSeries | gpd.GeoDataFrame | None = None,
    scale: float = 1.0,
    tables: Mapping[str, AnnData] | None = None,
) -> SpatialData:
    """Wrap standardised points and boundary polygons (multiplied by ``scale``) in a SpatialData."""
    shapes = {}
    for key, geometries, index_name in (
        (CELL_SHAPES_KEY, cell_boundaries, CELL),
        (NUCLEUS_SHAPES_KEY, nucleus_boundaries, NUCLEUS),
    ):
        if geometries is not None:
            shapes[key] = shapes_element(geometries, scale=scale, index_name=index_name)
    parsed = PointsModel.parse(points, feature_key=GENE, instance_key=CELL)
    return SpatialData(points={POINTS_KEY: parsed}, shapes=shapes, tables=tables or {})


def _load_table(table: str | PathLike | pd.DataFrame, id_columns: Collection[str]) -> pd.DataFrame:
    """The transcript table, read from its file unless a DataFrame; ``id_columns`` of a
    text file are read as text (see :func:`read_text_table`)."""
    if isinstance(table, pd.DataFrame):
        return table
    if not isinstance(table, (str, PathLike)):
        got = type(table).__name__
        if is_dask(table):
            got = f"a dask {got}: compute it first (table.compute()), or pass its SpatialData to stgraph.io.from_spatialdata"
        raise TypeError(f"table must be a pandas DataFrame or a file path, got {got}")
    path = Path(table)
    if not path.is_file():
        raise FileNotFoundError(f"no transcript file at {path}")
    suffixes = "".join(path.suffixes[-2:]).lower()
    if path.suffix.lower() == ".parquet":
        return pd.read_parquet(path)
    if suffixes.endswith((".csv", ".csv.gz")):
        return read_text_table(path, ",", id_columns)
    if suffixes.endswith((".tsv", ".tsv.gz")):
        return read_text_table(path, "\t", id_columns)
    raise ValueError(f"cannot tell the format of {path.name}: expected .csv, .csv.gz, .tsv or .parquet")


def read_text_table(path: Path, sep: str, id_columns: Collection[str]) -> pd.DataFrame:
    """A CSV / TSV table with the ``id_columns`` (those present) read as text.

    Read as numbers, ids would lose their leading zeros (``007``) and, in a column with
    an empty cell (read as floats), those above 2**53 would be rounded. Ids written from
    a float column (every one like ``12.0``) are read as the integers they hold
    (``12``), by their text, as :func:`._points.as_id_strings` reads float ids.
    """
    frame = pd.read_csv(path, sep=sep, dtype={column: str for column in id_columns})
    for column in id_columns:
        if column in frame:
            frame[column] = _integral_text(frame[column])
    return frame


def _integral_text(ids: pd.Series) -> pd.Series:
    """``ids`` without the ``.0`` suffix when every present one is an integer so written."""
    present = ids.dropna()
    if len(present) and present.str.fullmatch(r"-?\d+\.0+").all():
        return ids.str.replace(r"\.0+$", "", regex=True)
    return ids
