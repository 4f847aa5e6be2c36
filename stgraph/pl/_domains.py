"""Plot of subcellular domains: transcripts coloured by domain over the outlines."""
from __future__ import annotations

from collections.abc import Sequence

import geopandas as gpd
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.colors import ListedColormap
from matplotlib.lines import Line2D
from spatialdata import SpatialData

from .._validation import check_names, check_real
from .._warnings import warn_user
from ..io import _schema as S
from ..io import transcripts_frame
from ..io._spatialdata import optional_shapes, outline_geometry
from ..tl._domains import DOMAIN_KEY, DomainResult, default_shapes_key
from ._layout import check_axes, new_axes, spatial_axes


def _domain_regions(
    sdata: SpatialData, shapes_key: str | None, key: str, domain_codes: np.ndarray, points_key: str
) -> gpd.GeoDataFrame | None:
    """The outlines of ``shapes_key`` (``"auto"``: the default of ``key`` on ``points_key``),
    after checking that they outline domains of ``key``; None where there are none to draw."""
    default = default_shapes_key(key, points_key)
    if shapes_key == "auto":
        shapes_key = default
    regions = optional_shapes(sdata, shapes_key, default, "shapes_key")
    if regions is None:
        return None
    # The outlines of another run (another key, or this key run again) can hold other labels.
    foreign = sorted(set(regions["domain"].tolist()) - set(domain_codes.tolist()))
    if foreign:
        raise ValueError(
            f"shapes_key={shapes_key!r} outlines domains {foreign[:10]} that are not categories of "
            f"key={key!r} ({domain_codes.tolist()[:10]}): they come from another run of "
            "stgraph.tl.domains; pass that run's shapes_key, or shapes_key=None"
        )
    return regions


def _in_numeric_order(labels: pd.Series) -> pd.Series:
    """``labels`` with numeric categories (:func:`stgraph.tl.domains`' ``0 .. k - 1``)
    sorted, so that a domain keeps its colour and place in the legend: a zarr store keeps
    the labels but not the order of numeric categories (pyarrow writes them as plain
    numbers, and they are read back in order of first appearance)."""
    categories = labels.cat.categories
    if not pd.api.types.is_numeric_dtype(categories.dtype):
        return labels
    return labels.cat.reorder_categories(categories.sort_values())


#: Default colours of the domains, in turn: Okabe & Ito's orange, sky blue and yellow,
#: Tol's wine, teal and indigo, and black. Each is at a CIEDE2000 distance of 20 or more
#: from the others and from the localization pattern colours (``PATTERN_COLORS`` and the
#: grey of molecules not scored): with tab10, domains 0, 2 and 3 had the blue, green and
#: red of "nuclear", "cytoplasmic" and "cell_edge", so that side by side one colour meant two things.
DOMAIN_COLOURS = ListedColormap(
    ["#E69F00", "#56B4E9", "#882255", "#009988", "#F0E442", "#332288", "#000000"], name="stgraph_domains"
)
#: Colours of matplotlib's continuous listed maps (``viridis``, ...); its qualitative maps hold at most 20.
CONTINUOUS_COLOURS = 256


def _domain_colours(cmap: str | None, n: int) -> np.ndarray:
    """``(n, 4)`` colours of ``n`` domains: a qualitative map's colours in turn (warning
    where there are more domains than colours, which then repeat), a continuous map
    sampled evenly over its range (its first ``n`` colours are nearly one); None:
    :data:`DOMAIN_COLOURS`, a qualitative map."""
    colormap = DOMAIN_COLOURS if cmap is None else plt.get_cmap(cmap)
    if not isinstance(colormap, ListedColormap) or colormap.N >= CONTINUOUS_COLOURS:
        return colormap(np.linspace(0.0, 1.0, n))
    if n > colormap.N:
        source = "the default palette" if cmap is None else f"cmap={cmap!r}"
        warn_user(
            f"{n} domains but {source} has {colormap.N} colours: domain {colormap.N} and above "
            "repeat the colours of the first ones; pass a qualitative map with more colours "
            "(e.g. 'tab20') or a continuous one (e.g. 'turbo')"
        )
    return colormap(np.arange(n) % colormap.N)


