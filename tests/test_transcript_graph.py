"""transcript_graph: the radius graph of a sample's molecules, with their labels."""
import numpy as np
import pandas as pd
import pytest
import torch
from scipy.spatial import cKDTree

import stgraph as sg
from stgraph.graph import radius_graph, transcript_graph


@pytest.fixture(scope="module")
def sim():
    return sg.datasets.simulate(n_cells=4, n_genes=6, mean_counts=15, seed=7)[0]


def brute_force_edges(pos: np.ndarray, r: float) -> set[tuple[int, int]]:
    diff = pos[:, None, :].astype(np.float64) - pos[None, :, :]
    d2 = (diff**2).sum(-1)
    j, i = np.nonzero(d2 <= r * r)
    return {(a, b) for a, b in zip(j.tolist(), i.tolist()) if a != b}


def test_nodes_carry_the_points_labels(sim):
    frame = sg.io.transcripts_frame(sim)
    graph = transcript_graph(sim, 1.5)
    assert graph.gene_names == list(frame["gene"].cat.categories)
    np.testing.assert_array_equal(graph.gene.numpy(), frame["gene"].cat.codes.to_numpy())
    np.testing.assert_array_equal(graph.cell.numpy(), frame["cell_id"].cat.codes.to_numpy())
    np.testing.assert_array_equal(graph.in_nucleus.numpy(), frame["in_nucleus"].to_numpy())
    np.testing.assert_allclose(graph.pos.numpy(), frame[["x", "y"]].to_numpy(), rtol=1e-6)
    assert graph.radius == 1.5


def test_edges_equal_brute_force(sim):
    graph = transcript_graph(sim, 1.5)
    pos = sg.io.transcripts_frame(sim)[["x", "y"]].to_numpy(np.float64)
    got = set(map(tuple, graph.edge_index.t().tolist()))
    assert got == brute_force_edges(pos, 1.5)
    src, dst = graph.edge_index.numpy()
    expected_dist = np.sqrt(((pos[src] - pos[dst]) ** 2).sum(1)).astype(np.float32)
    np.testing.assert_array_equal(graph.edge_dist.numpy(), expected_dist)


def test_within_cell_keeps_exactly_the_same_cell_edges(sim):
    everything = transcript_graph(sim, 2.0)
    within = transcript_graph(sim, 2.0, within="cell")
    cell = everything.cell
    src, dst = everything.edge_index
    same = (cell[src] == cell[dst]) & (cell[src] >= 0)
    torch.testing.assert_close(within.edge_index, everything.edge_index[:, same])


def test_unassigned_molecules_get_no_edges_within_cells():
    frame = sg.io.transcripts_frame(sg.datasets.simulate(n_cells=2, n_genes=3, seed=2)[0])
    frame["cell_id"] = frame["cell_id"].astype(object)
    frame.loc[frame.index[:10], "cell_id"] = np.nan
    frame["cell_id"] = frame["cell_id"].astype("category")
    graph = transcript_graph(frame, 3.0, within="cell")
    unassigned = torch.nonzero(graph.cell < 0).flatten()
    assert len(unassigned) == 10
    assert not torch.isin(graph.edge_index, unassigned).any()


def test_max_num_neighbors_keeps_the_nearest(sim):
    full = transcript_graph(sim, 2.0)
    capped = transcript_graph(sim, 2.0, max_num_neighbors=3)
    assert torch.bincount(capped.edge_index[1]).max() <= 3
    expected = radius_graph(full.pos, 2.0, max_num_neighbors=3)
    torch.testing.assert_close(capped.edge_index, expected)


def test_real_merfish_sample_counts():
    graph = transcript_graph(sg.datasets.merfish_u2os(), 0.5)
    assert graph.num_nodes == 174_827
    assert len(graph.gene_names) == 135 and len(graph.cell_names) == 15
    assert int(graph.in_nucleus.sum()) == 174_827 - 129_639
    controls = {graph.gene_names[g] for g in graph.gene[graph.is_control].unique().tolist()}
    assert controls == {f"notarget00{i}" for i in range(1, 6)}
    assert bool((graph.edge_dist <= 0.5).all())


