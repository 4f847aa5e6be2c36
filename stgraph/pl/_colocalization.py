"""Plots of gene colocalization: genes x genes heatmap and gene network."""
from __future__ import annotations

from collections.abc import Sequence

import matplotlib
import matplotlib.pyplot as plt
import networkx as nx
import numpy as np
from matplotlib.axes import Axes
from matplotlib.colors import Colormap
from matplotlib.font_manager import FontProperties
from matplotlib.textpath import TextToPath
from scipy.spatial.distance import cdist
from spatialdata import SpatialData

from .._validation import check_int, check_names, check_seed
from ..coloc import ColocalizationResult
from ..coloc._result import check_fdr
from ..io import TABLE_KEY
from ..tl._colocalization import COLOCALIZATION_KEY
from ._layout import check_axes, new_axes

#: Largest side (inches) of a new heatmap figure: about 70 genes at the full label size.
MAX_HEATMAP_INCHES = 20.0
#: Size of the gene labels (points) of the heatmap while they fit, and of the network
#: before its layout is scaled to fit the axes.
LABEL_POINTS = 7.0
#: Neutral value of the heatmap columns that have one: no colocalization.
CENTRES = {"score": 0.0, "z": 0.0, "clq": 1.0, "clq_bento": 1.0}
#: Network layout, in points before it is scaled to fit the axes: node marker area
#: (points²), median distance of a node to its nearest within a component, and the gap
#: left between the label boxes of two components.
NODE_AREA = 200.0
NODE_SPACING = 40.0
COMPONENT_GAP = 12.0
#: Largest side (inches) of a new network figure.
MAX_NETWORK_INCHES = 14.0
#: Colour of the heatmap cells of gene pairs that share no edge (no value).
MISSING_COLOUR = "0.75"


def _result(data, key: str, table_key: str) -> ColocalizationResult:
    if isinstance(data, ColocalizationResult):
        return data
    if isinstance(data, SpatialData):
        if table_key not in data.tables:
            raise KeyError(f"no table {table_key!r}; run stgraph.tl.colocalization first")
        return ColocalizationResult.from_uns(data.tables[table_key].uns, key)
    raise TypeError(f"expected a SpatialData or a ColocalizationResult, got {type(data).__name__}")


def _top_genes(result: ColocalizationResult, top: int, fdr: float | None) -> list[str]:
    """Genes of the ``top`` pairs of two genes (among those with ``fdr`` at most ``fdr``).

    Raises
    ------
    ValueError
        If no such pair is left: the heatmap would be empty.
    """
    pairs = result.significant(fdr) if fdr is not None else result.table
    pairs = pairs[pairs["gene_a"].astype(str) != pairs["gene_b"].astype(str)]
    if pairs.empty and fdr is None:
        raise ValueError("the result holds no pair of two genes (none share an edge): nothing to draw")
    if pairs.empty:
        raise ValueError(f"no pair of two genes has fdr <= {fdr}: nothing to draw; pass a larger fdr, or genes")
    pairs = pairs.sort_values("score", ascending=False, kind="stable").head(top)
    genes = set(pairs["gene_a"].astype(str)) | set(pairs["gene_b"].astype(str))
    return [g for g in result.genes if g in genes]


def _with_missing(cmap: str | Colormap) -> Colormap:
    """A copy of ``cmap`` (a name or a colour map) drawing missing values in
    :data:`MISSING_COLOUR`: by default they were transparent, the white of a 0 score
    in ``RdBu_r``. A copy, so that matplotlib's registered map and the caller's stay as they are."""
    return matplotlib.colormaps.get_cmap(cmap).with_extremes(bad=MISSING_COLOUR)


def _colour_scale(value: str, values: np.ndarray, cmap: str | None) -> dict:
    """``imshow`` colour arguments: centred for the columns with a neutral value,
    the values' range otherwise (a p-value map centred on 0 used half the colours)."""
    finite = values[np.isfinite(values)]
    centre = CENTRES.get(value)
    if centre is None:
        low, high = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
        return {"cmap": _with_missing(cmap or "viridis"), "vmin": low, "vmax": high}
    span = float(np.abs(finite - centre).max()) if finite.size else 1.0
    return {"cmap": _with_missing(cmap or "RdBu_r"), "vmin": centre - span, "vmax": centre + span}


