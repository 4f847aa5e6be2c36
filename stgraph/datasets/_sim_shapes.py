"""Random cell, nucleus and domain outlines for :func:`stgraph.datasets.simulate`.

Every outline is a star-convex polygon: a circle whose radius is modulated by a few
random low-order harmonics (irregularity), stretched along a random axis (elongation)
and rescaled to a target *equivalent radius* ``sqrt(area / pi)``.
"""
from __future__ import annotations

import numpy as np
import shapely

#: Vertices per outline; enough for smooth shapes, few enough for fast distance maths.
N_VERTICES = 64
#: Harmonic orders that make outlines irregular; order 1 only shifts the shape.
_HARMONICS = np.arange(2, 7)
#: 0.9 ** 40 < 2 %: an outline that still does not fit cannot fit at all.
_MAX_SHRINKS = 40


def star_polygons(
    rng: np.random.Generator,
    radius: np.ndarray,
    elongation: np.ndarray,
    angle: np.ndarray,
    irregularity: float,
) -> np.ndarray:
    """Vertices of star-convex outlines centred on the origin.

    Parameters
    ----------
    rng
        Random generator (harmonic amplitudes and phases).
    radius
        Equivalent radius ``sqrt(area / pi)`` of each outline, shape ``(n,)``.
    elongation
        Aspect ratio (>= 1) of the stretch applied to each outline, shape ``(n,)``.
    angle
        Orientation of the long axis in radians, shape ``(n,)``.
    irregularity
        Scale of the harmonic amplitudes; harmonic ``k`` has amplitude
        ``irregularity * N(0, 1) / k``, so higher orders add finer, weaker wiggles.

    Returns
    -------
    Array of shape ``(n, N_VERTICES, 2)``, vertices in counter-clockwise order.
    """
    n = len(radius)
    theta = np.linspace(0.0, 2.0 * np.pi, N_VERTICES, endpoint=False)
    amp = irregularity * rng.normal(size=(n, len(_HARMONICS))) / _HARMONICS
    phase = rng.uniform(0.0, 2.0 * np.pi, size=(n, len(_HARMONICS)))
    modulation = np.cos(_HARMONICS[None, :, None] * theta[None, None, :] + phase[..., None])
    # The floor keeps every radius positive, hence the outline star-convex.
    r = np.clip(1.0 + np.einsum("nk,nkv->nv", amp, modulation), 0.5, None)
    stretch = np.sqrt(elongation)[:, None]
    local = np.stack([r * np.cos(theta) * stretch, r * np.sin(theta) / stretch], axis=-1)
    cos, sin = np.cos(angle)[:, None], np.sin(angle)[:, None]
    xy = np.stack(
        [cos * local[..., 0] - sin * local[..., 1], sin * local[..., 0] + cos * local[..., 1]],
        axis=-1,
    )
    scale = radius / np.sqrt(polygon_area(xy) / np.pi)
    return xy * scale[:, None, None]


def polygon_area(xy: np.ndarray) -> np.ndarray:
    """Shoelace area of polygons given as vertex arrays of shape ``(..., m, 2)``."""
    x, y = xy[..., 0], xy[..., 1]
    return 0.5 * np.abs(np.sum(x * np.roll(y, -1, axis=-1) - np.roll(x, -1, axis=-1) * y, axis=-1))


def grid_offsets(
    rng: np.random.Generator, extent: np.ndarray, gap: float
) -> np.ndarray:
    """Centres of outlines on a jittered square grid, never overlapping.

    Each outline stays inside its own grid square of side ``2 * max(extent) + gap``,
    jittered uniformly by as much as its own extent leaves free, so no two overlap
    and neighbours are at least ``gap`` apart.

    Parameters
    ----------
    rng
        Random generator (jitter).
    extent
        Largest distance of each outline's vertices from its centre, shape ``(n,)``.
    gap
        Minimal distance between neighbouring outlines.

    Returns
    -------
    Centres, shape ``(n, 2)``, all coordinates positive.
    """
    n = len(extent)
    spacing = 2.0 * extent.max() + gap
    n_cols = int(np.ceil(np.sqrt(n)))
    col, row = np.arange(n) % n_cols, np.arange(n) // n_cols
    slack = (spacing / 2.0 - gap / 2.0 - extent)[:, None]
    jitter = rng.uniform(-1.0, 1.0, size=(n, 2)) * slack
    return (np.stack([col, row], axis=1) + 0.5) * spacing + jitter


def fit_inside(
    container: shapely.Polygon,
    outline: np.ndarray,
    centre: np.ndarray,
    offset: np.ndarray,
    margin: float,
) -> np.ndarray:
    """Place ``outline`` inside ``container`` at least ``margin`` from its edge.

    Tries the outline at ``centre + offset``, then with the offset halved, then at
    the centre; if none fits, shrinks the outline by 10 % and starts again.

    Returns
    -------
    The placed vertices, shape ``(m, 2)``.
    """
    allowed = container.buffer(-margin)
    for _ in range(_MAX_SHRINKS):
        for shift in (1.0, 0.5, 0.0):
            placed = outline + centre + shift * offset
            if allowed.contains(shapely.Polygon(placed)):
                return placed
        outline = 0.9 * outline
    raise RuntimeError(
        f"cannot fit an outline {margin:.3g} inside its container around {centre}; "
        "lower the edge width or the nucleus / domain size"
    )
