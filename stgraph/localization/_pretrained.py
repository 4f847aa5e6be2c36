"""The pattern head shipped with stgraph."""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from .._seeding import torch_rng_restored
from ._pattern_model import PatternModel

#: Checkpoint trained by ``benchmarks/localization.py --retrain`` (see
#: :data:`~stgraph.localization.TRAINING_SIMULATIONS`).
PRETRAINED_PATH = Path(__file__).parent / "_weights" / "pattern_model.pt"


@lru_cache(maxsize=1)
def _cached() -> PatternModel:
    if not PRETRAINED_PATH.exists():
        raise FileNotFoundError(f"the shipped pattern checkpoint is missing: {PRETRAINED_PATH}")
    return PatternModel.load(PRETRAINED_PATH)


def load_pretrained() -> PatternModel:
    """The shipped :class:`PatternModel` (a fresh copy; safe to fine-tune; the caller's
    torch random numbers are left as they were)."""
    cached = _cached()
    with torch_rng_restored():
        model = PatternModel(**cached.config)
    model.load_state_dict(cached.state_dict())
    model.training_info = dict(cached.training_info)
    return model.eval()
