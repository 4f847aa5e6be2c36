"""The spot enhancer network: masked-spot reconstruction over a radius graph."""
from __future__ import annotations

import torch
from torch import Tensor

from stgraph.nn.conv import SpatialTransformerConv


class SpotEnhancer(torch.nn.Module):
    r"""Predicts the expression embedding of query spots from the visible spots around them.

    Every node is a spot: *visible* spots carry their expression embedding
    :math:`\mathbf{e}_j` (a low-rank projection of the whole profile), *query* spots
    (masked during training, unmeasured at inference) carry a learned mask token plus
    the embedding of a baseline :math:`\mathbf{b}_i`, the interpolation of the visible
    spots' low-rank scores at their position. ``num_layers`` blocks of
    :class:`~stgraph.nn.conv.SpatialTransformerConv` (attention
    :math:`\alpha_{ij} = \mathrm{softmax}_j(\mathbf{q}_i^\top\mathbf{k}_j/\sqrt{d} -
    \lambda_h d_{ij})`) pass messages along the edges *from visible spots only*, with
    pre-norm residual updates. The output is a correction of the baseline (all
    scores standardised per component):

    .. math::
        \hat{\mathbf{s}}_i = \mathbf{b}_i + \mathbf{W}_{\mathrm{out}}
        \,\mathrm{LN}(\mathbf{h}_i^{(L)}).

    :math:`\mathbf{W}_{\mathrm{out}}` starts at zero, so an untrained model returns
    the baseline.

    Args:
        embed_channels (int): Width of the input expression embedding.
        rank (int): Number of low-rank scores predicted (the baseline's width).
        hidden_channels (int): Width of the node states.
        num_layers (int): Number of attention blocks.
        heads (int): Attention heads per block.
        lambda_init (float): Initial distance penalty :math:`\lambda_h` per unit of
            :obj:`edge_dist`.
        dropout (float): Attention dropout.
    """

    def __init__(
        self,
        embed_channels: int,
        rank: int,
        hidden_channels: int = 32,
        num_layers: int = 2,
        heads: int = 4,
        lambda_init: float = 1.0,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        self.embed_channels = embed_channels
        self.rank = rank
        self.hidden_channels = hidden_channels
        self.lin_visible = torch.nn.Linear(embed_channels, hidden_channels)
        self.lin_query = torch.nn.Linear(rank, hidden_channels)
        self.mask_token = torch.nn.Parameter(torch.empty(hidden_channels))
        self.norms = torch.nn.ModuleList(torch.nn.LayerNorm(hidden_channels) for _ in range(num_layers))
        self.convs = torch.nn.ModuleList(
            SpatialTransformerConv(hidden_channels, hidden_channels, heads, lambda_init=lambda_init, dropout=dropout)
            for _ in range(num_layers)
        )
        self.norm_out = torch.nn.LayerNorm(hidden_channels)
        self.lin_out = torch.nn.Linear(hidden_channels, rank)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Re-initialises all weights; the output layer to zero (prediction = baseline)."""
        for module in (self.lin_visible, self.lin_query, *self.norms, *self.convs, self.norm_out):
            module.reset_parameters()
        torch.nn.init.normal_(self.mask_token, std=0.02)
        torch.nn.init.zeros_(self.lin_out.weight)
        torch.nn.init.zeros_(self.lin_out.bias)

    def forward(
        self, embedding: Tensor, baseline: Tensor, is_query: Tensor, edge_index: Tensor, edge_dist: Tensor
    ) -> Tensor:
        """Predicted scores ``[num_nodes, rank]`` (meaningful at query nodes).

        Args:
            embedding: ``[num_nodes, embed_channels]`` standardised embedding (ignored at queries).
            baseline: ``[num_nodes, rank]`` interpolated standardised scores.
            is_query: ``[num_nodes]`` bool.
            edge_index: ``[2, num_edges]`` edges whose sources are all visible.
            edge_dist: ``[num_edges]`` edge lengths; :class:`~stgraph.spots.EnhancerTrainer` gives
                them in spacings of the visible spots (so a sub-lattice task, of
                visible spacing 2, looks like the full lattice).
        """
        query = self.lin_query(baseline) + self.mask_token
        h = torch.where(is_query[:, None], query, self.lin_visible(embedding))
        for norm, conv in zip(self.norms, self.convs):
            h = h + torch.nn.functional.gelu(conv(norm(h), edge_index, edge_dist))
        return baseline + self.lin_out(self.norm_out(h))

    def __repr__(self) -> str:
        return (
            f"{self.__class__.__name__}(embed_channels={self.embed_channels}, rank={self.rank}, "
            f"hidden_channels={self.hidden_channels}, num_layers={len(self.convs)})"
        )
