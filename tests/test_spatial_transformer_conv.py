import math
import re

import numpy as np
import pytest
import torch

from stgraph.nn import TranscriptEncoder
from stgraph.nn.conv import SpatialTransformerConv
from stgraph.nn.conv._edge_attention import NO_DOUBLE_BACKWARD, edge_attention

IN, OUT, HEADS = 6, 8, 2


def brute_force_graph(pos: torch.Tensor, radius: float, self_loops: torch.Tensor) -> torch.Tensor:
    """Edges j -> i for all pairs i != j closer than ``radius``, plus self-loops where asked."""
    close = torch.cdist(pos, pos) < radius
    close.fill_diagonal_(False)
    close |= torch.diag(self_loops)
    dst, src = close.nonzero(as_tuple=True)
    return torch.stack([src, dst])


def random_graph(seed: int, num_nodes: int = 24):
    """Points with two duplicated positions, self-loops on every third node and four
    far-away nodes without edges; returns (x, pos, edge_index, isolated mask)."""
    g = torch.Generator().manual_seed(seed)
    pos = torch.rand(num_nodes, 2, generator=g, dtype=torch.float64) * 3.0
    pos[5] = pos[3]
    pos[9] = pos[3]
    pos[-4:] += 100.0 + 10.0 * torch.arange(4, dtype=torch.float64)[:, None]
    self_loops = torch.arange(num_nodes) % 3 == 0
    self_loops[-4:] = False
    edge_index = brute_force_graph(pos, 1.2, self_loops)
    x = torch.randn(num_nodes, IN, generator=g, dtype=torch.float64)
    isolated = torch.ones(num_nodes, dtype=torch.bool)
    isolated[edge_index[1]] = False
    return x, pos, edge_index, isolated


def make_layer(seed: int = 0, **kwargs) -> SpatialTransformerConv:
    torch.manual_seed(seed)
    return SpatialTransformerConv(IN, OUT, HEADS, **kwargs).double()


def dense_reference(layer, x, edge_index, edge_dist):
    """Full N x N multi-head attention with additive -lambda * d bias, -inf off the edges."""
    n, h, d = x.size(0), layer.heads, layer.head_channels
    q = layer.lin_query(x).view(n, h, d).transpose(0, 1)
    k = layer.lin_key(x).view(n, h, d).transpose(0, 1)
    v = layer.lin_value(x).view(n, h, d).transpose(0, 1)
    bias = torch.full((h, n, n), -math.inf, dtype=x.dtype)
    src, dst = edge_index
    bias[:, dst, src] = -layer.lambdas[:, None] * edge_dist[None, :]
    scores = q @ k.transpose(1, 2) / math.sqrt(d) + bias
    has_edge = torch.isfinite(bias).any(-1, keepdim=True)
    alpha = torch.where(has_edge, torch.softmax(scores.masked_fill(~has_edge, 0), -1), 0.0)
    out = (alpha @ v).transpose(0, 1).reshape(n, h * d)
    return layer.lin_out(out), alpha[:, dst, src].T


def grads(outputs, inputs, retain_graph=False):
    return torch.autograd.grad(outputs, inputs, retain_graph=retain_graph)


@pytest.mark.parametrize("distance_from", ["edge_dist", "pos"])
def test_matches_dense_reference_with_gradients(distance_from):
    x, pos, edge_index, isolated = random_graph(0)
    assert isolated.sum() == 4 and (edge_index[0] == edge_index[1]).any()
    layer = make_layer()
    x.requires_grad_(True)
    pos.requires_grad_(True)
    dist = torch.linalg.vector_norm(pos[edge_index[0]] - pos[edge_index[1]], dim=-1)
    assert (dist == 0).sum() > 8  # self-loops and duplicated points

    if distance_from == "pos":
        out, (_, alpha) = layer(x, edge_index, pos=pos, return_attention_weights=True)
    else:
        out, (_, alpha) = layer(x, edge_index, dist, return_attention_weights=True)
    ref_out, ref_alpha = dense_reference(layer, x, edge_index, dist)
    torch.testing.assert_close(out, ref_out, rtol=0, atol=1e-5)
    torch.testing.assert_close(alpha, ref_alpha, rtol=0, atol=1e-5)

    g = torch.randn_like(out)
    inputs = [x, pos, *layer.parameters()]
    assert any(p is layer.lambda_raw for p in inputs)
    # retain_graph: `dist` is shared by both graphs
    got = grads((out * g).sum() + alpha.square().sum(), inputs, retain_graph=True)
    want = grads((ref_out * g).sum() + ref_alpha.square().sum(), inputs)
    for a, b in zip(got, want):
        assert torch.isfinite(a).all()
        torch.testing.assert_close(a, b, rtol=0, atol=1e-5)


