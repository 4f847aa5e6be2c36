"""Adapter giving any PyG layer the call ``layer(x, edge_index, edge_dist)``."""
from __future__ import annotations

import inspect
from typing import Any, Optional, Union

from torch import Tensor
from torch_geometric.nn.conv import MessagePassing

from ..._validation import check_bool


#: Attributes under which PyG's edge-feature layers record the width of their edge features.
_EDGE_WIDTH_ATTRIBUTES = ("edge_dim", "in_edge_channels")  # GATConv, TransformerConv, ...; GeneralConv


def _check_one_edge_feature(conv: MessagePassing) -> None:
    """Raise a ValueError unless ``conv`` takes one edge feature, where it records a width.

    A width of None makes ``GATConv`` drop ``edge_attr`` silently and ``TransformerConv``
    or ``GeneralConv`` fail on a shape or an attribute; another width fails on a matmul.
    """
    for attribute in _EDGE_WIDTH_ATTRIBUTES:
        if hasattr(conv, attribute) and getattr(conv, attribute) != 1:
            raise ValueError(
                f"{type(conv).__name__} was built with {attribute}={getattr(conv, attribute)!r}, but the "
                f"edge lengths come as one edge feature: build it with {attribute}=1"
            )


class EdgeDistAdapter(MessagePassing):
    r"""Calls a message-passing layer whose ``forward`` does not take edge lengths
    third (e.g. :class:`~torch_geometric.nn.conv.GATConv`,
    :class:`~torch_geometric.nn.conv.TransformerConv`,
    :class:`~torch_geometric.nn.conv.GCNConv`) the way
    :class:`~stgraph.nn.TranscriptEncoder` calls its layers:

    .. math::
        \mathbf{X}^{\prime} = \mathrm{conv}\big(\mathbf{X}, \mathcal{E}\big)
        \quad\text{or}\quad
        \mathbf{X}^{\prime} = \mathrm{conv}\big(\mathbf{X}, \mathcal{E},
        \mathrm{arg} = \mathbf{d}\big)

    where :math:`\mathbf{d}` holds the edge lengths :math:`d_{ij}` and
    :math:`\mathrm{arg}` is :obj:`edge_dist_arg`. PyG layers read their third
    positional argument as edge weights, edge features or sizes, so handing them
    lengths there would be misread silently.

    Args:
        conv (MessagePassing): The wrapped layer, with its own
            :meth:`reset_parameters`.
        edge_dist_arg (str, optional): Keyword argument of :obj:`conv.forward` that
            receives the edge lengths: ``"edge_attr"`` gets them as a column
            :math:`(|\mathcal{E}|, 1)` (PyG edge features, e.g.
            ``TransformerConv(..., edge_dim=1)``), any other name as
            :math:`(|\mathcal{E}|)` (e.g. ``"edge_weight"``). :obj:`None` leaves
            them out. (default: :obj:`None`)

    Shapes:
        - **input:** node features :math:`(|\mathcal{V}|, F_{in})`, edge indices
          :math:`(2, |\mathcal{E}|)`, edge lengths :math:`(|\mathcal{E}|)`
        - **output:** what :obj:`conv` returns

    Raises:
        TypeError: If :obj:`conv` is not a
            :class:`~torch_geometric.nn.conv.MessagePassing` layer.
        ValueError: If :obj:`conv.forward` has no argument :obj:`edge_dist_arg`, or
            :obj:`edge_dist_arg` is ``"edge_attr"`` and :obj:`conv` records an
            edge-feature width (``edge_dim`` as most of PyG's edge-feature layers do,
            ``in_edge_channels`` as ``GeneralConv``) other than 1: with
            ``edge_dim=None`` ``GATConv`` ignores the lengths silently.
    """

    def __init__(self, conv: MessagePassing, edge_dist_arg: Optional[str] = None) -> None:
        super().__init__()
        if not isinstance(conv, MessagePassing):
            raise TypeError(
                f"conv must be a torch_geometric MessagePassing layer, got {type(conv).__name__}"
            )
        parameters = inspect.signature(conv.forward).parameters
        if edge_dist_arg is not None and edge_dist_arg not in parameters:
            raise ValueError(
                f"{type(conv).__name__}.forward has no argument {edge_dist_arg!r}; "
                f"it takes {list(parameters)}"
            )
        if edge_dist_arg == "edge_attr":
            _check_one_edge_feature(conv)
        self.conv = conv
        self.edge_dist_arg = edge_dist_arg
        self.supports_attention = "return_attention_weights" in parameters

    def reset_parameters(self) -> None:
        r"""Resets all learnable parameters of the wrapped layer."""
        super().reset_parameters()
        self.conv.reset_parameters()

    def forward(
        self,
        x: Tensor,
        edge_index: Tensor,
        edge_dist: Tensor,
        return_attention_weights: bool = False,
    ) -> Union[Tensor, Any]:
        r"""Runs :obj:`conv` on ``(x, edge_index)``, with the edge lengths as
        :obj:`edge_dist_arg` if set.

        Args:
            x (torch.Tensor): Node features.
            edge_index (torch.Tensor): ``[2, num_edges]`` edges ``j -> i``.
            edge_dist (torch.Tensor): Edge lengths ``[num_edges]`` or ``[num_edges, 1]``.
            return_attention_weights (bool, optional): Pass
                ``return_attention_weights=True`` to :obj:`conv` and return what it
                returns, ``(out, (edge_index, alpha))`` for PyG's attention layers.
        """
        kwargs: dict[str, Any] = {}
        if self.edge_dist_arg is not None:
            shape = (-1, 1) if self.edge_dist_arg == "edge_attr" else (-1,)
            kwargs[self.edge_dist_arg] = edge_dist.reshape(shape)
        if check_bool("return_attention_weights", return_attention_weights):
            if not self.supports_attention:
                raise ValueError(
                    f"{type(self.conv).__name__}.forward has no return_attention_weights "
                    "argument, so it cannot return attention weights"
                )
            kwargs["return_attention_weights"] = True
        return self.conv(x, edge_index, **kwargs)

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}({self.conv}, edge_dist_arg={self.edge_dist_arg!r})"
