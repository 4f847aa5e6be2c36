"""Temporary stand-ins for stgraph.graph.radius_graph and stgraph.nn.SpatialTransformerConv.

Removed as soon as the real pieces land on main; same signatures.
"""
from __future__ import annotations

import math

import numpy as np
import torch
from scipy.spatial import cKDTree
from torch import Tensor, nn
from torch_geometric.utils import scatter, softmax


def radius_graph(pos, r, batch=None, *, loop=False, max_num_neighbors=None, backend="auto", return_distance=False):
    pos_np = np.asarray(pos, dtype=np.float64)
    if batch is not None and len(pos_np):
        b = np.asarray(batch)
        shift = 2 * (np.abs(pos_np).max() + r) + 1
        pos_np = pos_np.copy()
        pos_np[:, 0] += b * shift
    tree = cKDTree(pos_np)
    if max_num_neighbors is None:
        pairs = tree.query_pairs(r, output_type="ndarray")
        src = np.concatenate([pairs[:, 0], pairs[:, 1]])
        dst = np.concatenate([pairs[:, 1], pairs[:, 0]])
    else:
        d, j = tree.query(pos_np, k=max_num_neighbors + 1, distance_upper_bound=r)
        i = np.repeat(np.arange(len(pos_np)), max_num_neighbors + 1).reshape(j.shape)
        ok = (j < len(pos_np)) & (j != i)
        src, dst = j[ok], i[ok]
    order = np.lexsort((src, dst))
    edge_index = torch.from_numpy(np.stack([src[order], dst[order]]).astype(np.int64))
    if return_distance:
        d = np.linalg.norm(pos_np[edge_index[0].numpy()] - pos_np[edge_index[1].numpy()], axis=1)
        return edge_index, torch.from_numpy(d.astype(np.float32))
    return edge_index


class SpatialTransformerConv(nn.Module):
    def __init__(self, in_channels, out_channels, heads=4, *, lambda_init=None, learn_lambda=True, dropout=0.0, bias=True):
        super().__init__()
        self.heads, self.out_channels, self.head_channels = heads, out_channels, out_channels // heads
        self.lin_query = nn.Linear(in_channels, out_channels, bias=bias)
        self.lin_key = nn.Linear(in_channels, out_channels, bias=bias)
        self.lin_value = nn.Linear(in_channels, out_channels, bias=bias)
        self.lin_out = nn.Linear(out_channels, out_channels, bias=bias)
        init = torch.tensor([2.0 ** (h - (heads - 1) / 2) for h in range(heads)])
        self.lambda_raw = nn.Parameter(init + torch.log(-torch.expm1(-init)))

    def forward(self, x: Tensor, edge_index: Tensor, edge_dist: Tensor | None = None, *, pos=None, return_attention_weights=False):
        src, dst = edge_index
        h, c = self.heads, self.head_channels
        q = self.lin_query(x).view(-1, h, c) * c**-0.5
        k = self.lin_key(x).view(-1, h, c)
        v = self.lin_value(x).view(-1, h, c)
        score = (q[dst] * k[src]).sum(-1) - nn.functional.softplus(self.lambda_raw) * edge_dist.view(-1, 1)
        alpha = softmax(score, dst, num_nodes=x.size(0))
        out = scatter(v[src] * alpha.unsqueeze(-1), dst, 0, dim_size=x.size(0), reduce="sum")
        return self.lin_out(out.reshape(-1, self.out_channels))
