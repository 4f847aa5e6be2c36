"""stgraph.nn: positional encoding, transcript encoder and task heads."""
from .encoder import TranscriptEncoder, TranscriptEncoderLayer
from .heads import MaskedGeneHead
from .positional import SinusoidalPositionalEncoding, sinusoidal_position_encoding, transcript_origin

__all__ = [
    "MaskedGeneHead",
    "SinusoidalPositionalEncoding",
    "TranscriptEncoder",
    "TranscriptEncoderLayer",
    "sinusoidal_position_encoding",
    "transcript_origin",
]
