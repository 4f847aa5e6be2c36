"""Validation of radius-graph arguments into one normalised :class:`RadiusQuery`."""
from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np
import torch

from .._validation import check_bool, check_int, check_real

__all__ = ["RadiusQuery", "as_tensor", "check_batch", "check_graph_radius", "check_positions", "check_radius", "make_query"]

# The edge predicate needs r * r to be an ordinary float64: below the normal range squares
# round by an absolute amount, and an overflow to inf would accept pairs at any distance,
# so neither the predicate's error bound (``_exact.inflate``) nor the cell sizes would hold.
MIN_RADIUS, MAX_RADIUS = 2.0**-500, 2.0**500


@dataclass(frozen=True)
class RadiusQuery:
    """Everything a backend needs, validated.

    ``points`` is the caller's coordinate tensor (never written to), ``pos`` the same in
    float64, ``batch`` the batch ids renumbered to ``0 .. num_batches - 1`` (``None`` for
    a single sample).
    """

    points: torch.Tensor
    batch: torch.Tensor | None
    num_batches: int
    r: float
    loop: bool
    max_num_neighbors: int | None
    distance_dtype: torch.dtype | None  # dtype of returned distances, None when not returned
    max_memory: int | None

    @property
    def num_nodes(self) -> int:
        return self.points.shape[0]

    @property
    def device(self) -> torch.device:
        return self.points.device

    @cached_property
    def pos(self) -> torch.Tensor:
        """``points`` in float64 (the same tensor if it already is)."""
        return self.points.to(torch.float64)

    @cached_property
    def bounds(self) -> tuple[list[float], list[float]]:
        """Per-axis minimum and maximum coordinates (``N >= 1``)."""
        low, high = torch.aminmax(self.points, dim=0)
        return low.tolist(), high.tolist()

    @property
    def r2(self) -> float:
        """The squared radius of the edge predicate ``d2 <= r * r`` (float64)."""
        return self.r * self.r

    @cached_property
    def max_abs(self) -> float:
        """Largest absolute coordinate: sets the rounding margin of every spatial search."""
        if not self.num_nodes:
            return 0.0
        low, high = self.bounds
        return max(max(map(abs, low)), max(map(abs, high)))


def as_tensor(x, name: str) -> torch.Tensor:
    """``x`` as a tensor; numpy arrays are accepted and stay on the CPU.

    Tensors are detached: a graph is built from values, it has no gradient. Arrays share
    their memory unless torch cannot (read-only, negative strides, non-native byte
    order): those are copied, never written to.
    """
    if isinstance(x, torch.Tensor):
        return x.detach()
    if isinstance(x, np.ndarray):
        if x.dtype.kind not in "biufc":  # strings, objects, dates: torch's refusal lists its dtypes
            raise TypeError(f"{name} must be an array of numbers, got dtype {x.dtype}")
        if not x.flags.writeable or any(step < 0 for step in x.strides) or not x.dtype.isnative:
            x = np.array(x, dtype=x.dtype.newbyteorder("="), order="C")
        return torch.from_numpy(x)
    raise TypeError(f"{name} must be a torch.Tensor or numpy.ndarray, got {type(x).__name__}")


def check_positions(pos) -> torch.Tensor:
    """``pos`` as an ``[N, 2]`` or ``[N, 3]`` floating-point tensor of finite values."""
    pos = as_tensor(pos, "pos")
    if pos.dim() != 2 or pos.shape[1] not in (2, 3):
        raise ValueError(f"pos must have shape [N, 2] or [N, 3], got {list(pos.shape)}")
    if not pos.is_floating_point():
        raise TypeError(f"pos must have a floating-point dtype, got {pos.dtype}")
    if not bool(torch.isfinite(pos).all()):
        row = int(torch.nonzero(~torch.isfinite(pos).all(dim=1))[0, 0])
        raise ValueError(f"pos contains NaN or infinite coordinates (first at row {row}: {pos[row].tolist()})")
    return pos


def check_radius(r, name: str = "r", *, allow_zero: bool = False) -> float:
    """``r`` as a positive (or, with ``allow_zero``, non-negative) finite Python float."""
    if isinstance(r, (torch.Tensor, np.ndarray)) and r.ndim == 0:
        r = r.item()
    return check_real(name, r, allow_zero=allow_zero)


def check_graph_radius(r, name: str = "r") -> float:
    """``r`` as the radius of a graph: a positive float whose square is an ordinary float64.

    Raises
    ------
    TypeError
        If ``r`` is not a real number.
    ValueError
        If ``r`` is not finite or lies outside ``[2**-500, 2**500]``.
    """
    r = check_radius(r, name)
    if not MIN_RADIUS <= r <= MAX_RADIUS:
        raise ValueError(
            f"{name} must lie between 2**-500 ({MIN_RADIUS:.3g}) and 2**500 ({MAX_RADIUS:.3g}) so that "
            f"{name} * {name} is an ordinary float64 number, got {r!r}; rescale the coordinates"
        )
    return r


def check_batch(batch, pos: torch.Tensor) -> torch.Tensor | None:
    """``batch`` as an integer tensor of one sample id per point of ``pos``, on its device."""
    if batch is None:
        return None
    batch = as_tensor(batch, "batch")
    if batch.dim() != 1 or batch.shape[0] != pos.shape[0]:
        raise ValueError(f"batch must have shape [{pos.shape[0]}] (one id per point), got {list(batch.shape)}")
    if batch.dtype == torch.bool or batch.is_floating_point() or batch.is_complex():
        raise TypeError(f"batch must have an integer dtype, got {batch.dtype}")
    if batch.device != pos.device:
        raise ValueError(f"batch is on {batch.device} but pos is on {pos.device}")
    return batch


def _check_batch(batch, pos: torch.Tensor) -> tuple[torch.Tensor | None, int]:
    """``batch`` renumbered to ``0 .. num_batches - 1``, and ``num_batches``."""
    batch = check_batch(batch, pos)
    if batch is None:
        return None, 1
    ids, inverse = torch.unique(batch, return_inverse=True)
    return inverse.to(torch.int64), max(int(ids.numel()), 1)


def _optional_int(value, name: str, minimum: int) -> int | None:
    """``value`` as an int ``>= minimum``, or None."""
    return None if value is None else check_int(name, value, minimum)


def _check_max_num_neighbors(value, num_nodes: int) -> int | None:
    """``value`` as a positive int, or None where it caps nothing (None, or ``>= num_nodes``)."""
    k = _optional_int(value, "max_num_neighbors", 1)
    # No target has more than num_nodes sources; a larger cap (10**30) would overflow
    # int64 in every backend.
    return None if k is None or k >= num_nodes else k


def make_query(
    pos,
    r,
    batch=None,
    *,
    loop: bool = False,
    max_num_neighbors: int | None = None,
    return_distance: bool = False,
    max_memory: int | None = None,
) -> RadiusQuery:
    """Validate the arguments of :func:`~stgraph.graph.radius_graph`."""
    pos = check_positions(pos)
    r = check_graph_radius(r)
    batch, num_batches = _check_batch(batch, pos)
    return RadiusQuery(
        points=pos,
        batch=batch,
        num_batches=num_batches,
        r=r,
        loop=check_bool("loop", loop),
        max_num_neighbors=_check_max_num_neighbors(max_num_neighbors, pos.shape[0]),
        distance_dtype=pos.dtype if check_bool("return_distance", return_distance) else None,
        max_memory=_optional_int(max_memory, "max_memory (bytes)", 0),
    )
