"""NanoString CosMx flat files (``*_tx_file.csv[.gz]``, ``*_fov_positions_file.csv[.gz]``)."""
from __future__ import annotations

from os import PathLike
from pathlib import Path

import numpy as np
import pandas as pd
from spatialdata import SpatialData

from ._duplicates import same_gene_pairs
from ._generic import assemble, naming_file
from .._validation import check_bool, check_path, check_real
from ._points import as_id_strings, standardise_points

#: µm per pixel of the CosMx prototype that recorded the public NSCLC (Lung) data sets;
#: the commercial instrument has 0.12028 µm pixels.
PIXEL_SIZE = 0.18
#: Assumed distance between z-planes in µm (NanoString calls the unit of ``z`` arbitrary).
Z_STEP = 0.8
NUCLEAR = "Nuclear"
#: The transcript file of a flat-file export (also gzipped, ``.gz``).
TX_FILE_PATTERN = "*_tx_file.csv"
#: Largest distance in the plane (µm) between two detections of one molecule in
#: adjacent z-planes. On the Lung12 sample 1,299 pairs of molecules of one gene one
#: plane apart lie within 0.1 µm, and 10 pairs two to nine planes apart; from 0.1 to
#: 0.2 µm 354 and 636: beyond 0.1 µm the pairs are mostly two molecules.
DUPLICATE_DISTANCE = 0.1


def read_cosmx(
    path: str | PathLike,
    *,
    pixel_size: float = PIXEL_SIZE,
    z_step: float = Z_STEP,
    drop_controls: bool = False,
    drop_z_duplicates: bool = False,
    duplicate_distance: float = DUPLICATE_DISTANCE,
) -> SpatialData:
    """Read the transcripts of a CosMx flat-file export.

    The folder holds one ``*_tx_file.csv`` (columns ``fov, cell_ID, x_global_px,
    y_global_px, x_local_px, y_local_px, z, target, CellComp``) and, needed only when the
    global columns are absent, one ``*_fov_positions_file.csv`` (``fov`` or ``FOV``,
    ``x_global_px``, ``y_global_px``: the FOV offsets, global = local + offset); either
    may be gzipped (``.csv.gz``, as exports often ship the transcript file).

    Parameters
    ----------
    path
        The folder of the flat files.
    pixel_size
        µm per pixel: 0.18 for the prototype instrument of the public Lung data sets (their
        README); pass 0.12028 for data from the commercial instrument.
    z_step
        µm between z-planes. NanoString documents ``z`` as a plane number "of arbitrary
        unit"; 0.8 µm is an assumption (a z-stack step commonly quoted for the instrument),
        not a measured value. ``z`` is ``z_plane * z_step``.
    drop_controls
        Remove the ``NegPrb*`` (and other control) probes instead of only flagging them.
    drop_z_duplicates
        Remove the molecules flagged ``z_duplicate`` instead of only flagging them.
    duplicate_distance
        µm in the plane within which a molecule of the same gene one z-plane lower makes
        a molecule a ``z_duplicate`` (0 flags none).

    Returns
    -------
    :class:`spatialdata.SpatialData` in the schema of :func:`stgraph.io.read_transcripts`,
    3D: ``x``, ``y`` from the global pixel coordinates, ``z`` from the plane, ``cell_id`` =
    ``"{fov}_{cell_ID}"`` (``cell_ID`` 0 or missing -> NaN; CosMx numbers cells per FOV),
    ``in_nucleus`` = (``CellComp == "Nuclear"``); kept: ``fov``, ``z_plane`` (the raw
    ``z``), ``x_local_px``, ``y_local_px``, ``CellComp`` (categorical of the text in the
    file, ``"None"`` and ``"0"`` included, missing only where it is empty) and any
    other column; added: ``z_duplicate``, true for a molecule within
    ``duplicate_distance`` in the plane of one of the same gene in the z-plane below
    (CosMx detects some molecules in two adjacent planes: 1,296 of the Lung12
    sample's 25,825 are flagged; they double a gene's molecules at one place, and
    there 207 gene pairs pass colocalization's FDR, 190 of them a gene with itself,
    against 52 and 49 without them). The lowest detection is kept unflagged. The index is the row number in
    the file, so dropped rows leave gaps. No boundaries (the legacy
    flat files have none): :func:`stgraph.io.outlines_from_transcripts` draws them from
    the molecules.

    Raises
    ------
    FileNotFoundError
        If ``path`` is not a folder, or does not hold exactly one ``*_tx_file.csv``
        or ``*_tx_file.csv.gz`` (or, when needed, one ``*_fov_positions_file.csv`` or
        ``.csv.gz``).
    TypeError
        If ``path`` is not a string or ``os.PathLike``, ``pixel_size``, ``z_step`` or ``duplicate_distance`` is not a number, or
        ``drop_controls`` or ``drop_z_duplicates`` not a bool.
    ValueError
        If ``pixel_size`` or ``z_step`` is not a positive finite number,
        ``duplicate_distance`` not a non-negative one, the
        transcript file lacks ``fov``, ``cell_ID``, ``z``, ``target`` or both the
        global and the local coordinates, the FOV positions lack their columns or
        some FOV or give a FOV two positions (naming the FOVs), or for the problems
        of the transcripts that :func:`stgraph.io.read_transcripts` refuses; each
        message names the file at fault.
    """
    drop_controls = check_bool("drop_controls", drop_controls)
    drop_z_duplicates = check_bool("drop_z_duplicates", drop_z_duplicates)
    duplicate_distance = check_real("duplicate_distance", duplicate_distance, allow_zero=True)
    pixel_size = check_real("pixel_size", pixel_size)
    z_step = check_real("z_step", z_step)
    folder = check_path("path", path)
    # CellComp as its raw text: a column of compartment codes alone (0) would be read as
    # numbers, and the default missing-value markers would turn the "None" that CosMx
    # writes for molecules outside cells into a missing value.
    tx_path = _one_file(folder, TX_FILE_PATTERN)
    frame = pd.read_csv(tx_path, converters={"CellComp": str})
    required = ["fov", "cell_ID", "z", "target"]
    missing = [c for c in required if c not in frame]
    if missing:
        raise ValueError(f"CosMx transcript file {tx_path} lacks the column(s) {missing}; it has {list(frame.columns)}")
    if not {"x_global_px", "y_global_px"} <= set(frame.columns):
        frame = _add_global_coordinates(frame, folder, tx_path)

    # A missing cell_ID makes pandas read the column as floats: ids keep their integer form.
    cell_ids = frame["cell_ID"]
    assigned = cell_ids.notna().to_numpy() & (cell_ids.to_numpy() != 0)
    fovs, cells = (as_id_strings(pd.Index(column.fillna(0))) for column in (frame["fov"], cell_ids))
    cell = pd.Series(fovs + "_" + cells, index=frame.index).where(assigned)
    frame = frame.drop(columns="cell_ID").rename(columns={"z": "z_plane"})
    nuclear = None
    if "CellComp" in frame:
        nuclear = pd.Series(frame["CellComp"].to_numpy() == NUCLEAR, index=frame.index)
        # an empty field is missing, and stays missing rather than becoming "nan"
        frame["CellComp"] = frame["CellComp"].where(frame["CellComp"] != "").astype("category")
    # Derived values are passed as Series, so that no column of the file is replaced
    # (AtoMx exports have a 'cell' column of their own).
    with naming_file(tx_path):
        points = standardise_points(
            frame,
            x="x_global_px",
            y="y_global_px",
            z=frame["z_plane"],
            z_step=z_step,
            gene="target",
            cell=cell,
            in_nucleus=nuclear,
            pixel_size=pixel_size,
            drop_controls=drop_controls,
        )
    points["z_duplicate"] = z_duplicates(points, duplicate_distance)
    return assemble(points[~points["z_duplicate"]] if drop_z_duplicates else points)


