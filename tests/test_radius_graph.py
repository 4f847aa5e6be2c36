"""Exactness of stgraph.graph.radius_graph against an O(N^2) brute force, for every backend."""
from __future__ import annotations

import itertools
import math
import sys
import types
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

import stgraph.graph._cells as cells_module
import stgraph.graph._numba_grid as numba_grid_module
import stgraph.graph._torch_grid as torch_grid_module
from stgraph.graph import GraphTooLargeError, available_backends, radius_graph
from stgraph.graph._cells import build_cell_list, edge_lower_bound
from stgraph.graph._query import make_query

BACKENDS = available_backends()
DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
SETTINGS = settings(derandomize=True, deadline=None, max_examples=40)


def brute_force(pos: torch.Tensor, r: float, batch=None, loop=False, k=None):
    """Edge index and float64 d2 of the predicate, by comparing every pair."""
    p = pos.detach().cpu().to(torch.float64).numpy()
    n = p.shape[0]
    d2 = np.zeros((n, n))
    for dim in range(p.shape[1]):
        diff = p[:, None, dim] - p[None, :, dim]  # [target i, source j] = x_i - x_j
        d2 = d2 + diff * diff
    adjacent = d2 <= r * r
    if batch is not None:
        b = np.asarray(batch)
        adjacent &= b[:, None] == b[None, :]
    if not loop:
        np.fill_diagonal(adjacent, False)
    sources, targets = [], []
    for i in range(n):
        js = np.flatnonzero(adjacent[i])
        if k is not None and js.size > k:
            js = np.sort(sorted(js, key=lambda j: (d2[i, j], j))[:k])
        sources += js.tolist()
        targets += [i] * js.size
    edge_index = torch.tensor([sources, targets], dtype=torch.int64).reshape(2, -1)
    return edge_index, torch.from_numpy(d2[edge_index[1].numpy(), edge_index[0].numpy()])


