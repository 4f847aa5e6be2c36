"""Memory-bounded multi-head attention over the edges of a graph.

Per head, the edge scores are a sampled dense-dense product (SDDMM) on the sparsity
pattern of the graph and the aggregation a sparse-dense product (SpMM) with a CSR
matrix holding the attention weights, so no tensor of size
``num_edges x heads x channels`` is ever formed: forward and backward keep the
attention weights (``num_edges x heads``) plus a few per-edge vectors of one head.
"""
from __future__ import annotations

import math
import warnings
from typing import Optional

import torch
from torch import Tensor
from torch.autograd.function import FunctionCtx

from ..._sorting import stable_argsort


def _compute_dtype(dtype: torch.dtype) -> torch.dtype:
    # Half-precision inputs are accumulated in float32; float64 stays float64.
    return torch.promote_types(dtype, torch.float32)


def _crow(row: Tensor, num_rows: int) -> Tensor:
    """CSR row pointer of a sorted row index."""
    crow = row.new_zeros(num_rows + 1)
    torch.cumsum(torch.bincount(row, minlength=num_rows), 0, out=crow[1:])
    return crow


def _csr(crow: Tensor, col: Tensor, values: Tensor, num_cols: int) -> Tensor:
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "Sparse CSR tensor support is in beta", UserWarning)
        return torch.sparse_csr_tensor(
            crow, col, values, (crow.numel() - 1, num_cols), check_invariants=False
        )


def _sddmm_(out: Tensor, crow: Tensor, col: Tensor, a: Tensor, b: Tensor) -> Tensor:
    """``out[e] = a[row(e)] . b[col(e)]`` for every stored entry, written into ``out``."""
    out.zero_()  # read as the additive input of sampled_addmm
    pattern = _csr(crow, col, out, b.size(0))
    torch.sparse.sampled_addmm(pattern, a, b.T, out=pattern)
    return out


#: Raised by a backward pass that builds a graph of its own (``create_graph=True``).
NO_DOUBLE_BACKWARD = (
    "the attention of SpatialTransformerConv has no second derivative: backward with "
    "create_graph=True (double backward, e.g. a gradient penalty or a Hessian-vector "
    "product) is not supported"
)


def _segment(values: Tensor, crow: Tensor, reduce: str) -> Tensor:
    return torch.segment_reduce(values, reduce, offsets=crow)


