"""Time and peak memory of sparse spatial attention on transcript-density graphs.

Uniform random points at the transcript density of the MERFISH U2-OS sample
(``../shared/data/merfish_u2os_bento``; pixel coordinates times 0.1 µm) are joined
by :func:`stgraph.graph.radius_graph` (edges sorted by target, no self-loops). For
each size and method the forward pass (inference, ``torch.no_grad``) and the
forward + backward pass (training: input features and parameters require
gradients) are measured in a fresh subprocess by :mod:`benchmarks._measure`:

* peak memory = peak resident set size during the passes minus the resident set
  size just before them (graph, features and model already built), reported per
  edge; glibc's ``MALLOC_MMAP_THRESHOLD_`` is fixed so that freed blocks leave the
  resident set and it follows the live memory;
* time = best of ``--repeats`` passes.

Each subprocess first runs one pass on the subgraph of its first 1,000 nodes, so
that loading libraries and one-time set-up count in neither.

Methods: ``stgraph`` (:class:`stgraph.nn.conv.SpatialTransformerConv`),
``pyg`` (:class:`torch_geometric.nn.TransformerConv`, same heads and channels,
same edges, no distance term) and ``dense`` (full multi-head
``scaled_dot_product_attention`` with the additive ``-lambda * d`` bias and
``-inf`` off the edges, N x N per head). A case whose estimated memory exceeds
``--memory-gib`` is skipped with a note.

Points are numbered twice: in random order (like a file sorted by gene) and in
spatial order (:func:`stgraph.graph.spatial_order`, what
``transcript_graph(..., order="spatial")`` gives), which keeps neighbours close in
memory; ``--node-orders`` picks one.

Run from the repository root: ``PYTHONPATH=. python benchmarks/attention.py``
(``--sizes 10000`` for a quick run).
"""
from __future__ import annotations

import argparse
import json
import math
import os
import platform
import tempfile
from pathlib import Path

import numpy as np
import torch

from benchmarks._measure import run_case

ROOT = Path(__file__).resolve().parents[1]
THIS = "benchmarks.attention"
MERFISH_POINTS = (
    ROOT.parent / "shared" / "data" / "merfish_u2os_bento" / "merfish_sample.zarr"
    / "points" / "transcripts" / "points.parquet"
)
MERFISH_UM_PER_PIXEL = 0.1
METHODS = ("stgraph", "pyg", "dense")
MODES = ("forward", "forward_backward")
# Rough per-edge (sparse) or per-entry-per-head (dense) memory used to skip cases
# that cannot fit; measured values are reported, these only guard the machine.
ESTIMATED_BYTES = {"stgraph": 200, "pyg": 2000, "dense": 24}
WARMUP_NODES = 1000


def merfish_density(radius: float) -> tuple[float, float]:
    """Transcripts per µm² seen by a transcript of the MERFISH sample, i.e. its mean
    number of neighbours within ``radius`` over the disc area; also returns that
    mean neighbour count."""
    import pandas as pd

    from stgraph.graph import radius_graph

    if not MERFISH_POINTS.exists():
        raise SystemExit(f"MERFISH sample not found at {MERFISH_POINTS}; pass --density")
    xy = pd.read_parquet(MERFISH_POINTS, columns=["x", "y"]).to_numpy() * MERFISH_UM_PER_PIXEL
    mean_degree = radius_graph(xy, radius).size(1) / len(xy)
    return mean_degree / (math.pi * radius**2), mean_degree


def uniform_points(num_nodes: int, density: float, radius: float, seed: int, node_order: str):
    """Uniform points in a square at ``density`` per µm².

    ``node_order="spatial"`` numbers them along stgraph's Z-order curve with cells of
    side ``radius``, so that neighbours have close indices."""
    from stgraph.graph import spatial_order

    rng = np.random.default_rng(seed)
    side = math.sqrt(num_nodes / density)
    pos = rng.uniform(0.0, side, size=(num_nodes, 2))
    if node_order == "spatial":
        pos = pos[spatial_order(pos, radius).numpy()]
    return pos


