"""Vizgen MERSCOPE output folders."""
from __future__ import annotations

from os import PathLike
from pathlib import Path

import pandas as pd
from spatialdata import SpatialData

from ._generic import assemble, naming_file
from .._validation import check_bool, check_path, check_real
from .._warnings import warn_user
from ._points import standardise_points
from ._shapes import polygons_from_wkb

TRANSCRIPTS_FILE = "detected_transcripts.csv"
BOUNDARY_FILES = {"cell_boundaries": "cell_boundaries.parquet", "nucleus_boundaries": "nucleus_boundaries.parquet"}
#: µm between MERSCOPE's z-planes (seven planes 1.5 µm apart in the standard protocol).
Z_STEP = 1.5


def read_merscope(
    path: str | PathLike, *, z_step: float = Z_STEP, drop_controls: bool = False
) -> SpatialData:
    """Read the transcripts and cell boundaries of a MERSCOPE output folder.

    Reads ``detected_transcripts.csv`` (an unnamed index column, ``barcode_id``,
    ``global_x``, ``global_y`` in µm, ``global_z`` the plane index, ``x``, ``y`` FOV pixels,
    ``fov``, ``gene``, ``transcript_id`` and, after segmentation, ``cell_id`` with -1 for
    none) and, where present, ``cell_boundaries.parquet`` / ``nucleus_boundaries.parquet``
    in the Vizgen Post-processing Tool geometry format (one row per entity and z-plane:
    ``EntityID``, ``ZIndex``, ``Geometry`` as WKB in µm). The older per-FOV
    ``cell_boundaries/*.hdf5`` files are not read.

    Parameters
    ----------
    path
        The MERSCOPE output (region) folder.
    z_step
        µm between z-planes; ``z`` is ``global_z * z_step``.
    drop_controls
        Remove the ``Blank-*`` barcodes instead of only flagging them.

    Returns
    -------
    :class:`spatialdata.SpatialData` in the schema of :func:`stgraph.io.read_transcripts`,
    3D when ``global_z`` is present. Kept columns: ``z_plane`` (raw ``global_z``),
    ``barcode_id``, ``fov``, ``transcript_id``, ``x_fov_px`` / ``y_fov_px`` (the raw ``x``,
    ``y``), ``fov_transcript_index`` (the unnamed first column). A cell's boundary is the
    union of its outlines over the z-planes (its footprint on the xy plane); ids are the
    ``EntityID`` as strings, as are the ``cell_id`` of the molecules.

    Raises
    ------
    FileNotFoundError
        If the folder has no ``detected_transcripts.csv``.
    TypeError
        If ``path`` is not a string or ``os.PathLike``, ``z_step`` not a number or ``drop_controls`` not a bool.
    ValueError
        If ``z_step`` is not a positive finite number, a boundary file lacks
        ``EntityID`` or ``Geometry`` or has a NaN / infinite vertex, or for the
        problems of the transcripts that :func:`stgraph.io.read_transcripts` refuses
        (their message starts with the path of ``detected_transcripts.csv``).

    Warns
    -----
    UserWarning
        When the folder holds only the older ``cell_boundaries/*.hdf5`` files, which
        are not read.
    """
    drop_controls = check_bool("drop_controls", drop_controls)
    z_step = check_real("z_step", z_step)
    folder = check_path("path", path)
    transcripts_path = folder / TRANSCRIPTS_FILE
    if not transcripts_path.is_file():
        raise FileNotFoundError(f"no {TRANSCRIPTS_FILE} in {folder}")
    # ids as text: EntityIDs exceed 2**53 and would be rounded through floats
    frame = pd.read_csv(transcripts_path, dtype={"cell_id": str})
    frame = frame.rename(
        columns={"Unnamed: 0": "fov_transcript_index", "x": "x_fov_px", "y": "y_fov_px", "global_z": "z_plane"}
    )
    with naming_file(transcripts_path):
        points = standardise_points(
            frame,
            x="global_x",
            y="global_y",
            z=frame["z_plane"] if "z_plane" in frame else None,  # a Series: the z_plane column is kept
            z_step=z_step,
            gene="gene",
            cell="cell_id" if "cell_id" in frame else None,
            unassigned=("-1",),
            drop_controls=drop_controls,
        )
    boundaries = {key: _read_boundaries(folder / name) for key, name in BOUNDARY_FILES.items()
                  if (folder / name).is_file()}
    if not boundaries and (folder / "cell_boundaries").is_dir():
        warn_user(
            f"{folder / 'cell_boundaries'} holds the older hdf5 boundaries, which are not read; "
            "export cell_boundaries.parquet with the Vizgen Post-processing Tool"
        )
    return assemble(points, **boundaries)


def _read_boundaries(path: Path):
    table = pd.read_parquet(path)
    missing = [c for c in ("EntityID", "Geometry") if c not in table]
    if missing:
        raise ValueError(f"{path.name} lacks the column(s) {missing}; it has {list(table.columns)}")
    with naming_file(path):
        return polygons_from_wkb(table["EntityID"], table["Geometry"])
