"""stgraph.nn: layers (:mod:`stgraph.nn.conv`), positional encoding, transcript encoder and task heads."""
from . import conv
from .conv import EdgeDistAdapter, SpatialTransformerConv
from .encoder import TranscriptEncoder, TranscriptEncoderLayer
from .heads import MaskedGeneHead
from .positional import SinusoidalPositionalEncoding, sinusoidal_position_encoding, transcript_origin

__all__ = [
    "EdgeDistAdapter",
    "MaskedGeneHead",
    "SinusoidalPositionalEncoding",
    "SpatialTransformerConv",
    "TranscriptEncoder",
    "TranscriptEncoderLayer",
    "conv",
    "sinusoidal_position_encoding",
    "transcript_origin",
]