def test_bad_input_is_named(sim):
    with pytest.raises(ValueError, match="within"):
        transcript_graph(sim, 1.0, within="nucleus")
    with pytest.raises(ValueError, match="read_transcripts"):
        transcript_graph(sg.io.transcripts_frame(sim).drop(columns="gene"), 1.0)
    with pytest.raises(ValueError, match="cell_id"):
        transcript_graph(sg.io.transcripts_frame(sim).drop(columns="cell_id"), 1.0, within="cell")
    with pytest.raises(ValueError, match="order"):
        transcript_graph(sim, 1.0, order="morton")
    for order in ("input", "spatial"):
        with pytest.raises(ValueError, match="radius must be a positive finite number, got -1.0"):
            transcript_graph(sim, -1.0, order=order)
        # Was "r must lie ..." (input) or "cell_size=1e-200 is too small ..." (spatial).
        with pytest.raises(ValueError, match=r"^radius must lie between 2\*\*-500 \(3.05e-151\) and 2\*\*500 "):
            transcript_graph(sim, 1e-200, order=order)


def test_a_dataframe_is_checked_like_the_points(sim):
    frame = sg.io.transcripts_frame(sim)
    frame = frame.assign(gene=frame["gene"].astype(object), is_control=frame["is_control"].astype(object))
    graph = transcript_graph(frame, 1.0)
    assert graph.gene.min() == 0 and int(graph.is_control.sum()) == int(frame["is_control"].sum())
    # A missing gene would be node gene -1, an index into no vocabulary.
    broken = frame.copy()
    broken.loc[broken.index[[3, 8]], "gene"] = None
    with pytest.raises(ValueError, match="column 'gene' has 2 missing value"):
        transcript_graph(broken, 1.0)
    # Strings read as flags would all be True.
    broken = frame.assign(is_control=frame["is_control"].map({True: "True", False: "False"}))
    with pytest.raises(ValueError, match=r"column 'is_control' must hold booleans or 0/1, got string values"):
        transcript_graph(broken, 1.0)
    # Missing flags count as False, 0/1 as booleans.
    flags = frame["in_nucleus"].astype(object)
    flags.iloc[0] = None
    graph = transcript_graph(frame.assign(in_nucleus=flags, is_control=frame["is_control"].astype(int)), 1.0)
    np.testing.assert_array_equal(graph.in_nucleus.numpy()[1:], frame["in_nucleus"].to_numpy()[1:])
    assert not graph.in_nucleus[0] and int(graph.is_control.sum()) == int(frame["is_control"].sum())
    with pytest.raises(TypeError, match="coordinate column 'x' must be numeric, got dtype object"):
        transcript_graph(frame.assign(x=frame["x"].astype(str)), 1.0)


def test_spatial_order_is_the_input_graph_relabelled(sim):
    plain = transcript_graph(sim, 1.5)
    ordered = transcript_graph(sim, 1.5, order="spatial")
    perm = ordered.point_index
    assert torch.equal(plain.point_index, torch.arange(plain.num_nodes))
    assert torch.equal(torch.sort(perm).values, torch.arange(plain.num_nodes))
    for key in ("gene", "pos", "cell", "in_nucleus", "is_control"):
        assert torch.equal(ordered[key], plain[key][perm]), key
    # Same edge set and lengths once node ids are mapped back to rows.
    src, dst = perm[ordered.edge_index]
    relabelled = {(a, b): d for a, b, d in zip(src.tolist(), dst.tolist(), ordered.edge_dist.tolist())}
    original = dict(zip(map(tuple, plain.edge_index.t().tolist()), plain.edge_dist.tolist()))
    assert relabelled == original
    assert torch.all(ordered.edge_index[1][1:] >= ordered.edge_index[1][:-1])


def test_spatial_order_follows_the_z_curve():
    # A 4 x 4 grid of unit cells given in reverse row-major order: Morton visits
    # the 2 x 2 blocks (0,0) (1,0) (0,1) (1,1), each in the same Z pattern.
    xy = np.array([(x + 0.5, y + 0.5) for y in range(4) for x in range(4)])[::-1].copy()
    order = sg.graph.spatial_order(torch.tensor(xy), 1.0)
    visited = [tuple(int(v) for v in xy[i] - 0.5) for i in order.tolist()]
    assert visited[:8] == [(0, 0), (1, 0), (0, 1), (1, 1), (2, 0), (3, 0), (2, 1), (3, 1)]
    assert visited[8:12] == [(0, 2), (1, 2), (0, 3), (1, 3)]


