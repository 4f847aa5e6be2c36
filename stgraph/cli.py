"""The ``stgraph`` console command."""
from __future__ import annotations

import argparse
import sys
import time
from contextlib import contextmanager

from tqdm.auto import tqdm

from ._validation import check_real


@contextmanager
def _step(name: str, timings: dict[str, float]):
    start = time.perf_counter()
    with tqdm(total=1, desc=name, leave=False, disable=None) as bar:
        yield
        bar.update()
    timings[name] = time.perf_counter() - start


def demo(radius: float, within: str) -> dict:
    """Load the embedded MERFISH sample, build its transcript graph, summarise it."""
    import torch

    from . import datasets
    from .graph import radius_graph, transcript_graph

    timings: dict[str, float] = {}
    # Numba compiles the graph kernels on their first call and caches them on disk;
    # warming them up on two points keeps that one-off cost out of the graph's time.
    with _step("compile graph kernels (first run only)", timings):
        radius_graph(torch.zeros(2, 2), radius, return_distance=True)
    with _step("load sample", timings):
        sdata = datasets.merfish_u2os()
    with _step("build transcript graph", timings):
        graph = transcript_graph(sdata, radius, within=within)
    n, e = graph.num_nodes, graph.num_edges
    return {
        "molecules": n,
        "genes": len(graph.gene_names) - int(_n_control_genes(graph)),
        "control probes": int(_n_control_genes(graph)),
        "cells": len(graph.cell_names),
        "radius (µm)": radius,
        "edges": e,
        "mean degree": e / max(n, 1),
        **{f"time: {k} (s)": v for k, v in timings.items()},
    }


def _n_control_genes(graph) -> int:
    return int(graph.gene[graph.is_control].unique().numel())


def _positive_float(text: str) -> float:
    try:
        return check_real("radius", float(text))
    except ValueError as err:  # float() or check_real: argparse turns it into a usage error
        raise argparse.ArgumentTypeError(str(err)) from None


def _print_summary(summary: dict) -> None:
    width = max(map(len, summary))
    for key, value in summary.items():
        shown = f"{value:,.3f}" if isinstance(value, float) else f"{value:,}"
        print(f"{key:<{width}}  {shown}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="stgraph", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    demo_parser = commands.add_parser(
        "demo", help="build the transcript graph of the embedded MERFISH U2-OS sample"
    )
    demo_parser.add_argument("--radius", type=_positive_float, default=1.0, help="radius in µm (default 1.0)")
    demo_parser.add_argument(
        "--within", choices=("all", "cell"), default="all",
        help="'all' (default) joins every pair within the radius, 'cell' only pairs of the same cell",
    )
    args = parser.parse_args(argv)
    if args.command == "demo":
        from .graph import GraphTooLargeError

        try:
            summary = demo(args.radius, args.within)
        except GraphTooLargeError as err:  # a radius too large for this machine: a usage error
            demo_parser.error(f"--radius {args.radius:g}: {err}")
        _print_summary(summary)
    return 0


if __name__ == "__main__":
    sys.exit(main())
