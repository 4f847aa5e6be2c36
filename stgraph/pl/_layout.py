"""Layout shared by the plots: new figures and the axes of spatial plots."""
from __future__ import annotations

import matplotlib.pyplot as plt
from matplotlib.axes import Axes


def new_axes(figsize: tuple[float, float]) -> Axes:
    """Axes of a new figure whose layout keeps every label, legend and colour bar
    inside it (the default layout cut off the gene labels and the legends drawn
    beside the axes)."""
    _, ax = plt.subplots(figsize=figsize, layout="constrained")
    return ax


def spatial_axes(ax: Axes) -> None:
    """Equal aspect, axes in µm and y pointing down, as squidpy's ``spatial_scatter``,
    spatialdata-plot and :func:`stgraph.pl.enhance` draw tissue images, so that the
    plots of one sample agree in orientation."""
    ax.set_aspect("equal")
    ax.set_xlabel("x (µm)")
    ax.set_ylabel("y (µm)")
    if not ax.yaxis_inverted():  # drawing twice into one axes must not flip it back
        ax.invert_yaxis()