def z_duplicates(points: pd.DataFrame, distance: float) -> np.ndarray:
    """Whether each molecule lies within ``distance`` in the plane of one of the same
    gene in the next lower ``z_plane`` (a chain over several planes flags all but the
    lowest)."""
    flagged = np.zeros(len(points), dtype=bool)
    pairs = same_gene_pairs(points, distance)
    plane = points["z_plane"].to_numpy(dtype=np.float64)
    first, second = pairs[:, 0], pairs[:, 1]
    adjacent = np.abs(plane[first] - plane[second]) == 1
    flagged[np.where(plane[first] > plane[second], first, second)[adjacent]] = True
    return flagged


def _one_file(folder: Path, pattern: str) -> Path:
    """The one file of ``folder`` matching ``pattern`` or its gzipped form ``pattern.gz``."""
    if not folder.is_dir():
        raise FileNotFoundError(f"no folder {folder}")
    # pandas reads .gz transparently; a plain and a gzipped copy side by side are two files
    matches = sorted(folder.glob(pattern)) + sorted(folder.glob(pattern + ".gz"))
    if len(matches) != 1:
        # several: the files of several samples (or runs) side by side, and which is meant is unknown
        fix = "; put each sample's flat files in a folder of their own" if matches else ""
        raise FileNotFoundError(
            f"expected one {pattern} (or {pattern}.gz) in {folder}, found {[m.name for m in matches] or 'none'}{fix}"
        )
    return matches[0]


def _add_global_coordinates(frame: pd.DataFrame, folder: Path, tx_path: Path) -> pd.DataFrame:
    """Global pixel coordinates from the FOV-local ones and the FOV offsets."""
    if not {"x_local_px", "y_local_px"} <= set(frame.columns):
        raise ValueError(
            f"CosMx transcript file {tx_path} has neither x/y_global_px nor x/y_local_px columns; "
            f"it has {list(frame.columns)}"
        )
    try:
        path = _one_file(folder, "*_fov_positions_file.csv")
    except FileNotFoundError as err:
        raise FileNotFoundError(
            f"the transcript file has no x_global_px / y_global_px columns, so the FOV offsets are needed: {err}"
        ) from None
    offsets = pd.read_csv(path).rename(columns={"FOV": "fov"})
    if not {"fov", "x_global_px", "y_global_px"} <= set(offsets.columns):
        raise ValueError(
            f"CosMx FOV positions file {path} lacks fov/x_global_px/y_global_px; it has {list(offsets.columns)}"
        )
    # a FOV listed twice at the same position is one position; at two, either may be wrong
    offsets = offsets[["fov", "x_global_px", "y_global_px"]].drop_duplicates()
    conflicting = offsets["fov"][offsets["fov"].duplicated()].unique()
    if len(conflicting):
        raise ValueError(
            f"FOV(s) {sorted(conflicting.tolist())} have more than one position (x_global_px, y_global_px) "
            f"in {path.name}"
        )
    offsets = offsets.set_index("fov")
    unknown = np.setdiff1d(frame["fov"].unique(), offsets.index)
    if len(unknown):
        raise ValueError(f"FOV(s) {unknown.tolist()} of the transcript file have no position in {path}")
    frame = frame.copy()
    for axis in ("x", "y"):
        offset = offsets[f"{axis}_global_px"].reindex(frame["fov"]).to_numpy()
        frame[f"{axis}_global_px"] = frame[f"{axis}_local_px"].to_numpy() + offset
    return frame
