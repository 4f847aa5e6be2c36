"""Memory-bounded multi-head attention over an edge list.

The attention of every edge ``j -> i`` is computed chunk by chunk: per-edge tensors
of size ``E x heads x channels`` only ever exist for one chunk of edges, so peak
memory grows with ``E x heads`` (the attention weights) instead of
``E x heads x channels``.  Backward recomputes the per-chunk gathers rather than
storing them.
"""
from __future__ import annotations

import math
from typing import Iterator

import torch
from torch import Tensor
from torch.autograd.function import FunctionCtx, once_differentiable

# Elements of one chunk temporary (``chunk x heads x channels``): 2**20 floats is
# 4 MiB in float32, small next to the per-edge state yet large enough to amortise
# the Python loop.
_CHUNK_ELEMENTS = 2**20


def default_chunk_size(heads: int, head_channels: int) -> int:
    """Number of edges per chunk so that a chunk temporary holds ``2**20`` elements."""
    return max(1, _CHUNK_ELEMENTS // (heads * head_channels))


def _chunks(num_edges: int, chunk_size: int) -> Iterator[slice]:
    for start in range(0, num_edges, chunk_size):
        yield slice(start, min(start + chunk_size, num_edges))


def _compute_dtype(dtype: torch.dtype) -> torch.dtype:
    # Half-precision inputs are accumulated in float32; float64 stays float64.
    return torch.promote_types(dtype, torch.float32)


class _EdgeAttention(torch.autograd.Function):
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
        chunk_size: int,
    ) -> tuple[Tensor, Tensor]:
        num_nodes, heads, channels = query.shape
        dtype = _compute_dtype(query.dtype)
        q, k, v = query.to(dtype), key.to(dtype), value.to(dtype)
        lam_c, dist = lam.to(dtype), edge_dist.to(dtype)
        num_edges = src.numel()

        # Pass 1: scores and their maximum per target (numerical stability).
        score = q.new_empty(num_edges, heads)
        seg_max = q.new_full((num_nodes, heads), -math.inf)
        for c in _chunks(num_edges, chunk_size):
            s = score[c]
            qk = q.index_select(0, dst[c]).mul_(k.index_select(0, src[c]))
            torch.sum(qk, dim=-1, out=s)
            s.addcmul_(dist[c, None], lam_c, value=-1.0)
            seg_max.scatter_reduce_(0, dst[c, None].expand(-1, heads), s, "amax")

        # Pass 2: exponentials (in place of the scores), their sum per target and
        # the unnormalised aggregation of values.
        denom = q.new_zeros(num_nodes, heads)
        out = q.new_zeros(num_nodes, heads, channels)
        keep = (
            torch.empty(num_edges, heads, dtype=torch.bool, device=q.device)
            if dropout > 0
            else None
        )
        for c in _chunks(num_edges, chunk_size):
            e = score[c]
            e.sub_(seg_max.index_select(0, dst[c])).exp_()
            denom.index_add_(0, dst[c], e)
            weight = e
            if keep is not None:
                keep[c] = torch.rand(e.shape, device=e.device) >= dropout
                weight = e * keep[c] / (1.0 - dropout)
            out.index_add_(0, dst[c], v.index_select(0, src[c]).mul_(weight[..., None]))

        # A target with edges has denom >= 1 (its maximum contributes exp(0) = 1);
        # clamping only touches targets without edges, whose output stays 0.
        denom.clamp_(min=1.0)
        out.div_(denom[..., None])
        alpha = score
        for c in _chunks(num_edges, chunk_size):
            alpha[c].div_(denom.index_select(0, dst[c]))

        ctx.save_for_backward(query, key, value, lam, edge_dist, src, dst, out, alpha, keep)
        ctx.dropout = dropout
        ctx.chunk_size = chunk_size
        # Unused outputs then get None gradients, which backward skips.
        ctx.set_materialize_grads(False)
        return out.to(query.dtype), alpha

    @staticmethod
    @once_differentiable
    def backward(  # type: ignore[override]
        ctx: FunctionCtx, grad_out: Tensor | None, grad_alpha: Tensor | None
    ) -> tuple[Tensor | None, ...]:
        query, key, value, lam, edge_dist, src, dst, out, alpha, keep = ctx.saved_tensors
        dtype = out.dtype
        q, k, v = query.to(dtype), key.to(dtype), value.to(dtype)
        lam_c, dist = lam.to(dtype), edge_dist.to(dtype)
        dout = torch.zeros_like(out) if grad_out is None else grad_out.to(dtype)
        need_q, need_k, need_v, need_lam, need_dist = ctx.needs_input_grad[:5]
        scale = 1.0 / (1.0 - ctx.dropout)

        # Softmax backward needs sum_j alpha_ij * dL/dalpha_ij per target; for the
        # part flowing through the output this equals dout_i . out_i (per head).
        row_dot = (dout * out).sum(-1)
        if grad_alpha is not None:
            grad_alpha = grad_alpha.to(dtype)
            for c in _chunks(src.numel(), ctx.chunk_size):
                row_dot.index_add_(0, dst[c], alpha[c] * grad_alpha[c])

        dq = torch.zeros_like(q) if need_q else None
        dk = torch.zeros_like(k) if need_k else None
        dv = torch.zeros_like(v) if need_v else None
        dlam = torch.zeros_like(lam_c) if need_lam else None
        ddist = torch.empty_like(dist) if need_dist else None
        for c in _chunks(src.numel(), ctx.chunk_size):
            a = alpha[c]
            dout_i = dout.index_select(0, dst[c])
            d_alpha = torch.linalg.vecdot(dout_i, v.index_select(0, src[c]))
            weight = a
            if keep is not None:
                d_alpha.mul_(keep[c]).mul_(scale)
                weight = a * keep[c] * scale
            if dv is not None:
                dv.index_add_(0, src[c], dout_i.mul_(weight[..., None]))
            if grad_alpha is not None:
                d_alpha.add_(grad_alpha[c])
            d_score = d_alpha.sub_(row_dot.index_select(0, dst[c])).mul_(a)
            if dq is not None:
                dq.index_add_(0, dst[c], k.index_select(0, src[c]).mul_(d_score[..., None]))
            if dk is not None:
                dk.index_add_(0, src[c], q.index_select(0, dst[c]).mul_(d_score[..., None]))
            if dlam is not None:
                dlam.sub_(dist[c] @ d_score)
            if ddist is not None:
                torch.mv(d_score, lam_c, out=ddist[c]).neg_()

        def cast(grad: Tensor | None, like: Tensor) -> Tensor | None:
            return None if grad is None else grad.to(like.dtype)

        return (
            cast(dq, query),
            cast(dk, key),
            cast(dv, value),
            cast(dlam, lam),
            cast(ddist, edge_dist),
            None,
            None,
            None,
            None,
        )