def _dense_model(in_channels: int, heads: int, head_channels: int, lam: torch.Tensor):
    """Dense multi-head attention with the same projections as the sparse layer."""
    from stgraph.nn.conv import SpatialTransformerConv

    layer = SpatialTransformerConv(in_channels, heads * head_channels, heads)

    def forward(x: torch.Tensor, edge_index: torch.Tensor, dist: torch.Tensor) -> torch.Tensor:
        n = x.size(0)
        q, k, v = (
            lin(x).view(n, heads, head_channels).transpose(0, 1)
            for lin in (layer.lin_query, layer.lin_key, layer.lin_value)
        )
        bias = torch.full((heads, n, n), -math.inf)
        bias[:, edge_index[1], edge_index[0]] = -lam[:, None] * dist[None, :]
        out = torch.nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=bias)
        return layer.lin_out(out.transpose(0, 1).reshape(n, heads * head_channels))

    return layer, forward


def attention_case(graph: str, method: str, mode: str, heads: int, head_channels: int):
    """Set-up of one case (in the measuring subprocess): returns one pass as a callable."""
    from torch_geometric.nn import TransformerConv

    from stgraph.nn.conv import SpatialTransformerConv

    torch.manual_seed(0)
    data = np.load(graph)
    edge_index = torch.from_numpy(data["edge_index"])
    dist = torch.from_numpy(data["dist"])
    width = heads * head_channels
    x = torch.randn(int(data["num_nodes"]), width)
    del data

    if method == "stgraph":
        module = SpatialTransformerConv(width, width, heads)
        forward = lambda x, edge_index, dist: module(x, edge_index, dist)  # noqa: E731
    elif method == "pyg":
        module = TransformerConv(width, head_channels, heads)
        forward = lambda x, edge_index, dist: module(x, edge_index)  # noqa: E731
    else:
        module, forward = _dense_model(width, heads, head_channels, torch.ones(heads))

    training = mode == "forward_backward"
    x.requires_grad_(training)
    module.requires_grad_(training)

    def one_pass(x: torch.Tensor, edge_index: torch.Tensor, dist: torch.Tensor) -> dict:
        with torch.set_grad_enabled(training):
            out = forward(x, edge_index, dist)
            if training:
                out.sum().backward()
        x.grad = None
        module.zero_grad(set_to_none=True)
        return {"num_edges": edge_index.size(1)}

    inside = (edge_index < WARMUP_NODES).all(0)
    one_pass(x[:WARMUP_NODES].detach().requires_grad_(training), edge_index[:, inside], dist[inside])
    return lambda: one_pass(x, edge_index, dist)


def estimated_bytes(method: str, num_nodes: int, num_edges: int, heads: int) -> float:
    if method == "dense":
        return ESTIMATED_BYTES["dense"] * heads * num_nodes**2
    return ESTIMATED_BYTES[method] * num_edges


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=float, nargs="+", default=[1e4, 1e5, 1e6])
    parser.add_argument("--methods", nargs="+", choices=METHODS, default=list(METHODS))
    parser.add_argument("--node-orders", nargs="+", choices=("random", "spatial"),
                        default=["random", "spatial"], help="numbering of the points")
    parser.add_argument("--radius", type=float, default=1.0, help="graph radius in µm")
    parser.add_argument("--density", type=float, help="points per µm² (default: MERFISH)")
    parser.add_argument("--heads", type=int, default=4)
    parser.add_argument("--head-channels", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2, help="threads for torch/BLAS")
    parser.add_argument("--timeout", type=float, default=1800.0, help="seconds per case")
    parser.add_argument("--memory-gib", type=float, default=24.0,
                        help="skip cases whose estimated extra memory exceeds this")
    parser.add_argument("--output", type=Path, default=ROOT / "benchmarks/results/attention.json")
    args = parser.parse_args()

    if args.density is None:
        density, merfish_degree = merfish_density(args.radius)
    else:
        density, merfish_degree = args.density, None
    print(f"density {density:.2f} transcripts/µm², radius {args.radius} µm"
          + (f" (MERFISH sample mean degree {merfish_degree:.1f})" if merfish_degree else ""))
    os.environ["MALLOC_MMAP_THRESHOLD_"] = "131072"  # inherited by the measuring processes

    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for node_order, size in ((o, s) for o in args.node_orders for s in args.sizes):
            results += measure_size(args, tmp, node_order, int(size), density)

    summary = summarize(results)
    print(json.dumps(summary, indent=2))
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps({
        "config": {
            "radius_um": args.radius, "density_per_um2": density,
            "merfish_mean_degree": merfish_degree, "heads": args.heads,
            "head_channels": args.head_channels, "repeats": args.repeats,
            "threads": args.threads, "node_orders": args.node_orders,
            "graph": "uniform points, stgraph.graph.radius_graph (sorted by target, no loops)",
            "torch": torch.__version__, "machine": platform.platform(),
        },
        "results": results,
        "summary": summary,
    }, indent=2))
    print(f"wrote {args.output}")


