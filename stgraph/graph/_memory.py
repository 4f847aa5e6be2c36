"""Refusing graphs whose edge arrays would not fit in memory."""
from __future__ import annotations

import psutil
import torch

from ._cells import edge_lower_bound
from ._query import RadiusQuery

__all__ = [
    "GraphTooLargeError",
    "allocate_output",
    "available_memory",
    "fits",
    "require_fits",
    "refuse_surely_too_large",
]


class GraphTooLargeError(ValueError):
    """The radius graph's edge arrays would need more memory than is available.

    Its message ends with advice for Python callers; ``reason`` is the message without
    it, for callers such as the console command that offer other remedies.

    Parameters
    ----------
    message
        The whole message: what would not fit, and what a Python caller can do.
    reason
        ``message`` without the advice; ``None`` takes ``message`` itself.
    """

    def __init__(self, message: str, reason: str | None = None):
        super().__init__(message)
        self.reason = message if reason is None else reason

    def __reduce__(self):
        # An exception pickles as its class and args alone (e.g. sent back from a
        # worker process), which would lose a reason other than the message.
        return type(self), (self.args[0], self.reason)


def available_memory(device: torch.device) -> int:
    """Bytes that new tensors on ``device`` can take now."""
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        # Memory already reserved by PyTorch's caching allocator but unused is free to us too.
        return int(free + torch.cuda.memory_reserved(device) - torch.cuda.memory_allocated(device))
    return int(psutil.virtual_memory().available)


def output_bytes(num_edges: int, distance_dtype: torch.dtype | None) -> int:
    """Bytes of an ``int64`` ``[2, E]`` edge index plus, optionally, ``E`` distances."""
    per_edge = 2 * 8
    if distance_dtype is not None:
        per_edge += torch.empty((), dtype=distance_dtype).element_size()
    return num_edges * per_edge


def _limit(device: torch.device, max_memory: int | None) -> int:
    return available_memory(device) if max_memory is None else max_memory


def fits(num_edges: int, distance_dtype: torch.dtype | None, device: torch.device, max_memory: int | None) -> bool:
    """Whether the output of ``num_edges`` edges fits in ``max_memory`` (default: available memory)."""
    return output_bytes(num_edges, distance_dtype) <= _limit(device, max_memory)


def require_fits(
    num_edges: int,
    distance_dtype: torch.dtype | None,
    device: torch.device,
    max_memory: int | None,
    *,
    what: str = "radius graph",
    at_least: bool = False,
) -> None:
    """Raise :class:`GraphTooLargeError` unless ``num_edges`` edges fit (see :func:`fits`).

    With ``at_least``, ``num_edges`` is a lower bound and the message says so.
    """
    limit = _limit(device, max_memory)
    needed = output_bytes(num_edges, distance_dtype)
    if needed > limit:
        bound = "at least " if at_least else ""
        reason = (
            f"the {what} would have {bound}{num_edges:,} edges needing {bound}{needed:,} bytes "
            f"({needed / 2**30:.2f} GiB) on {device}, more than the {limit:,} bytes allowed "
            f"({'max_memory' if max_memory is not None else 'available memory'})"
        )
        advice = "use a smaller r, set max_num_neighbors, or build it tile by tile with radius_graph_tiled"
        raise GraphTooLargeError(f"{reason}; {advice}", reason)


def refuse_surely_too_large(query: RadiusQuery, upper_bound: int) -> bool:
    """Refuse before counting a graph that surely cannot fit; return whether
    ``upper_bound`` fits (then no exact count is needed to know the graph does).

    Counting the edges exactly costs as much as finding them, which for a radius far too
    large is quadratic in the points. So when a cheap upper bound on the edge count does
    not fit, the cheap lower bound of :func:`edge_lower_bound` must.
    """
    if fits(upper_bound, query.distance_dtype, query.device, query.max_memory):
        return True
    lower = edge_lower_bound(query)
    require_fits(lower, query.distance_dtype, query.device, query.max_memory, at_least=True)
    return False


def allocate_output(
    num_edges: int, distance_dtype: torch.dtype | None, device: torch.device, max_memory: int | None
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Uninitialised ``[2, E]`` edge index and ``[E]`` distances (None if not asked for),
    after :func:`require_fits`."""
    require_fits(num_edges, distance_dtype, device, max_memory)
    edge_index = torch.empty(2, num_edges, dtype=torch.int64, device=device)
    dist = None if distance_dtype is None else torch.empty(num_edges, dtype=distance_dtype, device=device)
    return edge_index, dist