def test_spatial_order_keeps_input_order_within_a_cell_and_handles_3d():
    pos = np.array([[0.1, 0.1, 0.1], [5.0, 5.0, 5.0], [0.2, 0.2, 0.2], [0.3, 0.1, 0.2]])
    assert sg.graph.spatial_order(pos, 1.0).tolist() == [0, 2, 3, 1]
    assert sg.graph.spatial_order(np.zeros((0, 2)), 1.0).numel() == 0
    with pytest.raises(ValueError, match="NaN"):
        sg.graph.spatial_order(np.array([[np.nan, 0.0]]), 1.0)
    with pytest.raises(ValueError, match=r"\[N, 2\] or \[N, 3\]"):
        sg.graph.spatial_order(np.zeros((3, 4)), 1.0)
    with pytest.raises(ValueError, match="too small"):
        sg.graph.spatial_order(np.array([[0.0, 0.0], [1e12, 0.0]]), 1e-3)


def test_spatial_order_bins_in_float64_whatever_the_dtype():
    # In float16, 1000 / 0.01 overflowed to inf, cast to int64 as garbage (order [0, 1, 2]);
    # numpy has no bfloat16 (TypeError); an overflow to inf in float64 went unrefused.
    pos = torch.tensor([[0.0, 0.0], [1000.0, 0.0], [0.5, 0.0]])
    for dtype in (torch.float16, torch.bfloat16, torch.float32, torch.float64):
        assert sg.graph.spatial_order(pos.to(dtype), 0.01).tolist() == [0, 2, 1]
    with pytest.raises(ValueError, match=r"^cell_size=1e-300 is too small for the extent of pos: more than 2\^31"):
        sg.graph.spatial_order(np.array([[0.0, 0.0], [1e10, 0.0]]), 1e-300)


def test_spatial_order_brings_merfish_neighbours_close():
    # The sample's file order puts graph neighbours ~38k rows apart (median);
    # spatial order brings them within a few hundred.
    sdata = sg.datasets.merfish_u2os()
    gaps = {}
    for order in ("input", "spatial"):
        graph = transcript_graph(sdata, 1.0, order=order)
        gaps[order] = float((graph.edge_index[0] - graph.edge_index[1]).abs().double().median())
    assert gaps["input"] > 10_000
    assert gaps["spatial"] < 1_000


def test_edges_are_exact_for_the_float64_coordinates_of_a_global_frame():
    # Xenium / MERSCOPE / CosMx global frames put molecules 1e4 to 1e6 µm from the
    # origin, where float32 is 0.008 µm (1e5) to 0.06 µm (1e6) coarse: a graph of the
    # float32-rounded positions missed and invented edges near the radius.
    rng = np.random.default_rng(0)
    xy = 1e5 + rng.uniform(0.0, 40.0, size=(2_000, 2))
    frame = pd.DataFrame({"x": xy[:, 0], "y": xy[:, 1], "gene": rng.choice(["a", "b"], 2_000)})
    pairs = cKDTree(xy).query_pairs(1.0, output_type="ndarray")
    expected = {(int(j), int(i)) for i, j in pairs} | {(int(i), int(j)) for i, j in pairs}
    for order in ("input", "spatial"):
        graph = transcript_graph(frame, 1.0, order=order)
        rows = graph.point_index[graph.edge_index].numpy()
        assert set(zip(rows[0].tolist(), rows[1].tolist())) == expected
        assert graph.edge_dist.dtype == graph.pos.dtype == torch.float32
        exact = np.sqrt(((xy[rows[0]] - xy[rows[1]]) ** 2).sum(1)).astype(np.float32)
        np.testing.assert_array_equal(graph.edge_dist.numpy(), exact)
    np.testing.assert_array_equal(graph.pos.numpy(), xy.astype(np.float32)[graph.point_index.numpy()])


def test_coordinates_beyond_float32_are_refused():
    frame = pd.DataFrame({"x": [0.0, 1e39, 2.0], "y": [0.0, 0.0, 0.0], "gene": ["a", "b", "a"]})
    with pytest.raises(ValueError, match=r"pos contains NaN or infinite coordinates \(first at row 1: \[inf, 0.0\]\)"):
        transcript_graph(frame, 1.0)