class _EdgeAttention(torch.autograd.Function):
    """Attention over edges sorted by (target, source); see :func:`edge_attention`."""

    @staticmethod
    def forward(  # type: ignore[override]
        ctx: FunctionCtx,
        query: Tensor,
        key: Tensor,
        value: Tensor,
        lam: Tensor,
        edge_dist: Tensor,
        src: Tensor,
        dst: Tensor,
        dropout: float,
    ) -> tuple[Tensor, Tensor]:
        num_nodes, heads, _ = query.shape
        dtype = _compute_dtype(query.dtype)
        # Head-major copies: one contiguous [num_nodes, channels] matrix per head.
        q, k, v = (t.to(dtype).transpose(0, 1).contiguous() for t in (query, key, value))
        lam_c, dist = lam.to(dtype), edge_dist.to(dtype)
        crow = _crow(dst, num_nodes)
        # The softmax over the edges into i is unchanged by taking i's nearest length
        # off every penalty. Its nearest source then costs exactly 0, so a lambda * d
        # beyond the dtype's range leaves a finite maximum instead of all -inf (NaN),
        # and the weights reach their large-lambda limit: all on the nearest source.
        excess = dist - _segment(dist, crow, "min").index_select(0, dst)

        alpha = q.new_empty(heads, src.numel())
        out = torch.empty_like(v)
        keep = torch.empty_like(alpha, dtype=torch.bool) if dropout > 0 else None
        for h in range(heads):
            s = _sddmm_(alpha[h], crow, src, q[h], k[h])
            s.addcmul_(excess, lam_c[h], value=-1.0)
            # Subtracting the maximum per target keeps exp finite.
            s.sub_(_segment(s, crow, "max").index_select(0, dst)).exp_()
            # A target with edges sums to >= 1 (its maximum gives exp(0) = 1); the
            # clamp only touches targets without edges, whose output stays 0.
            s.div_(_segment(s, crow, "sum").clamp_(min=1.0).index_select(0, dst))
            weight = s
            if keep is not None:
                torch.ge(torch.rand_like(s), dropout, out=keep[h])
                weight = s * keep[h] / (1.0 - dropout)
            torch.mm(_csr(crow, src, weight, num_nodes), v[h], out=out[h])

        ctx.save_for_backward(q, k, v, lam, edge_dist, src, dst, crow, out, alpha, keep)
        ctx.in_dtypes = (query.dtype, key.dtype, value.dtype)
        ctx.dropout = dropout
        # Unused outputs then get None gradients, which backward skips.
        ctx.set_materialize_grads(False)
        return out.transpose(0, 1).to(query.dtype), alpha

    @staticmethod
    def backward(  # type: ignore[override]
        ctx: FunctionCtx, grad_out: Optional[Tensor], grad_alpha: Optional[Tensor]
    ) -> tuple[Optional[Tensor], ...]:
        # Autograd enables grad mode here only for create_graph=True. The gradients
        # below come from tensors saved without a graph: a second derivative through
        # them would be silently wrong (once_differentiable caught it only on paths
        # that autograd happened to traverse), so it is refused outright.
        if torch.is_grad_enabled():
            raise RuntimeError(NO_DOUBLE_BACKWARD)
        q, k, v, lam, edge_dist, src, dst, crow, out, alpha, keep = ctx.saved_tensors
        need_q, need_k, need_v, need_lam, need_dist = ctx.needs_input_grad[:5]
        num_nodes = q.size(1)
        lam_c, dist = lam.to(out.dtype), edge_dist.to(out.dtype)
        if grad_out is None:
            dout = torch.zeros_like(out)
        else:
            dout = grad_out.to(out.dtype).transpose(0, 1).contiguous()
        # Softmax backward needs sum_j alpha_ij dL/dalpha_ij per target; the part
        # flowing through the output equals dout_i . out_i (dropout included).
        row_dot = (dout * out).sum(-1)

        # Transposed pattern (rows = sources) for the gradients of keys and values;
        # a stable sort by source keeps the targets sorted within each row.
        to_transposed = stable_argsort(src, num_nodes)
        crow_t = _crow(src, num_nodes)
        col_t = dst.index_select(0, to_transposed)

        dq = torch.zeros_like(q) if need_q else None
        dk = torch.zeros_like(k) if need_k else None
        dv = torch.zeros_like(v) if need_v else None
        dlam = torch.zeros_like(lam_c) if need_lam else None
        ddist = torch.zeros_like(dist) if need_dist else None
        d_alpha = torch.empty_like(alpha[0])
        for h in range(alpha.size(0)):
            a = alpha[h]
            _sddmm_(d_alpha, crow, src, dout[h], v[h])
            weight = a
            if keep is not None:
                d_alpha.mul_(keep[h]).div_(1.0 - ctx.dropout)
                weight = a * keep[h] / (1.0 - ctx.dropout)
            if dv is not None:
                weight_t = weight.index_select(0, to_transposed)
                torch.mm(_csr(crow_t, col_t, weight_t, num_nodes), dout[h], out=dv[h])
            row_dot_h = row_dot[h]
            if grad_alpha is not None:
                ga = grad_alpha[h].to(out.dtype)
                d_alpha.add_(ga)
                row_dot_h = row_dot_h + _segment(a * ga, crow, "sum")
            d_score = d_alpha.sub_(row_dot_h.index_select(0, dst)).mul_(a)
            if dq is not None:
                torch.mm(_csr(crow, src, d_score, num_nodes), k[h], out=dq[h])
            if dk is not None:
                d_score_t = d_score.index_select(0, to_transposed)
                torch.mm(_csr(crow_t, col_t, d_score_t, num_nodes), q[h], out=dk[h])
            if dlam is not None:
                dlam[h] = -torch.dot(d_score, dist)
            if ddist is not None:
                ddist.addcmul_(d_score, lam_c[h], value=-1.0)

        def cast(grad: Optional[Tensor], dtype: torch.dtype) -> Optional[Tensor]:
            return None if grad is None else grad.transpose(0, 1).to(dtype)

        q_dtype, k_dtype, v_dtype = ctx.in_dtypes
        return (
            cast(dq, q_dtype),
            cast(dk, k_dtype),
            cast(dv, v_dtype),
            None if dlam is None else dlam.to(lam.dtype),
            None if ddist is None else ddist.to(edge_dist.dtype),
            None,
            None,
            None,
        )


