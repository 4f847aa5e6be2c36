"""Spot-grid (Visium / ST) lattices, baselines and the enhancer model."""
