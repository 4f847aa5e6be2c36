"""Layout shared by the plots: new figures and the axes of spatial plots."""
from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.axes import Axes


def new_axes(figsize: tuple[float, float]) -> Axes:
    """Axes of a new figure whose layout keeps every label, legend and colour bar
    inside it (the default layout cut off the gene labels and the legends drawn
    beside the axes)."""
    _, ax = plt.subplots(figsize=figsize, layout="constrained")
    return ax


def check_axes(ax) -> None:
    """Refuse an ``ax`` that is neither None (a new figure) nor one matplotlib Axes.

    The array of axes that ``plt.subplots(1, 2)`` returns, or its figure, failed deep in
    the drawing with an AttributeError (``'numpy.ndarray' object has no attribute
    'imshow'``), after the work.

    Raises
    ------
    TypeError
        Naming the type given (for an array of axes: pass one of them).
    """
    if ax is None or isinstance(ax, Axes):
        return
    hint = ": pass one of them, e.g. axes[0]" if isinstance(ax, np.ndarray) else ""
    raise TypeError(f"ax must be a matplotlib Axes or None, got {type(ax).__name__}{hint}")


def spatial_axes(ax: Axes) -> None:
    """Equal aspect, axes in µm and y pointing down, as squidpy's ``spatial_scatter``,
    spatialdata-plot and :func:`stgraph.pl.enhance` draw tissue images, so that the
    plots of one sample agree in orientation."""
    ax.set_aspect("equal")
    ax.set_xlabel("x (µm)")
    ax.set_ylabel("y (µm)")
    if not ax.yaxis_inverted():  # drawing twice into one axes must not flip it back
        ax.invert_yaxis()
