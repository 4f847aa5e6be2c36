"""Graph layers of stgraph."""
from .spatial_transformer_conv import SpatialTransformerConv

__all__ = ["SpatialTransformerConv"]
