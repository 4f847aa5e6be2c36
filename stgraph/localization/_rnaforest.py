"""Bento's 13 RNAforest features of each (cell, gene), reimplemented from their definitions.

Bento (Mah et al. 2024, Genome Biology) classifies the localization pattern of a
gene in a cell with a random forest over these summaries of the gene's molecules
in the cell. ``R`` is the cell radius (see :mod:`._geometry`), ``A`` the cell area.

* ``cell_inner_proximity``: ``(R - mean distance to the cell outline) / R``.
* ``nucleus_inner_proximity`` / ``nucleus_outer_proximity``: the same with the
  nucleus outline, over the molecules inside / outside the nucleus (0 if none).
* ``cell_inner_asymmetry``: distance from the molecules' centroid to the cell
  centroid, ``/ R``.
* ``nucleus_inner_asymmetry`` / ``nucleus_outer_asymmetry``: distance from the
  centroid of the molecules inside / outside the nucleus to the nucleus centroid,
  ``/ R`` (0 if none). The three asymmetries follow Bento's documented definition;
  Bento 2.x's code averages the distance of each molecule to the centroid instead.
* ``l_max``, ``l_max_gradient``, ``l_min_gradient``, ``l_monotony``,
  ``l_half_radius``: statistics of Ripley's ``H(r) = L(r) - r`` (no edge
  correction, ``K(r) = A · #pairs closer than r / (n(n-1)/2)``, ``L = sqrt(K/π)``)
  over 50 radii from ``span/50`` to ``span/2`` (``span``: the cell's largest
  diameter): its maximum, the extremes of its gradient after a 5-point moving
  average, the Spearman correlation of ``H`` with ``r``, and ``H(span/4)``.
* ``point_dispersion_norm``: mean squared distance of the molecules to their
  centroid over that of a uniform point in the cell.
* ``nucleus_dispersion_norm``: the same about the nucleus centroid (``nan``
  without nucleus).

Departures from Bento, to make the features unit-free: ``H``, ``r`` and the
gradient are divided by ``R``; radii are 50 fractions of the span rather than
1-pixel steps; Ripley statistics use at most ``max_ripley_points`` molecules per
group (a seeded random subset; ``K`` stays unbiased).
"""
from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.spatial.distance import pdist

from ._data import CellGeneGroups, CellTranscripts

RNAFOREST_FEATURES = (
    "cell_inner_proximity",
    "nucleus_inner_proximity",
    "nucleus_outer_proximity",
    "cell_inner_asymmetry",
    "nucleus_inner_asymmetry",
    "nucleus_outer_asymmetry",
    "l_max",
    "l_max_gradient",
    "l_min_gradient",
    "l_monotony",
    "l_half_radius",
    "point_dispersion_norm",
    "nucleus_dispersion_norm",
)

_N_RADII = 50
_SMOOTHING = 5


