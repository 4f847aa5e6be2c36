"""Seeded torch randomness that leaves the caller's random state alone."""
from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch


@contextlib.contextmanager
def torch_rng_restored() -> Iterator[None]:
    """Run the block, then give torch's CPU generator back the state it had before.

    Building a module draws its initial weights from that generator, also where a
    checkpoint's weights then replace them: loading a model must not move the
    caller's random numbers.
    """
    with torch.random.fork_rng(devices=[]):
        yield


@contextlib.contextmanager
def torch_seeded(seed: int) -> Iterator[None]:
    """Run the block with torch's CPU generator seeded by ``seed`` (weight initialisation,
    CPU training); the caller's generator state is restored afterwards."""
    with torch_rng_restored():
        torch.default_generator.manual_seed(seed)
        yield
