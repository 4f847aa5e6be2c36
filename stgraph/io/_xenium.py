"""10x Genomics Xenium output folders."""
from __future__ import annotations

from os import PathLike
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from spatialdata import SpatialData

from .._validation import check_bool, check_path, check_real
from ._generic import assemble, naming_file, read_text_table
from ._points import standardise_points
from ._schema import UNASSIGNED_IDS
from ._shapes import polygons_from_vertices

TRANSCRIPTS_FILE = "transcripts.parquet"
#: The same table as gzipped CSV, which Xenium Onboard Analysis wrote up to version 2
#: beside the parquet (10x also offers it for download on its own).
TRANSCRIPTS_CSV_FILE = "transcripts.csv.gz"
BOUNDARY_FILES = {"cell_boundaries": "cell_boundaries.parquet", "nucleus_boundaries": "nucleus_boundaries.parquet"}


def read_xenium(
    path: str | PathLike, *, min_qv: float | None = None, drop_controls: bool = False
) -> SpatialData:
    """Read the transcripts and boundaries of a Xenium output folder.

    Reads ``transcripts.parquet`` and, where present, ``cell_boundaries.parquet`` and
    ``nucleus_boundaries.parquet`` (vertex tables ``cell_id, vertex_x, vertex_y``; a nucleus
    table with ``label_id`` gives a ``MultiPolygon`` for a cell with several nuclei); an
    absent file gives no element, which
    :func:`stgraph.io.outlines_from_transcripts` can draw from the molecules).
    Xenium writes ``x_location``, ``y_location``, ``z_location`` and the vertices in µm
    already (image pixels are 0.2125 µm, not needed here), so no pixel size applies.

    Parameters
    ----------
    path
        The Xenium output folder.
    min_qv
        Keep only molecules with ``qv >= min_qv``. The default keeps all and keeps the ``qv``
        column; Xenium's own cell-feature matrix counts only ``qv >= 20``, so pass 20 to match it.
    drop_controls
        Remove the negative-control probes and codewords, blanks, unassigned and deprecated
        codewords instead of only flagging them in ``is_control``.

    Raises
    ------
    FileNotFoundError
        If the folder has neither ``transcripts.parquet`` nor ``transcripts.csv.gz``.
    TypeError
        If ``path`` is not a string or ``os.PathLike``, ``min_qv`` not a number or ``drop_controls`` not a bool.
    ValueError
        If ``min_qv`` is negative or not finite, the transcripts lack ``qv`` when
        ``min_qv`` is given or none reaches it, a boundary table lacks its columns,
        has a ring of fewer than 3 vertices or a NaN / infinite vertex, or for the
        problems of the transcripts that :func:`stgraph.io.read_transcripts` refuses;
        the message of a table's problem starts with the table's path.

    Returns
    -------
    :class:`spatialdata.SpatialData` in the schema of :func:`stgraph.io.read_transcripts`:
    ``cell_id`` from ``cell_id`` (``UNASSIGNED`` or ``-1`` -> NaN), ``in_nucleus`` from
    ``overlaps_nucleus``, and the other columns (``transcript_id``, ``qv``, ``fov_name``,
    ``nucleus_distance``, ...) kept. The index is the row number in the transcripts file.

    Notes
    -----
    Each table is read from its ``.parquet`` file or, where that is absent, from its
    ``.csv.gz`` form (``transcripts.csv.gz``, ``cell_boundaries.csv.gz``, ... of older
    Xenium versions), whose ids are read as text.
    """
    drop_controls = check_bool("drop_controls", drop_controls)
    if min_qv is not None:
        check_real("min_qv", min_qv, allow_zero=True)
    folder = check_path("path", path)
    transcripts_path = _table_path(folder, TRANSCRIPTS_FILE)
    if transcripts_path is None:
        raise FileNotFoundError(f"no {TRANSCRIPTS_FILE} or {TRANSCRIPTS_CSV_FILE} in {folder}")
    frame = _read_table(transcripts_path)
    if min_qv is not None:
        if "qv" not in frame:
            raise ValueError(f"min_qv given but {transcripts_path} has no 'qv' column")
        kept = frame["qv"].to_numpy() >= min_qv
        if len(frame) and not kept.any():
            raise ValueError(f"no transcript has qv >= min_qv={min_qv} (the highest qv is {frame['qv'].max()})")
        frame = frame.loc[kept]
    with naming_file(transcripts_path):
        points = standardise_points(
            frame,
            x="x_location",
            y="y_location",
            z="z_location" if "z_location" in frame else None,
            gene="feature_name",
            cell="cell_id",
            in_nucleus="overlaps_nucleus" if "overlaps_nucleus" in frame else None,
            unassigned=UNASSIGNED_IDS,
            drop_controls=drop_controls,
        )
    boundaries = {}
    for key, name in BOUNDARY_FILES.items():
        path = _table_path(folder, name)
        if path is not None:
            vertices = _read_table(path)
            with naming_file(path):
                boundaries[key] = polygons_from_vertices(
                    vertices,
                    id_column="cell_id",
                    x="vertex_x",
                    y="vertex_y",
                    part_column="label_id" if "label_id" in vertices else None,
                )
    return assemble(points, **boundaries)


def _table_path(folder: Path, name: str) -> Path | None:
    """The file of the table ``name`` (a ``.parquet`` file name) in ``folder``: the parquet
    file, else its gzipped CSV form, else None."""
    for path in (folder / name, (folder / name).with_suffix(".csv.gz")):
        if path.is_file():
            return path
    return None


def _read_table(path: Path) -> pd.DataFrame:
    """A Xenium table from its parquet or gzipped CSV file (ids as text)."""
    if path.suffix == ".parquet":
        return _read_parquet(path)
    return read_text_table(path, ",", ("cell_id",))


def _read_parquet(path: Path) -> pd.DataFrame:
    """Read a Xenium table with a fresh row-number index and bytes columns as strings.

    The pandas metadata of a file that pandas wrote is not used: it would make a named
    index of whoever subset the file the index again (that index stays a column).
    """
    table = pq.read_table(path)
    # pandas leftovers of whoever subset the file are not Xenium data
    table = table.drop([c for c in table.column_names if c.startswith("__index_level_")])
    # older Xenium versions store names and ids as binary
    for i, field in enumerate(table.schema):
        if pa.types.is_binary(field.type) or pa.types.is_large_binary(field.type):
            table = table.set_column(i, field.name, table.column(i).cast(pa.string()))
    return table.to_pandas(ignore_metadata=True)