def exact_sqrt(d2: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """Correctly rounded float64 square root (numpy's; torch.sqrt on CPU may be an ulp off)."""
    return torch.from_numpy(np.sqrt(d2.cpu().numpy())).to(dtype)


def assert_same_graph(pos, r, batch, loop, k, backend):
    expected, d2 = brute_force(pos, r, batch, loop, k)
    edge_index, dist = radius_graph(
        pos, r, batch, loop=loop, max_num_neighbors=k, backend=backend, return_distance=True
    )
    assert edge_index.dtype == torch.int64
    assert torch.equal(edge_index, expected)
    assert dist.dtype == pos.dtype
    assert torch.equal(dist, exact_sqrt(d2, pos.dtype))


@dataclass
class Case:
    pos: torch.Tensor
    r: float
    batch: torch.Tensor | None
    loop: bool


@st.composite
def cases(draw, max_points=40):
    dim = draw(st.sampled_from([2, 3]))
    n = draw(st.integers(0, max_points))
    if draw(st.booleans()):
        # Small integer grid: duplicates and many pairs exactly r apart.
        coords = draw(arrays(np.int64, (n, dim), elements=st.integers(-3, 3))).astype(np.float64)
        r = draw(st.sampled_from([0.5, 1.0, math.sqrt(2.0), 2.0, math.sqrt(5.0), 3.0]))
    else:
        spread = draw(st.sampled_from([1.0, 10.0, 1000.0]))
        coords = draw(arrays(np.float64, (n, dim), elements=st.floats(-spread, spread, allow_subnormal=False)))
        if n >= 2 and draw(st.booleans()):
            # Radius equal to one pairwise distance: puts a pair on the boundary.
            i, j = draw(st.integers(0, n - 1)), draw(st.integers(0, n - 1))
            d2 = 0.0
            for axis in range(dim):
                d2 = d2 + (coords[i, axis] - coords[j, axis]) ** 2
            r = math.sqrt(d2) if d2 > 0 else 1.0
        else:
            r = draw(st.floats(0.01, spread))
    dtype = draw(st.sampled_from([torch.float32, torch.float64]))
    batch = None
    if draw(st.booleans()):
        batch = torch.from_numpy(draw(arrays(np.int64, n, elements=st.integers(-1, 2))))
    return Case(torch.from_numpy(coords).to(dtype), r, batch, draw(st.booleans()))


@pytest.mark.parametrize("backend", BACKENDS)
@SETTINGS
@given(case=cases())
def test_matches_brute_force(backend, case):
    assert_same_graph(case.pos, case.r, case.batch, case.loop, None, backend)


@pytest.mark.parametrize("backend", BACKENDS)
@SETTINGS
@given(case=cases(), k=st.integers(1, 6))
def test_nearest_k_matches_brute_force(backend, case, k):
    assert_same_graph(case.pos, case.r, case.batch, case.loop, k, backend)


@pytest.mark.parametrize("backend", BACKENDS)
def test_isolated_points_duplicates_and_boundary(backend):
    pos = torch.tensor([[0.0, 0.0], [0.0, 0.0], [3.0, 4.0], [100.0, 100.0], [3.0, 4.0 + 2**-40]], dtype=torch.float64)
    edge_index = radius_graph(pos, 5.0, backend=backend)
    # (0,0)-(3,4) is exactly 5 apart: kept; 4 is 5 + 2**-40 * 4/5 away from 0 and 1: dropped.
    expected = [[1, 2, 0, 2, 0, 1, 4, 2], [0, 0, 1, 1, 2, 2, 2, 4]]
    assert edge_index.tolist() == expected
    assert not (edge_index == 3).any()  # isolated


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("k", [4, 2**63, 10**30])
def test_a_cap_of_at_least_every_point_keeps_every_edge(backend, k):
    # Caps from 2**63 on failed with OverflowError / RuntimeError in the kernels.
    pos = torch.tensor([[0.0, 0.0], [0.5, 0.0], [0.0, 0.5], [0.5, 0.5]])
    assert torch.equal(
        radius_graph(pos, 1.0, loop=True, max_num_neighbors=k, backend=backend), brute_force(pos, 1.0, loop=True)[0]
    )


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dim", [2, 3])
def test_dense_neighbourhoods_with_ties_match_brute_force(backend, dim):
    # 300 points on a half-unit grid of side 2.5: every neighbourhood holds far more
    # than the 64 candidates sorted in place by the numba backend, with duplicates and
    # many sources at equal distances for the nearest-k tie-break.
    gen = torch.Generator().manual_seed(11)
    pos = torch.randint(0, 6, (300, dim), generator=gen).to(torch.float64) * 0.5 + 1e7
    batch = torch.randint(0, 2, (300,), generator=gen)
    for loop, k in ((False, None), (True, 70), (False, 3)):
        assert_same_graph(pos, 1.0, batch, loop, k, backend)


@pytest.mark.parametrize("pairs_per_chunk", [1, 200, 5000])
def test_torch_backend_in_small_chunks(monkeypatch, pairs_per_chunk):
    # 1: every chunk is one target; 200: chunks cut through cells; 5000: a few whole cells.
    monkeypatch.setattr(torch_grid_module, "PAIRS_PER_CHUNK", pairs_per_chunk)
    monkeypatch.setattr(cells_module, "CELLS_PER_LOOKUP", 3)
    gen = torch.Generator().manual_seed(3)
    pos = torch.rand(50, 3, generator=gen, dtype=torch.float64) * 4
    batch = torch.randint(0, 2, (50,), generator=gen)
    assert_same_graph(pos, 1.3, batch, False, None, "torch")
    assert_same_graph(pos, 1.3, batch, True, 4, "torch")


def test_chunks_bound_the_candidate_pairs_of_a_dense_cell():
    # 300 points in one cell: each has 300 candidates, so a chunk of 1,000 pairs must cut it.
    gen = torch.Generator().manual_seed(6)
    cells = build_cell_list(make_query(torch.rand(300, 2, generator=gen), 5.0))
    assert cells.num_cells == 1
    chunks = cells.chunks(1000)
    assert [start for start, _ in chunks] == [0] + [stop for _, stop in chunks[:-1]] and chunks[-1][1] == 300
    for start, stop in chunks:
        a, b = cells.candidate_pairs(start, stop)
        assert a.numel() == 300 * (stop - start) <= 1000
        assert torch.equal(a.unique(), torch.arange(start, stop))


@SETTINGS
@given(case=cases(), k=st.one_of(st.none(), st.integers(1, 6)))
def test_edge_lower_bound_never_exceeds_the_edge_count(case, k):
    query = make_query(case.pos, case.r, case.batch, loop=case.loop, max_num_neighbors=k)
    assert edge_lower_bound(query) <= brute_force(case.pos, case.r, case.batch, case.loop, k)[0].shape[1]


def test_edge_lower_bound_is_exact_for_a_tight_cluster():
    gen = torch.Generator().manual_seed(7)
    pos = torch.rand(200, 3, generator=gen, dtype=torch.float64)
    assert edge_lower_bound(make_query(pos, 1e6)) == 200 * 199
    assert edge_lower_bound(make_query(pos, 1e6, loop=True, max_num_neighbors=5)) == 200 * 5
    # Two samples of 100 points: no edge between them.
    assert edge_lower_bound(make_query(pos, 1e6, torch.arange(200) % 2)) == 2 * 100 * 99


def test_edge_lower_bound_far_from_the_origin():
    # Cells are measured from the median, so an offset of 2.5e6 r keeps every pair...
    gen = torch.Generator().manual_seed(9)
    square = torch.rand(300, 2, generator=gen, dtype=torch.float64)
    assert edge_lower_bound(make_query(square + 5e6, 2.0)) == 300 * 299
    # ...and points too far from it for the rounding argument (or for int64 keys) are left
    # out, not the whole bound: 8 far corners (with no edge) beside a tight cube.
    cube = torch.rand(400, 3, generator=gen, dtype=torch.float64) * 0.2
    corners = torch.tensor(list(itertools.product((-1.5e5, 1.5e5), repeat=3)), dtype=torch.float64)
    assert edge_lower_bound(make_query(torch.cat([cube, corners]), 0.5)) == 400 * 399


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize(("scale", "offset", "r"), [(100.0, 0.0, 1e9), (1.0, 5e6, 2.0)])
def test_far_too_large_radius_is_refused_without_counting(monkeypatch, backend, scale, offset, r):
    def never(*args):
        raise AssertionError("the edges were counted")

    monkeypatch.setattr(numba_grid_module, "_count_edges", never)
    monkeypatch.setattr(torch_grid_module, "_count_per_target", never)
    gen = torch.Generator().manual_seed(8)
    pos = torch.rand(2000, 2, generator=gen, dtype=torch.float64) * scale + offset
    with pytest.raises(GraphTooLargeError, match="at least 3,998,000 edges needing at least 63,968,000 bytes"):
        radius_graph(pos, r, backend=backend, max_memory=10**7)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("r", [2.0**-500, 2.0**500])
def test_radius_at_the_ends_of_its_range(backend, r):
    # r * r is still a normal float64 (2**-1000, 2**1000); pairs on the boundary included.
    gen = torch.Generator().manual_seed(10)
    steps = torch.randint(-3, 4, (80, 3), generator=gen).to(torch.float64)
    assert_same_graph(steps * 0.5 * r, r, torch.arange(80) % 2, False, None, backend)
    assert_same_graph(steps * 0.5 * r, r, None, True, 3, backend)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dim", [2, 3])
def test_tiny_radius_over_huge_extent(backend, dim):
    # 2e15 / 0.2 = 1e16 cells per axis: the int64 cell keys force a coarser grid.
    gen = torch.Generator().manual_seed(1)
    corners = torch.tensor([[-1e15] * dim, [1e15] * dim, [3e14] * dim], dtype=torch.float64)
    steps = torch.randint(0, 3, (60, dim), generator=gen).to(torch.float64) * 0.125
    pos = corners[torch.arange(60) % 3] + steps
    assert_same_graph(pos, 0.2, torch.arange(60) % 2, False, None, backend)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_input(backend, dtype):
    gen = torch.Generator().manual_seed(8)
    pos = (torch.rand(120, 2, generator=gen) * 6).to(dtype)
    assert_same_graph(pos, 1.0, None, False, 3, backend)


@pytest.mark.parametrize("backend", BACKENDS)
def test_empty_input(backend):
    edge_index, dist = radius_graph(torch.empty(0, 3), 1.0, backend=backend, return_distance=True)
    assert edge_index.shape == (2, 0) and edge_index.dtype == torch.int64
    assert dist.shape == (0,) and dist.dtype == torch.float32


def test_numpy_input_gives_the_torch_result():
    gen = np.random.default_rng(0)
    pos = gen.uniform(0, 10, (200, 2))
    batch = gen.integers(0, 2, 200)
    expected = radius_graph(torch.from_numpy(pos), 1.5, torch.from_numpy(batch))
    pos.setflags(write=False)  # read-only arrays are accepted too
    assert torch.equal(radius_graph(pos, 1.5, batch), expected)
    # So are arrays torch cannot share: big-endian ones and reversed views.
    assert torch.equal(radius_graph(pos.astype(">f8"), 1.5, batch.astype(">i8")), expected)
    reversed_expected = radius_graph(torch.from_numpy(pos[::-1].copy()), 1.5, torch.from_numpy(batch[::-1].copy()))
    assert torch.equal(radius_graph(pos[::-1], 1.5, batch[::-1]), reversed_expected)
    assert reversed_expected.shape == expected.shape


def test_kdtree_refuses_a_span_its_tree_cannot_square():
    pos = torch.tensor([[0.0, 0.0], [2.0**510, 0.0], [2.0**511, 1.0], [2.0**511 + 2.0**499, 1.0]], dtype=torch.float64)
    assert radius_graph(pos[:2], 1.0, backend="kdtree").shape == (2, 0)
    with pytest.raises(ValueError, match=r"kdtree backend .* got a span of 6.71e\+153; use backend='numba' or 'torch'"):
        radius_graph(pos, 1.0, backend="kdtree")
    for backend in ("numba", "torch"):
        assert radius_graph(pos, 2.0**500, backend=backend).tolist() == [[3, 2], [2, 3]]


@pytest.mark.parametrize("backend", BACKENDS)
def test_inputs_are_not_modified(backend):
    gen = torch.Generator().manual_seed(2)
    for dtype in (torch.float32, torch.float64):
        pos = torch.rand(150, 3, generator=gen).to(dtype) * 4
        batch = torch.randint(5, 8, (150,), generator=gen)
        pos_before, batch_before = pos.clone(), batch.clone()
        radius_graph(pos, 0.9, batch, loop=True, max_num_neighbors=3, backend=backend, return_distance=True)
        assert torch.equal(pos, pos_before) and torch.equal(batch, batch_before)


@pytest.mark.parametrize("backend", BACKENDS)
def test_too_large_graph_is_refused_before_allocation(backend):
    gen = torch.Generator().manual_seed(4)
    pos = torch.rand(400, 2, generator=gen) * 10
    num_edges = brute_force(pos, 1.0)[0].shape[1]
    needed = num_edges * (16 + 4)  # int64 edge index + float32 distances
    with pytest.raises(GraphTooLargeError, match=f"{num_edges:,} edges needing {needed:,} bytes"):
        radius_graph(pos, 1.0, backend=backend, return_distance=True, max_memory=needed - 1)
    edge_index, _ = radius_graph(pos, 1.0, backend=backend, return_distance=True, max_memory=needed)
    assert edge_index.shape[1] == num_edges
    capped = brute_force(pos, 1.0, k=2)[0].shape[1]
    with pytest.raises(ValueError, match=f"{capped:,} edges needing {capped * 16:,} bytes"):
        radius_graph(pos, 1.0, backend=backend, max_num_neighbors=2, max_memory=capped * 16 - 1)


POS = torch.zeros(4, 2)


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"pos": torch.tensor([[0.0, float("nan")]])}, ValueError, "NaN or infinite coordinates .first at row 0"),
        ({"pos": torch.tensor([[0.0, 0.0], [float("inf"), 0.0]])}, ValueError, "first at row 1"),
        ({"pos": torch.zeros(4)}, ValueError, r"shape \[N, 2\] or \[N, 3\], got \[4\]"),
        ({"pos": torch.zeros(4, 4)}, ValueError, r"shape \[N, 2\] or \[N, 3\], got \[4, 4\]"),
        ({"pos": torch.zeros(4, 2, dtype=torch.int64)}, TypeError, "floating-point dtype, got torch.int64"),
        ({"pos": [[0.0, 0.0]]}, TypeError, "pos must be a torch.Tensor or numpy.ndarray, got list"),
        # torch's refusal listed the dtypes it converts, not the argument.
        ({"pos": np.array([["0", "1"]])}, TypeError, "pos must be an array of numbers, got dtype <U1"),
        ({"pos": np.array([[0.0, 1.0]], dtype=object)}, TypeError, "pos must be an array of numbers, got dtype object"),
        ({"batch": np.array(["a"] * 4)}, TypeError, "batch must be an array of numbers, got dtype <U1"),
        ({"r": 0.0}, ValueError, "r must be a positive finite number, got 0.0"),
        ({"r": -1}, ValueError, "r must be a positive finite number, got -1.0"),
        ({"r": float("inf")}, ValueError, "r must be a positive finite number, got inf"),
        ({"r": float("nan")}, ValueError, "r must be a positive finite number, got nan"),
        ({"r": 5e-324}, ValueError, r"r must lie between 2\*\*-500 \(3.05e-151\) and 2\*\*500 .* got 5e-324"),
        ({"r": 1e-160}, ValueError, r"so that r \* r is an ordinary float64 number, got 1e-160"),
        ({"r": 1e160}, ValueError, r"r must lie between .* got 1e\+160; rescale the coordinates"),
        ({"r": "1"}, TypeError, "r must be a real number, got str"),
        ({"r": True}, TypeError, "r must be a real number"),
        ({"batch": torch.zeros(3, dtype=torch.int64)}, ValueError, r"batch must have shape \[4\]"),
        ({"batch": torch.zeros(4)}, TypeError, "batch must have an integer dtype, got torch.float32"),
        ({"batch": torch.zeros(4, dtype=torch.bool)}, TypeError, "integer dtype, got torch.bool"),
        ({"batch": torch.zeros(4, dtype=torch.int64, device="meta")}, ValueError, "batch is on meta but pos is on cpu"),
        ({"backend": "octree"}, ValueError, "unknown backend 'octree'"),
        ({"backend": None}, TypeError, "backend must be a str"),
        ({"max_num_neighbors": 0}, ValueError, "max_num_neighbors must be a positive integer, got 0"),
        ({"max_num_neighbors": 2.5}, TypeError, "max_num_neighbors must be an integer, got 2.5"),
        ({"loop": 1}, TypeError, "loop must be a bool"),
        ({"return_distance": "False"}, TypeError, "return_distance must be a bool .*got 'False'"),
        ({"max_memory": -5}, ValueError, r"max_memory \(bytes\) must be an integer >= 0, got -5"),
        ({"max_memory": 1e9}, TypeError, r"max_memory \(bytes\) must be an integer, got 1000000000\.0"),
    ],
)
def test_bad_input_is_refused(kwargs, error, message):
    arguments = {"pos": POS, "r": 1.0} | kwargs
    with pytest.raises(error, match=message):
        radius_graph(arguments.pop("pos"), arguments.pop("r"), **arguments)


