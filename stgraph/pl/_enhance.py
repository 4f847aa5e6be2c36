"""``stgraph.pl.enhance``: measured versus enhanced expression maps."""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import scipy.sparse as sp
from anndata import AnnData
from matplotlib.backend_bases import FigureCanvasBase
from matplotlib.collections import EllipseCollection
from matplotlib.figure import Figure

from stgraph._validation import check_path, check_real
from stgraph.spots._lattice import lattice_spacing


def enhance(
    adata: AnnData,
    genes: str | Sequence[str],
    *,
    layer: str | None = None,
    cmap: str = "viridis",
    panel_size: float = 3.5,
    save: str | Path | None = None,
) -> Figure:
    """Plot each gene on the measured spots and on the enhanced spot set, side by side.

    Parameters
    ----------
    adata
        Output of :func:`stgraph.tl.enhance` (needs ``obs['imputed']`` and
        ``obsm['spatial']``). Not modified.
    genes
        One gene name or several (one row of panels each).
    layer
        Layer to colour by; ``X`` (log1p(CP10k)) when None.
    cmap
        Colour map; both panels of a gene share one colour scale.
    panel_size
        Width and height of one panel in inches, > 0.
    save
        File to write the figure to.

    Returns
    -------
    The figure: left panels the original spots, right panels original and new spots
    (new ones outlined in white), y pointing down as in the tissue image; the colour
    bar of each gene is labelled with what colours it (``layer``, or ``log1p(CP10k)``). Spots are
    circles drawn in data units, 0.9 of each panel's spot spacing across, so they
    never overlap whatever the figure size.

    Raises
    ------
    TypeError
        If ``adata`` is not an AnnData, ``panel_size`` is not a number or ``save``
        is not a path (a string or ``os.PathLike``).
    ValueError
        If ``adata`` lacks ``obs['imputed']`` or ``obsm['spatial']``, its
        ``obs['imputed']`` holds values other than True and False, ``panel_size``
        is not a positive finite number, no gene is
        given, a gene is not in ``adata.var_names`` or is named more than once there,
        ``layer`` is not in ``adata.layers``, or ``save`` names a file type
        matplotlib does not write or a folder that does not exist (checked before
        drawing).
    """
    if not isinstance(adata, AnnData):
        raise TypeError(f"`adata` must be an AnnData, got {type(adata).__name__}.")
    if "imputed" not in adata.obs or "spatial" not in adata.obsm:
        raise ValueError("`adata` must come from `stgraph.tl.enhance` (obs['imputed'], obsm['spatial']).")
    new = _imputed_flags(adata.obs["imputed"])
    panel_size = check_real("panel_size", panel_size)
    genes = [genes] if isinstance(genes, str) else list(genes)
    missing = [g for g in genes if g not in adata.var_names]
    if missing or not genes:
        raise ValueError(f"Genes not in `adata.var_names`: {missing}." if missing else "No gene given.")
    # A name held by several genes would select all their columns for one panel.
    duplicated = set(adata.var_names[adata.var_names.duplicated()])
    ambiguous = [g for g in genes if g in duplicated]
    if ambiguous:
        raise ValueError(
            f"Genes named more than once in `adata.var_names`: {ambiguous}; make the names unique first, "
            "e.g. with `adata.var_names_make_unique()`."
        )
    if layer is not None and layer not in adata.layers:
        raise ValueError(f"Layer {layer!r} not found in `adata.layers`.")
    if save is not None:
        _check_save(check_path("save", save))
    xy = np.asarray(adata.obsm["spatial"], dtype=float)
    matrix = adata.X if layer is None else adata.layers[layer]
    fig, axes = plt.subplots(len(genes), 2, figsize=(2 * panel_size, len(genes) * panel_size), squeeze=False)
    # Spots are 0.9 of their panel's spacing; one measured spot's width pads the outermost
    # centres, so edge spots are whole and both panels show the same view.
    diameters = {"measured": 0.9 * lattice_spacing(xy[~new]), "enhanced": 0.9 * lattice_spacing(xy)}
    pad = diameters["measured"]
    for row, gene in zip(axes, genes):
        column = matrix[:, adata.var_names.get_loc(gene)]
        values = np.asarray(column.toarray() if sp.issparse(column) else column, dtype=float).ravel()
        vmin, vmax = np.nanmin(values), np.nanmax(values)
        drawn = []
        for ax, keep, title in ((row[0], ~new, "measured"), (row[1], np.ones_like(new), "enhanced")):
            spots = _spots(ax, xy, values, keep, new, cmap, vmin, vmax, pad, diameters[title])
            drawn.append((ax, spots, diameters[title]))
            ax.set_title(f"{gene} ({title})")
        fig.colorbar(row[1].collections[0], ax=list(row), shrink=0.8, label="log1p(CP10k)" if layer is None else layer)
        for ax, spots, diameter in drawn:  # once the colour bar has resized the axes
            spots.set_linewidths(_outline_width(ax, diameter))
    if save is not None:
        try:
            fig.savefig(save, bbox_inches="tight")
        except Exception:
            plt.close(fig)  # the caller gets no figure to close
            raise
    return fig


