"""Molecules detected twice: two rows of one gene closer in the plane than a molecule's size.

Imaging platforms can call one molecule more than once: CosMx in two adjacent
z-planes, and data flattened from a z-stack (the embedded MERFISH sample) once per plane.
Such copies double a gene's molecules at one place, and colocalization then reads them
as a gene attracting itself and, through the crowding they add, other genes.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.spatial import cKDTree

from ._schema import GENE, X, Y


def same_gene_pairs(points: pd.DataFrame, distance: float) -> np.ndarray:
    """``(P, 2)`` row positions ``i < j`` of the molecules of one gene at most ``distance``
    apart in the plane (``x``, ``y``; a ``z`` column is not used)."""
    if distance == 0 or len(points) < 2:
        return np.zeros((0, 2), dtype=np.int64)
    xy = points[[X, Y]].to_numpy(dtype=np.float64)
    pairs = cKDTree(xy).query_pairs(distance, output_type="ndarray")
    gene = points[GENE].cat.codes.to_numpy()
    return pairs[gene[pairs[:, 0]] == gene[pairs[:, 1]]]


def planar_duplicates(points: pd.DataFrame, distance: float) -> np.ndarray:
    """Whether each molecule lies within ``distance`` in the plane of one of the same gene
    in an earlier row: of a tight group of copies the first row is kept unflagged."""
    flagged = np.zeros(len(points), dtype=bool)
    flagged[same_gene_pairs(points, distance)[:, 1]] = True
    return flagged
