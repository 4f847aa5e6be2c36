"""Masked gene modelling on the MERFISH U2-OS sample, scored on held-out cells.

Pretrains a transcript encoder (:func:`stgraph.tl.pretrain`) on all but
``--held-out`` cells of the sample, then masks the held-out cells' transcripts in
``ceil(1 / 0.15) = 7`` passes (each transcript masked once) and compares the
model's top-1 accuracy and cross-entropy with two baselines, defined in
:mod:`stgraph.models.evaluation`: the training gene frequencies, and the most
frequent gene among the visible radius neighbours (smoothed histogram for the
cross-entropy, prior strength fitted on the training cells). As a reference it
also reports the accuracy of copying the gene of the nearest visible neighbour:
in this sample most molecules have a same-gene detection within 0.1 µm, which
``--drop-duplicates`` leaves out (:func:`stgraph.datasets.merfish_u2os`).

Usage: ``PYTHONPATH=. python benchmarks/pretrain_merfish.py [--steps N ...]``;
prints a table and writes ``benchmarks/results/pretrain_merfish.json``.
"""
from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np
import torch

import stgraph
from stgraph.models.evaluation import evaluate_held_out

RESULT = Path(__file__).resolve().parent / "results" / "pretrain_merfish.json"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--radius", type=float, default=0.5, help="graph radius, µm")
    parser.add_argument("--d-model", type=int, default=64)
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--heads", type=int, default=4)
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--batch-size", type=int, default=8, help="tiles per step")
    parser.add_argument("--tile-size", type=float, default=10.0, help="tile side, µm")
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--held-out", type=int, default=3, help="number of held-out cells")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    parser.add_argument("--progress", action="store_true", help="show the training progress bar")
    parser.add_argument("--drop-duplicates", action="store_true",
                        help="leave out the molecules flagged duplicate (one molecule called several times)")
    parser.add_argument("--out", type=Path, default=RESULT)
    return parser.parse_args(argv)


def load_graph(radius: float, drop_duplicates: bool = False):
    sdata = stgraph.datasets.merfish_u2os(drop_duplicates=drop_duplicates)
    return stgraph.graph.transcript_graph(sdata, radius)


def main(argv: list[str] | None = None, graph=None, conv=None) -> dict:
    args = parse_args(argv)
    start = time.perf_counter()
    graph = load_graph(args.radius, args.drop_duplicates) if graph is None else graph
    graph_s = time.perf_counter() - start
    if args.threads is not None:
        # After building the graph: its numba backend resets torch's thread count.
        torch.set_num_threads(args.threads)

    start = time.perf_counter()
    result = stgraph.tl.pretrain(
        graph,
        d_model=args.d_model,
        n_layers=args.layers,
        heads=args.heads,
        conv=conv,
        batch_by="tile",
        tile_size=args.tile_size,
        batch_size=args.batch_size,
        steps=args.steps,
        lr=args.lr,
        held_out_cells=args.held_out,
        device="cpu",
        seed=args.seed,
        progress=args.progress,
    )
    train_s = time.perf_counter() - start

    start = time.perf_counter()
    scores = evaluate_held_out(
        result.model, graph, result.train_mask, tile_size=args.tile_size, seed=args.seed
    )
    eval_s = time.perf_counter() - start

    report = dict(
        data=f"MERFISH U2-OS sample (bento-tools), {graph.num_nodes:,} transcripts, 15 cells"
        + (" (duplicates left out)" if args.drop_duplicates else ""),
        config={k: v for k, v in vars(args).items() if k not in ("out", "progress")},
        held_out_cells=result.held_out_cells,
        n_transcripts=int(graph.num_nodes),
        n_edges=int(graph.num_edges),
        n_train_transcripts=int(result.train_mask.sum()),
        scores=scores,
        beats_both_baselines=all(
            scores["model"]["accuracy"] > scores[b]["accuracy"]
            and scores["model"]["cross_entropy"] < scores[b]["cross_entropy"]
            for b in ("gene_frequency", "radius_neighbours")
        ),
        # NaN marks a step without target token (no update), left out of the mean.
        final_train_loss=float(np.nanmean(result.history[-10:])),
        seconds=dict(graph=graph_s, train=train_s, per_step=train_s / max(1, args.steps), evaluate=eval_s),
        torch_threads=torch.get_num_threads(),
        machine=f"{platform.machine()}, {platform.python_implementation()} {platform.python_version()}, "
        f"torch {torch.__version__}",
    )
    print(f"held-out cells {report['held_out_cells']}: {scores['model']['n']} transcripts scored")
    print(f"{'predictor':<20}{'top-1 accuracy':>16}{'cross-entropy':>16}")
    for name in ("model", "gene_frequency", "radius_neighbours"):
        print(f"{name:<20}{scores[name]['accuracy']:>16.4f}{scores[name]['cross_entropy']:>16.4f}")
    reference = scores["nearest_neighbour_reference"]["accuracy"]
    print(f"{'(nearest neighbour)':<20}{reference:>16.4f}{'-':>16}")
    print(f"neighbour prior strength beta = {scores['neighbour_strength']['beta']}")
    print(f"train {train_s:.1f} s ({report['seconds']['per_step']:.2f} s/step), evaluate {eval_s:.1f} s")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    return report


if __name__ == "__main__":
    main()