def _check_save(path: Path) -> None:
    """Refuse, before drawing, a ``save`` path matplotlib cannot write: a type it does
    not know or a folder that does not exist."""
    supported = FigureCanvasBase.get_supported_filetypes()
    kind = path.suffix.lower().lstrip(".")
    if kind and kind not in supported:
        raise ValueError(f"`save` {str(path)!r}: matplotlib writes no {kind!r} files; use one of {sorted(supported)}.")
    if not path.parent.is_dir():
        raise ValueError(f"`save` {str(path)!r}: the folder {str(path.parent)!r} does not exist.")


def _imputed_flags(column) -> np.ndarray:
    """``obs['imputed']`` as a bool array; refused unless every value is True or False
    (as bools, the strings ``'True'`` and ``'False'`` of a table read from text are both
    True: every spot would be drawn as new)."""
    if not column.isin([True, False]).all():
        examples = list(column[~column.isin([True, False])].unique()[:3])
        raise ValueError(
            f"`adata.obs['imputed']` (dtype {column.dtype}) must hold True or False for every spot, "
            f"got e.g. {examples}."
        )
    return column.to_numpy(dtype=bool)


def _spots(ax, xy, values, keep, new, cmap, vmin, vmax, pad, diameter: float) -> EllipseCollection:
    """Draw the spots ``keep`` as circles of ``diameter`` data units; return them."""
    ax.set_aspect("equal")
    ax.set_xlim(xy[:, 0].min() - pad, xy[:, 0].max() + pad)
    ax.set_ylim(xy[:, 1].max() + pad, xy[:, 1].min() - pad)
    ax.set_xticks([])
    ax.set_yticks([])
    points = xy[keep]
    # Sized in data units: the spots keep their size however the layout (e.g. the colour
    # bar) resizes the axes afterwards.
    sizes = np.full(len(points), diameter)
    spots = EllipseCollection(sizes, sizes, np.zeros(len(points)), units="xy", offsets=points,
                              offset_transform=ax.transData, cmap=cmap,
                              edgecolors=np.where(new[keep], "white", "none"))
    spots.set_array(values[keep])
    spots.set_clim(vmin, vmax)
    ax.add_collection(spots, autolim=False)
    return spots


def _outline_width(ax, diameter: float) -> float:
    """Width in points of the white outline of new spots: 0.3 pt, or a tenth of the
    drawn spot where spots are smaller than 3 pt (a whole slide), so that the outline
    never hides the spot's colour."""
    box = ax.get_position()
    width_pt, height_pt = 72 * box.width * ax.figure.get_figwidth(), 72 * box.height * ax.figure.get_figheight()
    (x0, x1), (y0, y1) = ax.get_xlim(), ax.get_ylim()
    points_per_unit = min(width_pt / abs(x1 - x0), height_pt / abs(y1 - y0))
    return min(0.3, 0.1 * diameter * points_per_unit)
