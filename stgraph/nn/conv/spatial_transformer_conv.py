"""Sparse multi-head graph-transformer layer with a learnable distance penalty."""
from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from typing import Optional, Union

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor
from torch_geometric.nn.conv import MessagePassing
from torch_geometric.nn.dense.linear import Linear

from ..._validation import check_bool, check_dropout, check_int
from ._edge_attention import edge_attention
from ._edge_lengths import checked_edge_dist, shape_of


def _real_array(value: object, name: str) -> np.ndarray:
    """A real scalar (Python, NumPy, 0-d array or tensor) or a 1-D sequence of them, as float64.

    Booleans are refused: ``True`` is not a distance penalty.
    """
    refused = TypeError(f"{name} must be a real number or a sequence of them, got {value!r}")
    if isinstance(value, Tensor):
        value = value.detach().cpu()
        value = value.numpy() if value.dtype == torch.bool else value.double().numpy()
    if isinstance(value, np.ndarray):
        if value.dtype.kind not in "iuf" or value.ndim > 1:
            raise refused
        return value.astype(np.float64)
    if isinstance(value, Sequence) and not isinstance(value, str):
        items = [_real_array(v, name) for v in value]
        if any(item.ndim for item in items):
            raise refused
        return np.array([float(item) for item in items], dtype=np.float64)
    if not isinstance(value, numbers.Real) or isinstance(value, (bool, np.bool_)):
        raise refused
    return np.array(float(value))


def _default_lambdas(heads: int) -> tuple[float, ...]:
    # Doubling ladder centred on 1 / distance unit: head h sees length scale 1/lambda_h.
    return tuple(2.0 ** (h - (heads - 1) / 2) for h in range(heads))


def _inverse_softplus(value: Tensor) -> Tensor:
    # log(exp(v) - 1), written to stay finite for large and small v > 0.
    return value + torch.log(-torch.expm1(-value))


