"""Self-supervised training masks over the observed spots.

Each function returns a boolean array over the observed spots, ``True`` where a
spot is hidden from the model and becomes a reconstruction target. Masks are only
ever drawn over *observed* spots: the positions to predict are not part of the
training graphs at all.
"""
from __future__ import annotations

import numpy as np

from ._lattice import GridType, coarse_sublattice

MASK_KINDS = ("random", "block", "sublattice")


def random_mask(n: int, rng: np.random.Generator, fraction: tuple[float, float] = (0.15, 0.5)) -> np.ndarray:
    """Hide a uniformly drawn fraction (within ``fraction``) of the spots at random."""
    mask = np.zeros(n, dtype=bool)
    mask[rng.permutation(n)[: _count(n, rng.uniform(*fraction))]] = True
    return mask


def block_mask(pos: np.ndarray, rng: np.random.Generator, fraction: tuple[float, float] = (0.05, 0.15)) -> np.ndarray:
    """Hide one contiguous square block: the spots nearest (Chebyshev) to a random spot."""
    centre = pos[rng.integers(len(pos))]
    return chebyshev_block(pos, centre, _count(len(pos), rng.uniform(*fraction)))


def chebyshev_block(pos: np.ndarray, centre: np.ndarray, count: int) -> np.ndarray:
    """The ``count`` spots nearest to ``centre`` in Chebyshev distance (ties by index)."""
    order = np.argsort(np.abs(pos - centre).max(axis=1), kind="stable")
    mask = np.zeros(len(pos), dtype=bool)
    mask[order[:count]] = True
    return mask


def sublattice_mask(rc: np.ndarray, grid: GridType, spacing: float, rng: np.random.Generator) -> np.ndarray:
    """Hide all spots off a random coset of the lattice of twice the observed spacing.

    This is the ×2 super-resolution task one scale coarser: the kept quarter of the
    observed spots must predict the other three quarters.
    """
    return ~coarse_sublattice(rc, grid, spacing, coset=int(rng.integers(4)))


def draw_mask(kind: str, rc, pos, grid, spacing, rng) -> np.ndarray:
    """A mask of the given kind; always hides at least one spot and keeps at least one."""
    if kind == "random":
        mask = random_mask(len(pos), rng)
    elif kind == "block":
        mask = block_mask(pos, rng)
    elif kind == "sublattice":
        mask = sublattice_mask(rc, grid, spacing, rng)
    else:
        raise ValueError(f"Unknown mask kind {kind!r}; choose from {MASK_KINDS}.")
    if mask.all() or not mask.any():
        mask = random_mask(len(pos), rng, (0.5, 0.5))
    return mask


def _count(n: int, fraction: float) -> int:
    return int(np.clip(round(fraction * n), 1, n - 1))