@pytest.mark.parametrize("backend", ["numba", "torch", "kdtree"])
def test_positions_requiring_grad_give_the_same_graph_without_grad(backend):
    pos = torch.rand(50, 2, generator=torch.Generator().manual_seed(0))
    expected, expected_dist = radius_graph(pos, 0.3, backend=backend, return_distance=True)
    edge_index, dist = radius_graph(pos.clone().requires_grad_(), 0.3, backend=backend, return_distance=True)
    assert torch.equal(edge_index, expected) and torch.equal(dist, expected_dist)
    assert not dist.requires_grad


def test_missing_torch_cluster_is_a_clear_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "torch_cluster", None)  # makes `import torch_cluster` fail
    with pytest.raises(ValueError, match="needs the torch-cluster package"):
        radius_graph(POS, 1.0, backend="torch_cluster")


def _fake_torch_cluster(calls):
    """Mimics torch_cluster.radius_graph's contract: strict `<`, batch must be sorted, and
    a target with too many neighbours keeps an arbitrary subset (here: the last ones)."""

    def fake_radius_graph(x, r, batch=None, loop=False, max_num_neighbors=32, flow="source_to_target"):
        assert flow == "source_to_target"
        if batch is not None:
            assert bool((batch[1:] >= batch[:-1]).all())
        calls.append(max_num_neighbors)
        d = torch.cdist(x, x)
        adjacent = d < r
        if batch is not None:
            adjacent &= batch[:, None] == batch[None, :]
        adjacent.fill_diagonal_(loop)
        sources, targets = [], []
        for i in range(x.shape[0]):
            js = torch.nonzero(adjacent[i]).flatten().flip(0)[:max_num_neighbors]
            sources.append(js)
            targets.append(torch.full_like(js, i))
        return torch.stack([torch.cat(sources), torch.cat(targets)])

    return types.SimpleNamespace(radius_graph=fake_radius_graph)


