"""The tools on 3D samples (a ``z`` column, as in Xenium, CosMx and MERFISH z-stacks)."""
from __future__ import annotations

import re
import warnings

import numpy as np
import pandas as pd
import pytest
import torch
from scipy.spatial import cKDTree
from sklearn.metrics import adjusted_rand_score

import stgraph as sg
from stgraph.datasets import simulate
from stgraph.graph import transcript_graph


@pytest.fixture(scope="module")
def sample_3d():
    """60 cells 4 µm thick, three planted pairs and two domain types."""
    return simulate(60, 20, colocalized_pairs=3, n_domains=2, z_thickness=4.0, seed=3)


def _frame(sdata) -> pd.DataFrame:
    return sdata.points["transcripts"].compute()


def test_the_graph_is_the_3d_radius_graph():
    sdata, _ = simulate(10, 10, z_thickness=6.0, seed=1)
    xyz = _frame(sdata)[["x", "y", "z"]].to_numpy()
    graph = transcript_graph(sdata, 1.5)
    assert graph.pos.shape == (len(xyz), 3)
    expected = cKDTree(xyz).query_pairs(1.5, output_type="ndarray")
    expected = np.unique(np.vstack([expected, expected[:, ::-1]]), axis=0)
    found = np.unique(graph.edge_index.numpy().T[:, ::-1], axis=0)  # (source, target) rows
    np.testing.assert_array_equal(found, expected)
    planar = cKDTree(xyz[:, :2]).query_pairs(1.5, output_type="ndarray")
    assert len(planar) > 2 * (len(expected) // 2)  # z separates molecules the plane would join


def test_localization_is_computed_in_the_plane():
    # Same seed, same (x, y); the 3D sample only adds z: patterns and p_nuclear are equal.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        flat, _ = simulate(20, 10, seed=4)
        thick, _ = simulate(20, 10, z_thickness=5.0, seed=4)
        sg.tl.localization(flat)
        sg.tl.localization(thick)
    pd.testing.assert_frame_equal(flat.tables["table"].uns["lpp"], thick.tables["table"].uns["lpp"])
    np.testing.assert_array_equal(_frame(flat)["p_nuclear"], _frame(thick)["p_nuclear"])


def test_colocalization_ranks_the_planted_pairs_first_in_3d(sample_3d):
    sdata, truth = sample_3d
    sg.tl.colocalization(sdata, radius=1.5)
    table = sdata.tables["table"].uns["colocalization"]
    table = table[table.gene_a != table.gene_b].sort_values("score", ascending=False).reset_index(drop=True)
    top = table.head(8)
    for a, b in zip(truth.pairs.gene_a, truth.pairs.gene_b):
        for first, second in ((a, b), (b, a)):
            hit = top[(top.gene_a == first) & (top.gene_b == second)]
            assert len(hit) == 1, f"planted pair {first}-{second} not among the 8 best-scored pairs"
            assert float(hit.fdr.iloc[0]) < 1e-10
    # The other two of the eight are genes of one domain type, colocalized by design.
    others = top[~top.gene_a.isin(truth.pairs.gene_a.tolist() + truth.pairs.gene_b.tolist())]
    domain_genes = set().union(*map(set, truth.domain_genes.values()))
    assert set(others.gene_a) | set(others.gene_b) <= domain_genes


def test_domains_are_recovered_in_3d(sample_3d):
    sdata, truth = sample_3d
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sg.tl.domains(sdata, radius=3.0, n_domains=3)
    labels = _frame(sdata)["domain"].astype(str)
    assert adjusted_rand_score(truth.transcript_domain, labels) > 0.85


def test_a_model_of_another_dimension_names_the_mismatch():
    # Said only "pos must have shape [N, 3], got (N, 2)" from inside tl.domains.
    sdata, _ = simulate(6, 8, z_thickness=4.0, seed=2)
    result = sg.tl.pretrain(sdata, radius=1.5, d_model=12, n_layers=1, heads=2, steps=2, batch_size=2, progress=False)
    flat, _ = simulate(6, 8, seed=2)
    n = len(_frame(flat))
    message = (f"pos must have shape [{n}, 3], got ({n}, 2): the encoder encodes 3D positions (x, y, z) and these "
               "transcripts have 2D ones (x, y); use a model pretrained on 2D data")
    # The other radius is warned of too (the model's is 1.5 µm), before the refusal.
    with pytest.warns(UserWarning, match=re.escape("pretrained on a graph of radius 1.5 µm, but the graph has radius 3 µm")), \
            pytest.raises(ValueError, match="^" + re.escape(message) + "$"):
        sg.tl.domains(flat, radius=3.0, n_domains=2, model=result)


def test_equal_z_values_give_the_planar_graph_and_results():
    flat, _ = simulate(12, 10, colocalized_pairs=2, seed=5)
    frame = _frame(flat)
    level = sg.io.read_transcripts(frame.assign(z=7.3), x="x", y="y", z="z", gene="gene", cell="cell_id",
                                   nucleus="nucleus_id", in_nucleus="in_nucleus")
    planar, stacked = transcript_graph(flat, 1.5), transcript_graph(level, 1.5)
    assert stacked.pos.shape[1] == 3
    assert torch.equal(planar.edge_index, stacked.edge_index) and torch.equal(planar.edge_dist, stacked.edge_dist)
    for sdata in (flat, level):
        sg.tl.colocalization(sdata, radius=1.5)
    columns = ["score", "clq", "pval", "fdr"]
    tables = [sdata.tables["table"].uns["colocalization"] for sdata in (flat, level)]
    np.testing.assert_array_equal(tables[0][columns].to_numpy(), tables[1][columns].to_numpy())