def kernel_inputs(seed: int, num_nodes: int = 7, heads: int = 2, channels: int = 3):
    g = torch.Generator().manual_seed(seed)
    pos = torch.rand(num_nodes, 2, generator=g, dtype=torch.float64)
    self_loops = torch.zeros(num_nodes, dtype=torch.bool)
    self_loops[0] = True
    edge_index = brute_force_graph(pos, 0.8, self_loops)
    dist = torch.linalg.vector_norm(pos[edge_index[0]] - pos[edge_index[1]], dim=-1)
    qkv = [
        torch.randn(num_nodes, heads, channels, generator=g, dtype=torch.float64)
        for _ in range(3)
    ]
    lam = torch.rand(heads, generator=g, dtype=torch.float64) * 2
    return [t.requires_grad_(True) for t in (*qkv, lam, dist)], edge_index


@pytest.mark.parametrize("dropout", [0.0, 0.4])
@pytest.mark.parametrize("sorted_edges", [True, False])
def test_kernel_gradcheck(dropout, sorted_edges):
    tensors, edge_index = kernel_inputs(1)
    if not sorted_edges:
        edge_index = edge_index.flip(1)

    def fn(q, k, v, lam, dist):
        torch.manual_seed(5)  # the same dropout mask in every evaluation
        return edge_attention(q, k, v, edge_index, dist, lam, dropout=dropout, need_weights=True)

    assert torch.autograd.gradcheck(fn, tensors)


