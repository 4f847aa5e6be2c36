"""The encoder over a whole-sample graph in bounded passes (writes ``results/encoder_passes.json``).

``tl.colocalization(model=..., within="all")`` and ``tl.domains`` with an encoder run
:func:`stgraph.coloc._encode.encoder_outputs` over the whole graph. For a graph whose
edges cross cells (data without cells, ``within="all"``) it cuts the graph into
Z-order blocks with a halo of one hop per layer, at most ``max_edges`` edges per pass
(default :data:`~stgraph.coloc._encode.MAX_EDGES`, 4,194,304); the peer is one pass over
the whole graph (``max_edges`` larger than the graph), measured in the same run.

Tissue: uniform points at the MERFISH sample's density (12.5 molecules/µm²), 100 genes,
radius 1 µm (mean degree ≈ 39); an untrained seeded encoder (d_model 32, 2 layers,
4 heads), embeddings and the attention of every edge. Each case runs in a fresh process
(:func:`benchmarks._measure.run_case`): the set-up builds the graph and runs a small
warm-up; the measured call is one ``encoder_outputs``; peak memory is above the built
graph.

Run from the repository root: ``PYTHONPATH=. python benchmarks/encoder_passes.py``
(``--sizes``, ``--one-pass-up-to`` to skip the one-pass peer above a size).
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks._common import config, machine, write_result  # noqa: E402
from benchmarks._measure import run_case  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results" / "encoder_passes.json"
DENSITY = 12.5
RADIUS = 1.0
N_GENES = 100
ONE_PASS = 1 << 62


def _graph(n: int, seed: int = 0):
    import numpy as np
    import torch
    from torch_geometric.data import Data

    import stgraph

    rng = np.random.default_rng(seed)
    pos = torch.from_numpy(rng.uniform(0, np.sqrt(n / DENSITY), (n, 2))).float()
    edge_index, edge_dist = stgraph.graph.radius_graph(pos, RADIUS, return_distance=True)
    return Data(gene=torch.from_numpy(rng.integers(0, N_GENES, n)), pos=pos, edge_index=edge_index,
                edge_dist=edge_dist, radius=RADIUS, num_nodes=n)


def encoder_case(n: int, max_edges: int):
    """Set-up: the graph, the encoder and a warm-up; the measured call runs the encoder."""
    import torch

    from stgraph.coloc._encode import encoder_outputs
    from stgraph.nn import TranscriptEncoder

    torch.manual_seed(0)
    encoder = TranscriptEncoder(N_GENES, d_model=32, n_layers=2, heads=4)
    encoder_outputs(encoder, _graph(2000, seed=1), attention=True, max_edges=20000)
    graph = _graph(n)
    passes: list[int] = []
    encoder.register_forward_pre_hook(lambda module, args: passes.append(int(args[2].shape[1])))

    def work():
        passes.clear()
        out = encoder_outputs(encoder, graph, attention=True, max_edges=max_edges)
        return {"edges": int(graph.edge_index.shape[1]), "passes": len(passes), "largest_pass_edges": max(passes),
                "edges_computed": sum(passes), "attention_sum": float(out.attention.sum())}

    return work


def main() -> None:
    from stgraph.coloc._encode import MAX_EDGES

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1e5,1e6", help="comma-separated transcript counts")
    parser.add_argument("--one-pass-up-to", type=float, default=1e6, help="largest size run in one pass too")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--timeout", type=float, default=1800.0, help="seconds per case")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    rows = []
    for n in (int(float(s)) for s in args.sizes.split(",")):
        modes = {"blocks": MAX_EDGES} | ({"one_pass": ONE_PASS} if n <= args.one_pass_up_to else {})
        for mode, max_edges in modes.items():
            record = run_case("benchmarks.encoder_passes:encoder_case", {"n": n, "max_edges": max_edges},
                              repeats=1, timeout=args.timeout, threads=args.threads)
            rows.append({"n_transcripts": n, "mode": mode, "max_edges": max_edges, **record})
            if record.get("status") == "ok":
                s = record["summary"]
                print(f"{n:>9,d} transcripts {s['edges']:>11,d} edges  {mode:8s}  {record['seconds']:7.1f} s  "
                      f"{record['peak_bytes'] / 2**20:7.0f} MiB  {s['passes']:4d} passes "
                      f"(largest {s['largest_pass_edges']:,d} edges, {s['edges_computed'] / s['edges']:.3f}× the edges)",
                      flush=True)
            else:
                print(f"{n:>9,d} transcripts  {mode:8s}  {record}", flush=True)
    ratios = {}
    for n in sorted({r["n_transcripts"] for r in rows}):
        done = {r["mode"]: r for r in rows if r["n_transcripts"] == n and r.get("status") == "ok"}
        if len(done) == 2:
            blocks, one = done["blocks"], done["one_pass"]
            ratios[str(n)] = {"time_blocks_over_one_pass": blocks["seconds"] / one["seconds"],
                              "memory_blocks_over_one_pass": blocks["peak_bytes"] / one["peak_bytes"],
                              "attention_sum_difference": blocks["summary"]["attention_sum"]
                              - one["summary"]["attention_sum"]}
            print(f"{n:>9,d} transcripts: blocks take ×{ratios[str(n)]['time_blocks_over_one_pass']:.2f} the time "
                  f"and ×{ratios[str(n)]['memory_blocks_over_one_pass']:.2f} the memory of one pass")
    write_result(args.out, {"benchmark": "encoder_passes", "date": time.strftime("%Y-%m-%d %H:%M"),
                            "machine": machine(), "config": config(args), "results": rows, "ratios": ratios})
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
