"""Plots of :func:`stgraph.tl.localization` results."""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import shapely
import spatialdata
from matplotlib.axes import Axes

from stgraph._validation import check_int, check_names, check_not_one_name, check_real
from stgraph.io import transcripts_frame
from stgraph.io._spatialdata import check_aligned, check_spatialdata, outline_geometry
from stgraph.io._table import table_cell_ids
from stgraph.localization._data import nucleus_outlines
from stgraph.localization._geometry import nucleus_per_cell
from stgraph.localization._pattern_model import PATTERNS

from ._layout import check_axes, new_axes, spatial_axes

#: One colour per pattern, in :data:`~stgraph.localization.PATTERNS` order.
# 'none' is a dark grey: the light grey of molecules not scored must stand apart from it.
PATTERN_COLORS = dict(zip(PATTERNS, ("#d62728", "#2ca02c", "#7f7f7f", "#1f77b4", "#9467bd")))
NOT_SCORED_COLOR = "#e0e0e0"


def _results(sdata: spatialdata.SpatialData, table_key: str) -> pd.DataFrame:
    if table_key not in sdata.tables or "lpp" not in sdata.tables[table_key].uns:
        raise ValueError(f"no localization results in tables[{table_key!r}]; run stgraph.tl.localization first")
    return sdata.tables[table_key].uns["lpp"]


def localization_composition(
    sdata: spatialdata.SpatialData,
    by: str = "gene",
    *,
    groups: Sequence[str] | None = None,
    top: int | None = 30,
    table_key: str = "table",
    ax: Axes | None = None,
) -> Axes:
    """Stacked bars: fraction of each top pattern per gene or per cell.

    Parameters
    ----------
    sdata
        Data with :func:`stgraph.tl.localization` results.
    by
        ``"gene"`` or ``"cell"``.
    groups
        Genes (or cells) to show, in this order; default the ``top`` ones with the
        most scored (cell, gene) pairs. A ValueError names those not in the data
        (the genes, the cells of the table), or else those without scored pairs
        (cells without an outline among them); an empty list is a ValueError.
    top
        Number of bars (a positive integer) when ``groups`` is not given
        (``None``: all).
    table_key
        Table holding ``uns["lpp"]``.
    ax
        Axes to draw into; a new figure otherwise.

    Returns
    -------
    The axes.

    Raises
    ------
    TypeError
        If ``sdata`` is not a SpatialData, ``groups`` is a single string,
        ``top`` is not an integer, or ``ax`` is neither None nor a matplotlib Axes.
    ValueError
        If ``by`` is neither ``"gene"`` nor ``"cell"``, ``top`` is below 1,
        ``groups`` is empty or names genes (cells) not in the data or without
        scored pairs, or the table ``table_key`` is missing or holds no
        :func:`stgraph.tl.localization` results.
    """
    check_spatialdata(sdata)
    check_axes(ax)
    column = {"gene": "gene", "cell": "cell_id"}.get(by)
    if column is None:
        raise ValueError(f"by must be 'gene' or 'cell', got {by!r}")
    if top is not None:
        check_int("top", top)
    if groups is not None:
        check_not_one_name("groups", groups)  # before list() splits it into letters
        groups = list(groups)
    if groups == []:
        raise ValueError("groups is empty: give at least one gene (or cell), or None for the `top` ones")
    lpp = _results(sdata, table_key)
    counts = pd.crosstab(lpp[column].astype(str), lpp["top_pattern"].astype(str)).reindex(columns=list(PATTERNS), fill_value=0)
    if groups is not None:
        # Every gene and every outlined cell is a category of lpp, scored or not; cells
        # without an outline are no category but rows of the table.
        names = lpp[column].astype("category").cat.categories.astype(str)
        if by == "cell":
            names = names.union(table_cell_ids(sdata.tables[table_key]))
        groups = check_names("groups", groups, names)
        unscored = [g for g in groups if g not in counts.index]
        if unscored:
            raise ValueError(
                f"groups: no (cell, gene) pair with at least min_transcripts molecules was scored for {unscored[:10]}"
                + (" (cells without an outline are not scored)" if by == "cell" else "")
            )
        counts = counts.loc[groups]
    else:
        counts = counts.loc[counts.sum(1).sort_values(ascending=False, kind="stable").index]
        if top is not None:
            counts = counts.iloc[:top]
    fractions = counts.div(counts.sum(1).replace(0, 1), axis=0)
    if ax is None:
        ax = new_axes((max(4.0, 0.25 * len(fractions) + 1.5), 3.5))
    bottom = np.zeros(len(fractions))
    positions = np.arange(len(fractions))
    for pattern in PATTERNS:
        ax.bar(positions, fractions[pattern], bottom=bottom, color=PATTERN_COLORS[pattern], label=pattern, width=0.85)
        bottom += fractions[pattern].to_numpy()
    ax.set_xticks(positions, fractions.index, rotation=90, fontsize="small")
    ax.set_xlabel(by)
    ax.set_ylabel(f"fraction of {'cells' if by == 'gene' else 'genes'}")
    ax.set_ylim(0, 1)
    ax.set_xlim(-0.6, len(fractions) - 0.4)
    ax.legend(title="top pattern", bbox_to_anchor=(1.01, 1), loc="upper left", fontsize="small")
    return ax


