"""Positional encoding, transcript encoder, MGM head, masking and tile batching."""
from __future__ import annotations

import fractions
import functools
import math
import re

import numpy as np
import pytest
import torch
from torch_geometric.data import Batch, Data
from torch_geometric.nn import GCNConv, MessagePassing, SAGEConv, TransformerConv

from stgraph.data.batching import IncomingEdges, cell_units, collate_units, node_origin, tile_units
from stgraph.graph import radius_graph
from stgraph.models.checkpoint import load_model, save_checkpoint
from stgraph.models.masking import mask_tokens, masked_gene_loss
from stgraph.models.mgm import MaskedGeneModel
from stgraph.nn import (
    MaskedGeneHead,
    SinusoidalPositionalEncoding,
    TranscriptEncoder,
    TranscriptEncoderLayer,
    sinusoidal_position_encoding,
    transcript_origin,
)
from stgraph.nn.conv import EdgeDistAdapter, SpatialTransformerConv


def synthetic_graph(n: int = 300, n_genes: int = 12, n_cells: int = 3, radius: float = 1.0, seed: int = 0) -> Data:
    """Transcripts in ``n_cells`` blobs of a 20 µm field; every tenth unassigned."""
    rng = np.random.default_rng(seed)
    centres = rng.uniform(4, 16, size=(n_cells, 2))
    cell = rng.integers(0, n_cells, n)
    pos = centres[cell] + rng.normal(0, 2.0, size=(n, 2))
    cell[::10] = -1
    pos_t = torch.tensor(pos, dtype=torch.float32)
    edge_index, edge_dist = radius_graph(pos_t, radius, return_distance=True)
    gene = torch.tensor(rng.integers(0, n_genes, n))
    return Data(
        gene=gene,
        pos=pos_t,
        edge_index=edge_index,
        edge_dist=edge_dist,
        cell=torch.tensor(cell),
        is_control=gene == n_genes - 1,
        gene_names=[f"g{k}" for k in range(n_genes - 1)] + ["blank1"],
        cell_names=[f"c{k}" for k in range(n_cells)],
        radius=radius,
        num_nodes=n,
    )


class DistanceWeightedMean(MessagePassing):
    r"""A user-written layer: :math:`x'_i = W \sum_j w_{ij} x_j / \sum_j w_{ij}`,
    :math:`w_{ij} = e^{-d_{ij}}` (no attention weights to return)."""

    def __init__(self, d_model: int, heads: int) -> None:
        super().__init__(aggr="add")
        self.lin = torch.nn.Linear(d_model, d_model)

    def reset_parameters(self) -> None:
        self.lin.reset_parameters()

    def forward(self, x, edge_index, edge_dist):
        weight = torch.exp(-edge_dist)
        total = torch.zeros(x.size(0), dtype=x.dtype).index_add_(0, edge_index[1], weight).clamp_min(1e-12)
        return self.lin(self.propagate(edge_index, x=x, weight=weight / total[edge_index[1]]))

    def message(self, x_j, weight):
        return weight[:, None] * x_j


class WrongWidth(DistanceWeightedMean):
    def forward(self, x, edge_index, edge_dist):
        return super().forward(x, edge_index, edge_dist)[:, :-1]


def encoder(graph: Data, seed: int = 0, **kwargs) -> TranscriptEncoder:
    torch.manual_seed(seed)
    kwargs = {"d_model": 16, "n_layers": 2, "heads": 2, **kwargs}
    return TranscriptEncoder(len(graph.gene_names), **kwargs).eval()


# --- positional encoding -------------------------------------------------------------


def test_positional_encoding_matches_formula_2d():
    rel = torch.tensor([[0.3, -1.2]], dtype=torch.float64)
    pe = sinusoidal_position_encoding(rel, 8, scale=0.1, base=10000.0)
    # d_axis = 4: frequencies 1/0.1 * 10000^(-0/4) = 10 and 10 * 10000^(-2/4) = 0.1.
    x, y = 3.0, -12.0
    expected = [
        math.sin(x), math.sin(x * 0.01), math.cos(x), math.cos(x * 0.01),
        math.sin(y), math.sin(y * 0.01), math.cos(y), math.cos(y * 0.01),
    ]
    assert pe.dtype == torch.float64
    assert torch.allclose(pe[0], torch.tensor(expected, dtype=torch.float64), atol=1e-12, rtol=0)


def test_positional_encoding_3d_layout_and_float32():
    rel = torch.tensor([[0.0, 1.0, 2.0]])
    pe = SinusoidalPositionalEncoding(12, n_dims=3, scale=1.0)(rel)
    assert pe.shape == (1, 12) and pe.dtype == torch.float32
    for axis, value in enumerate((0.0, 1.0, 2.0)):
        block = pe[0, 4 * axis : 4 * axis + 4]
        expected = [math.sin(value), math.sin(value / 100), math.cos(value), math.cos(value / 100)]
        assert torch.allclose(block, torch.tensor(expected), atol=1e-6)


@pytest.mark.parametrize("d_model, n_dims", [(10, 2), (8, 3), (64, 3), (6, 2)])
def test_positional_encoding_zero_pads_widths_not_divisible(d_model, n_dims):
    rel = torch.tensor([[0.5, -1.0, 2.0][:n_dims], [3.0, 0.25, -0.75][:n_dims]], dtype=torch.float64)
    used = 2 * n_dims * (d_model // (2 * n_dims))
    pe = SinusoidalPositionalEncoding(d_model, n_dims, scale=1.0)(rel)
    assert pe.shape == (2, d_model)
    assert torch.equal(pe[:, :used], SinusoidalPositionalEncoding(used, n_dims, scale=1.0)(rel))
    assert torch.equal(pe[:, used:], torch.zeros(2, d_model - used, dtype=torch.float64))


@pytest.mark.parametrize("d_model, n_dims", [(3, 2), (5, 3), (0, 2)])
def test_positional_encoding_rejects_too_narrow_widths(d_model, n_dims):
    with pytest.raises(ValueError, match="at least 2 \\* n_dims"):
        SinusoidalPositionalEncoding(d_model, n_dims)


def test_positional_encoding_rejects_bad_dims_and_scale():
    with pytest.raises(ValueError, match="2 or 3 dimensions"):
        sinusoidal_position_encoding(torch.zeros(3, 1), 8)
    with pytest.raises(ValueError, match=r"^scale must be a positive finite number, got 0.0$"):
        sinusoidal_position_encoding(torch.zeros(3, 2), 8, scale=0.0)
    with pytest.raises(ValueError, match=r"shape \[N, 2\]"):
        SinusoidalPositionalEncoding(8, 2)(torch.zeros(3, 3))


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [({"scale": "0.1"}, TypeError, "scale must be a real number, got str"),
     # An infinite scale encoded every position as the same constant.
     ({"scale": math.inf}, ValueError, "scale must be a positive finite number, got inf"),
     ({"base": 1.0}, ValueError, "base must be > 1, got 1.0"),
     ({"base": math.nan}, ValueError, "base must be a positive finite number, got nan")],
)
def test_positional_encoding_checks_scale_and_base_when_built(kwargs, error, message):
    # The module and the encoder took any scale and base and failed at the first call, if at all.
    with pytest.raises(error, match=f"^{re.escape(message)}$"):
        SinusoidalPositionalEncoding(8, 2, **kwargs)
    with pytest.raises(error, match=f"^pe_{re.escape(message)}$"):
        TranscriptEncoder(4, 8, pe_scale=kwargs.get("scale", 0.1), pe_base=kwargs.get("base", 10000.0))
    with pytest.raises(error, match=f"^{re.escape(message)}$"):
        sinusoidal_position_encoding(torch.zeros(3, 2), 8, **kwargs)