def measure_size(args, tmp: str, node_order: str, num_nodes: int, density: float) -> list[dict]:
    from stgraph.graph import radius_graph

    pos = uniform_points(num_nodes, density, args.radius, seed=0, node_order=node_order)
    edge_index, dist = radius_graph(pos, args.radius, return_distance=True)
    num_edges = edge_index.size(1)
    graph = Path(tmp) / f"graph_{node_order}_{num_nodes}.npz"
    np.savez(graph, edge_index=edge_index.numpy(), dist=dist.float().numpy(), num_nodes=num_nodes)
    del pos, edge_index, dist

    rows = []
    for method in args.methods:
        for mode in MODES:
            row = {"method": method, "mode": mode, "node_order": node_order,
                   "num_nodes": num_nodes, "num_edges": num_edges,
                   "mean_degree": num_edges / num_nodes}
            need = estimated_bytes(method, num_nodes, num_edges, args.heads)
            if need > args.memory_gib * 2**30:
                row["skipped"] = f"needs ~{need / 2**30:.0f} GiB (> --memory-gib {args.memory_gib:g})"
            else:
                record = run_case(
                    f"{THIS}:attention_case",
                    {"graph": str(graph), "method": method, "mode": mode, "heads": args.heads,
                     "head_channels": args.head_channels},
                    repeats=args.repeats, timeout=args.timeout, threads=args.threads,
                )
                if record["status"] == "ok":
                    row |= {"time_s": record["seconds"],
                            "time_ns_per_edge": record["seconds"] / num_edges * 1e9,
                            "peak_extra_bytes": record["peak_bytes"],
                            "bytes_per_edge": record["peak_bytes"] / num_edges}
                else:
                    row["skipped"] = f"{record['status']}: {record.get('error', '')}"
            rows.append(row)
            print_row(row)
    graph.unlink()
    return rows


def print_row(row: dict) -> None:
    head = (f"{row['method']:8s} {row['mode']:17s} {row['node_order']:8s} "
            f"N={row['num_nodes']:>8d} E={row['num_edges']:>9d}")
    if "skipped" in row:
        print(f"{head}  skipped: {row['skipped']}")
    else:
        print(f"{head}  {row['time_s']:8.3f} s  {row['time_ns_per_edge']:7.1f} ns/edge"
              f"  {row['bytes_per_edge']:8.1f} B/edge")


def summarize(results: list[dict]) -> dict:
    """Per node order and mode: stgraph's bytes per edge and spread of time per edge,
    and TransformerConv's memory and time relative to stgraph."""
    summary: dict = {}
    for node_order in dict.fromkeys(r["node_order"] for r in results):
        measured = {(r["method"], r["mode"], r["num_nodes"]): r for r in results
                    if "time_s" in r and r["node_order"] == node_order}
        for mode in MODES:
            ours = sorted((n, r) for (m, md, n), r in measured.items()
                          if m == "stgraph" and md == mode)
            if ours:
                summary[f"{node_order}/{mode}"] = _summarize_mode(measured, mode, ours)
    return summary


def _summarize_mode(measured: dict, mode: str, ours: list) -> dict:
    per_edge = [r["time_ns_per_edge"] for _, r in ours]
    return {
        "stgraph_bytes_per_edge": {n: r["bytes_per_edge"] for n, r in ours},
        "stgraph_time_ns_per_edge": {n: r["time_ns_per_edge"] for n, r in ours},
        "stgraph_time_per_edge_max_over_min": max(per_edge) / min(per_edge),
        "pyg_over_stgraph_bytes": {
            n: measured[("pyg", mode, n)]["bytes_per_edge"] / r["bytes_per_edge"]
            for n, r in ours if ("pyg", mode, n) in measured
        },
        "pyg_over_stgraph_time": {
            n: measured[("pyg", mode, n)]["time_s"] / r["time_s"]
            for n, r in ours if ("pyg", mode, n) in measured
        },
    }


if __name__ == "__main__":
    main()
