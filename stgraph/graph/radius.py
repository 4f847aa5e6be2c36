"""Exact radius graphs: :func:`radius_graph`."""
from __future__ import annotations

import importlib.util

import torch

from ._kdtree import kdtree_edges
from ._numba_grid import numba_grid_edges
from ._query import RadiusQuery, make_query
from ._torch_cluster import import_torch_cluster, torch_cluster_edges
from ._torch_grid import torch_grid_edges

__all__ = ["radius_graph", "BACKENDS", "available_backends"]

#: Backend name -> builder. See :func:`radius_graph` for what each one is.
BACKENDS = {
    "numba": numba_grid_edges,
    "torch": torch_grid_edges,
    "kdtree": kdtree_edges,
    "torch_cluster": torch_cluster_edges,
}


def available_backends() -> tuple[str, ...]:
    """Names of the backends usable here (``torch_cluster`` only when it is installed)."""
    names = [name for name in BACKENDS if name != "torch_cluster"]
    if importlib.util.find_spec("torch_cluster") is not None:
        names.append("torch_cluster")
    return tuple(names)


def resolve_backend(backend, device: torch.device) -> str:
    """The backend name ``backend`` stands for on ``device``; errors for unknown or missing ones."""
    if not isinstance(backend, str):
        raise TypeError(f"backend must be a str, got {type(backend).__name__}")
    if backend == "auto":
        # CPU: numba is the fastest backend in benchmarks/radius_graph.py
        # (benchmarks/results/radius_graph.json, 1e6 points, 2 threads: numba 1.28 CPU-s,
        # kdtree 5.2, torch 9.3; likewise at 1e4 and 1e5). CUDA: the PyTorch cell list is
        # the only backend that runs on the device (no GPU benchmark yet); torch_cluster's
        # CUDA radius search compares every pair of a sample, so it is never picked for you.
        return "torch" if device.type == "cuda" else "numba"
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; choose one of 'auto', " + ", ".join(map(repr, BACKENDS)))
    if backend == "torch_cluster":
        import_torch_cluster()
    return backend


def build_edges(query: RadiusQuery, backend: str):
    """``(edge_index, dist or None)`` of a validated query: the core of :func:`radius_graph`."""
    if query.num_nodes == 0:
        edge_index = torch.empty(2, 0, dtype=torch.int64, device=query.device)
        dtype = query.distance_dtype
        return edge_index, None if dtype is None else torch.empty(0, dtype=dtype, device=query.device)
    threads = torch.get_num_threads()
    try:
        return BACKENDS[backend](query)
    finally:
        # numba's OpenMP threading layer resets the process-wide OpenMP thread count,
        # which is torch's too: give the caller back the setting it chose.
        torch.set_num_threads(threads)


