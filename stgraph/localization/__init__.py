"""RNA localization: patterns per (cell, gene), compartment per transcript, gene scores.

Used by :func:`stgraph.tl.localization`; the building blocks are public for
retraining and benchmarking.
"""
from ._compartment import CompartmentModel, predict_compartment
from ._data import CellGeneGroups, CellTranscripts, cell_transcripts, read_cell_transcripts
from ._gene_score import nuclear_enrichment
from ._geometry import CellGeometry, cell_geometry
from ._pattern_model import PATTERNS, PatternModel, pattern_batch
from ._pretrained import PRETRAINED_PATH, load_pretrained
from ._rnaforest import RNAFOREST_FEATURES, rnaforest_features
from ._train import TRAINING_SIMULATIONS, fit_pattern_model, train_pattern_model, tune_thresholds

__all__ = [
    "PATTERNS",
    "PRETRAINED_PATH",
    "RNAFOREST_FEATURES",
    "TRAINING_SIMULATIONS",
    "CellGeneGroups",
    "CellGeometry",
    "CellTranscripts",
    "CompartmentModel",
    "PatternModel",
    "cell_geometry",
    "cell_transcripts",
    "fit_pattern_model",
    "load_pretrained",
    "nuclear_enrichment",
    "pattern_batch",
    "predict_compartment",
    "read_cell_transcripts",
    "rnaforest_features",
    "train_pattern_model",
    "tune_thresholds",
]
