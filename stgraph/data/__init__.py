"""stgraph.data: mini-batching of transcript graphs."""
from .batching import batch_for_step, cell_units, collate_units, tile_units

__all__ = ["batch_for_step", "cell_units", "collate_units", "tile_units"]
