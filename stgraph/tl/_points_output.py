"""Writing a tool's per-transcript results into the points element."""
from __future__ import annotations

import dask.dataframe as dd
import pandas as pd
from spatialdata import SpatialData


def set_points_columns(sdata: SpatialData, key: str, frame: pd.DataFrame, columns: dict) -> None:
    """Write ``columns`` into the points element ``key`` of ``sdata``.

    Parameters
    ----------
    sdata
        The data written into.
    key
        Name of the points element.
    frame
        The element's rows as a private in-memory copy (e.g. from
        :func:`stgraph.io.transcripts_frame`); it receives the columns.
    columns
        Column name -> values aligned with the rows of ``frame``.

    Everything else of the element is kept: its rows in their order (an index that is
    not increasing is not sorted), its number of partitions and its attrs (coordinate
    transformations, feature and instance keys).
    """
    frame.attrs = {}  # the element's transform lives in the dask attrs below, not in the rows
    for name, values in columns.items():
        frame[name] = values
    element = sdata.points[key]
    updated = dd.from_pandas(
        frame, npartitions=max(element.npartitions, 1), sort=bool(frame.index.is_monotonic_increasing)
    )
    updated.attrs.update(element.attrs)
    sdata.points[key] = updated
