"""Plot of subcellular domains: transcripts coloured by domain over the outlines."""
from __future__ import annotations

from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.axes import Axes
from matplotlib.lines import Line2D
from spatialdata import SpatialData

from .._validation import check_names
from ..io import _schema as S
from ..io import transcripts_frame
from ..io._spatialdata import optional_shapes
from ..tl._domains import DOMAIN_KEY, DOMAIN_SHAPES_KEY


def domains(
    sdata: SpatialData,
    *,
    key: str = DOMAIN_KEY,
    cells: Sequence[str] | None = None,
    shapes_key: str | None = DOMAIN_SHAPES_KEY,
    points_key: str = S.POINTS_KEY,
    size: float = 1.0,
    cmap: str = "tab10",
    ax: Axes | None = None,
) -> Axes:
    """Transcripts coloured by domain, over the cell and nucleus outlines.

    Parameters
    ----------
    sdata
        SpatialData after :func:`stgraph.tl.domains`.
    key
        Points column of the domain labels.
    cells
        Cell ids to draw (a ValueError names those not in the points); default all.
    shapes_key
        Domain outlines to draw in the domain colours (None: none; the default is
        skipped when absent, any other name must be a shapes element).
    points_key
        Points element.
    size
        Marker size of the transcripts.
    cmap
        Qualitative colour map of the domains.
    ax
        Axes to draw into; a new figure when None.

    Returns
    -------
    The axes.

    Raises
    ------
    KeyError
        If ``points_key`` is not a points element of ``sdata`` or its points have no
        column ``key`` (run :func:`stgraph.tl.domains` first).
    ValueError
        If ``cells`` names cells that are not in the points, or ``shapes_key`` is not
        the default and not a shapes element.
    """
    frame = transcripts_frame(sdata, points_key)
    if key not in frame.columns:
        raise KeyError(f"points {points_key!r} have no column {key!r}; run stgraph.tl.domains first")
    labelled = frame[frame[key].notna()]
    if cells is not None:
        cells = check_names("cells", cells, frame[S.CELL].dropna().unique())
        labelled = labelled[labelled[S.CELL].astype(str).isin(cells)]
    domain_codes = np.asarray(frame[key].cat.categories)
    colours = plt.get_cmap(cmap)(np.arange(domain_codes.size) % plt.get_cmap(cmap).N)
    if ax is None:
        _, ax = plt.subplots(figsize=(7, 7))
    code = labelled[key].cat.codes.to_numpy()
    ax.scatter(labelled[S.X], labelled[S.Y], s=size, c=colours[code], linewidths=0, rasterized=True)
    for outline_key, colour in ((S.CELL_SHAPES_KEY, "0.2"), (S.NUCLEUS_SHAPES_KEY, "0.5")):
        if outline_key in sdata.shapes:
            outlines = sdata.shapes[outline_key]
            if cells is not None:
                outlines = outlines[outlines.index.astype(str).isin(cells)]
            outlines.boundary.plot(ax=ax, color=colour, linewidth=0.8)
    regions = optional_shapes(sdata, shapes_key, DOMAIN_SHAPES_KEY, "shapes_key")
    if regions is not None:
        if cells is not None:
            regions = regions[regions["cell_id"].astype(str).isin(cells)]
        for domain, group in regions.groupby("domain"):
            position = int(np.flatnonzero(domain_codes == domain)[0])
            group.boundary.plot(ax=ax, color=colours[position], linewidth=1.2, linestyle="--")
    handles = [
        Line2D([], [], marker="o", linestyle="", color=colours[k], label=f"domain {d}")
        for k, d in enumerate(domain_codes)
    ]
    ax.legend(handles=handles, loc="upper right", fontsize=7, markerscale=1.5)
    ax.set_aspect("equal")
    ax.set_xlabel("x (µm)")
    ax.set_ylabel("y (µm)")
    return ax