def test_positional_encoding_width_must_be_an_integer():
    # A float width passed the check and failed in torch's reshape, or only at the first call.
    with pytest.raises(TypeError, match=r"^d_model must be an integer, got 8.0$"):
        sinusoidal_position_encoding(torch.zeros(3, 2), 8.0)
    with pytest.raises(TypeError, match=r"^d_model must be an integer, got 8.0$"):
        SinusoidalPositionalEncoding(8.0)


def test_origin_is_cell_centroid_then_graph_centroid_or_tile_centre():
    pos = torch.tensor([[0.0, 0.0], [2.0, 4.0], [10.0, 10.0], [3.0, 7.0], [5.0, 1.0]])
    cell = torch.tensor([0, 0, 1, -1, -1])
    origin = transcript_origin(pos, cell)
    expected = torch.tensor([[1.0, 2.0], [1.0, 2.0], [10.0, 10.0], [4.0, 4.0], [4.0, 4.0]], dtype=torch.float64)
    assert torch.equal(origin, expected)
    tiled = transcript_origin(pos, cell, tile_size=5.0)
    assert torch.equal(tiled[3:], torch.tensor([[2.5, 7.5], [7.5, 2.5]], dtype=torch.float64))
    assert torch.equal(tiled[:3], expected[:3])
    per_graph = transcript_origin(pos, cell, batch=torch.tensor([0, 0, 0, 0, 1]))
    assert torch.equal(per_graph[3:], torch.tensor([[3.0, 7.0], [5.0, 1.0]], dtype=torch.float64))
    for tile_size, error, wanted in ((0.0, ValueError, "a positive finite number, got 0.0"),
                                     (float("nan"), ValueError, "a positive finite number, got nan"),
                                     ("5", TypeError, "a real number, got str")):
        with pytest.raises(error, match=f"^tile_size must be {wanted}$"):
            transcript_origin(pos, cell, tile_size=tile_size)


def test_positional_functions_refuse_what_is_no_tensor_by_name():
    # NumPy input failed deep inside: "'int' object is not callable" (pos.size(0) of an
    # array) and "'numpy.ndarray' object has no attribute 'dim'".
    pos = torch.tensor([[0.0, 0.0], [2.0, 4.0], [10.0, 10.0]])
    cell = torch.tensor([0, 0, 1])
    with pytest.raises(TypeError, match="^pos must be a tensor, got ndarray$"):
        transcript_origin(pos.numpy(), cell)
    with pytest.raises(TypeError, match="^cell must be a tensor, got list$"):
        transcript_origin(pos, [0, 0, 1])
    with pytest.raises(ValueError, match=r"^pos must be \[N, n_dims\], got shape \(3,\)$"):
        transcript_origin(pos[:, 0], cell)
    # Float ids were cast to integers: cells 0.5 and 0 shared one centroid.
    with pytest.raises(TypeError, match="^cell must hold integer ids, got torch.float32$"):
        transcript_origin(pos, torch.tensor([0.0, 0.5, 1.0]))
    with pytest.raises(TypeError, match="^rel_pos must be a tensor, got ndarray$"):
        sinusoidal_position_encoding(pos.numpy(), 8)


# --- encoder -----------------------------------------------------------------------------


def test_encoder_output_shape_and_permutation_equivariance():
    graph = synthetic_graph()
    model = encoder(graph)
    out = model(graph)
    assert out.shape == (graph.num_nodes, 16)
    assert torch.isfinite(out).all()

    perm = torch.randperm(graph.num_nodes, generator=torch.Generator().manual_seed(1))
    inverse = torch.empty_like(perm)
    inverse[perm] = torch.arange(len(perm))
    permuted = Data(
        gene=graph.gene[perm],
        pos=graph.pos[perm],
        edge_index=inverse[graph.edge_index],
        edge_dist=graph.edge_dist,
        cell=graph.cell[perm],
        num_nodes=graph.num_nodes,
    )
    assert torch.allclose(model(permuted), out[perm], atol=1e-5)


def test_encoder_is_translation_invariant_with_cell_origins():
    graph = synthetic_graph()
    graph.cell = graph.cell.clamp_min(0)  # every transcript in a cell: origins move with the data
    model = encoder(graph)
    shifted = graph.clone()
    shifted.pos = graph.pos + torch.tensor([25.0, -40.0])
    assert torch.allclose(model(shifted), model(graph), atol=1e-4)


def test_graphs_of_a_batch_may_reuse_cell_ids():
    # The cells of all graphs were grouped by id alone: cell 0 of one graph and cell 0
    # of another shared one centroid.
    pos = torch.tensor([[0.0, 0.0], [2.0, 0.0], [10.0, 10.0], [12.0, 10.0], [5.0, 5.0]])
    cell = torch.tensor([0, 0, 0, 0, -1])
    origin = transcript_origin(pos, cell, batch=torch.tensor([0, 0, 1, 1, 1]))
    expected = torch.tensor([[1.0, 0.0], [1.0, 0.0], [11.0, 10.0], [11.0, 10.0], [5.0, 5.0]], dtype=torch.float64)
    assert torch.equal(origin, expected)
    with pytest.raises(ValueError, match=r"^batch must have shape \[5\], got \(4,\)$"):
        transcript_origin(pos, cell, batch=torch.zeros(4, dtype=torch.long))

    graph = synthetic_graph()
    first = Data(gene=graph.gene, pos=graph.pos, edge_index=graph.edge_index, cell=graph.cell,
                 num_nodes=graph.num_nodes)
    second = first.clone()
    second.pos = graph.pos + torch.tensor([30.0, 5.0])
    second.gene = graph.gene.flip(0)
    model = encoder(graph)
    out = model(Batch.from_data_list([first, second]))
    assert torch.allclose(out[: graph.num_nodes], model(first), atol=1e-5)
    assert torch.allclose(out[graph.num_nodes :], model(second), atol=1e-5)


def test_encoder_tensor_call_matches_data_call_and_computes_distances():
    graph = synthetic_graph()
    model = encoder(graph)
    origin = transcript_origin(graph.pos, graph.cell)
    from_data = model(graph)
    assert torch.equal(model(graph.gene, graph.pos, graph.edge_index, graph.edge_dist, origin), from_data)
    assert torch.allclose(model(graph.gene, graph.pos, graph.edge_index, None, origin), from_data, atol=1e-6)


