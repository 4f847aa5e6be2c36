"""Graph layers of stgraph."""
from .edge_dist_adapter import EdgeDistAdapter
from .spatial_transformer_conv import SpatialTransformerConv

__all__ = ["EdgeDistAdapter", "SpatialTransformerConv"]