@SETTINGS
@given(case=cases(max_points=25), k=st.one_of(st.none(), st.integers(1, 4)))
def test_torch_cluster_wrapper_is_exact_with_a_stand_in(case, k):
    calls = []
    with pytest.MonkeyPatch.context() as patch:
        patch.setitem(sys.modules, "torch_cluster", _fake_torch_cluster(calls))
        assert_same_graph(case.pos, case.r, case.batch, case.loop, k, "torch_cluster")
    assert len(calls) == (1 if case.pos.shape[0] else 0)


@pytest.mark.skipif(not (DATA / "xenium_lung_10k").exists(), reason="shared/data/xenium_lung_10k not present")
def test_real_xenium_transcripts_all_backends_agree():
    import pandas as pd

    frame = pd.read_parquet(DATA / "xenium_lung_10k" / "transcripts.parquet")
    pos = torch.tensor(frame[["x_location", "y_location", "z_location"]].to_numpy(), dtype=torch.float32)
    edge_index, dist = radius_graph(pos, 3.0, return_distance=True)
    for backend in BACKENDS:
        other_index, other_dist = radius_graph(pos, 3.0, backend=backend, return_distance=True)
        assert torch.equal(other_index, edge_index) and torch.equal(other_dist, dist)
    # Brute force on a subset of targets keeps the reference cheap.
    p = pos.to(torch.float64)
    targets = torch.arange(0, pos.shape[0], 37)
    d2 = torch.zeros(targets.numel(), pos.shape[0], dtype=torch.float64)
    for axis in range(3):
        diff = p[targets, None, axis] - p[None, :, axis]
        d2 = d2 + diff * diff
    d2[torch.arange(targets.numel()), targets] = math.inf
    expected = (d2 <= 9.0).sum(1)
    assert expected.sum() > 1000
    assert torch.equal(torch.bincount(edge_index[1], minlength=pos.shape[0])[targets], expected)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@SETTINGS
