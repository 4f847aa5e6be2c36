"""stgraph.data: mini-batching of transcript graphs."""
from .batching import batch_indices, cell_units, collate_units, tile_units

__all__ = ["batch_indices", "cell_units", "collate_units", "tile_units"]
