"""The ``stgraph`` console command."""
from __future__ import annotations

import argparse
import sys
import time
from contextlib import contextmanager

from tqdm.auto import tqdm

from .graph._query import check_graph_radius


@contextmanager
def _step(name: str, timings: dict[str, float]):
    start = time.perf_counter()
    with tqdm(total=1, desc=name, leave=False, disable=None) as bar:
        yield
        bar.update()
    timings[name] = time.perf_counter() - start


def demo(radius: float, within: str, tasks: bool = True) -> dict:
    """Load the embedded MERFISH sample, build its transcript graph, summarise it and,
    with ``tasks``, run the task heads on it (localization with the shipped pattern
    head, colocalization, two subcellular domains)."""
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
    summary = {
        "molecules": n,
        "genes": len(graph.gene_names) - int(_n_control_genes(graph)),
        "control probes": int(_n_control_genes(graph)),
        "cells": len(graph.cell_names),
        "radius (µm)": str(float(radius)),  # as given: three decimals would show 0.0005 as 0.001
        "edges": e,
        "mean degree": e / max(n, 1),
    }
    if tasks:
        summary.update(_task_heads(sdata, radius, timings))
    return {**summary, **{f"time: {k} (s)": v for k, v in timings.items()}}


#: Radius of the within-cell neighbourhoods the demo's domains compare (as in tutorial 2).
DOMAIN_RADIUS = 3.0


def _task_heads(sdata, radius: float, timings: dict[str, float]) -> dict:
    """Run the task heads on the sample in place; their headline results."""
    import pandas as pd

    from . import tl
    from .localization import PATTERNS

    with _step("localization (shipped pattern head)", timings):
        tl.localization(sdata, seed=0)
    table = sdata.tables["table"]
    top = table.uns["lpp"]["top_pattern"].value_counts()
    nuclear = table.var["nuclear_score"].dropna().sort_values(ascending=False)
    with _step("colocalization", timings):
        pairs = tl.colocalization(sdata, radius=radius, seed=0).table
    found = pairs[(pairs["gene_a"] != pairs["gene_b"]) & (pairs["fdr"] < 0.05)].sort_values("score", ascending=False)
    # A pair is scored as (A, B) and as (B, A): count and name it once, by its higher score.
    named = zip(found["gene_a"].astype(str), found["gene_b"].astype(str))
    unordered = list(dict.fromkeys(tuple(sorted(pair)) for pair in named))
    with _step("domains (2, gene composition)", timings):
        domains = tl.domains(sdata, radius=DOMAIN_RADIUS, n_domains=2, seed=0)
    sizes = pd.Series(domains.labels).value_counts()
    leaders = domains.enrichment.groupby("domain").head(1)
    return {
        "scored cell-genes": len(table.uns["lpp"]),
        **{f"top pattern {p}": int(top.get(p, 0)) for p in PATTERNS},
        "most nuclear genes": ", ".join(nuclear.index[:3]),
        "colocalized gene pairs (FDR < 5 %)": len(unordered),
        "strongest pairs": ", ".join(f"{a}-{b}" for a, b in unordered[:3]),
        **{
            f"domain {d}": f"{sizes.get(d, 0):,} molecules, led by {gene}"
            for d, gene in zip(leaders["domain"], leaders["gene"])
        },
    }


def _n_control_genes(graph) -> int:
    return int(graph.gene[graph.is_control].unique().numel())


def _radius(text: str) -> float:
    try:
        return check_graph_radius(float(text), "radius")
    except ValueError as err:  # float() or the check: argparse turns it into a usage error
        raise argparse.ArgumentTypeError(str(err)) from None


def _print_summary(summary: dict) -> None:
    width = max(map(len, summary))
    for key, value in summary.items():
        if isinstance(value, str):
            shown = value
        else:
            shown = f"{value:,.3f}" if isinstance(value, float) else f"{value:,}"
        print(f"{key:<{width}}  {shown}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="stgraph", description="stgraph: transcript-level spatial transcriptomics on PyTorch Geometric."
    )
    commands = parser.add_subparsers(dest="command", required=True)
    demo_parser = commands.add_parser(
        "demo",
        help="build the transcript graph of the embedded MERFISH U2-OS sample and run the task heads on it",
    )
    demo_parser.add_argument("--radius", type=_radius, default=1.0, help="radius in µm (default 1.0)")
    demo_parser.add_argument(
        "--within", choices=("all", "cell"), default="all",
        help="'all' (default) joins every pair within the radius, 'cell' only pairs of the same cell",
    )
    demo_parser.add_argument(
        "--graph-only", action="store_true",
        help="stop after the graph (skip localization, colocalization and domains)",
    )
    args = parser.parse_args(argv)
    if args.command == "demo":
        from .graph import GraphTooLargeError

        try:
            summary = demo(args.radius, args.within, tasks=not args.graph_only)
        except GraphTooLargeError as err:  # a radius too large for this machine: a usage error
            demo_parser.error(f"--radius {args.radius:g}: {err}")
        _print_summary(summary)
    return 0


if __name__ == "__main__":
    sys.exit(main())
