"""stgraph.datasets: sample and simulated data."""
from ._merfish import merfish_u2os
from .simulate import LOCALIZATION_PATTERNS, SimulationTruth, simulate

__all__ = ["LOCALIZATION_PATTERNS", "SimulationTruth", "merfish_u2os", "simulate"]