def test_encoder_attention_weights_per_layer():
    graph = synthetic_graph()
    model = encoder(graph, n_layers=3)
    out, attention = model(graph, return_attention_weights=True)
    assert torch.equal(out, model(graph))
    assert len(attention) == 3
    for edge_index, alpha in attention:
        assert torch.equal(edge_index, graph.edge_index)
        assert alpha.shape == (graph.num_edges, 2)
        sums = torch.zeros(graph.num_nodes, 2).index_add_(0, edge_index[1], alpha)
        has_edges = torch.bincount(edge_index[1], minlength=graph.num_nodes) > 0
        assert torch.allclose(sums[has_edges], torch.ones(int(has_edges.sum()), 2), atol=1e-5)


def test_encoder_return_attention_weights_must_be_a_bool():
    # return_attention_weights="False" is a true string: it returned the weights.
    graph = synthetic_graph()
    model = encoder(graph, n_layers=1)
    message = r"^return_attention_weights must be a bool \(True or False\), got 'False'$"
    with pytest.raises(TypeError, match=message):
        model(graph, return_attention_weights="False")
    with pytest.raises(TypeError, match=message):
        model.layers[0](torch.zeros(graph.num_nodes, 16), graph.edge_index, graph.edge_dist, return_attention_weights="False")
    assert torch.equal(model(graph, return_attention_weights=np.False_), model(graph))


def test_encoder_accepts_a_custom_layer():
    graph = synthetic_graph()
    model = encoder(graph, conv=DistanceWeightedMean).train()
    assert all(isinstance(layer.conv, DistanceWeightedMean) for layer in model.layers)
    out = model(graph)
    assert out.shape == (graph.num_nodes, 16)
    out.pow(2).sum().backward()
    assert all(layer.conv.lin.weight.grad.abs().sum() > 0 for layer in model.layers)
    with pytest.raises(ValueError, match="no return_attention_weights"):
        model(graph, return_attention_weights=True)
    assert model.config["conv"] == "tests.test_encoder:DistanceWeightedMean"


class WithoutLengths(DistanceWeightedMean):
    def forward(self, x, edge_index):
        return super().forward(x, edge_index, torch.zeros(edge_index.size(1)))


class TakesAnything(DistanceWeightedMean):
    def forward(self, *args):
        return super().forward(*args)


