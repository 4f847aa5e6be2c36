"""graph.to_anndata: the molecules as an AnnData that squidpy's graph functions read."""
import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
import squidpy as sq
import torch

import stgraph as sg
from stgraph.graph import to_anndata, transcript_graph
from tests.test_cli import printed_by_a_new_process

AXES = ["x", "y", "z"]


def _float32_exact(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with coordinates that float32 holds exactly: ``obsm['spatial']`` (the
    graph's float32 ``pos``) is then the very coordinates its edges were built from."""
    frame = frame.copy()
    axes = [a for a in AXES if a in frame.columns]
    frame[axes] = frame[axes].astype(np.float32).astype(np.float64)
    return frame


@pytest.fixture(scope="module")
def merfish_window():
    """7,156 molecules of the real MERFISH sample (x < 40 µm, y < 70 µm), all 135 features."""
    frame = sg.io.transcripts_frame(sg.datasets.merfish_u2os())
    return _float32_exact(frame[(frame["x"] < 40) & (frame["y"] < 70)])


@pytest.fixture(scope="module")
def sim_3d():
    sdata = sg.datasets.simulate(n_cells=4, n_genes=6, mean_counts=40, z_thickness=3.0, seed=3)[0]
    return _float32_exact(sg.io.transcripts_frame(sdata))


@pytest.mark.parametrize(("points", "radius"), [("merfish_window", 1.0), ("sim_3d", 1.5)])
def test_obsp_equals_squidpys_radius_graph_of_the_same_coordinates(points, radius, request):
    frame = request.getfixturevalue(points)
    graph = transcript_graph(frame, radius)
    adata = to_anndata(graph)
    reference = ad.AnnData(obs=pd.DataFrame(index=adata.obs_names), obsm={"spatial": adata.obsm["spatial"]})
    sq.gr.spatial_neighbors_radius(reference, radius=radius)

    assert adata.obsm["spatial"].shape == (len(frame), 3 if points == "sim_3d" else 2)
    connectivities = adata.obsp["spatial_connectivities"]
    expected = reference.obsp["spatial_connectivities"]
    assert sp.isspmatrix_csr(connectivities) and connectivities.dtype == np.float32
    assert connectivities.nnz == expected.nnz == graph.num_edges
    assert (connectivities != expected).nnz == 0
    assert (connectivities != connectivities.T).nnz == 0  # the radius graph is symmetric

    distances = adata.obsp["spatial_distances"]
    assert sp.isspmatrix_csr(distances) and distances.dtype == np.float64
    # edge_dist is the exact length rounded once to float32: within half an ulp.
    assert abs(distances - reference.obsp["spatial_distances"]).max() <= 2.0**-24 * radius
    # squidpy drops the zero lengths of molecules called at one position; we keep them,
    # so that both matrices have the same entries.
    np.testing.assert_array_equal(distances.indices, connectivities.indices)
    np.testing.assert_array_equal(distances.indptr, connectivities.indptr)
    coincident = int((graph.edge_dist == 0).sum())
    assert coincident == (18 if points == "merfish_window" else 0)
    assert distances.nnz - reference.obsp["spatial_distances"].nnz == coincident

    assert adata.uns["spatial_neighbors"] == reference.uns["spatial_neighbors"] == {
        "connectivities_key": "spatial_connectivities",
        "distances_key": "spatial_distances",
        "params": {"coord_type": "generic", "radius": radius, "transform": None},
    }


def test_row_i_holds_the_neighbours_kept_for_node_i(merfish_window):
    graph = transcript_graph(merfish_window, 1.0, max_num_neighbors=3)
    connectivities = to_anndata(graph).obsp["spatial_connectivities"]
    source, target = graph.edge_index.numpy()
    assert connectivities[target, source].min() == 1  # edge j -> i at row i, column j
    assert connectivities.nnz == graph.num_edges
    # Each node keeps its 3 nearest neighbours, so rows have at most 3 entries, while a
    # molecule can be among the 3 nearest of more: the matrix is not symmetric.
    assert connectivities.getnnz(axis=1).max() == 3
    assert connectivities.getnnz(axis=0).max() > 3


def test_squidpy_neighbourhood_counts_are_the_gene_pairs_of_the_edges(merfish_window):
    # Six features: squidpy compiles nhood_enrichment's kernel for each number of
    # categories (about 280 s for all 135 on 2 cores).
    top = merfish_window["gene"].value_counts().index[:6]
    frame = merfish_window[merfish_window["gene"].isin(top)].copy()
    frame["gene"] = frame["gene"].cat.remove_unused_categories()
    graph = transcript_graph(frame, 1.0)
    adata = to_anndata(graph)

    source, target = graph.edge_index.numpy()
    gene = graph.gene.numpy()
    pairs = np.zeros((6, 6), np.int64)
    np.add.at(pairs, (gene[target], gene[source]), 1)
    assert pairs.sum() == graph.num_edges > 10_000

    sq.gr.nhood_enrichment(adata, cluster_key="gene", seed=0, n_perms=20, show_progress_bar=False)
    np.testing.assert_array_equal(adata.uns["gene_nhood_enrichment"]["count"], pairs)
    assert np.isfinite(adata.uns["gene_nhood_enrichment"]["zscore"]).all()
    sq.gr.interaction_matrix(adata, cluster_key="gene")
    np.testing.assert_array_equal(adata.uns["gene_interactions"], pairs)


@pytest.fixture(scope="module")
def labelled_graph():
    """Spatially ordered nodes (point_index a permutation) and ten unassigned molecules."""
    frame = sg.io.transcripts_frame(sg.datasets.simulate(n_cells=3, n_genes=5, seed=2)[0])
    frame["cell_id"] = frame["cell_id"].astype(object)
    frame.loc[frame.index[:10], "cell_id"] = np.nan
    frame["cell_id"] = frame["cell_id"].astype("category")
    return transcript_graph(frame, 2.0, order="spatial")


def test_obs_var_and_obsm_hold_the_nodes_in_node_order(labelled_graph):
    graph = labelled_graph
    adata = to_anndata(graph)
    n = graph.num_nodes
    point_index = graph.point_index.numpy()
    assert not np.array_equal(point_index, np.arange(n))

    assert sp.isspmatrix_csr(adata.X) and adata.X.dtype == np.float32
    expected_x = np.zeros((n, len(graph.gene_names)), np.float32)
    expected_x[np.arange(n), graph.gene.numpy()] = 1
    np.testing.assert_array_equal(adata.X.toarray(), expected_x)
    assert adata.X.nnz == n
    assert list(adata.var_names) == graph.gene_names == [f"gene_{i}" for i in range(5)]

    assert list(adata.obs.columns) == ["gene", "cell", "is_control", "in_nucleus", "point_index"]
    assert list(adata.obs_names) == [str(i) for i in point_index]
    assert list(adata.obs["gene"].cat.categories) == graph.gene_names
    np.testing.assert_array_equal(adata.obs["gene"].cat.codes, graph.gene.numpy())
    assert list(adata.obs["cell"].cat.categories) == graph.cell_names == ["cell_0", "cell_1", "cell_2"]
    np.testing.assert_array_equal(adata.obs["cell"].cat.codes, graph.cell.numpy())
    assert adata.obs["cell"].isna().sum() == 10
    np.testing.assert_array_equal(adata.obs["is_control"], graph.is_control.numpy())
    np.testing.assert_array_equal(adata.obs["in_nucleus"], graph.in_nucleus.numpy())
    np.testing.assert_array_equal(adata.obs["point_index"], point_index)
    assert adata.obsm["spatial"].dtype == np.float64
    np.testing.assert_array_equal(adata.obsm["spatial"], graph.pos.numpy())


def test_in_nucleus_is_left_out_where_the_graph_has_none(labelled_graph):
    graph = labelled_graph.clone()
    del graph.in_nucleus
    assert list(to_anndata(graph).obs.columns) == ["gene", "cell", "is_control", "point_index"]


def test_survives_an_h5ad_round_trip(labelled_graph, tmp_path):
    adata = to_anndata(labelled_graph)
    assert (adata.obsp["spatial_distances"].data == 0).sum() == 0  # no coincident molecules here
    adata.write_h5ad(tmp_path / "molecules.h5ad")
    back = ad.read_h5ad(tmp_path / "molecules.h5ad")
    pd.testing.assert_frame_equal(back.obs, adata.obs)
    pd.testing.assert_frame_equal(back.var, adata.var)
    assert (back.X != adata.X).nnz == 0 and back.X.dtype == np.float32
    np.testing.assert_array_equal(back.obsm["spatial"], adata.obsm["spatial"])
    for key in ("spatial_connectivities", "spatial_distances"):
        for part in ("data", "indices", "indptr"):
            np.testing.assert_array_equal(getattr(back.obsp[key], part), getattr(adata.obsp[key], part))
    assert back.uns["spatial_neighbors"] == adata.uns["spatial_neighbors"]


def test_leaves_the_graph_alone_and_shares_no_memory_with_it(labelled_graph):
    graph = labelled_graph.clone()
    before = {key: value.clone() for key, value in graph.items() if isinstance(value, torch.Tensor)}
    adata = to_anndata(graph)
    adata.X.indices[:] = 0
    adata.obsm["spatial"][:] = -1
    adata.obsp["spatial_distances"].data[:] = -1
    for column in ("is_control", "in_nucleus", "point_index"):
        adata.obs[column].to_numpy()[:] = 0
    after = {key: value for key, value in graph.items() if isinstance(value, torch.Tensor)}
    assert after.keys() == before.keys()
    for key, value in before.items():
        torch.testing.assert_close(after[key], value, rtol=0, atol=0)
    assert graph.gene_names == labelled_graph.gene_names and graph.radius == 2.0


def test_genes_without_molecules_stay_and_the_documented_remedy_lets_squidpy_score(sim_3d):
    # A crop keeps every category of the gene column: squidpy's centrality_scores then
    # divided by zero, and to_anndata's docstring says how to drop the empty genes.
    frame = sim_3d.copy()
    frame["gene"] = frame["gene"].astype("category")
    absent = frame["gene"].cat.categories[0]
    cropped = frame[frame["gene"] != absent]
    adata = to_anndata(transcript_graph(cropped, 1.5))
    assert list(adata.var_names) == list(frame["gene"].cat.categories) and adata.X[:, 0].nnz == 0
    with pytest.raises(ZeroDivisionError):
        sq.gr.centrality_scores(adata, cluster_key="gene")
    adata.obs["gene"] = adata.obs["gene"].cat.remove_unused_categories()
    sq.gr.centrality_scores(adata, cluster_key="gene")
    scores = adata.uns["gene_centrality_scores"]
    assert sorted(scores.index) == sorted(frame["gene"].cat.categories[1:])
    assert np.isfinite(scores.to_numpy()).all()


def test_to_anndata_does_not_import_the_tools():
    # It imported its graph check from stgraph.tl, a layer above stgraph.graph.
    code = "import sys, stgraph.graph._anndata\nprint('stgraph.tl' in sys.modules)\n"
    assert printed_by_a_new_process(code) == ["False"]


def test_refuses_what_is_not_a_transcript_graph(labelled_graph):
    with pytest.raises(TypeError, match=r"^graph must be a torch_geometric Data .*got dict$"):
        to_anndata({"gene": labelled_graph.gene})
    graph = labelled_graph.clone()
    del graph.edge_dist, graph.cell_names
    message = r"^graph lacks the field\(s\) \['edge_dist', 'cell_names'\]; build it with stgraph.graph.transcript_graph$"
    with pytest.raises(ValueError, match=message):
        to_anndata(graph)
    graph = labelled_graph.clone()
    graph.gene[0] = -1
    with pytest.raises(ValueError, match=r"^graph.gene must hold codes >= 0 and < 5, got codes from -1 to 4$"):
        to_anndata(graph)
    graph = labelled_graph.clone()
    graph.cell[0] = 3
    with pytest.raises(ValueError, match=r"^graph.cell must hold codes >= -1 and < 3, got codes from -1 to 3$"):
        to_anndata(graph)
