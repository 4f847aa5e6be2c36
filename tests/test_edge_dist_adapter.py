"""EdgeDistAdapter: PyG layers in the encoder's call layer(x, edge_index, edge_dist)."""
import re

import pytest
import torch
from torch_geometric.nn import GATConv, GCNConv, GeneralConv, TransformerConv

from stgraph.nn import EdgeDistAdapter, TranscriptEncoder

EDGE_INDEX = torch.tensor([[0, 1, 2, 3, 4], [1, 2, 3, 4, 5]])
EDGE_DIST = torch.tensor([0.5, 1.0, 1.5, 2.0, 2.5])


def test_adapter_leaves_the_lengths_out_by_default():
    torch.manual_seed(0)
    conv = TransformerConv(8, 4, heads=2)
    x = torch.randn(6, 8)
    assert torch.equal(EdgeDistAdapter(conv)(x, EDGE_INDEX, EDGE_DIST), conv(x, EDGE_INDEX))


def test_adapter_passes_lengths_as_an_edge_attr_column_or_as_edge_weights():
    torch.manual_seed(0)
    x = torch.randn(6, 8)
    transformer = TransformerConv(8, 4, heads=2, edge_dim=1)
    adapted = EdgeDistAdapter(transformer, edge_dist_arg="edge_attr")
    assert torch.equal(adapted(x, EDGE_INDEX, EDGE_DIST), transformer(x, EDGE_INDEX, edge_attr=EDGE_DIST[:, None]))
    gcn = GCNConv(8, 8)
    adapted = EdgeDistAdapter(gcn, edge_dist_arg="edge_weight")
    assert torch.equal(adapted(x, EDGE_INDEX, EDGE_DIST[:, None]), gcn(x, EDGE_INDEX, edge_weight=EDGE_DIST))


def test_adapter_returns_the_attention_weights_of_the_layer():
    torch.manual_seed(0)
    conv = GATConv(8, 4, heads=2, add_self_loops=False)
    x = torch.randn(6, 8)
    out, (edge_index, alpha) = EdgeDistAdapter(conv)(x, EDGE_INDEX, EDGE_DIST, return_attention_weights=True)
    assert torch.equal(out, conv(x, EDGE_INDEX)) and torch.equal(edge_index, EDGE_INDEX)
    assert alpha.shape == (5, 2)
    with pytest.raises(ValueError, match=r"^GCNConv.forward has no return_attention_weights argument, "
                                         r"so it cannot return attention weights$"):
        EdgeDistAdapter(GCNConv(8, 8))(x, EDGE_INDEX, EDGE_DIST, return_attention_weights=True)


def test_adapter_checks_its_arguments():
    with pytest.raises(TypeError, match=r"^conv must be a torch_geometric MessagePassing layer, got Linear$"):
        EdgeDistAdapter(torch.nn.Linear(8, 8))
    with pytest.raises(ValueError, match=r"^GCNConv.forward has no argument 'edge_attr'; it takes "
                                         r"\['x', 'edge_index', 'edge_weight'\]$"):
        EdgeDistAdapter(GCNConv(8, 8), edge_dist_arg="edge_attr")


@pytest.mark.parametrize("edge_dim", [None, 3])
@pytest.mark.parametrize("layer", [GATConv, TransformerConv])
def test_adapter_refuses_an_edge_attr_layer_not_built_for_one_edge_feature(layer, edge_dim):
    # With edge_dim=None GATConv dropped the lengths silently (the same output for
    # lengths x10) and TransformerConv failed on a tensor size; edge_dim=3 on a matmul.
    conv = layer(8, 4, heads=2, edge_dim=edge_dim)
    message = (f"{layer.__name__} was built with edge_dim={edge_dim}, but the edge lengths come as "
               "one edge feature: build it with edge_dim=1")
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        EdgeDistAdapter(conv, edge_dist_arg="edge_attr")
    if edge_dim is None:  # left out, the lengths need no edge feature
        assert EdgeDistAdapter(conv)(torch.randn(6, 8), EDGE_INDEX, EDGE_DIST).shape == (6, 8)


def test_adapter_checks_the_edge_width_generalconv_records():
    # GeneralConv records its edge width as in_edge_channels; with None it failed in PyG
    # with an AttributeError ('GeneralConv' object has no attribute 'lin_edge').
    message = ("GeneralConv was built with in_edge_channels=None, but the edge lengths come as one "
               "edge feature: build it with in_edge_channels=1")
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        EdgeDistAdapter(GeneralConv(8, 8), edge_dist_arg="edge_attr")
    torch.manual_seed(0)
    x = torch.randn(6, 8)
    adapted = EdgeDistAdapter(GeneralConv(8, 8, in_edge_channels=1), edge_dist_arg="edge_attr")
    assert not torch.allclose(adapted(x, EDGE_INDEX, EDGE_DIST), adapted(x, EDGE_INDEX, 10 * EDGE_DIST))


def test_adapter_gives_the_lengths_to_gatconv_as_an_edge_feature():
    torch.manual_seed(0)
    x = torch.randn(6, 8)
    adapted = EdgeDistAdapter(GATConv(8, 4, heads=2, edge_dim=1), edge_dist_arg="edge_attr")
    assert not torch.allclose(adapted(x, EDGE_INDEX, EDGE_DIST), adapted(x, EDGE_INDEX, 10 * EDGE_DIST))


def test_adapter_resets_the_layer_and_describes_it():
    torch.manual_seed(0)
    adapter = EdgeDistAdapter(GCNConv(8, 8), edge_dist_arg="edge_weight")
    with torch.no_grad():
        adapter.conv.lin.weight.fill_(1.0)
    adapter.reset_parameters()
    assert not torch.all(adapter.conv.lin.weight == 1.0)
    assert repr(adapter) == "EdgeDistAdapter(GCNConv(8, 8), edge_dist_arg='edge_weight')"
    assert sorted(adapter.state_dict()) == sorted(f"conv.{k}" for k in GCNConv(8, 8).state_dict())


def gat_layer(d_model: int, heads: int) -> EdgeDistAdapter:
    return EdgeDistAdapter(GATConv(d_model, d_model // heads, heads=heads, edge_dim=1), edge_dist_arg="edge_attr")


def test_encoder_runs_a_pyg_layer_through_the_adapter():
    torch.manual_seed(0)
    gene, pos = torch.tensor([0, 1, 2, 0, 1, 2]), torch.rand(6, 2) * 5
    model = TranscriptEncoder(3, 8, n_layers=2, heads=2, conv=gat_layer)
    out, attention = model(gene, pos, EDGE_INDEX, return_attention_weights=True)
    assert out.shape == (6, 8) and len(attention) == 2
    # GATConv adds a self-loop per node to the five edges.
    assert [alpha.shape for _, alpha in attention] == [(11, 2), (11, 2)]
    assert model.config["conv"] == "tests.test_edge_dist_adapter:gat_layer"