def _draw_boundaries(ax: Axes, outlines: gpd.GeoSeries, **style) -> None:
    """Draw the boundaries of the non-empty ``outlines``; quietly nothing where none is
    left (geopandas warns on an empty selection, such as the nucleus of a cell without one)."""
    outlines = outlines[~(outlines.isna() | outlines.is_empty)]
    if len(outlines):
        outlines.boundary.plot(ax=ax, **style)


def domains(
    sdata: SpatialData,
    *,
    key: str = DOMAIN_KEY,
    cells: Sequence[str] | None = None,
    shapes_key: str | None = "auto",
    points_key: str = S.POINTS_KEY,
    cell_key: str | None = S.CELL_SHAPES_KEY,
    nucleus_key: str | None = S.NUCLEUS_SHAPES_KEY,
    size: float = 1.0,
    cmap: str | None = None,
    ax: Axes | None = None,
) -> Axes:
    """Transcripts coloured by domain, over the cell and nucleus outlines.

    Parameters
    ----------
    sdata
        SpatialData after :func:`stgraph.tl.domains`.
    key
        Points column of the domain labels (categorical). Numeric labels, such as
        those of :func:`stgraph.tl.domains`, are coloured and listed in numeric
        order, whatever the order of their categories (which a zarr store does not
        keep); other categories in their order.
    cells
        Cell ids to draw (a ValueError names those not in the points, and refuses
        an empty list); default all. The legend lists the domains of the molecules
        drawn, in the colours they have in the plot of all cells.
    shapes_key
        Domain outlines to draw in the domain colours: ``"auto"`` (default) draws
        ``key + "_boundaries"`` (``points_key + "_" + key + "_boundaries"`` for
        points other than ``transcripts``), the default of :func:`stgraph.tl.domains`, where
        present; None draws none; any other name must be a shapes element (the
        ``shapes_key`` given to :func:`stgraph.tl.domains`).
    points_key, cell_key, nucleus_key
        Points element, and the cell and nucleus outlines drawn in grey (those of
        these points: with several samples, pass the ``cell_key`` given to
        :func:`stgraph.tl.domains`). None draws none, as does a default name
        missing from the data; another name must be a shapes element.
    size
        Marker size of the transcripts.
    cmap
        Colour map of the domains: a qualitative one (fewer than 256 colours, e.g.
        ``"tab10"``, ``"tab20"``) gives the domains its colours in turn, a continuous
        one (e.g. ``"turbo"``) colours sampled evenly over its range. Default
        (None): the seven colours of :data:`DOMAIN_COLOURS` in turn (orange, sky
        blue, wine, teal, yellow, indigo, black), none of which is near a colour of
        the localization patterns in :func:`stgraph.pl.localization_transcripts`,
        so that the two plots side by side do not share a colour; from the eighth
        domain they repeat, with a warning (pass e.g. ``"tab20"`` or ``"turbo"``).
    ax
        Axes to draw into; a new figure when None.

    Returns
    -------
    The axes: equal aspect, in µm, y pointing down as squidpy and spatialdata-plot
    draw images (and :func:`stgraph.pl.enhance` its spots); the legend beside them.

    Raises
    ------
    TypeError
        If ``sdata`` is not a SpatialData, e.g. the result that
        :func:`stgraph.tl.domains` returns, which holds no positions, ``size`` is
        not a number, ``cell_key`` or ``nucleus_key`` is neither a string nor None,
        or ``ax`` is neither None nor a matplotlib Axes.
    KeyError
        If ``points_key`` is not a points element of ``sdata`` or its points have no
        column ``key`` (run :func:`stgraph.tl.domains` first).
    ValueError
        If ``size`` is not a positive finite number, column ``key`` is not categorical, ``cells`` is empty or names cells
        that are not in the points, ``shapes_key`` is neither ``"auto"`` nor None
        and not a shapes element, ``cell_key`` or ``nucleus_key`` is neither None,
        its default nor a shapes element, or the outlines of ``shapes_key`` hold
        domains that are not categories of ``key`` (the outlines of another run),
        or the cell or nucleus outlines are neither polygons nor circles of
        positive radius, or have another transformation than the points (they
        would not align).

    Warns
    -----
    UserWarning
        When a qualitative ``cmap`` (the default included) has fewer colours than
        there are domains (its colours then repeat).
    """
    if isinstance(sdata, DomainResult):
        # Unlike the colocalization plots, which draw their result alone.
        raise TypeError(
            "pl.domains draws the transcripts of a SpatialData, not a DomainResult (it holds no positions): "
            "run stgraph.tl.domains with inplace=True and pass the SpatialData"
        )
    size = check_real("size", size)  # matplotlib draws no marker of a negative or NaN size, silently
    check_axes(ax)
    frame = transcripts_frame(sdata, points_key)
    if key not in frame.columns:
        raise KeyError(f"points {points_key!r} have no column {key!r}; run stgraph.tl.domains first")
    if not isinstance(frame[key].dtype, pd.CategoricalDtype):
        raise ValueError(
            f"column {key!r} of points {points_key!r} must hold categorical domain labels (as "
            f"stgraph.tl.domains writes them), got dtype {frame[key].dtype}"
        )
    frame[key] = _in_numeric_order(frame[key])
    labelled = frame[frame[key].notna()]
    if cells is not None:
        cells = check_names("cells", cells, frame[S.CELL].dropna().unique())
        labelled = labelled[labelled[S.CELL].astype(str).isin(cells)]
    domain_codes = np.asarray(frame[key].cat.categories)
    regions = _domain_regions(sdata, shapes_key, key, domain_codes, points_key)
    # Read before the axes are made, so that refused outlines leave no figure behind.
    grey = {}
    for outline_key, default, argument, colour in (
        (cell_key, S.CELL_SHAPES_KEY, "cell_key", "0.2"),
        (nucleus_key, S.NUCLEUS_SHAPES_KEY, "nucleus_key", "0.5"),
    ):
        shapes = optional_shapes(sdata, outline_key, default, argument, points_key)
        if shapes is not None:
            grey[colour] = outline_geometry(shapes, outline_key)
    colours = _domain_colours(cmap, domain_codes.size)
    if ax is None:
        ax = new_axes((7, 7))
    code = labelled[key].cat.codes.to_numpy()
    ax.scatter(labelled[S.X], labelled[S.Y], s=size, c=colours[code], linewidths=0, rasterized=True)
    for colour, outlines in grey.items():
        if cells is not None:
            outlines = outlines[outlines.index.astype(str).isin(cells)]
        _draw_boundaries(ax, outlines, color=colour, linewidth=0.8)
    if regions is not None:
        if cells is not None:
            regions = regions[regions["cell_id"].astype(str).isin(cells)]
        for domain, group in regions.groupby("domain"):
            position = int(np.flatnonzero(domain_codes == domain)[0])
            _draw_boundaries(ax, group.geometry, color=colours[position], linewidth=1.2, linestyle="--")
    # The domains drawn: with ``cells``, those of the cells shown (colours stay those of all).
    shown = np.unique(code)
    handles = [
        Line2D([], [], marker="o", linestyle="", color=colours[k], label=f"domain {domain_codes[k]}")
        for k in shown
    ]
    # Beside the axes: inside, it covered molecules and outlines.
    ax.legend(handles=handles, title="domain", bbox_to_anchor=(1.01, 1), loc="upper left", fontsize=7, markerscale=1.5)
    spatial_axes(ax)
    return ax