def _sort_by_target(src: Tensor, dst: Tensor) -> Optional[Tensor]:
    """Permutation sorting the edges by (target, source), or None if already sorted.

    Raises a ValueError on repeated edges, which a CSR matrix cannot hold."""
    if src.numel() < 2:
        return None
    ascending = (dst[1:] > dst[:-1]) | ((dst[1:] == dst[:-1]) & (src[1:] > src[:-1]))
    if bool(ascending.all()):
        return None
    order = torch.argsort(dst * (int(src.max()) + 1) + src)
    src_sorted, dst_sorted = src[order], dst[order]
    if bool(((src_sorted[1:] == src_sorted[:-1]) & (dst_sorted[1:] == dst_sorted[:-1])).any()):
        raise ValueError("edge_index contains repeated edges (the same j -> i twice)")
    return order


def edge_attention(
    query: Tensor,
    key: Tensor,
    value: Tensor,
    edge_index: Tensor,
    edge_dist: Tensor,
    lam: Tensor,
    *,
    dropout: float = 0.0,
    need_weights: bool = False,
) -> tuple[Tensor, Optional[Tensor]]:
    r"""Distance-biased multi-head attention over the edges ``j -> i`` of a graph.

    Computes :math:`\alpha_{ij}^h = \mathrm{softmax}_{j \in \mathcal{N}(i)}
    (q_i^h \cdot k_j^h - \lambda_h d_{ij})` and :math:`o_i^h = \sum_j \alpha_{ij}^h
    v_j^h`; the caller scales ``query`` by :math:`1/\sqrt{d}`.

    Parameters
    ----------
    query, key, value
        ``[num_nodes, heads, channels]``.
    edge_index
        ``[2, num_edges]`` int64 (source row 0, target row 1) without repeated
        edges. Edges sorted by (target, source) are used as they are; any other
        order costs one sort.
    edge_dist
        ``[num_edges]`` non-negative edge lengths.
    lam
        ``[heads]`` distance penalties.
    dropout
        Probability of zeroing an attention weight (rescaling the rest); pass 0
        outside training.
    need_weights
        Also return the attention weights.

    Returns
    -------
    ``(out, alpha)``: ``out`` ``[num_nodes, heads, channels]`` in the input dtype
    (zeros for targets without edges) and, if ``need_weights``, ``alpha``
    ``[num_edges, heads]`` in the order of ``edge_index``, before dropout, in
    float32 for half-precision inputs (else None).
    """
    src, dst = edge_index[0], edge_index[1]
    order = _sort_by_target(src, dst)
    if order is not None:
        src, dst, edge_dist = src[order], dst[order], edge_dist[order]
    out, alpha = _EdgeAttention.apply(query, key, value, lam, edge_dist, src, dst, dropout)
    if not need_weights:
        return out, None
    alpha = alpha.T
    if order is not None:
        alpha = alpha.new_empty(alpha.shape).index_copy(0, order, alpha)
    return out, alpha.contiguous()