def edge_attention(
    query: Tensor,
    key: Tensor,
    value: Tensor,
    edge_index: Tensor,
    edge_dist: Tensor,
    lam: Tensor,
    *,
    dropout: float = 0.0,
    chunk_size: int | None = None,
) -> tuple[Tensor, Tensor]:
    r"""Distance-biased multi-head attention over the edges ``j -> i`` of a graph.

    Computes :math:`\alpha_{ij}^h = \mathrm{softmax}_{j \in \mathcal{N}(i)}
    (q_i^h \cdot k_j^h - \lambda_h d_{ij})` and :math:`o_i^h = \sum_j \alpha_{ij}^h
    v_j^h`; the caller scales ``query`` by :math:`1/\sqrt{d}`.

    Parameters
    ----------
    query, key, value
        ``[num_nodes, heads, channels]``.
    edge_index
        ``[2, num_edges]`` (source row 0, target row 1), any order.
    edge_dist
        ``[num_edges]`` non-negative edge lengths.
    lam
        ``[heads]`` distance penalties.
    dropout
        Probability of zeroing an attention weight (rescaling the rest); pass 0
        outside training.
    chunk_size
        Edges per chunk; ``None`` picks :func:`default_chunk_size`.

    Returns
    -------
    ``(out, alpha)``: ``out`` ``[num_nodes, heads, channels]`` in the input dtype
    (zeros for targets without edges) and ``alpha`` ``[num_edges, heads]`` before
    dropout, in float32 for half-precision inputs.
    """
    heads, channels = query.shape[1:]
    if chunk_size is None:
        chunk_size = default_chunk_size(heads, channels)
    src, dst = edge_index[0], edge_index[1]
    return _EdgeAttention.apply(query, key, value, lam, edge_dist, src, dst, dropout, chunk_size)