def _label_size(ax: Axes, n_genes: int) -> float:
    """Font size (points) of gene labels that do not overlap along the axes' shorter side."""
    box = ax.get_position()
    side = min(box.width * ax.figure.get_figwidth(), box.height * ax.figure.get_figheight())
    return min(LABEL_POINTS, 0.8 * 72 * side / max(n_genes, 1))


def colocalization_heatmap(
    data: SpatialData | ColocalizationResult,
    value: str = "score",
    *,
    genes: Sequence[str] | None = None,
    top: int = 30,
    fdr: float | None = None,
    key: str = COLOCALIZATION_KEY,
    table_key: str = TABLE_KEY,
    cmap: str | None = None,
    ax: Axes | None = None,
) -> Axes:
    """Heatmap of one pair statistic, rows ``gene_a``, columns ``gene_b``.

    Parameters
    ----------
    data
        SpatialData after :func:`stgraph.tl.colocalization`, or its result.
    value
        Column of the pair table (``score``, ``clq``, ``z``, ...).
    genes
        Genes to show (a ValueError names those not in the result, and refuses an
        empty list); default those of the ``top`` pairs of two genes with the
        highest score (their pairs with themselves are on the diagonal).
    top
        Number of top pairs whose genes are shown when ``genes`` is None (positive).
    fdr
        Draw the top pairs among those with ``fdr`` at most this (None: all pairs);
        a ValueError says so when no pair is left.
    key, table_key
        Where :func:`stgraph.tl.colocalization` stored the result.
    cmap
        Colour map; default ``"RdBu_r"`` centred on 0 for ``score`` and ``z`` and
        on 1 for the quotients (``clq``, ``clq_bento``), ``"viridis"`` over the
        range of the values for the other columns (p-values, FDRs, counts,
        masses), which have no centre. Pairs that share no edge (no value) are
        drawn in light grey (:data:`MISSING_COLOUR`), and the colour bar's label
        then says so; the map given is copied, not changed.
    ax
        Axes to draw into; a new figure when None, a quarter inch per gene up to
        :data:`MAX_HEATMAP_INCHES` (reached at 72 genes). Gene labels are 7 pt,
        smaller where more genes would overlap (in a new figure from about 130
        genes; 3 pt for 300 genes: give fewer ``genes`` to read them).

    Returns
    -------
    The axes.

    Raises
    ------
    TypeError
        If ``data`` is neither a SpatialData nor a ColocalizationResult, ``genes``
        is a single string, ``top`` is not an integer, ``fdr`` is neither None
        nor a number, or ``ax`` is neither None nor a matplotlib Axes.
    KeyError
        If ``data`` has no table ``table_key`` or no result under ``key``.
    ValueError
        If ``genes`` is empty or names genes not in the result, no pair of two
        genes has ``fdr`` at most ``fdr`` (``genes`` None), ``value`` is not a
        column of the pair table, ``top`` is below 1, or ``fdr`` is NaN or outside
        ``[0, 1]``.
    """
    top = check_int("top", top)
    check_axes(ax)
    if fdr is not None:
        check_fdr(fdr)  # also when genes make it unused
    result = _result(data, key, table_key)
    genes = check_names("genes", genes, result.genes) if genes is not None else _top_genes(result, top, fdr)
    matrix = result.matrix(value, genes=genes)
    if ax is None:
        # A quarter inch per gene, up to a cap: 960 genes asked for a 242-inch
        # figure, 2.3 GB of pixels at 100 dpi.
        size = min(2 + 0.25 * len(genes), MAX_HEATMAP_INCHES)
        ax = new_axes((size + 1, size))
    values = matrix.to_numpy()
    image = ax.imshow(values, **_colour_scale(value, values, cmap))
    fontsize = _label_size(ax, len(genes))
    ax.set_xticks(range(len(genes)), genes, rotation=90, fontsize=fontsize)
    ax.set_yticks(range(len(genes)), genes, fontsize=fontsize)
    ax.set_xlabel("gene_b (neighbour)")
    ax.set_ylabel("gene_a (looks at gene_b)")
    missing = " (grey: pair shares no edge)" if np.isnan(values).any() else ""
    ax.figure.colorbar(image, ax=ax, label=value + missing, shrink=0.7)
    return ax