def localization_transcripts(
    sdata: spatialdata.SpatialData,
    color: str = "pattern",
    *,
    cells: Sequence[str] | None = None,
    genes: Sequence[str] | None = None,
    points_key: str = "transcripts",
    cell_key: str = "cell_boundaries",
    nucleus_key: str | None = "nucleus_boundaries",
    size: float = 2.0,
    ax: Axes | None = None,
) -> Axes:
    """Transcripts coloured by top pattern or nuclear probability, over the outlines.

    Parameters
    ----------
    sdata
        Data on which :func:`stgraph.tl.localization` has run.
    color
        ``"pattern"`` (categorical colours, grey dots for unscored molecules) or
        ``"p_nuclear"`` (colour map).
    cells
        Cell ids to show (default all); a ValueError names those neither in the
        points nor among the outlines ``cell_key`` (an outlined cell without
        molecules is drawn as its outline) and refuses an empty list.
    genes
        Genes to show (default all); a ValueError names those not in the points
        and refuses an empty list.
    points_key, cell_key, nucleus_key
        Element names. A missing ``points_key`` is a KeyError, as in every tool; a
        ValueError lists the available ones when ``cell_key`` or a ``nucleus_key``
        other than the default is missing (nuclei are not drawn when ``nucleus_key`` is
        None, or the default and missing).
    size
        Marker size.
    ax
        Axes to draw into; a new figure otherwise.

    Returns
    -------
    The axes: equal aspect, in µm, y pointing down as squidpy and spatialdata-plot
    draw images (and :func:`stgraph.pl.enhance` its spots).

    Raises
    ------
    TypeError
        If ``sdata`` is not a SpatialData, ``cells`` or ``genes`` is a single
        string, ``nucleus_key`` is neither a string nor None, ``size`` is not a
        number, or ``ax`` is neither None nor a matplotlib Axes.
    KeyError
        If ``points_key`` is not a points element of ``sdata``.
    ValueError
        If ``size`` is not a positive finite number, ``color`` is unknown or its column is missing (run
        :func:`stgraph.tl.localization` first), ``"p_nuclear"`` is ``nan`` for every
        transcript (no compartment was computed), ``cells`` or ``genes`` is empty or
        names ones not in the data, ``cell_key`` or a ``nucleus_key`` other than
        the default is not a shapes element, or the outlines are neither polygons
        nor circles of positive radius (circles are drawn as discs), or have another
        transformation than the points (they would not align).
    """
    check_spatialdata(sdata)
    size = check_real("size", size)  # matplotlib draws no marker of a negative or NaN size, silently
    check_axes(ax)
    if color not in ("pattern", "p_nuclear"):
        raise ValueError(f"color must be 'pattern' or 'p_nuclear', got {color!r}")
    points = transcripts_frame(sdata, points_key)
    check_names("cell_key", [cell_key], sdata.shapes, list_available=True)
    if color not in points.columns:
        raise ValueError(f"points[{points_key!r}] has no {color!r} column; run stgraph.tl.localization first")
    if color == "p_nuclear" and points["p_nuclear"].isna().all():
        # NaN markers are not drawn: the plot would show the outlines only.
        raise ValueError(
            f"points[{points_key!r}]['p_nuclear'] is nan everywhere: the last stgraph.tl.localization computed "
            "no compartment (compartment=None, or no cell with a nucleus outline)"
        )
    keep = np.ones(len(points), dtype=bool)
    check_aligned(sdata, cell_key, points_key)
    outlines = every_cell = outline_geometry(sdata.shapes[cell_key], cell_key)
    if cells is not None:
        # An outlined cell without molecules is drawn as its outline alone.
        known = pd.Index(points["cell_id"].dropna().astype(str).unique()).union(every_cell.index.astype(str))
        cells = check_names("cells", cells, known)
        keep &= points["cell_id"].astype(str).isin(cells).to_numpy()
        outlines = outlines[outlines.index.astype(str).isin(cells)]
    if genes is not None:
        genes = check_names("genes", genes, points["gene"].dropna().unique())
        keep &= points["gene"].astype(str).isin(genes).to_numpy()
    points = points[keep]
    if ax is None:
        ax = new_axes((6, 6))
    nuclei = nucleus_outlines(sdata, nucleus_key, points_key)
    if nuclei is not None:
        # Placed as tl.localization places them: nuclei indexed by their own ids
        # (not cell ids) go to the cell that contains them.
        cell_ids = pd.Index(every_cell.index.astype(str))
        nuclei = nucleus_per_cell(nuclei, cell_ids, np.asarray(every_cell.values))
        nuclei = nuclei[cell_ids.isin(outlines.index.astype(str)) & ~shapely.is_missing(nuclei)]
    for geometries, style in ((outlines, "-"), (nuclei, "--")):
        if geometries is None:
            continue
        for geom in geometries:
            for part in getattr(geom, "geoms", [geom]):
                # Holes too: without them a ring-shaped cell looked solid, its empty
                # middle as if its molecules were missing.
                for ring in (part.exterior, *part.interiors):
                    x, y = ring.xy
                    ax.plot(x, y, style, color="black", linewidth=0.7)
    if color == "pattern":
        unscored = points["pattern"].isna().to_numpy()
        ax.scatter(points["x"][unscored], points["y"][unscored], s=size, c=NOT_SCORED_COLOR, linewidths=0, label="not scored")
        for pattern in PATTERNS:
            chosen = (points["pattern"] == pattern).to_numpy()
            if chosen.any():
                ax.scatter(points["x"][chosen], points["y"][chosen], s=size, c=PATTERN_COLORS[pattern], linewidths=0, label=pattern)
        ax.legend(title="top pattern", markerscale=4 / max(size, 0.1), fontsize="small", bbox_to_anchor=(1.01, 1), loc="upper left")
    else:
        mapped = ax.scatter(points["x"], points["y"], s=size, c=points["p_nuclear"], cmap="coolwarm", vmin=0, vmax=1, linewidths=0)
        ax.figure.colorbar(mapped, ax=ax, label="P(nuclear)", shrink=0.7)
    spatial_axes(ax)
    return ax
