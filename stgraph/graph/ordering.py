"""Locality-preserving node order: neighbours in space get close indices.

Sparse attention gathers the keys and values of each node's neighbours; when node
indices are unrelated to position (files sorted by gene or by field of view) those
gathers miss the CPU caches once a graph outgrows them, and time per edge grows
with the sample. Numbering the nodes along a Z-order (Morton) curve over a grid of
cells keeps every neighbourhood within a few cache-sized index blocks.
"""
from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from ._query import check_positions, check_radius

#: Bits per axis of the Morton code (3 × 21 bits fit an int64).
_BITS = {2: 31, 3: 21}


def _spread_bits(values: np.ndarray, n_dims: int) -> np.ndarray:
    """Insert ``n_dims - 1`` zero bits between the bits of each value."""
    spread = np.zeros_like(values)
    for bit in range(_BITS[n_dims]):
        spread |= ((values >> bit) & 1) << (bit * n_dims)
    return spread


def spatial_order(pos: Tensor | np.ndarray, cell_size: float) -> Tensor:
    """Permutation that numbers points along a Z-order curve of grid cells.

    Points are binned into cubes of side ``cell_size`` (in the units of ``pos``);
    cubes are visited in Morton order and points keep their input order inside a
    cube (the sort is stable), so the result is deterministic.

    Parameters
    ----------
    pos
        ``[N, 2 | 3]`` floating-point coordinates (tensor or numpy array).
    cell_size
        Side of the grid cells, e.g. the graph radius.

    Returns
    -------
    ``LongTensor[N]`` ``order`` such that ``pos[order]`` is in spatial order.

    Raises
    ------
    TypeError
        If ``pos`` is not a floating-point tensor or array, or ``cell_size`` not a number.
    ValueError
        If ``pos`` is not ``[N, 2 | 3]`` or holds NaN or infinite coordinates,
        ``cell_size`` is not positive and finite, or the extent of ``pos`` spans more
        cells per axis than the Morton code holds (2**31 in 2D, 2**21 in 3D).
    """
    # float64: in float16 the cell indices overflow to inf from 65504 on, and numpy has
    # no bfloat16.
    coords = check_positions(pos).detach().cpu().to(torch.float64).numpy()
    cell_size = check_radius(cell_size, "cell_size")
    if len(coords) == 0:
        return torch.zeros(0, dtype=torch.long)
    n_dims = coords.shape[1]
    with np.errstate(over="ignore"):  # an overflow to inf is refused just below
        cells = np.floor((coords - coords.min(axis=0)) / cell_size)
    # Checked before the cast to int64, which would turn inf into garbage.
    if cells.max() >= 1 << _BITS[n_dims]:
        raise ValueError(f"cell_size={cell_size} is too small for the extent of pos: more than 2^{_BITS[n_dims]} cells per axis")
    cells = cells.astype(np.int64)
    code = np.zeros(len(coords), dtype=np.int64)
    for axis in range(n_dims):
        code |= _spread_bits(cells[:, axis], n_dims) << axis
    return torch.from_numpy(np.argsort(code, kind="stable"))