@pytest.mark.parametrize(
    ("factory", "parameters"),
    [(WithoutLengths, "['x', 'edge_index']"),
     # PyG layers read a third argument as edge weights, a size or edge features:
     # GCNConv weighted messages by distance, SAGEConv failed on the lengths as a size.
     (lambda d, h: GCNConv(d, d), "['x', 'edge_index', 'edge_weight']"),
     (lambda d, h: SAGEConv(d, d), "['x', 'edge_index', 'size']"),
     (lambda d, h: TransformerConv(d, d // h, heads=h), "['x', 'edge_index', 'edge_attr', 'return_attention_weights']")],
)
def test_encoder_refuses_a_layer_that_does_not_take_edge_dist_third(factory, parameters):
    graph = synthetic_graph()
    message = (
        f"{type(factory(16, 2)).__name__}.forward takes {parameters}, not the edge lengths third as "
        "edge_dist: the encoder calls layer(x, edge_index, edge_dist). Wrap the layer in "
        "stgraph.nn.EdgeDistAdapter (edge_dist_arg names the argument that gets the lengths, if any)"
    )
    with pytest.raises(TypeError, match=f"^{re.escape(message)}$"):
        encoder(graph, conv=factory)


def test_encoder_embeds_an_empty_graph_given_as_tensors():
    # The default origin, the mean of no positions, was NaN and refused.
    graph = synthetic_graph()
    model = encoder(graph)
    out = model(torch.empty(0, dtype=torch.long), torch.empty(0, 2), torch.empty(2, 0, dtype=torch.long))
    assert out.shape == (0, 16)


def test_encoder_takes_a_variadic_layer():
    graph = synthetic_graph()
    torch.manual_seed(0)
    assert encoder(graph, conv=TakesAnything)(graph).shape == (graph.num_nodes, 16)


def test_encoder_rejects_bad_inputs():
    graph = synthetic_graph()
    model = encoder(graph)
    n = graph.num_nodes
    with pytest.raises(ValueError, match="gene tokens must lie in"):
        model(graph.gene + 20, graph.pos, graph.edge_index)
    with pytest.raises(TypeError, match="1-D LongTensor"):
        model(graph.gene.float(), graph.pos, graph.edge_index)
    with pytest.raises(ValueError, match="pos must have shape"):
        model(graph.gene, graph.pos[:, :1], graph.edge_index)
    with pytest.raises(ValueError, match="edge_index refers to nodes"):
        model(graph.gene, graph.pos, graph.edge_index + n)
    with pytest.raises(ValueError, match="edge_dist must have shape"):
        model(graph.gene, graph.pos, graph.edge_index, graph.edge_dist[:-1])
    with pytest.raises(ValueError, match="origin must have shape"):
        model(graph.gene, graph.pos, graph.edge_index, origin=torch.zeros(3))
    # A non-finite coordinate would make every embedding NaN, also with the distances given.
    broken = graph.pos.clone()
    broken[4, 1] = float("nan")
    with pytest.raises(ValueError, match=r"pos contains NaN or infinite coordinates \(first at row 4: "):
        model(graph.gene, broken, graph.edge_index, graph.edge_dist)
    for dtype in (torch.float32, torch.int32):
        with pytest.raises(TypeError, match=rf"edge_index must be int64 \(torch.long\), got {dtype}"):
            model(graph.gene, graph.pos, graph.edge_index.to(dtype))
    with pytest.raises(ValueError, match="origin contains NaN or infinite coordinates"):
        model(graph.gene, graph.pos, graph.edge_index, origin=torch.tensor([0.0, float("inf")]))
    with pytest.raises(ValueError, match="pos and edge_index are required"):
        model(graph.gene)
    with pytest.raises(TypeError, match="expected a torch_geometric Data"):
        model(graph.gene.numpy())
    # A graph without pos failed in the origin: "'NoneType' object has no attribute 'size'".
    no_pos = Data(gene=graph.gene, edge_index=graph.edge_index, cell=graph.cell)
    message = r"^data lacks the field\(s\) \['pos'\]; build it with stgraph.graph.transcript_graph$"
    with pytest.raises(ValueError, match=message):
        model(no_pos)
    with pytest.raises(ValueError, match="returned shape"):
        encoder(graph, conv=WrongWidth)(graph)
    with pytest.raises(TypeError, match="MessagePassing"):
        encoder(graph, conv=lambda d, h: torch.nn.Linear(d, d))
    with pytest.raises(ValueError, match="at least 2 \\* n_dims"):
        encoder(graph, d_model=2, heads=1)
    with pytest.raises(ValueError, match="n_layers must be a positive integer"):
        encoder(graph, n_layers=0)
    # The default layer's refusal named its out_channels, no argument of the encoder.
    with pytest.raises(ValueError, match=r"^d_model=18 must be a multiple of heads=4: each head gets d_model / heads channels$"):
        TranscriptEncoder(12, d_model=18, heads=4)
    with pytest.raises(ValueError, match="conv_kwargs apply"):
        encoder(graph, conv=DistanceWeightedMean, conv_kwargs={"lambda_init": 1.0})


@pytest.mark.parametrize("conv", [None, DistanceWeightedMean])
@pytest.mark.parametrize("length", [float("nan"), float("inf"), -0.5])
def test_encoder_refuses_bad_edge_lengths_whatever_the_layer(conv, length):
    # A user-written layer got NaN, infinite or negative lengths silently (NaN or wrong
    # embeddings); only SpatialTransformerConv refused them, in its own words.
    graph = synthetic_graph()
    model = encoder(graph, conv=conv)
    edge_dist = graph.edge_dist.clone()
    edge_dist[[7, 30]] = length
    message = f"edge_dist must be finite and >= 0; 2 edge(s) are not (first: edge 7, length {length})"
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        model(graph.gene, graph.pos, graph.edge_index, edge_dist)
    graph.edge_dist = edge_dist.unsqueeze(1)
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        model(graph)


def test_encoder_names_inputs_that_are_not_tensors():
    # Lists failed with AttributeError: 'list' object has no attribute 'dim' / 'shape'.
    graph = synthetic_graph()
    model = encoder(graph)
    with pytest.raises(TypeError, match="^pos must be a tensor, got list$"):
        model(graph.gene, graph.pos.tolist(), graph.edge_index)
    with pytest.raises(TypeError, match="^edge_index must be a tensor, got list$"):
        model(graph.gene, graph.pos, graph.edge_index.tolist())
    message = f"edge_dist must have shape [num_edges={graph.num_edges}] or [num_edges, 1], got list"
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        model(graph.gene, graph.pos, graph.edge_index, graph.edge_dist.tolist())


def test_encoder_refuses_a_factory_that_shares_a_layer_between_blocks():
    # Such a factory tied the weights of every block silently (one layer's parameters).
    graph = synthetic_graph()
    torch.manual_seed(0)
    shared = DistanceWeightedMean(16, 2)
    message = (
        "the layer factory gave blocks 0 and 1 layers that share parameters (the same layer "
        "twice?): it must build a new layer on every call"
    )
    for factory in (lambda d, h: shared, lambda d, h: EdgeDistAdapter(shared)):
        with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
            encoder(graph, conv=factory)


class IgnoresTheAttentionFlag(DistanceWeightedMean):
    def forward(self, x, edge_index, edge_dist, return_attention_weights=None):
        return super().forward(x, edge_index, edge_dist)


class ReturnsATuple(DistanceWeightedMean):
    def forward(self, x, edge_index, edge_dist):
        return super().forward(x, edge_index, edge_dist), None


def test_encoder_names_a_layer_that_returns_the_wrong_kind_of_result():
    # Both failed on the unpacking ("too many values to unpack", "'tuple' object has no
    # attribute 'shape'"); with two nodes, a row of the output was taken for the attention.
    message = (
        "IgnoresTheAttentionFlag (block 0) returned Tensor when asked for attention weights; expected "
        "(out, (edge_index, alpha)) as PyG layers return"
    )
    for n in (2, 300):
        graph = synthetic_graph(n=n)
        with pytest.raises(TypeError, match=f"^{re.escape(message)}$"):
            encoder(graph, conv=IgnoresTheAttentionFlag)(graph, return_attention_weights=True)
    message = (
        "ReturnsATuple (block 0) returned a tuple; the layer factory must build layers mapping "
        "[N, d_model] to [N, d_model] (d_model=16) in the input's dtype (torch.float32)"
    )
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        encoder(graph, conv=ReturnsATuple)(graph)


class ReturnsBareWeights(DistanceWeightedMean):
    """Returns ``(out, alpha)``, not ``(out, (edge_index, alpha))``."""

    def forward(self, x, edge_index, edge_dist, return_attention_weights=False):
        out = super().forward(x, edge_index, edge_dist)
        return (out, torch.exp(-edge_dist)) if return_attention_weights else out


def test_encoder_names_a_layer_whose_attention_is_not_an_edge_index_and_weights():
    # The bare weights were returned as the block's attention: colocalization then failed
    # with "too many values to unpack (expected 2)".
    graph = synthetic_graph()
    model = encoder(graph, conv=ReturnsBareWeights)
    message = (
        "ReturnsBareWeights (block 0) returned attention weights as a Tensor; expected "
        "(out, (edge_index, alpha)) as PyG layers return"
    )
    with pytest.raises(TypeError, match=f"^{re.escape(message)}$"):
        model(graph, return_attention_weights=True)
    assert model(graph).shape == (graph.num_nodes, 16)


class ReturnsWeights(DistanceWeightedMean):
    """Returns the attention ``alpha`` its ``shape`` function makes of the edge lengths."""

    shape = staticmethod(lambda edge_dist: edge_dist)

    def forward(self, x, edge_index, edge_dist, return_attention_weights=False):
        out = super().forward(x, edge_index, edge_dist)
        return (out, (edge_index, self.shape(torch.exp(-edge_dist)))) if return_attention_weights else out


class WeightsPerHeadAndChannel(ReturnsWeights):
    shape = staticmethod(lambda alpha: alpha[:, None, None].expand(-1, 2, 3))


class OneWeightTooMany(ReturnsWeights):
    shape = staticmethod(lambda alpha: torch.cat([alpha, alpha[:1]]))


@pytest.mark.parametrize(
    ("layer", "shape"),
    [(WeightsPerHeadAndChannel, lambda n_edges: (n_edges, 2, 3)), (OneWeightTooMany, lambda n_edges: (n_edges + 1,))],
)
def test_encoder_names_a_layer_whose_attention_has_another_shape(layer, shape):
    # colocalization refused both as "attention must have one row per edge": attention
    # the user had not passed (model= was), without naming the layer.
    graph = synthetic_graph()
    n_edges = graph.edge_index.shape[1]
    message = (
        f"{layer.__name__} (block 0) returned attention weights of shape {shape(n_edges)} on edges of shape "
        f"(2, {n_edges}); expected (edge_index [2, E'], alpha [E'] or [E', heads])"
    )
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        encoder(graph, conv=layer)(graph, return_attention_weights=True)
    # One weight per edge, no head axis, is what colocalization averages as is.
    _, attention = encoder(graph, conv=ReturnsWeights)(graph, return_attention_weights=True)
    assert [tuple(alpha.shape) for _, alpha in attention] == [(n_edges,), (n_edges,)]


def test_encoder_names_the_block_whose_layer_returns_another_width():
    # The message named the layer's class and [N, 16] only: with a factory building
    # several kinds of layers, nothing said which block (nor that 16 is d_model).
    graph = synthetic_graph()
    layers = iter([DistanceWeightedMean, WrongWidth])
    model = encoder(graph, conv=lambda d_model, heads: next(layers)(d_model, heads))
    message = (
        "WrongWidth (block 1) returned shape (300, 15) in torch.float32; the layer factory must build "
        "layers mapping [N, d_model] to [N, d_model] (d_model=16) in the input's dtype (torch.float32)"
    )
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        model(graph)
    # A layer outside an encoder is named by its class alone.
    layer = TranscriptEncoderLayer(WrongWidth(16, 2), 16, 32)
    with pytest.raises(ValueError, match=r"^WrongWidth returned shape \(300, 15\) in torch.float32; "):
        layer(torch.randn(300, 16), graph.edge_index, graph.edge_dist)


class Float64Mean(DistanceWeightedMean):
    def __init__(self, d_model: int, heads: int) -> None:
        super().__init__(d_model, heads)
        self.double()


class ReturnsFloat64(DistanceWeightedMean):
    def forward(self, x, edge_index, edge_dist):
        return super().forward(x, edge_index, edge_dist).double()


def test_encoder_refuses_a_layer_in_another_dtype_and_runs_a_converted_encoder():
    # A float64 layer in a float32 encoder failed inside the layer ("mat1 and mat2 must
    # have the same dtype"), in tl.pretrain and tl.colocalization alike.
    graph = synthetic_graph()
    message = (
        "the layer factory built Float64Mean (block 0) with lin.weight in torch.float64, but the "
        "encoder's weights are torch.float32: build the layers in the default dtype and convert "
        "the whole encoder instead (e.g. encoder.double())"
    )
    with pytest.raises(TypeError, match=f"^{re.escape(message)}$"):
        encoder(graph, conv=Float64Mean)
    message = (
        "ReturnsFloat64 (block 0) returned shape (300, 16) in torch.float64; the layer factory must "
        "build layers mapping [N, d_model] to [N, d_model] (d_model=16) in the input's dtype (torch.float32)"
    )
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        encoder(graph, conv=ReturnsFloat64)(graph)
    single = encoder(graph, conv=DistanceWeightedMean)
    double = encoder(graph, conv=DistanceWeightedMean).double()
    out = double(graph)
    assert out.dtype == torch.float64
    torch.testing.assert_close(out.float(), single(graph), rtol=0, atol=1e-5)


def test_encoder_runs_under_autocast():
    # The output dtype check must leave autocast alone, whose layers return its dtype.
    graph = synthetic_graph()
    model = encoder(graph)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(graph)
    reference = model(graph)
    assert out.dtype == torch.float32
    assert (out - reference).abs().max().item() < 0.02  # bfloat16 rounding (0.006 seen)


def test_encoder_refuses_a_layer_instance():
    graph = synthetic_graph()
    with pytest.raises(TypeError, match=r"conv must be a layer factory .* not a DistanceWeightedMean instance"):
        encoder(graph, conv=DistanceWeightedMean(16, 2))


@pytest.mark.parametrize(
    ("setting", "error", "wanted"),
    [({"ff_dim": 0}, ValueError, "a positive integer"), ({"ff_dim": -1}, ValueError, "a positive integer"),
     ({"ff_dim": 8.0}, TypeError, "an integer"), ({"n_layers": True}, TypeError, "an integer"),
     ({"heads": True}, TypeError, "an integer"), ({"d_model": 16.0}, TypeError, "an integer")],
)
def test_encoder_sizes_must_be_positive_integers(setting, error, wanted):
    name, value = next(iter(setting.items()))
    with pytest.raises(error, match=rf"{name} must be {wanted}, got {value!r}"):
        encoder(synthetic_graph(), **setting)


def test_encoder_sizes_may_be_numpy_integers_and_are_recorded_as_int():
    model = encoder(synthetic_graph(), d_model=np.int64(16), n_layers=np.int32(1), ff_dim=np.int64(24))
    assert [type(model.config[k]) for k in ("d_model", "n_layers", "ff_dim")] == [int, int, int]
    assert model.layers[0].ff[0].out_features == 24 and len(model.layers) == 1


def test_encoder_takes_edge_dist_as_a_column_like_the_layer():
    graph = synthetic_graph()
    model = encoder(graph)
    flat = model(graph.gene, graph.pos, graph.edge_index, graph.edge_dist)
    assert torch.equal(model(graph.gene, graph.pos, graph.edge_index, graph.edge_dist[:, None]), flat)
    layer = model.layers[0].conv
    x = torch.randn(graph.num_nodes, 16)
    assert torch.equal(layer(x, graph.edge_index, graph.edge_dist[:, None]), layer(x, graph.edge_index, graph.edge_dist))
    with pytest.raises(ValueError, match=r"edge_dist must have shape \[num_edges=\d+\] or \[num_edges, 1\]"):
        model(graph.gene, graph.pos, graph.edge_index, graph.edge_dist[:, None].expand(-1, 2))


def test_head_gives_logits_over_genes_only():
    head = MaskedGeneHead(16, 12)
    assert head(torch.randn(5, 16)).shape == (5, 12)
    with pytest.raises(ValueError, match="^d_model must be a positive integer, got 0$"):
        MaskedGeneHead(0, 12)
    with pytest.raises(TypeError, match="^n_genes must be an integer, got 12.0$"):
        MaskedGeneHead(16, 12.0)
    # Another width failed in torch: "mat1 and mat2 shapes cannot be multiplied (5x8 and 16x16)".
    for shape in ((5, 8), (16,), (2, 5, 16)):
        with pytest.raises(ValueError, match=rf"^h must have shape \[N, d_model\] \(d_model=16\), got {re.escape(str(shape))}$"):
            head(torch.randn(shape))
    with pytest.raises(TypeError, match="^h must be a tensor of embeddings, got ndarray$"):
        head(np.zeros((5, 16), dtype=np.float32))


# --- masking -----------------------------------------------------------------------------


def test_masking_statistics_follow_bert():
    n, n_genes = 200_000, 50
    gene = torch.randint(0, n_genes, (n,), generator=torch.Generator().manual_seed(0))
    original = gene.clone()
    control = gene >= 45
    pool = torch.arange(45)
    masked = mask_tokens(
        gene, mask_token=n_genes, selectable=~control, random_pool=pool,
        generator=torch.Generator().manual_seed(1),
    )
    assert torch.equal(gene, original)
    assert not masked.selected[control].any()
    assert abs(masked.selected.float().mean() / (~control).float().mean() - 0.15) < 0.005
    sel = masked.selected
    is_mask = masked.input[sel] == n_genes
    changed = (masked.input[sel] != gene[sel]) & ~is_mask
    assert abs(is_mask.float().mean() - 0.8) < 0.01
    # Random replacements hit the true gene with probability 1/45, so 10 % * 44/45 change it.
    assert abs(changed.float().mean() - 0.1 * 44 / 45) < 0.005
    assert torch.equal(masked.input[~sel], gene[~sel])
    assert (masked.input[sel][changed] < 45).all()


def test_masking_is_reproducible_and_checks_arguments():
    gene = torch.arange(1000) % 7
    a = mask_tokens(gene, mask_token=7, generator=torch.Generator().manual_seed(3))
    b = mask_tokens(gene, mask_token=7, generator=torch.Generator().manual_seed(3))
    assert torch.equal(a.input, b.input) and torch.equal(a.selected, b.selected)
    with pytest.raises(ValueError, match="rate"):
        mask_tokens(gene, mask_token=7, rate=0.0)
    with pytest.raises(ValueError, match="selectable"):
        mask_tokens(gene, mask_token=7, selectable=torch.ones(3, dtype=torch.bool))


def test_loss_uses_selected_tokens_only():
    torch.manual_seed(0)
    logits = torch.randn(50, 9, requires_grad=True)
    target = torch.randint(0, 9, (50,))
    selected = torch.zeros(50, dtype=torch.bool)
    selected[[3, 17, 40]] = True
    loss = masked_gene_loss(logits, target, selected)
    expected = -torch.log_softmax(logits.detach()[[3, 17, 40]], dim=1)[torch.arange(3), target[[3, 17, 40]]].mean()
    assert torch.allclose(loss, expected)
    loss.backward()
    assert torch.equal(logits.grad[~selected], torch.zeros(47, 9))
    assert (logits.grad[selected].abs().sum(dim=1) > 0).all()
    empty = masked_gene_loss(logits, target, torch.zeros(50, dtype=torch.bool))
    assert empty.item() == 0.0 and empty.requires_grad
    # Indices are not a mask: [3, 17, 40] would silently pick other rows than intended.
    with pytest.raises(ValueError, match=r"selected must be a bool mask shaped like target \(50,\), got torch.int64"):
        masked_gene_loss(logits, target, torch.tensor([3, 17, 40]))
    with pytest.raises(ValueError, match="selected must be a bool mask"):
        masked_gene_loss(logits, target, selected.long())


# --- batching ----------------------------------------------------------------------------


def test_tile_units_give_exact_core_embeddings():
    graph = synthetic_graph(n=400)
    model = encoder(graph)
    tile_size = 4.0
    graph.origin = node_origin(graph, tile_size)
    full = model(graph)
    units = tile_units(graph, tile_size, halo=2 * graph.radius)
    cores = torch.cat([u.node[u.core] for u in units])
    assert torch.equal(torch.sort(cores).values, torch.arange(graph.num_nodes))
    batch = collate_units(units)
    out = model(batch.gene, batch.pos, batch.edge_index, batch.edge_dist, batch.origin)
    assert torch.allclose(out[batch.core], full[batch.node[batch.core]], atol=1e-5)
    # A halo narrower than n_layers * radius cuts messages: the boundary nodes change.
    thin = collate_units(tile_units(graph, tile_size, halo=0.0))
    out_thin = model(thin.gene, thin.pos, thin.edge_index, thin.edge_dist, thin.origin)
    assert not torch.allclose(out_thin[thin.core], full[thin.node[thin.core]], atol=1e-3)


def test_tile_units_keep_nodes_rounded_across_a_tile_border():
    # 93.5 / 1.1 rounds to 85.0 but 85 * 1.1 to 93.50000000000001: node 0 of tile 85 lay
    # outside its own tile's bounds (with halo 0 it was in no unit) and its neighbour
    # 0.5 away outside the halo (the edge 1 -> 0 was cut from its unit).
    pos = torch.tensor([[93.5, 0.0], [93.0, 0.0]])
    edge_index, edge_dist = radius_graph(pos, 0.5, return_distance=True)
    graph = Data(gene=torch.tensor([0, 1]), pos=pos, edge_index=edge_index, edge_dist=edge_dist, num_nodes=2)
    thin = tile_units(graph, 1.1, 0.0)
    assert [(u.node.tolist(), u.core.tolist()) for u in thin] == [([0, 1], [False, True]), ([0], [True])]
    wide = tile_units(graph, 1.1, 0.5)
    assert [(u.node.tolist(), u.core.tolist()) for u in wide] == [([0, 1], [False, True]), ([0, 1], [True, False])]
    assert all(torch.equal(u.edge_index, edge_index) for u in wide)


def test_tile_units_keep_every_edge_into_their_core_in_a_global_frame():
    # transcript_graph's edges are exact for the float64 coordinates; its float32 pos
    # rounds them by up to 0.031 µm at 1e6 µm. Node 0 (1e6 + 4.97) rounds up onto the
    # border of its tile (1e6 + 5), node 1, 1.025 µm away, down to 1e6 + 3.9375:
    # beyond a halo of 1.03 µm from the border in pos, within the radius in the data.
    import pandas as pd

    from stgraph.graph import transcript_graph

    frame = pd.DataFrame({"x": [1e6 + 4.97, 1e6 + 3.945], "y": [0.0, 0.0], "gene": pd.Categorical(["a", "b"])})
    graph = transcript_graph(frame, 1.03)
    assert graph.edge_index.tolist() == [[1, 0], [0, 1]]
    assert float(graph.pos[0, 0]) == 1e6 + 5 and float(graph.pos[1, 0]) == 1e6 + 3.9375
    units = tile_units(graph, 5.0, halo=graph.radius)
    assert [(u.node.tolist(), u.core.tolist(), u.edge_index.shape[1]) for u in units] == [
        ([0, 1], [False, True], 2), ([0, 1], [True, False], 2)
    ]


@pytest.mark.parametrize("by_target", [False, True])
def test_induced_edges_match_a_direct_selection(by_target):
    rng = np.random.default_rng(3)
    edge_index = torch.from_numpy(rng.integers(0, 40, (2, 300)))  # repeated edges and loops too
    if by_target:  # as stgraph's graphs are: kept without a sort, sources a view
        edge_index = edge_index[:, torch.argsort(edge_index[1], stable=True)]
    edges = IncomingEdges(edge_index, 40)
    subsets = ([3, 7, 8, 21, 39], [5], [], list(range(40)))
    for nodes in (torch.tensor(subset, dtype=torch.long) for subset in subsets):
        inside = torch.isin(edge_index, nodes).all(dim=0)
        # Sorted by target as IncomingEdges keeps them, ties in edge order.
        expected_id = torch.nonzero(inside).flatten()
        expected_id = expected_id[torch.argsort(edge_index[1, expected_id], stable=True)]
        relabelled, edge_id = edges.induced(nodes)
        torch.testing.assert_close(edge_id, expected_id)
        torch.testing.assert_close(nodes[relabelled], edge_index[:, expected_id])
        into = torch.isin(edge_index[1], nodes)
        expected_sources = edge_index[0, torch.nonzero(into).flatten()[torch.argsort(edge_index[1, into], stable=True)]]
        torch.testing.assert_close(edges.sources(nodes), expected_sources)


def test_collate_units_refuses_an_empty_batch():
    # Batch.from_data_list([]) failed with IndexError: list index out of range.
    with pytest.raises(ValueError, match="^collate_units needs at least one unit, got none$"):
        collate_units([])
    units = cell_units(synthetic_graph())
    batch = collate_units(units[:2])
    assert batch.num_graphs == 2 and batch.num_nodes == units[0].num_nodes + units[1].num_nodes


def test_units_respect_allowed_nodes_and_cells():
    graph = synthetic_graph()
    allowed = graph.cell != 1
    for units in (tile_units(graph, 5.0, 2.0, allowed=allowed), cell_units(graph, allowed=allowed)):
        nodes = torch.cat([u.node for u in units])
        assert allowed[nodes].all()
        for u in units:
            src, dst = u.node[u.edge_index]
            assert torch.allclose(u.edge_dist, (graph.pos[src] - graph.pos[dst]).norm(dim=1))
    cells = cell_units(graph)
    assert [int(u.cell.unique()) for u in cells] == [0, 1, 2]
    assert sum(u.num_nodes for u in cells) == int((graph.cell >= 0).sum())
    # Within-cell edges only: every edge of a cell unit joins two transcripts of the cell.
    in_graph = (graph.cell[graph.edge_index[0]] == graph.cell[graph.edge_index[1]]) & (graph.cell[graph.edge_index[0]] >= 0)
    assert sum(u.num_edges for u in cells) == int(in_graph.sum())
    # Every missing field at once, where the units named the first only; a dict failed with AttributeError.
    message = r"^graph lacks the field\(s\) \['cell'\]; build it with stgraph.graph.transcript_graph$"
    with pytest.raises(ValueError, match=message):
        cell_units(Data(gene=graph.gene, pos=graph.pos, edge_index=graph.edge_index))
    message = r"^graph lacks the field\(s\) \['pos', 'cell'\]; build it with stgraph.graph.transcript_graph$"
    with pytest.raises(ValueError, match=message):
        cell_units(Data(gene=graph.gene, edge_index=graph.edge_index))
    fields = {"gene": graph.gene, "pos": graph.pos, "edge_index": graph.edge_index}
    with pytest.raises(TypeError, match=r"^graph must be a torch_geometric Data .*got dict$"):
        tile_units(fields, 5.0, 2.0)
    with pytest.raises(ValueError, match="tile_size must be a positive finite number, got 0.0"):
        tile_units(graph, 0.0, 1.0)
    with pytest.raises(ValueError, match="halo must be a non-negative finite number, got inf"):
        tile_units(graph, 7.0, float("inf"))
    with pytest.raises(ValueError, match="tile_size must be a positive finite number, got nan"):
        tile_units(graph, float("nan"), 1.0)
    # A NaN position would fall in no tile and make its cell's origin NaN.
    broken = graph.clone()
    broken.pos = graph.pos.clone()
    broken.pos[7, 0] = float("nan")
    for make_units in (lambda g: tile_units(g, 5.0, 2.0), cell_units):
        with pytest.raises(ValueError, match=r"pos has 1 node\(s\) with NaN or infinite coordinates \(first: node 7,"):
            make_units(broken)
    with pytest.raises(TypeError, match="halo must be a real number, got bool"):
        tile_units(graph, 7.0, True)


def test_tile_units_refuse_tiles_far_smaller_than_the_halo():
    # Each unit looked up the (2 ceil(halo / tile_size) + 1)^2 tiles around its own:
    # tl.pretrain(tile_size=1e-6) with a 2 µm halo ran for ever.
    graph = synthetic_graph()
    message = (
        r"^tile_size=0.05 is too small for halo=1.0: each unit would gather the transcripts of 1849 tiles; "
        r"use tiles much larger than the halo \(in stgraph.tl.pretrain, n_layers \* radius\)$"
    )
    with pytest.raises(ValueError, match=message):
        tile_units(graph, 0.05, 1.0)
    assert len(tile_units(graph, 0.5, 1.0)) > 0  # 7 x 7 tiles: still taken


# --- checkpoints -------------------------------------------------------------------------


@pytest.mark.parametrize("conv", [None, DistanceWeightedMean])
def test_checkpoint_round_trip_reproduces_outputs(tmp_path, conv):
    graph = synthetic_graph()
    model = MaskedGeneModel(encoder(graph, conv=conv), graph.gene_names, ["blank1"])
    path = save_checkpoint(tmp_path / "model.pt", model)
    loaded = load_model(path)
    assert loaded.gene_names == graph.gene_names and loaded.control_genes == ["blank1"]
    assert torch.equal(loaded(graph), model.eval()(graph))
    assert loaded.config == model.config


def test_loading_a_checkpoint_draws_nothing_from_the_callers_torch_rng(tmp_path):
    # Rebuilding the model drew its initial weights, which the checkpoint's then
    # replace, from the caller's generator: load_model moved the caller's next numbers.
    graph = synthetic_graph()
    path = save_checkpoint(tmp_path / "model.pt", MaskedGeneModel(encoder(graph), graph.gene_names, ["blank1"]))
    torch.manual_seed(5)
    expected = torch.rand(4)
    torch.manual_seed(5)
    load_model(path)
    assert torch.equal(torch.rand(4), expected)


def test_checkpoint_errors(tmp_path):
    graph = synthetic_graph()
    with pytest.raises(FileNotFoundError):
        load_model(tmp_path / "missing.pt")
    # pathlib's own TypeError named no argument
    for call in (lambda: load_model(5), lambda: save_checkpoint(5, MaskedGeneModel(encoder(graph), graph.gene_names))):
        with pytest.raises(TypeError, match=r"^path must be a path \(a string or os.PathLike\), got int$"):
            call()
    torch.save({"something": 1}, tmp_path / "other.pt")
    with pytest.raises(ValueError, match="not a stgraph masked gene model checkpoint"):
        load_model(tmp_path / "other.pt")
    # Files torch.load cannot read raised KeyError, EOFError, UnpicklingError, ...
    for name, content, error in (("text.pt", b"hello", "KeyError"), ("empty.pt", b"", "EOFError"),
                                 ("bytes.pt", bytes(range(256)), "UnpicklingError")):
        (tmp_path / name).write_bytes(content)
        message = (
            f"^{re.escape(str(tmp_path / name))} is not a stgraph masked gene model checkpoint: "
            f"torch.load cannot read it \\({error}\\)$"
        )
        with pytest.raises(ValueError, match=message):
            load_model(tmp_path / name)
    torch.save({"format": "stgraph.masked_gene_model", "version": 1}, tmp_path / "partial.pt")
    message = (
        f"^{re.escape(str(tmp_path / 'partial.pt'))} is not a complete stgraph masked gene model "
        r"checkpoint: it lacks \['model_config', 'model_state'\]$"
    )
    with pytest.raises(ValueError, match=message):
        load_model(tmp_path / "partial.pt")
    model = MaskedGeneModel(encoder(graph), graph.gene_names)
    payload_path = save_checkpoint(tmp_path / "model.pt", model)
    payload = torch.load(payload_path, weights_only=True)
    # A version stamp that is not an integer raised a bare TypeError in the comparison.
    for version, expected in (("1", "checkpoint version '1', not an integer: it is not a stgraph checkpoint"),
                              (True, "checkpoint version True, not an integer: it is not a stgraph checkpoint"),
                              (2, "checkpoint version 2; this stgraph reads up to 1")):
        torch.save({**payload, "version": version}, tmp_path / "stamped.pt")
        with pytest.raises(ValueError, match=f"^{re.escape(str(tmp_path / 'stamped.pt'))} has {re.escape(expected)}$"):
            load_model(tmp_path / "stamped.pt")
    payload["model_config"]["encoder"]["conv"] = "not_a_module:Layer"
    torch.save(payload, payload_path)
    with pytest.raises(ValueError, match="pass it again as conv="):
        load_model(payload_path)
    assert torch.equal(load_model(payload_path, conv=SpatialTransformerConv)(graph), model.eval()(graph))


class DistanceWeightedMeanFactory:
    """A layer factory that is a callable object: it has no import path."""

    def __call__(self, d_model: int, heads: int) -> DistanceWeightedMean:
        return DistanceWeightedMean(d_model, heads)


def local_factory():
    """A layer factory defined inside a function: its import path would be ``...<locals>...``."""

    def build(d_model: int, heads: int) -> DistanceWeightedMean:
        return DistanceWeightedMean(d_model, heads)

    return build


@pytest.mark.parametrize(
    "factory",
    [functools.partial(DistanceWeightedMean), DistanceWeightedMeanFactory(),
     # A lambda and a closure were recorded as 'tests.test_encoder:<lambda>' and
     # '...local_factory.<locals>.build', import paths that no import resolves.
     lambda d, h: DistanceWeightedMean(d, h), local_factory()],
)
def test_a_factory_without_import_path_is_not_recorded_and_must_be_passed_to_load(tmp_path, factory):
    # Naming such a factory raised AttributeError (no __qualname__).
    graph = synthetic_graph()
    model = MaskedGeneModel(encoder(graph, conv=factory), graph.gene_names)
    assert model.config["encoder"]["conv"] is None
    path = save_checkpoint(tmp_path / "model.pt", model)
    message = (
        "the layer factory was not recorded in the config (a lambda, a function or class "
        "defined inside a function, a functools.partial or a callable object has no import "
        "path); pass it again as conv="
    )
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        load_model(path)
    assert torch.equal(load_model(path, conv=factory)(graph), model.eval()(graph))


def test_numpy_and_tensor_settings_are_recorded_as_python_values(tmp_path):
    # A NumPy value in the config made the checkpoint unreadable (weights_only=True),
    # a tensor of several values made the resume comparison of configs raise.
    graph = synthetic_graph()
    conv_kwargs = dict(lambda_init=np.array([0.5, 2.0]), learn_lambda=np.True_, dropout=np.float64(0.0))
    model = MaskedGeneModel(
        encoder(graph, conv_kwargs=conv_kwargs, dropout=np.float32(0.0), n_dims=np.int64(2)), graph.gene_names
    )
    config = model.config["encoder"]
    assert config["conv_kwargs"] == dict(lambda_init=[0.5, 2.0], learn_lambda=True, dropout=0.0)
    assert [type(v) for v in config["conv_kwargs"].values()] == [list, bool, float]
    assert type(config["dropout"]) is float and type(config["n_dims"]) is int
    loaded = load_model(save_checkpoint(tmp_path / "model.pt", model))
    assert loaded.config == model.config
    assert torch.equal(loaded(graph), model.eval()(graph))
    from_tensor = encoder(graph, conv_kwargs=dict(lambda_init=torch.tensor([0.5, 2.0])))
    assert from_tensor.config == encoder(graph, conv_kwargs=dict(lambda_init=[0.5, 2.0])).config
    assert torch.equal(from_tensor(graph), model.encoder(graph))


def test_conv_kwargs_must_be_plain_values():
    graph = synthetic_graph()
    message = (
        r"^conv_kwargs\['lambda_init'\] must hold plain Python values \(bool, int, float, str, None, "
        r"or lists, tuples and dicts of them\), NumPy values or tensors, got Fraction$"
    )
    with pytest.raises(TypeError, match=message):
        encoder(graph, conv_kwargs=dict(lambda_init=fractions.Fraction(1, 2)))


def test_model_vocabulary_maps_genes_by_name():
    graph = synthetic_graph()
    model = MaskedGeneModel(encoder(graph), graph.gene_names)
    other = graph.clone()
    other.gene_names = list(reversed(graph.gene_names))
    other.gene = len(graph.gene_names) - 1 - graph.gene
    assert torch.equal(model.gene_tokens(other), graph.gene)
    other.gene_names = ["unknown"] + other.gene_names[1:]
    with pytest.raises(ValueError, match="genes unknown to the model"):
        model.gene_tokens(other)
    with pytest.raises(ValueError, match="gene names for an encoder"):
        MaskedGeneModel(encoder(graph), graph.gene_names[:-1])
    with pytest.raises(ValueError, match="control genes not in gene_names"):
        MaskedGeneModel(encoder(graph), graph.gene_names, ["nope"])


def test_conv_kwargs_that_are_no_mapping_are_refused_by_name():
    # dict() of them failed with "cannot convert dictionary update sequence element #0 to a sequence"
    for conv_kwargs, kind in (([1], "list"), ("lambda_init", "str")):
        with pytest.raises(TypeError, match=f"^conv_kwargs must be a dict of keyword arguments of the layer, "
                                            f"or None, got {kind}$"):
            TranscriptEncoder(3, d_model=8, n_layers=1, heads=2, conv_kwargs=conv_kwargs)


def test_masked_gene_model_refuses_one_string_for_names_and_an_encoder_of_another_kind():
    three = TranscriptEncoder(3, d_model=8, n_layers=1, heads=2)
    # "abc" was read as the genes a, b, c and control_genes="ab" as two controls
    with pytest.raises(TypeError, match=r"^gene_names must be a list of names, got the string 'abc': pass \['abc'\]$"):
        MaskedGeneModel(three, "abc")
    with pytest.raises(TypeError, match=r"^control_genes must be a list of names, got the string 'ab': pass \['ab'\]$"):
        MaskedGeneModel(three, ["a", "b", "ab"], "ab")
    # failed with "'str' object has no attribute 'n_genes'"
    with pytest.raises(TypeError, match=r"^encoder must be a stgraph.nn.TranscriptEncoder, got str$"):
        MaskedGeneModel("encoder", ["a", "b", "c"])


@pytest.mark.parametrize(("arguments", "error", "message"), [
    # d_model=0 and ff_dim=0 were taken: a block of empty layers, whose output is NaN.
    (dict(d_model=0, ff_dim=16), ValueError, "d_model must be a positive integer, got 0"),
    (dict(d_model=8, ff_dim=0), ValueError, "ff_dim must be a positive integer, got 0"),
    (dict(d_model=8.0, ff_dim=16), TypeError, "d_model must be an integer, got 8.0"),
    (dict(d_model=8, ff_dim=16, dropout=1.0), ValueError, "dropout must lie in [0, 1), got 1.0"),
    (dict(d_model=8, ff_dim=16, block=-1), ValueError, "block must be an integer >= 0, got -1"),
    (dict(d_model=8, ff_dim=16, block=1.0), TypeError, "block must be an integer, got 1.0"),
])
def test_encoder_layer_checks_its_widths(arguments, error, message):
    with pytest.raises(error, match=f"^{re.escape(message)}"):
        TranscriptEncoderLayer(SpatialTransformerConv(8, 8, heads=2), **arguments)