def test_double_backward_is_refused():
    # A Hessian-vector product through the layer came out silently wrong (entries off
    # by 2.8 on a scale of 6): the backward's results had no graph back to the inputs,
    # and autograd skipped the once_differentiable guard when x was reached by another path.
    x, _, edge_index, _ = random_graph(0)
    layer = make_layer()
    x.requires_grad_(True)
    dist = torch.rand(edge_index.size(1), generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    loss = layer(x, edge_index, dist).square().sum() + x.pow(3).sum()
    with pytest.raises(RuntimeError, match=f"^{re.escape(NO_DOUBLE_BACKWARD)}$"):
        torch.autograd.grad(loss, x, create_graph=True)
    (grad,) = torch.autograd.grad(loss, x)  # first derivatives as before
    assert torch.isfinite(grad).all() and grad.abs().sum() > 0


def test_permutation_equivariance():
    x, pos, edge_index, _ = random_graph(2)
    layer = make_layer()
    perm = torch.randperm(x.size(0), generator=torch.Generator().manual_seed(3))
    inverse = torch.empty_like(perm)
    inverse[perm] = torch.arange(perm.numel())
    edge_perm = torch.randperm(edge_index.size(1), generator=torch.Generator().manual_seed(4))
    out, (_, alpha) = layer(x, edge_index, pos=pos, return_attention_weights=True)
    out_p, (_, alpha_p) = layer(
        x[perm], inverse[edge_index[:, edge_perm]], pos=pos[perm], return_attention_weights=True
    )
    torch.testing.assert_close(out_p, out[perm], rtol=0, atol=1e-12)
    torch.testing.assert_close(alpha_p, alpha[edge_perm], rtol=0, atol=1e-12)


def test_attention_sums_to_one_and_isolated_nodes_get_output_bias():
    x, pos, edge_index, isolated = random_graph(6)
    layer = make_layer()
    out, (returned_index, alpha) = layer(x, edge_index, pos=pos, return_attention_weights=True)
    assert returned_index is edge_index and alpha.shape == (edge_index.size(1), HEADS)
    sums = torch.zeros(x.size(0), HEADS, dtype=x.dtype).index_add_(0, edge_index[1], alpha)
    torch.testing.assert_close(sums[~isolated], torch.ones_like(sums[~isolated]), rtol=0, atol=1e-12)
    assert not isin(torch.nonzero(isolated).view(-1), edge_index[1]).any()
    assert torch.equal(out[isolated], layer.lin_out.bias.expand(int(isolated.sum()), -1))

    empty = torch.empty(2, 0, dtype=torch.long)
    out, (_, alpha) = layer(x, empty, pos=pos, return_attention_weights=True)
    assert alpha.shape == (0, HEADS)
    assert torch.equal(out, layer.lin_out.bias.expand(x.size(0), -1))


def test_the_key_bias_cancels_in_the_softmax():
    # As documented: q_i . b_K is the same on every edge into i, so the key bias moves
    # neither the output nor the attention and gets no gradient.
    x, pos, edge_index, _ = random_graph(7)
    layer = make_layer()
    out, (_, alpha) = layer(x, edge_index, pos=pos, return_attention_weights=True)
    (gradient,) = grads(out.square().sum(), [layer.lin_key.bias])
    torch.testing.assert_close(gradient, torch.zeros_like(gradient), rtol=0, atol=1e-12)
    with torch.no_grad():
        layer.lin_key.bias.add_(torch.linspace(-3.0, 3.0, OUT, dtype=x.dtype))
    moved, (_, moved_alpha) = layer(x, edge_index, pos=pos, return_attention_weights=True)
    torch.testing.assert_close(moved, out, rtol=0, atol=1e-12)
    torch.testing.assert_close(moved_alpha, alpha, rtol=0, atol=1e-12)
    # The query bias does move them: the check above is not blind.
    with torch.no_grad():
        layer.lin_query.bias.add_(torch.linspace(-3.0, 3.0, OUT, dtype=x.dtype))
    assert (layer(x, edge_index, pos=pos) - out).abs().max() > 1e-3


def isin(elements: torch.Tensor, test: torch.Tensor) -> torch.Tensor:
    return (elements[:, None] == test[None, :]).any(-1)


def test_large_lambda_attends_to_nearest_neighbour():
    g = torch.Generator().manual_seed(7)
    pos = torch.rand(40, 2, generator=g, dtype=torch.float64) * 3.0
    edge_index = brute_force_graph(pos, 1.0, torch.zeros(40, dtype=torch.bool))
    x = torch.randn(40, IN, generator=g, dtype=torch.float64)
    layer = make_layer(lambda_init=1e9, learn_lambda=False)
    _, (_, alpha) = layer(x, edge_index, pos=pos, return_attention_weights=True)
    dist = torch.linalg.vector_norm(pos[edge_index[0]] - pos[edge_index[1]], dim=-1)
    nearest = torch.full((40,), math.inf, dtype=dist.dtype).scatter_reduce(
        0, edge_index[1], dist, "amin"
    )
    is_nearest = dist == nearest[edge_index[1]]
    assert is_nearest.sum() == torch.unique(edge_index[1]).numel()  # no ties
    assert (alpha[is_nearest] > 1 - 1e-9).all()
    assert (alpha[~is_nearest] < 1e-9).all()


def test_edge_order_and_sorted_input_give_the_same_results():
    x, pos, edge_index, _ = random_graph(8)
    order = torch.argsort(edge_index[1] * x.size(0) + edge_index[0])
    shuffled = torch.randperm(edge_index.size(1), generator=torch.Generator().manual_seed(9))
    x.requires_grad_(True)
    results = []
    for edges in (edge_index[:, order], edge_index[:, shuffled]):
        layer = make_layer()
        out, (_, alpha) = layer(x, edges, pos=pos, return_attention_weights=True)
        g = grads(out.sin().sum() + alpha[:, 0].square().sum(), [x, *layer.parameters()])
        results.append((out, alpha[torch.argsort(edges[1] * x.size(0) + edges[0])], *g))
    for a, b in zip(*results):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-12)


def test_bfloat16_close_to_float32_and_huge_penalties_stay_finite():
    x, pos, edge_index, _ = random_graph(9, num_nodes=60)
    layer = make_layer().float()
    x32, pos32 = x.float(), pos.float()
    ref = layer(x32, edge_index, pos=pos32)
    layer_bf16 = make_layer().to(torch.bfloat16)
    x16 = x32.to(torch.bfloat16).requires_grad_(True)
    out = layer_bf16(x16, edge_index, pos=pos32.to(torch.bfloat16))
    assert out.dtype == torch.bfloat16
    # bfloat16 keeps 8 significant bits; stated tolerance: 2% of the output scale
    # (the observed error is 0.6%).
    assert (out.float() - ref).abs().max() <= 0.02 * ref.abs().max()
    out.float().square().sum().backward()
    assert torch.isfinite(x16.grad).all() and torch.isfinite(layer_bf16.lambda_raw.grad).all()

    for dtype in (torch.float32, torch.bfloat16):
        huge = make_layer(lambda_init=1e30, learn_lambda=False).to(dtype)
        xh = x.to(dtype).requires_grad_(True)
        out, (_, alpha) = huge(xh, edge_index, pos=pos.to(dtype) * 1e3, return_attention_weights=True)
        out.sum().backward()
        assert torch.isfinite(out).all() and torch.isfinite(xh.grad).all()
        assert torch.isfinite(alpha).all() and ((alpha == 0) | (alpha == 1)).float().mean() > 0.99