def _component_layout(component: nx.Graph, seed: int) -> tuple[list[str], np.ndarray]:
    """Nodes (sorted) and positions (points) of one connected component: Kamada-Kawai
    from a spring layout seeded with ``seed``, scaled so that the median distance of a
    node to its nearest is :data:`NODE_SPACING`."""
    nodes = sorted(component)
    start = nx.spring_layout(component, seed=seed)
    position = nx.kamada_kawai_layout(component, pos=start)
    xy = np.array([position[node] for node in nodes], dtype=float)
    nearest = cdist(xy, xy)
    np.fill_diagonal(nearest, np.inf)
    return nodes, xy * NODE_SPACING / max(float(np.median(nearest.min(axis=1))), 1e-12)


def _label_halves(nodes: list[str]) -> np.ndarray:
    """Half width and half height (points) of the box of each node: its label or its marker."""
    font = FontProperties(size=LABEL_POINTS)
    measure = TextToPath()
    sizes = np.array([measure.get_text_width_height_descent(node, font, ismath=False)[:2] for node in nodes])
    return np.maximum(sizes / 2, np.sqrt(NODE_AREA) / 2)


def _packed_layout(graph: nx.Graph, seed: int) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Positions (points) of the nodes, each connected component laid out on its own
    and the components packed in rows, largest first, so that the boxes of their labels
    stay :data:`COMPONENT_GAP` apart; and the width and height of the whole.

    One layout of the whole graph pushed the components into one another's labels."""
    laid = [_component_layout(graph.subgraph(c), seed) for c in nx.connected_components(graph)]
    laid.sort(key=lambda item: (-len(item[0]), item[0][0]))
    boxes = []
    for nodes, xy in laid:
        halves = _label_halves(nodes)
        low, high = (xy - halves).min(axis=0), (xy + halves).max(axis=0)
        boxes.append((low, high - low + COMPONENT_GAP))
    row_width = max(max(size[0] for _, size in boxes), float(np.sqrt(sum(np.prod(size) for _, size in boxes))))
    position, x, y, row_height, width = {}, 0.0, 0.0, 0.0, 0.0
    for (nodes, xy), (low, size) in zip(laid, boxes):
        if x > 0 and x + size[0] > row_width:
            x, y, row_height = 0.0, y + row_height, 0.0
        # y points up in the axes: rows go down from 0.
        offset = np.array([x - low[0], -y - size[1] + COMPONENT_GAP / 2 - low[1]])
        position.update(zip(nodes, xy + offset))
        x, row_height, width = x + size[0], max(row_height, size[1]), max(width, x + size[0])
    return position, np.array([width, y + row_height])


def _fit_scale(ax: Axes, extent: np.ndarray) -> float:
    """Factor (at most 1) by which the layout of ``extent`` points fits the axes, after
    setting their limits so that one point of the layout is that factor in points."""
    ax.figure.draw_without_rendering()  # the constrained layout settles the axes' size
    box = ax.get_window_extent()
    available = np.array([box.width, box.height]) * 72.0 / ax.figure.dpi
    scale = min(1.0, *(available / extent))
    centre = extent * np.array([0.5, -0.5])
    half = available / scale / 2
    ax.set_xlim(centre[0] - half[0], centre[0] + half[0])
    ax.set_ylim(centre[1] - half[1], centre[1] + half[1])
    return scale