@given(case=cases(), k=st.one_of(st.none(), st.integers(1, 4)))
def test_cuda_matches_brute_force(case, k):
    pos = case.pos.cuda()
    batch = None if case.batch is None else case.batch.cuda()
    expected, d2 = brute_force(case.pos, case.r, case.batch, case.loop, k)
    for backend in ("auto",) + BACKENDS:
        edge_index, dist = radius_graph(
            pos, case.r, batch, loop=case.loop, max_num_neighbors=k, backend=backend, return_distance=True
        )
        assert edge_index.is_cuda and dist.is_cuda
        assert torch.equal(edge_index.cpu(), expected)
        assert torch.equal(dist.cpu(), exact_sqrt(d2, pos.dtype))


def test_backends_leave_torch_thread_setting_alone():
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        for backend in available_backends():
            radius_graph(torch.rand(500, 2, generator=torch.Generator().manual_seed(0)), 0.1, backend=backend)
            assert torch.get_num_threads() == 1, backend
    finally:
        torch.set_num_threads(before)


def test_graph_too_large_error_keeps_its_reason_through_pickling():
    # Sent back from a worker process, the error had its reason replaced by the whole
    # message, advice for Python callers included.
    import pickle

    err = pickle.loads(pickle.dumps(GraphTooLargeError("too many edges; pass max_num_neighbors", "too many edges")))
    assert (type(err), str(err), err.reason) == (GraphTooLargeError, "too many edges; pass max_num_neighbors", "too many edges")
