"""stgraph.datasets: sample and simulated data."""
from ._merfish import merfish_u2os

__all__ = ["merfish_u2os"]
