"""Linear-time stable argsort of bounded integer keys (node ids of edges).

Grouping edges by node (by source in the attention backward pass, by target in the
domain neighbourhood counts) with a comparison sort costs O(E log E), which would
make time per edge grow with the graph; keys are node ids below ``num_nodes``, so a
counting sort does it in O(E).
"""
from __future__ import annotations

import numba
import numpy as np
import torch
from torch import Tensor


@numba.njit(cache=True)
def _counting_argsort(keys: np.ndarray, num_keys: int) -> np.ndarray:
    start = np.zeros(num_keys + 1, np.int64)
    for key in keys:
        start[key + 1] += 1
    for k in range(num_keys):
        start[k + 1] += start[k]
    order = np.empty(keys.size, np.int64)
    for position in range(keys.size):
        key = keys[position]
        order[start[key]] = position
        start[key] += 1
    return order


def stable_argsort(keys: Tensor, num_keys: int) -> Tensor:
    """``torch.sort(keys, stable=True).indices`` for int64 ``keys`` in ``[0, num_keys)``.

    A counting sort on CPU; on other devices torch's (parallel) sort.
    """
    if keys.device.type != "cpu":
        return torch.sort(keys, stable=True).indices
    return torch.from_numpy(_counting_argsort(keys.contiguous().numpy(), num_keys))
