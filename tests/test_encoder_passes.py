"""The encoder over a whole graph in passes of bounded size (stgraph.coloc._encode):
cell groups for within-cell graphs, Z-order blocks with a halo of one hop per layer
otherwise; every pass must give the outputs of one pass over the whole graph."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch_geometric.data import Data

import stgraph
from stgraph.coloc._encode import encoder_outputs, masked_embeddings
from stgraph.nn import TranscriptEncoder

RADIUS = 2.0


@pytest.fixture(scope="module")
def whole_sample_graph():
    """Tissue without gaps (1.5 molecules/µm², four cells in quadrants, a tenth of the
    molecules in no cell) and its whole-sample radius graph: edges cross cells."""
    rng = np.random.default_rng(0)
    n = 2400
    pos = torch.from_numpy(rng.uniform(0, 40, (n, 2))).float()
    cell = (2 * (pos[:, 0] > 20) + (pos[:, 1] > 20)).long()
    cell[torch.from_numpy(rng.random(n) < 0.1)] = -1
    edge_index, edge_dist = stgraph.graph.radius_graph(pos, RADIUS, return_distance=True)
    graph = Data(
        gene=torch.from_numpy(rng.integers(0, 12, n)), pos=pos, edge_index=edge_index, edge_dist=edge_dist,
        cell=cell, radius=RADIUS, num_nodes=n,
    )
    graph.gene_names = [f"g{k}" for k in range(12)]
    src, dst = edge_index
    assert bool((cell[src] != cell[dst]).any())
    return graph


def recording(encoder: TranscriptEncoder) -> list[int]:
    """Record the number of edges of every forward pass of ``encoder``."""
    sizes: list[int] = []
    encoder.register_forward_pre_hook(lambda module, args: sizes.append(int(args[2].shape[1])))
    return sizes


@pytest.mark.parametrize("n_layers", [1, 2, 3])
def test_halo_blocks_give_the_outputs_of_one_pass(whole_sample_graph, n_layers):
    graph = whole_sample_graph
    torch.manual_seed(n_layers)
    encoder = TranscriptEncoder(len(graph.gene_names), d_model=16, n_layers=n_layers, heads=2)
    whole = encoder_outputs(encoder, graph, attention=True, max_edges=10**9)
    sizes = recording(encoder)
    max_edges = graph.edge_index.shape[1] // 8
    blocks = encoder_outputs(encoder, graph, attention=True, max_edges=max_edges)
    assert len(sizes) >= 8 and max(sizes) <= max_edges
    np.testing.assert_allclose(blocks.embedding, whole.embedding, atol=2e-6)
    np.testing.assert_allclose(blocks.attention, whole.attention, atol=1e-7)


def test_a_halo_one_hop_short_changes_the_outputs(whole_sample_graph, monkeypatch):
    """The halo is what makes the blocks exact: with one hop fewer than the layers,
    the outputs near the blocks' borders differ."""
    import stgraph.coloc._encode as encode

    graph = whole_sample_graph
    torch.manual_seed(2)
    encoder = TranscriptEncoder(len(graph.gene_names), d_model=16, n_layers=2, heads=2)
    whole = encoder_outputs(encoder, graph, max_edges=10**9).embedding
    halo_batches = encode._halo_batches
    monkeypatch.setattr(encode, "_halo_batches", lambda g, d, m, n_layers: halo_batches(g, d, m, n_layers - 1))
    short = encoder_outputs(encoder, graph, max_edges=graph.edge_index.shape[1] // 8).embedding
    assert np.abs(short - whole).max() > 1e-3


def test_masked_embeddings_in_blocks(whole_sample_graph):
    graph = whole_sample_graph
    torch.manual_seed(0)
    encoder = TranscriptEncoder(len(graph.gene_names), d_model=16, n_layers=2, heads=2)
    whole = masked_embeddings(encoder, graph, n_passes=3, max_edges=10**9)
    sizes = recording(encoder)
    max_edges = graph.edge_index.shape[1] // 5
    blocks = masked_embeddings(encoder, graph, n_passes=3, max_edges=max_edges)
    assert len(sizes) >= 3 * 5 and max(sizes) <= max_edges
    np.testing.assert_allclose(blocks, whole, atol=2e-6)


def test_a_transcript_whose_halo_exceeds_the_budget_gets_a_pass_of_its_own():
    # A star: node 0 receives an edge from each of 1..20; the rest point at nothing.
    n = 21
    edge_index = torch.stack([torch.arange(1, n), torch.zeros(n - 1, dtype=torch.long)])
    pos = torch.cat([torch.zeros(1, 2), torch.rand(n - 1, 2, generator=torch.Generator().manual_seed(0))])
    graph = Data(gene=torch.arange(n) % 3, pos=pos, edge_index=edge_index, num_nodes=n)
    torch.manual_seed(0)
    encoder = TranscriptEncoder(3, d_model=8, n_layers=2, heads=2)
    whole = encoder_outputs(encoder, graph, attention=True, max_edges=10**9)
    sizes = recording(encoder)
    blocks = encoder_outputs(encoder, graph, attention=True, max_edges=5)
    assert max(sizes) == n - 1  # node 0 with its 20 incoming edges, more than 5
    assert sizes.count(0) == len(sizes) - 1  # every other node alone, with no edge into it
    np.testing.assert_allclose(blocks.embedding, whole.embedding, atol=2e-6)
    np.testing.assert_allclose(blocks.attention, whole.attention, atol=1e-7)


def test_within_cell_graphs_still_go_by_cell_groups():
    sdata, _ = stgraph.datasets.simulate(6, 12, colocalized_pairs=2, seed=0)
    graph = stgraph.graph.transcript_graph(sdata, RADIUS, within="cell")
    torch.manual_seed(0)
    encoder = TranscriptEncoder(len(graph.gene_names), d_model=16, n_layers=2, heads=2)
    sizes = recording(encoder)
    encoder_outputs(encoder, graph, max_edges=2000)
    per_cell = np.bincount(graph.cell[graph.edge_index[1]].numpy())
    # Whole cells, no halo: the passes hold every edge exactly once.
    assert sum(sizes) == graph.edge_index.shape[1] == per_cell.sum()
    assert max(sizes) <= max(2000, per_cell.max())