def rnaforest_features(
    transcripts: CellTranscripts,
    groups: CellGeneGroups,
    *,
    max_ripley_points: int = 1000,
    seed: int = 0,
) -> pd.DataFrame:
    """Bento's 13 RNAforest features of every (cell, gene) group (see the module docstring).

    Parameters
    ----------
    transcripts
        Transcripts in cells, with their cell geometry.
    groups
        The (cell, gene) groups to describe, e.g. ``transcripts.groups(min_transcripts)``.
    max_ripley_points
        Most molecules per group used by the Ripley statistics (a seeded random
        subset of larger groups).
    seed
        Seed of that subset.

    Returns
    -------
    One row per group, in ``groups`` order: ``n_transcripts`` (the group's molecules,
    all of them) followed by the :data:`RNAFOREST_FEATURES` columns.
    """
    geometry = transcripts.geometry
    tg = transcripts.transcript_geometry
    member = groups.member
    keep = member >= 0
    g = member[keep]
    n_groups = len(groups)
    counts = np.bincount(g, minlength=n_groups).astype(float)
    cell = groups.cell
    radius = geometry.radius[cell]

    def group_mean(values: np.ndarray, mask: np.ndarray | None = None):
        """Mean over each group's transcripts (optionally a subset), nan if empty."""
        weights = np.ones(len(g)) if mask is None else mask.astype(float)
        total = np.bincount(g, weights=values * weights, minlength=n_groups)
        n = np.bincount(g, weights=weights, minlength=n_groups)
        with np.errstate(invalid="ignore", divide="ignore"):
            return total / n

    xy = transcripts.xy[keep]
    inside = tg.in_nucleus[keep]
    radius_of = geometry.radius[transcripts.cell[keep]]
    nucleus_distance = np.abs(tg.nucleus_distance[keep]) / radius_of
    has_nucleus = geometry.has_nucleus[cell]

    centroid = np.stack([group_mean(xy[:, 0]), group_mean(xy[:, 1])], axis=1)
    out = {
        "cell_inner_proximity": 1.0 - group_mean(tg.cell_distance[keep] / radius_of),
        "nucleus_inner_proximity": 1.0 - group_mean(nucleus_distance, inside),
        "nucleus_outer_proximity": 1.0 - group_mean(nucleus_distance, ~inside),
        "cell_inner_asymmetry": np.linalg.norm(centroid - geometry.centroid[cell], axis=1) / radius,
    }
    for name, mask in (("inner", inside), ("outer", ~inside)):
        part = np.stack([group_mean(xy[:, 0], mask), group_mean(xy[:, 1], mask)], axis=1)
        out[f"nucleus_{name}_asymmetry"] = (
            np.linalg.norm(part - geometry.nucleus_centroid[cell], axis=1) / radius
        )
    for key in ("nucleus_inner_proximity", "nucleus_outer_proximity", "nucleus_inner_asymmetry", "nucleus_outer_asymmetry"):
        out[key] = np.nan_to_num(np.where(has_nucleus, out[key], 0.0), nan=0.0)

    out.update(_ripley_statistics(transcripts, groups, max_ripley_points, seed))

    def dispersion_norm(about: np.ndarray) -> np.ndarray:
        """Mean squared distance to ``about`` (per group), over a uniform cell's."""
        squared = ((xy - about[g]) ** 2).sum(1)
        uniform = geometry.inertia[cell] + ((geometry.centroid[cell] - about) ** 2).sum(1)
        return group_mean(squared) / uniform

    out["point_dispersion_norm"] = dispersion_norm(centroid)
    nucleus_centroid = np.where(has_nucleus[:, None], geometry.nucleus_centroid[cell], geometry.centroid[cell])
    out["nucleus_dispersion_norm"] = np.where(has_nucleus, dispersion_norm(nucleus_centroid), np.nan)
    frame = pd.DataFrame({name: out[name] for name in RNAFOREST_FEATURES})
    frame.insert(0, "n_transcripts", counts.astype(np.int64))
    return frame


def _ripley_statistics(transcripts: CellTranscripts, groups: CellGeneGroups, max_points: int, seed: int) -> dict:
    geometry = transcripts.geometry
    rng = np.random.default_rng(seed)
    names = ("l_max", "l_max_gradient", "l_min_gradient", "l_monotony", "l_half_radius")
    stats = np.full((len(groups), len(names)), np.nan)
    order = np.argsort(groups.member, kind="stable")
    sorted_member = groups.member[order]
    starts = np.searchsorted(sorted_member, np.arange(len(groups)))
    ends = np.searchsorted(sorted_member, np.arange(len(groups)), side="right")
    for k in range(len(groups)):
        members = order[starts[k]:ends[k]]
        if len(members) > max_points:
            members = np.sort(rng.choice(members, max_points, replace=False))
        c = groups.cell[k]
        stats[k] = ripley_h_statistics(
            transcripts.xy[members], geometry.area[c], geometry.span[c], geometry.radius[c]
        )
    return dict(zip(names, stats.T))


def ripley_h_statistics(points: np.ndarray, area: float, span: float, radius: float) -> np.ndarray:
    """``(l_max, l_max_gradient, l_min_gradient, l_monotony, l_half_radius)`` of one group.

    ``nan`` for fewer than two points.
    """
    n = len(points)
    if n < 2:
        return np.full(5, np.nan)
    radii = np.linspace(span / _N_RADII, span / 2, _N_RADII)
    query = np.append(radii, span / 4)
    distances = np.sort(pdist(points))
    pairs_within = np.searchsorted(distances, query, side="left")
    k_function = area * pairs_within / (n * (n - 1) / 2)
    h = (np.sqrt(k_function / np.pi) - query) / radius
    h, h_half = h[:-1], h[-1]
    smooth = np.convolve(h, np.ones(_SMOOTHING) / _SMOOTHING, mode="valid")
    gradient = np.gradient(smooth, (radii[1] - radii[0]) / radius)
    ranks = pd.Series(h).rank().to_numpy()
    monotony = 0.0 if ranks.std() == 0 else np.corrcoef(ranks, np.arange(_N_RADII))[0, 1]
    return np.array([h.max(), gradient.max(), gradient.min(), monotony, h_half])