@pytest.mark.parametrize("dtype, unit", [(torch.float32, 1.0), (torch.float64, 1e280)])
def test_penalties_that_overflow_attend_to_the_nearest_source(dtype, unit):
    # lambda * d is above the dtype's range on every edge into node 0 (lengths 2, 3 and
    # 4 units), which made every score -inf and the softmax NaN. The softmax does not
    # change when each target's nearest length is taken off its penalties; then the
    # nearest source costs 0 and takes all the attention, the limit of a large lambda.
    layer = make_layer(lambda_init=3e38, learn_lambda=False).to(dtype)
    x = torch.randn(4, IN, generator=torch.Generator().manual_seed(11), dtype=dtype, requires_grad=True)
    edge_index = torch.tensor([[1, 2, 3, 0], [0, 0, 0, 1]])
    edge_dist = torch.tensor([3.0, 2.0, 4.0, 1.0], dtype=dtype) * unit
    out, (_, alpha) = layer(x, edge_index, edge_dist, return_attention_weights=True)
    expected = torch.tensor([[0.0, 0.0], [1.0, 1.0], [0.0, 0.0], [1.0, 1.0]], dtype=dtype)
    assert torch.equal(alpha, expected)
    value = layer.lin_value(x)
    torch.testing.assert_close(out[:2], layer.lin_out(value[[2, 0]]), rtol=0, atol=1e-5)
    (gradient,) = grads(out.sum(), [x])
    assert torch.isfinite(gradient).all()


def test_dropout_is_unbiased_and_off_in_eval():
    x, pos, edge_index, _ = random_graph(10)
    layer = make_layer(dropout=0.3)
    layer.eval()
    expected = layer(x, edge_index, pos=pos)
    torch.testing.assert_close(expected, make_layer()(x, edge_index, pos=pos), rtol=0, atol=0)
    layer.train()
    torch.manual_seed(11)
    samples = torch.stack([layer(x, edge_index, pos=pos) for _ in range(200)]).detach()
    torch.manual_seed(11)
    torch.testing.assert_close(layer(x, edge_index, pos=pos), samples[0], rtol=0, atol=0)
    assert (samples[0] != expected).any()
    standard_error = samples.std(0) / math.sqrt(samples.size(0))
    assert ((samples.mean(0) - expected).abs() <= 5 * standard_error + 1e-12).all()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_matches_cpu():
    x, pos, edge_index, _ = random_graph(12)
    layer = make_layer()
    x.requires_grad_(True)
    out = layer(x, edge_index, pos=pos)
    want = grads(out.sin().sum(), [x, *layer.parameters()])
    layer_cuda = make_layer().cuda()
    xc = x.detach().cuda().requires_grad_(True)
    out_c = layer_cuda(xc, edge_index.cuda(), pos=pos.cuda())
    got = grads(out_c.sin().sum(), [xc, *layer_cuda.parameters()])
    torch.testing.assert_close(out_c.cpu(), out, rtol=0, atol=1e-10)
    for a, b in zip(got, want):
        torch.testing.assert_close(a.cpu(), b, rtol=0, atol=1e-10)


