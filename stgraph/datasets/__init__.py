"""stgraph.datasets: sample and simulated data."""
from ._merfish import merfish_u2os
from .simulate import LOCALIZATION_PATTERNS, MAX_CELL_GENES, MAX_CELLS, MAX_MOLECULES, SimulationTruth, simulate

__all__ = [
    "LOCALIZATION_PATTERNS",
    "MAX_CELLS",
    "MAX_CELL_GENES",
    "MAX_MOLECULES",
    "SimulationTruth",
    "merfish_u2os",
    "simulate",
]