def radius_graph(
    pos,
    r: float,
    batch=None,
    *,
    loop: bool = False,
    max_num_neighbors: int | None = None,
    backend: str = "auto",
    return_distance: bool = False,
    max_memory: int | None = None,
):
    r"""Exact radius graph: every ordered pair of points at most ``r`` apart.

    There is an edge :math:`j \to i` iff :math:`d_{ij} \le r` and ``batch[i] == batch[j]``,
    where the test is always evaluated the same way, in float64:
    ``d2 = dx*dx + dy*dy (+ dz*dz)`` (summed in that order, ``dx = x_i - x_j``) and
    ``d2 <= r*r``. Every backend applies exactly this test (fast searches look a hair
    beyond ``r`` and then filter with it), so all backends return identical tensors,
    including for duplicate points and points exactly ``r`` apart.

    Parameters
    ----------
    pos
        ``[N, 2]`` or ``[N, 3]`` floating-point coordinates (torch tensor on CPU or CUDA;
        a numpy array is accepted and treated as a CPU tensor). Not modified.
    r
        Radius, a positive number between ``2**-500`` and ``2**500`` (so that ``r * r`` is
        an ordinary float64 number; rescale coordinates outside that range).
    batch
        Optional ``[N]`` integer sample id of each point (any values, any order, same
        device as ``pos``): points of different samples are never connected.
    loop
        Add the self-loop :math:`i \to i` of every point.
    max_num_neighbors
        Keep only the ``k`` nearest sources of each target: smallest ``d2`` first, equal
        ``d2`` broken by the smaller source index (with ``loop=True`` the self-loop is a
        source at distance 0 like any other). Unlike ``torch_cluster``, the kept subset is
        never arbitrary. The time still grows with all pairs within ``r`` (only the
        memory is bounded by ``k`` per point): a radius far above the neighbour spacing
        is no fast k-nearest-neighbour search.
    backend
        ``"auto"`` (default: ``"numba"`` on CPU, the fastest measured in
        ``benchmarks/radius_graph.py``; ``"torch"`` on CUDA, whose cell list runs on the
        device, not benchmarked on a GPU), or one of

        * ``"numba"``: compiled multi-threaded cell list on the CPU (cells of side >= r,
          a counting pass then a fill pass, so the output is sorted by target without a
          global sort);
        * ``"torch"``: cell list in pure PyTorch, runs on the tensors' device (CPU or
          CUDA), candidate pairs expanded in bounded chunks (of about 2**21 pairs, cut
          through dense cells too; a single point with more candidates is a chunk of
          its own);
        * ``"kdtree"``: :class:`scipy.spatial.cKDTree` pair search on the CPU;
        * ``"torch_cluster"``: :func:`torch_cluster.radius_graph` (optional package).

        CPU-only backends given CUDA tensors compute on the CPU and return CUDA tensors.
    return_distance
        Also return the edge lengths: ``sqrt(d2)`` in float64, cast to ``pos.dtype``.
        They carry no gradient, even when ``pos`` requires one: recompute them from
        ``edge_index`` to differentiate through the positions.
    max_memory
        Bytes the output may take; default: the memory available now
        (``psutil.virtual_memory().available`` on CPU, free CUDA memory on CUDA).

    Returns
    -------
    ``edge_index``, a ``[2, E]`` int64 tensor on ``pos``'s device: row 0 the source
    :math:`j`, row 1 the target :math:`i` (PyTorch Geometric's ``source_to_target``
    convention), sorted by target, then source. With ``return_distance=True``, the tuple
    ``(edge_index, dist)`` with ``dist`` of shape ``[E]``.

    Raises
    ------
    TypeError
        ``pos`` not floating point or not a tensor/array, ``batch`` not integer, ``r``,
        ``loop``, ``max_num_neighbors`` or ``backend`` of the wrong type.
    ValueError
        Wrong shapes, NaN or infinite coordinates, ``r`` outside ``[2**-500, 2**500]`` or
        not finite, ``max_num_neighbors < 1``, ``max_memory < 0``, ``batch`` of the wrong
        length or device, an unknown backend, ``"torch_cluster"`` not installed.
    GraphTooLargeError
        (a ValueError) The edges would need more than ``max_memory``; raised before they
        are allocated, with the edge count and bytes in the message. A radius far too
        large is refused from a lower bound on the edge count ("at least ..."), in about
        the time of sorting the points, before any pair is compared.

    Examples
    --------
    >>> import torch
    >>> from stgraph.graph import radius_graph
    >>> pos = torch.tensor([[0.0, 0.0], [1.0, 0.0], [3.0, 0.0]])
    >>> radius_graph(pos, r=1.0)
    tensor([[1, 0],
            [0, 1]])
    """
    query = make_query(
        pos,
        r,
        batch,
        loop=loop,
        max_num_neighbors=max_num_neighbors,
        return_distance=return_distance,
        max_memory=max_memory,
    )
    edge_index, dist = build_edges(query, resolve_backend(backend, query.device))
    return (edge_index, dist) if return_distance else edge_index
