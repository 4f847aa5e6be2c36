"""Spot-grid (Visium / ST) data: lattices, interpolation baselines and the enhancer model.

:func:`stgraph.tl.enhance` is the user-facing entry point; this subpackage holds its
parts: lattice detection and sub-lattices (:mod:`._lattice`), log1p(CP10k)
(:mod:`._expression`), per-gene interpolation baselines (:mod:`._baselines`), the
low-rank embedding, the training masks, the :class:`SpotEnhancer` network and its
self-supervised :class:`EnhancerTrainer`.
"""
from ._lattice import detect_grid
from ._model import SpotEnhancer
from ._train import EnhancerParams, EnhancerTrainer

__all__ = ["EnhancerParams", "EnhancerTrainer", "SpotEnhancer", "detect_grid"]
