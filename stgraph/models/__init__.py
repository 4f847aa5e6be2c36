"""stgraph.models: masked gene model, its training loop, checkpoints and evaluation."""
from .checkpoint import load_model, read_checkpoint, save_checkpoint
from .evaluation import evaluate_held_out
from .masking import MaskedTokens, mask_tokens, masked_gene_loss
from .mgm import MaskedGeneModel
from .trainer import MaskedGeneTrainer, TrainingConfig

__all__ = [
    "MaskedGeneModel",
    "MaskedGeneTrainer",
    "MaskedTokens",
    "TrainingConfig",
    "evaluate_held_out",
    "load_model",
    "mask_tokens",
    "masked_gene_loss",
    "read_checkpoint",
    "save_checkpoint",
]
