"""The edge lengths a layer is given: one check for the encoder and for every layer."""
from __future__ import annotations

import torch
from torch import Tensor


def shape_of(value: object) -> object:
    """The shape of a tensor, else the type name of what came instead (for messages)."""
    return tuple(value.shape) if isinstance(value, Tensor) else type(value).__name__


def checked_edge_dist(edge_dist: object, num_edges: int) -> Tensor:
    """``edge_dist`` as ``[num_edges]`` lengths, after checking it.

    Raises
    ------
    ValueError
        If it is not a ``[num_edges]`` or ``[num_edges, 1]`` tensor, or holds a NaN,
        infinite or negative length (naming how many and the first).
    TypeError
        If it is not floating point.
    """
    if not isinstance(edge_dist, Tensor) or edge_dist.shape not in ((num_edges,), (num_edges, 1)):
        raise ValueError(
            f"edge_dist must have shape [num_edges={num_edges}] or [num_edges, 1], got {shape_of(edge_dist)}"
        )
    edge_dist = edge_dist.reshape(-1)
    if not edge_dist.is_floating_point():
        raise TypeError(f"edge_dist must be floating point, got {edge_dist.dtype}")
    bad = ~(torch.isfinite(edge_dist) & (edge_dist >= 0))
    if bool(bad.any()):
        edge = int(torch.nonzero(bad)[0, 0])
        raise ValueError(
            f"edge_dist must be finite and >= 0; {int(bad.sum())} edge(s) are not "
            f"(first: edge {edge}, length {edge_dist[edge].item()})"
        )
    return edge_dist