def test_bad_input_raises():
    x, pos, edge_index, _ = random_graph(13)
    layer = make_layer()
    dist = torch.linalg.vector_norm(pos[edge_index[0]] - pos[edge_index[1]], dim=-1)
    with pytest.raises(ValueError, match="neither"):
        layer(x, edge_index)
    with pytest.raises(ValueError, match="both"):
        layer(x, edge_index, dist, pos=pos)
    with pytest.raises(ValueError, match="x must be"):
        layer(x[:, :3], edge_index, dist)
    with pytest.raises(TypeError, match="int64"):
        layer(x, edge_index.int(), dist)
    with pytest.raises(ValueError, match=r"\[2, num_edges\]"):
        layer(x, edge_index.T, dist)
    with pytest.raises(ValueError, match="outside"):
        layer(x[:-5], edge_index, dist)
    with pytest.raises(ValueError, match="edge_dist must have shape"):
        layer(x, edge_index, dist[:-1])
    with pytest.raises(ValueError, match=">= 0"):
        layer(x, edge_index, -dist - 1)
    with pytest.raises(ValueError, match=">= 0"):
        layer(x, edge_index, dist.clone().fill_(math.nan))
    with pytest.raises(ValueError, match="pos must have shape"):
        layer(x, edge_index, pos=pos[:-1])
    # Lists failed with AttributeError: 'list' object has no attribute 'dim'.
    message = rf"^edge_dist must have shape \[num_edges={edge_index.size(1)}\] or \[num_edges, 1\], got list$"
    with pytest.raises(ValueError, match=message):
        layer(x, edge_index, dist.tolist())
    with pytest.raises(ValueError, match=rf"^pos must have shape \[num_nodes={x.size(0)}, dims\], got list$"):
        layer(x, edge_index, pos=pos.tolist())
    with pytest.raises(ValueError, match="divisible"):
        SpatialTransformerConv(4, 10, heads=4)
    with pytest.raises(ValueError, match="2 values"):
        SpatialTransformerConv(4, 8, heads=4, lambda_init=[1.0, 2.0])
    with pytest.raises(ValueError, match="learn_lambda=False"):
        SpatialTransformerConv(4, 8, heads=2, lambda_init=0.0)
    with pytest.raises(ValueError, match="dropout"):
        SpatialTransformerConv(4, 8, heads=2, dropout=1.0)
    with pytest.raises(ValueError, match="repeated edges"):
        layer(x, torch.cat([edge_index, edge_index[:, :1]], 1), pos=pos)
    fixed_zero = SpatialTransformerConv(4, 8, heads=2, lambda_init=0.0, learn_lambda=False)
    assert torch.equal(fixed_zero.lambdas, torch.zeros(2))
    assert not any(p is fixed_zero.lambdas for p in fixed_zero.parameters())


def test_features_of_another_dtype_than_the_layer_are_refused_by_name():
    # float64 features (torch.from_numpy) into a float32 layer failed in PyG's Linear:
    # "mat1 and mat2 must have the same dtype, but got Double and Float".
    x, pos, edge_index, _ = random_graph(13)
    layer = make_layer().float()
    message = r"^x is torch.float64 but the layer's parameters are torch.float32: convert x \(x.to\(torch.float32\)\) or the layer \(layer.to\(torch.float64\)\)$"
    with pytest.raises(TypeError, match=message):
        layer(x, edge_index, pos=pos.float())
    assert layer(x.float(), edge_index, pos=pos.float()).dtype == torch.float32
    with torch.autocast("cpu", dtype=torch.bfloat16):  # autocast casts x itself
        assert layer(x.float().to(torch.bfloat16), edge_index, pos=pos.float()).dtype == torch.bfloat16


def test_flags_must_be_bools():
    # Strings are true whatever they say: learn_lambda="False" learned lambda and
    # return_attention_weights="False" returned the weights.
    x, pos, edge_index, _ = random_graph(13)
    for flag in ("learn_lambda", "bias"):
        with pytest.raises(TypeError, match=rf"^{flag} must be a bool \(True or False\), got 'False'$"):
            SpatialTransformerConv(IN, OUT, HEADS, **{flag: "False"})
    with pytest.raises(TypeError, match=r"^return_attention_weights must be a bool \(True or False\), got 'False'$"):
        make_layer()(x, edge_index, pos=pos, return_attention_weights="False")
    fixed = SpatialTransformerConv(IN, OUT, HEADS, learn_lambda=np.False_, bias=np.False_)
    assert "lambda_raw" not in dict(fixed.named_parameters()) and fixed.lin_query.bias is None


@pytest.mark.parametrize("value", [2.0, 2, np.float32(2.0), np.array(2.0), torch.tensor(2.0), torch.tensor([2.0, 2.0])])
def test_lambda_init_takes_any_real_scalar(value):
    layer = SpatialTransformerConv(4, 8, heads=2, lambda_init=value, learn_lambda=False)
    assert layer.lambda_init == (2.0, 2.0) and torch.equal(layer.lambdas, torch.full((2,), 2.0))


