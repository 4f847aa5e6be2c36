"""Pieces shared by the colocalization and domain benchmarks: pretraining, the record's header, the JSON file."""
from __future__ import annotations

import argparse
import json
import platform
from pathlib import Path

import torch

import stgraph


def pretrain(graph, steps: int, batch_by: str, seed: int = 0):
    """Masked gene modelling on ``graph`` with the benchmarks' settings (CPU, lr 3e-3,
    4 cells or 8 tiles of 10 µm per batch)."""
    return stgraph.tl.pretrain(
        graph, steps=steps, lr=3e-3, seed=seed, device="cpu", progress=False,
        batch_by=batch_by, batch_size=4 if batch_by == "cell" else 8, tile_size=10.0,
    )


def config(args: argparse.Namespace) -> dict:
    """The command-line settings, JSON-able."""
    return {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}


def machine() -> str:
    return f"{platform.machine()}, CPython {platform.python_version()}, torch {torch.__version__}"


def write_result(path: Path, result: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=2) + "\n")
