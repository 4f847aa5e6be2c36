"""The enhancer's baseline: calibrated multi-scale interpolation of low-rank scores."""
from __future__ import annotations

import numpy as np

from ._baselines import gaussian_knn, linear


def blend_interpolate(pos: np.ndarray, scores: np.ndarray, query: np.ndarray, spacing: float) -> np.ndarray:
    """Mean of piecewise-linear and Gaussian 6-nearest-neighbour (σ = spacing) interpolation.

    Linear interpolation follows the lattice geometry closely; the Gaussian mean
    averages over more spots and so more noise. Their mean is steadier than either.
    """
    return 0.5 * linear(pos, scores, query) + 0.5 * gaussian_knn(pos, scores, query, k=6, sigma=spacing)


def fit_shrinkage(interpolated: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """Per-component least-squares slope of held-back scores on their interpolation.

    Components whose spatial pattern is mostly spot-level noise interpolate poorly
    and get a slope near 0; smooth ones keep a slope near 1. Clipped to [0, 1].
    """
    f = interpolated - interpolated.mean(axis=0)
    t = truth - truth.mean(axis=0)
    denom = (f**2).sum(axis=0)
    slope = np.divide((f * t).sum(axis=0), denom, out=np.zeros_like(denom), where=denom > 0)
    return np.clip(slope, 0.0, 1.0).astype(np.float32)
