"""The MERFISH U2-OS sample embedded in the package."""
from __future__ import annotations

from pathlib import Path

import geopandas as gpd
import pandas as pd
import shapely
from spatialdata import SpatialData

from .._validation import check_bool
from ..io import read_transcripts

DATA = Path(__file__).resolve().parent / "_data" / "merfish_u2os"
#: µm per pixel of the coordinates of Bento's MERFISH sample (about 0.1 µm).
PIXEL_SIZE = 0.1
#: µm within which two molecules of one gene are taken for one molecule called twice.
DUPLICATE_DISTANCE = 0.1


def merfish_u2os(
    *,
    pixel_size: float = PIXEL_SIZE,
    drop_controls: bool = False,
    drop_duplicates: bool = False,
    duplicate_distance: float = DUPLICATE_DISTANCE,
) -> SpatialData:
    """MERFISH measurement of 15 human U2-OS cells, shipped with the package.

    174,827 molecules of 135 features (130 genes and 5 ``notarget*`` blank barcodes,
    flagged in ``is_control``), every molecule inside one of 15 segmented cells; 13 cells
    have a nucleus outline. Data of Xia et al. (2019), *PNAS* 116:19490, as distributed in
    the sample data of bento-tools 2.1.4 (BSD-2-Clause; see the ``LICENSE`` and
    ``README.md`` next to the data). Loaded from the package, no network.

    Parameters
    ----------
    pixel_size
        µm per unit of Bento's coordinates, which are image pixels of about 0.1 µm.
    drop_controls
        Remove the ``notarget*`` molecules instead of only flagging them.
    drop_duplicates
        Remove the molecules flagged ``duplicate`` instead of only flagging them.
    duplicate_distance
        µm in the plane within which a molecule of the same gene in an earlier row makes
        a molecule a ``duplicate`` (see below; 0 adds no ``duplicate`` column).

    Returns
    -------
    :class:`spatialdata.SpatialData` in the schema of :mod:`stgraph.io` (2D, µm): points
    ``transcripts`` with ``cell_id`` and ``nucleus_id`` (Bento's ids such as ``"31-0"``; a
    nucleus has the id of its cell), ``in_nucleus``, ``is_control`` and Bento's ``batch``
    and ``index`` columns, indexed like Bento's points table (its index ``idx``, which
    is not the ``index`` column), and ``duplicate``; shapes ``cell_boundaries`` and
    ``nucleus_boundaries``.

    Most molecules come in tight groups of one gene within 0.1 µm (99 % of the
    molecules have at most six others of their gene that close, none more than 21;
    median distance to the nearest molecule 0.036 µm, a third of a pixel): one
    molecule called more than once, as when a z-stack is flattened. Of each group the
    first row is kept and the others are flagged ``duplicate`` (108,408 of 174,827 at
    0.1 µm; :func:`stgraph.io.read_transcripts`). They drive most of what
    colocalization finds here: at a 1 µm radius 2,761 gene pairs pass its FDR of 5 %
    with them and 578 without them.

    Raises
    ------
    TypeError
        If ``drop_controls`` or ``drop_duplicates`` is not a bool, or ``pixel_size`` or
        ``duplicate_distance`` not a number.
    ValueError
        If ``pixel_size`` is not a positive finite number, ``duplicate_distance`` is
        negative or not finite, or ``drop_duplicates`` is asked with
        ``duplicate_distance`` 0.
    """
    check_bool("drop_controls", drop_controls)
    return read_transcripts(
        pd.read_parquet(DATA / "transcripts.parquet"),
        x="x",
        y="y",
        gene="feature_name",
        cell="cell_boundaries",
        nucleus="nucleus_boundaries",
        unassigned=("",),
        pixel_size=pixel_size,
        cell_boundaries=_polygons("cell_boundaries"),
        nucleus_boundaries=_polygons("nucleus_boundaries"),
        drop_controls=drop_controls,
        duplicate_distance=duplicate_distance,
        drop_duplicates=drop_duplicates,
    )


def _polygons(name: str) -> gpd.GeoSeries:
    table = pd.read_parquet(DATA / f"{name}.parquet")
    return gpd.GeoSeries(shapely.from_wkb(table["wkb"].to_numpy()), index=table["id"].to_numpy())