class SpatialTransformerConv(MessagePassing):
    r"""Multi-head dot-product attention over the edges of a spatial graph, with a
    per-head penalty on the edge length.

    For every head :math:`h` and edge :math:`j \rightarrow i` of length
    :math:`d_{ij}`:

    .. math::
        \alpha_{ij}^{h} = \mathrm{softmax}_{j \in \mathcal{N}(i)} \left(
        \frac{(\mathbf{W}_Q^h \mathbf{x}_i)^{\top} (\mathbf{W}_K^h \mathbf{x}_j)}
        {\sqrt{d}} - \lambda_h \, d_{ij} \right)

    .. math::
        \mathbf{x}^{\prime}_i = \mathbf{W}_O \, \big\Vert_{h=1}^{H}
        \sum_{j \in \mathcal{N}(i)} \alpha_{ij}^{h} \, \mathbf{W}_V^h \mathbf{x}_j

    where :math:`d` = ``out_channels // heads`` is the width of one head and
    :math:`\Vert` concatenates the heads. :math:`\lambda_h \ge 0` sets the length
    scale :math:`1/\lambda_h` of head :math:`h`: large values concentrate the
    attention on the nearest neighbours, 0 leaves only the content term. A node
    attends only to the sources of its incoming edges (add self-loops to the graph
    if a node should see itself); a node without incoming edges gets
    :math:`\mathbf{W}_O \mathbf{0}`, i.e. the output bias.

    Scores and aggregation are sparse-dense matrix products on the CSR pattern of
    the graph inside a dedicated autograd function: forward and backward keep
    :math:`O(|\mathcal{E}| \cdot H)` per-edge state (the attention weights) instead
    of the :math:`O(|\mathcal{E}| \cdot H \cdot d)` messages of
    :class:`torch_geometric.nn.conv.TransformerConv`. Edges sorted by (target,
    source), as radius graphs produce them, are used as they are; any other order
    costs one sort per call. Repeated edges are rejected. Reduced-precision inputs
    (``bfloat16``, ``float16``) are accumulated in ``float32``; a penalty that the
    layer's dtype cannot hold (above 65504 after ``.half()``) is stored as inf, and
    the forward pass then raises a :obj:`ValueError`. Only first
    derivatives are available: a backward pass with ``create_graph=True`` (double
    backward, e.g. a gradient penalty) raises a :obj:`RuntimeError`.

    Args:
        in_channels (int): Size of each input node feature.
        out_channels (int): Total output width (all heads together); must be
            divisible by :obj:`heads`. ``in_channels == out_channels`` allows
            residual connections.
        heads (int, optional): Number of attention heads. (default: :obj:`4`)
        lambda_init (float or sequence of float, optional): Initial distance
            penalty :math:`\lambda_h`, in inverse units of the coordinates (µm⁻¹ for
            stgraph data): one real number (Python, NumPy or 0-d tensor) for all
            heads or one per head, each at most the largest number of the default
            dtype (3.4e38 for float32), in which the layer stores them; booleans
            raise a :obj:`TypeError`. :obj:`None`
            gives the doubling ladder :math:`\lambda_h = 2^{h - (H-1)/2}`,
            :math:`h = 0, \dots, H-1` (e.g. 0.35, 0.71, 1.41, 2.83 for four heads),
            so that heads start at different length scales. (default: :obj:`None`)
        learn_lambda (bool, optional): Learn :math:`\lambda_h = \mathrm{softplus}
            (\rho_h)` through a raw parameter :math:`\rho_h` (then every
            :obj:`lambda_init` must be > 0); otherwise keep :obj:`lambda_init`
            fixed (0 allowed). (default: :obj:`True`)
        dropout (float, optional): Probability of dropping an attention weight
            during training (the kept ones are rescaled by :math:`1/(1-p)`), in
            :math:`[0, 1)`; a value that is not a real number (a string, a
            boolean) raises a :obj:`TypeError`. (default: :obj:`0.0`)
        bias (bool, optional): Learn additive biases in the query, key, value and
            output projections. The key's bias :math:`\mathbf{b}_K` adds the same
            :math:`\mathbf{q}_i^\top \mathbf{b}_K / \sqrt{d}` to every logit of target
            :math:`i`, which the softmax cancels: it has no effect and gets no
            gradient (as in PyG's :class:`~torch_geometric.nn.conv.TransformerConv`);
            it is kept so that saved models and seeded initialisations stay as
            they were. (default: :obj:`True`)

    Shapes:
        - **input:** node features :math:`(|\mathcal{V}|, F_{in})`, edge indices
          :math:`(2, |\mathcal{E}|)` (sources in row 0, targets in row 1), edge
          lengths :math:`(|\mathcal{E}|)` *or* positions :math:`(|\mathcal{V}|, D)`
        - **output:** node features :math:`(|\mathcal{V}|, F_{out})`, or
          :math:`((|\mathcal{V}|, F_{out}), ((2, |\mathcal{E}|), (|\mathcal{E}|, H)))`
          if :obj:`return_attention_weights=True`
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        heads: int = 4,
        *,
        lambda_init: Union[float, Sequence[float], None] = None,
        learn_lambda: bool = True,
        dropout: float = 0.0,
        bias: bool = True,
    ) -> None:
        super().__init__(aggr="add", node_dim=0)
        for name, value in (("in_channels", in_channels), ("out_channels", out_channels),
                            ("heads", heads)):
            check_int(name, value)
        learn_lambda = check_bool("learn_lambda", learn_lambda)
        bias = check_bool("bias", bias)
        if out_channels % heads:
            raise ValueError(
                f"out_channels ({out_channels}) must be divisible by heads ({heads})"
            )
        dropout = check_dropout(dropout)

        self.in_channels = in_channels
        self.out_channels = out_channels
        self.heads = heads
        self.head_channels = out_channels // heads
        self.learn_lambda = learn_lambda
        self.dropout = dropout
        self.lambda_init = self._check_lambda_init(lambda_init, heads, learn_lambda)

        self.lin_query = Linear(in_channels, out_channels, bias=bias)
        self.lin_key = Linear(in_channels, out_channels, bias=bias)
        self.lin_value = Linear(in_channels, out_channels, bias=bias)
        self.lin_out = Linear(out_channels, out_channels, bias=bias)
        if learn_lambda:
            self.lambda_raw = torch.nn.Parameter(torch.empty(heads))
        else:
            self.register_buffer("lambda_fixed", torch.empty(heads))
        self.reset_parameters()

    @staticmethod
    def _check_lambda_init(
        lambda_init: Union[float, Sequence[float], None], heads: int, learn_lambda: bool
    ) -> tuple[float, ...]:
        if lambda_init is None:
            return _default_lambdas(heads)
        array = _real_array(lambda_init, "lambda_init")
        values = (float(array),) * heads if array.ndim == 0 else tuple(float(v) for v in array)
        if len(values) != heads:
            raise ValueError(
                f"lambda_init has {len(values)} values but the layer has {heads} heads"
            )
        if not all(math.isfinite(v) and v >= 0 for v in values):
            raise ValueError(f"lambda_init must be finite and >= 0, got {values}")
        # The penalties are stored in the dtype the layer is created in, where a larger
        # value would become inf (and every output NaN).
        dtype = torch.get_default_dtype()
        largest = torch.finfo(dtype).max
        if max(values) > largest:
            raise ValueError(
                f"lambda_init must be at most {largest:g} (the largest {dtype}, the dtype the "
                f"layer is created in), got {values}"
            )
        if learn_lambda and min(values) == 0:
            raise ValueError(
                "lambda_init must be > 0 when learn_lambda=True (lambda = softplus(raw) "
                "never reaches 0); use learn_lambda=False for a fixed lambda of 0"
            )
        return values

    def reset_parameters(self) -> None:
        r"""Resets all learnable parameters of the module (the distance penalties
        to :obj:`lambda_init`)."""
        super().reset_parameters()
        for lin in (self.lin_query, self.lin_key, self.lin_value, self.lin_out):
            lin.reset_parameters()
        with torch.no_grad():
            init = torch.tensor(self.lambda_init, dtype=torch.float64)
            if self.learn_lambda:
                self.lambda_raw.copy_(_inverse_softplus(init))
            else:
                self.lambda_fixed.copy_(init)

    @property
    def lambdas(self) -> Tensor:
        r"""The per-head distance penalties :math:`\lambda_h \ge 0`, shape ``[heads]``."""
        return F.softplus(self.lambda_raw) if self.learn_lambda else self.lambda_fixed

    def forward(
        self,
        x: Tensor,
        edge_index: Tensor,
        edge_dist: Optional[Tensor] = None,
        *,
        pos: Optional[Tensor] = None,
        return_attention_weights: bool = False,
    ) -> Union[Tensor, tuple[Tensor, tuple[Tensor, Tensor]]]:
        r"""Runs the forward pass of the module.

        Args:
            x (torch.Tensor): Node features ``[num_nodes, in_channels]``.
            edge_index (torch.Tensor): ``[2, num_edges]`` int64 edges ``j -> i``
                (source row 0, target row 1), in any order, none repeated.
            edge_dist (torch.Tensor, optional): Edge lengths :math:`d_{ij} \ge 0`,
                ``[num_edges]`` or ``[num_edges, 1]``.
            pos (torch.Tensor, optional): Node positions ``[num_nodes, dims]``,
                from which the Euclidean edge lengths are computed. Give exactly
                one of :obj:`edge_dist` and :obj:`pos`.
            return_attention_weights (bool, optional): Also return
                ``(edge_index, alpha)`` with the attention weights ``alpha``
                ``[num_edges, heads]`` (before dropout; they sum to 1 over the
                incoming edges of each node; float32 for half-precision input).
        """
        return_attention_weights = check_bool("return_attention_weights", return_attention_weights)
        self._check_inputs(x, edge_index)
        edge_dist = self._edge_lengths(edge_index, edge_dist, pos, x.size(0))

        heads, channels = self.heads, self.head_channels
        query = self.lin_query(x).view(-1, heads, channels) * channels**-0.5
        key = self.lin_key(x).view(-1, heads, channels)
        value = self.lin_value(x).view(-1, heads, channels)
        out, alpha = edge_attention(
            query,
            key,
            value,
            edge_index,
            edge_dist,
            self._finite_lambdas(),
            dropout=self.dropout if self.training else 0.0,
            need_weights=return_attention_weights,
        )
        out = self.lin_out(out.reshape(-1, self.out_channels))
        if return_attention_weights:
            return out, (edge_index, alpha)
        return out

    def _finite_lambdas(self) -> Tensor:
        """:attr:`lambdas`, after checking that they are finite (an infinite one gives NaN)."""
        lambdas = self.lambdas
        if not bool(torch.isfinite(lambdas).all()):
            raise ValueError(
                f"the distance penalties lambda must be finite, got {lambdas.tolist()} ({lambdas.dtype}); "
                f"a lambda above {torch.finfo(lambdas.dtype).max:g} does not fit that dtype: "
                "convert the layer to a wider one or give a smaller lambda_init"
            )
        return lambdas

    def _check_inputs(self, x: Tensor, edge_index: Tensor) -> None:
        if not isinstance(x, Tensor) or x.dim() != 2 or x.size(1) != self.in_channels:
            raise ValueError(
                f"x must be a tensor of shape [num_nodes, {self.in_channels}], got {shape_of(x)}"
            )
        if not x.is_floating_point():
            raise TypeError(f"x must be floating point, got {x.dtype}")
        dtype = self.lin_query.weight.dtype
        # Under autocast the projections cast x themselves.
        if x.dtype != dtype and not torch.is_autocast_enabled(x.device.type):
            raise TypeError(
                f"x is {x.dtype} but the layer's parameters are {dtype}: convert x (x.to({dtype})) or the "
                f"layer (layer.to({x.dtype}))"
            )
        if not isinstance(edge_index, Tensor) or edge_index.dim() != 2 or edge_index.size(0) != 2:
            raise ValueError(
                f"edge_index must be a tensor of shape [2, num_edges], got {shape_of(edge_index)}"
            )
        if edge_index.dtype != torch.long:
            raise TypeError(f"edge_index must be int64 (torch.long), got {edge_index.dtype}")
        if edge_index.numel() and (edge_index.min() < 0 or edge_index.max() >= x.size(0)):
            raise ValueError(
                f"edge_index refers to nodes outside [0, {x.size(0)}) (x has {x.size(0)} rows)"
            )

    @staticmethod
    def _edge_lengths(
        edge_index: Tensor, edge_dist: Optional[Tensor], pos: Optional[Tensor], num_nodes: int
    ) -> Tensor:
        if (edge_dist is None) == (pos is None):
            raise ValueError(
                "give the edge lengths exactly one way: edge_dist [num_edges] or "
                "pos [num_nodes, dims]"
                + (" (both were given)" if pos is not None else " (neither was given)")
            )
        num_edges = edge_index.size(1)
        if pos is not None:
            if not isinstance(pos, Tensor) or pos.dim() != 2 or pos.size(0) != num_nodes:
                raise ValueError(
                    f"pos must have shape [num_nodes={num_nodes}, dims], got {shape_of(pos)}"
                )
            if not pos.is_floating_point():
                raise TypeError(f"pos must be floating point, got {pos.dtype}")
            if not torch.isfinite(pos).all():
                raise ValueError("pos contains NaN or infinite coordinates")
            return torch.linalg.vector_norm(pos[edge_index[0]] - pos[edge_index[1]], dim=-1)
        return checked_edge_dist(edge_dist, num_edges)

    def __repr__(self) -> str:
        return (
            f"{self.__class__.__name__}({self.in_channels}, {self.out_channels}, "
            f"heads={self.heads})"
        )