def colocalization_network(
    data: SpatialData | ColocalizationResult,
    *,
    fdr: float | None = 0.05,
    column: str = "fdr",
    top: int = 50,
    key: str = COLOCALIZATION_KEY,
    table_key: str = TABLE_KEY,
    seed: int = 0,
    ax: Axes | None = None,
) -> Axes:
    """Gene network of the strongest significant pairs.

    Genes are nodes; each of the ``top`` pairs of two genes with ``column`` at most
    ``fdr`` (by decreasing score, both orientations merged at the higher score; a
    gene's pair with itself is left out) is an edge whose width grows with
    its score (pairs scoring 0 or less get the thinnest line). Layout: each
    connected component on its own (:func:`networkx.kamada_kawai_layout` from
    :func:`networkx.spring_layout` seeded with ``seed``), the components packed in
    rows, largest first, so that the labels of two components never overlap; where
    the whole does not fit the axes, nodes, lines and 7 pt labels shrink together.

    Parameters
    ----------
    data
        SpatialData after :func:`stgraph.tl.colocalization`, or its result.
    fdr
        Keep the pairs with ``column`` at most this (None: every pair); without any,
        the axes only say so in their title.
    column
        Pair-table column the threshold applies to, as in
        :meth:`~stgraph.coloc.ColocalizationResult.significant`: ``"fdr"``,
        ``"binom_fdr"``, or a p-value column (``"pval"``, ``"binom_pval"``).
    top
        Number of pairs (edges) drawn (positive).
    key, table_key
        Where :func:`stgraph.tl.colocalization` stored the result.
    seed
        Non-negative seed of the layout.
    ax
        Axes to draw into (their limits are set to the layout); a new figure sized
        to the layout when None, up to :data:`MAX_NETWORK_INCHES` a side.

    Returns
    -------
    The axes.

    Raises
    ------
    TypeError
        If ``data`` is neither a SpatialData nor a ColocalizationResult, ``top``
        or ``seed`` is not an integer, ``fdr`` is neither None nor a number, or
        ``ax`` is neither None nor a matplotlib Axes.
    KeyError
        If ``data`` has no table ``table_key`` or no result under ``key``.
    ValueError
        If ``top`` is below 1, ``seed`` negative (or above 2**32 - 1), ``fdr``
        NaN or outside ``[0, 1]``, or ``column`` not a numeric column of the pair
        table (also when ``fdr`` is None).
    """
    top = check_int("top", top)
    check_axes(ax)
    seed = check_seed(seed)
    result = _result(data, key, table_key)
    directed = result.to_networkx(fdr=fdr, column=column)
    graph = nx.Graph()
    for a, b, attributes in directed.edges(data=True):
        if not graph.has_edge(a, b) or graph.edges[a, b]["score"] < attributes["score"]:
            graph.add_edge(a, b, score=attributes["score"])
    strongest = sorted(graph.edges(data="score"), key=lambda e: (-e[2], e[0], e[1]))[:top]
    kept = nx.Graph()
    kept.add_weighted_edges_from(strongest, weight="score")
    among = "" if fdr is None else f", {column} <= {fdr}"
    if kept.number_of_edges() == 0:
        ax = new_axes((7, 7)) if ax is None else ax
        ax.set_axis_off()
        ax.set_title(f"no pair{among}")
        return ax
    position, extent = _packed_layout(kept, seed)
    if ax is None:
        # The layout's size plus room for the margins and the title.
        ax = new_axes(tuple(np.clip(extent / 72.0 + np.array([0.4, 0.7]), 3.0, MAX_NETWORK_INCHES)))
    ax.set_axis_off()
    ax.set_title(f"top {kept.number_of_edges()} pairs{among}")
    scale = _fit_scale(ax, extent)
    scores = np.array([kept.edges[e]["score"] for e in kept.edges])
    # A large fdr keeps pairs scoring below 0; a negative line width filled the axes.
    width = 0.5 + 4.0 * np.clip(scores, 0.0, None) / max(scores.max(), 1e-12)
    nx.draw_networkx_edges(kept, position, width=width * scale, edge_color="0.4", ax=ax)
    nx.draw_networkx_nodes(kept, position, node_size=NODE_AREA * scale**2, node_color="tab:orange", ax=ax)
    nx.draw_networkx_labels(kept, position, font_size=LABEL_POINTS * scale, ax=ax)
    return ax