@pytest.mark.parametrize("value", [True, np.bool_(True), torch.tensor(True), [1.0, True], "2", [[1.0, 2.0]], 2j])
def test_lambda_init_refuses_booleans_and_non_reals(value):
    with pytest.raises(TypeError, match="lambda_init must be a real number"):
        SpatialTransformerConv(4, 8, heads=2, lambda_init=value)


@pytest.mark.parametrize("learn_lambda", [True, False])
def test_lambda_init_beyond_the_parameter_dtype_is_refused(learn_lambda):
    # The penalties are created in the default dtype (float32): 1e39 was stored as inf,
    # which made every output NaN, even after .double().
    message = r"^lambda_init must be at most 3.40282e\+38 \(the largest torch.float32, the dtype the layer is created in\), got \(1.0, 1e\+39\)$"
    with pytest.raises(ValueError, match=message):
        SpatialTransformerConv(4, 8, heads=2, lambda_init=[1.0, 1e39], learn_lambda=learn_lambda)
    largest = SpatialTransformerConv(4, 8, heads=2, lambda_init=3e38, learn_lambda=False)
    assert torch.equal(largest.lambdas, torch.full((2,), 3e38))


@pytest.mark.parametrize("learn_lambda", [True, False])
def test_a_lambda_that_does_not_fit_the_layer_dtype_is_refused(learn_lambda):
    # .half() stored lambda = 1e5 as inf, and the layer returned NaN for every node with edges.
    layer = SpatialTransformerConv(4, 8, heads=2, lambda_init=1e5, learn_lambda=learn_lambda).half()
    x = torch.randn(3, 4, generator=torch.Generator().manual_seed(15)).half()
    edge_index = torch.tensor([[1, 2, 0], [0, 0, 1]])
    message = (
        r"^the distance penalties lambda must be finite, got \[inf, inf\] \(torch.float16\); a lambda above "
        r"65504 does not fit that dtype: convert the layer to a wider one or give a smaller lambda_init$"
    )
    with pytest.raises(ValueError, match=message):
        layer(x, edge_index, torch.ones(3).half())

def test_reset_parameters_is_reproducible_and_restores_lambda_init():
    layer = SpatialTransformerConv(IN, OUT, HEADS, lambda_init=[0.5, 3.0])
    torch.manual_seed(14)
    layer.reset_parameters()
    initial = {name: p.detach().clone() for name, p in layer.state_dict().items()}
    torch.testing.assert_close(layer.lambdas.detach(), torch.tensor([0.5, 3.0]))
    with torch.no_grad():
        for p in layer.parameters():
            p.add_(1.0)
    torch.manual_seed(14)
    layer.reset_parameters()
    for name, p in layer.state_dict().items():
        assert torch.equal(p, initial[name]), name

    default = SpatialTransformerConv(IN, 16, heads=4)
    torch.testing.assert_close(
        default.lambdas.detach(), torch.tensor([2**-1.5, 2**-0.5, 2**0.5, 2**1.5])
    )


def test_repr():
    assert repr(SpatialTransformerConv(64, 64, heads=4)) == "SpatialTransformerConv(64, 64, heads=4)"


@pytest.mark.parametrize("num_keys, size", [(1, 5), (7, 0), (50, 1000), (1000, 50)])
def test_counting_sort_equals_torch_stable_sort(num_keys, size):
    from stgraph._sorting import stable_argsort

    keys = torch.randint(0, num_keys, (size,), generator=torch.Generator().manual_seed(size))
    assert torch.equal(stable_argsort(keys, num_keys), torch.sort(keys, stable=True).indices)


@pytest.mark.parametrize(
    ("dropout", "error", "message"),
    # A string failed in Python's comparison; False passed as 0.
    [("0.1", TypeError, "dropout must be a real number, got str"),
     (False, TypeError, "dropout must be a real number, got bool"),
     (1.0, ValueError, "dropout must lie in [0, 1), got 1.0"),
     (float("nan"), ValueError, "dropout must lie in [0, 1), got nan")],
)
def test_dropout_must_be_a_probability_below_one(dropout, error, message):
    with pytest.raises(error, match=f"^{re.escape(message)}$"):
        SpatialTransformerConv(8, 8, heads=2, dropout=dropout)
    with pytest.raises(error, match=f"^{re.escape(message)}$"):
        TranscriptEncoder(4, 8, dropout=dropout)
