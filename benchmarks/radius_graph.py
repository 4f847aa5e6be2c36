"""Radius-graph construction: stgraph's backends against cKDTree, squidpy and torch-cluster.

Data: N uniform 2D points (float32) at about 1 point per µm² (square of side sqrt(N) µm),
r = 2.5 µm (about 20 neighbours per point). Each method runs in a fresh subprocess
(``benchmarks/_measure.py``): one warm-up call on the first 1,000 points (imports, numba
JIT or its cache, squidpy's lazy imports), then ``--repeats`` timed calls on all points;
the best wall time and the best CPU time (all threads summed) are reported, and the peak
resident memory above the post-set-up baseline over those calls. On a machine shared with
other users' jobs (Linux autogroup scheduling gives each session a share of the cores,
whatever its thread count) wall time is about CPU time over that share, so extra threads
do not show there; CPU time then compares the work done.

What each method returns:

* ``stgraph[auto]`` (the default), ``stgraph[<backend>]``: the complete directed
  ``edge_index`` sorted by (target, source) WITH float32 distances;
* ``cKDTree``: ``scipy.spatial.cKDTree(pos).query_pairs(r, output_type='ndarray')``,
  tree build included: each undirected pair once, no distances;
* ``squidpy``: ``squidpy.gr.spatial_neighbors(adata, coord_type='generic', radius=r,
  delaunay=False)``: sparse connectivities and distances in ``adata.obsp``;
* ``torch_cluster``: ``torch_cluster.radius_graph(pos, r, max_num_neighbors=N)``, if installed.

``edges`` is the directed edge count each method found (2x the pairs for cKDTree).

Usage::

    PYTHONPATH=. python benchmarks/radius_graph.py                 # full run, writes the JSON
    PYTHONPATH=. python benchmarks/radius_graph.py --sizes 1e4,1e5 # quick run
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

from benchmarks._measure import run_case

RADIUS = 2.5
WARMUP_POINTS = 1000
THIS = "benchmarks.radius_graph"
RESULTS = Path(__file__).resolve().parent / "results" / "radius_graph.json"


def uniform_points(n: int, seed: int = 0) -> np.ndarray:
    side = float(np.sqrt(n))
    return np.random.default_rng(seed).uniform(0.0, side, size=(n, 2)).astype(np.float32)


# Case set-ups (run inside the measuring subprocess): each returns the measured callable.


def stgraph_case(n: int, backend: str):
    import torch

    from stgraph.graph import radius_graph

    pos = torch.from_numpy(uniform_points(n))
    radius_graph(pos[:WARMUP_POINTS], RADIUS, backend=backend, return_distance=True)

    def work():
        edge_index, _ = radius_graph(pos, RADIUS, backend=backend, return_distance=True)
        return {"edges": int(edge_index.shape[1])}

    return work


def ckdtree_case(n: int):
    from scipy.spatial import cKDTree

    pos = uniform_points(n)
    cKDTree(pos[:WARMUP_POINTS]).query_pairs(RADIUS, output_type="ndarray")

    def work():
        pairs = cKDTree(pos).query_pairs(RADIUS, output_type="ndarray")
        return {"edges": 2 * int(pairs.shape[0])}

    return work


def squidpy_case(n: int):
    import anndata
    import pandas as pd
    import squidpy as sq

    def make(points):
        return anndata.AnnData(obs=pd.DataFrame(index=[str(i) for i in range(len(points))]), obsm={"spatial": points})

    def neighbours(adata):
        sq.gr.spatial_neighbors(adata, coord_type="generic", radius=RADIUS, delaunay=False)

    neighbours(make(uniform_points(n)[:WARMUP_POINTS]))
    adata = make(uniform_points(n))

    def work():
        neighbours(adata)
        edges = int(adata.obsp["spatial_connectivities"].nnz)
        adata.obsp.clear()  # so one repetition's matrices do not sit in the next one's peak
        return {"edges": edges}

    return work


def torch_cluster_case(n: int):
    import torch
    import torch_cluster

    pos = torch.from_numpy(uniform_points(n))
    torch_cluster.radius_graph(pos[:WARMUP_POINTS], RADIUS, max_num_neighbors=WARMUP_POINTS)

    def work():
        edge_index = torch_cluster.radius_graph(pos, RADIUS, max_num_neighbors=n)
        return {"edges": int(edge_index.shape[1])}

    return work


def methods() -> dict[str, tuple[str, dict]]:
    """Method label -> (case function, extra keyword arguments)."""
    from stgraph.graph import available_backends

    table = {"stgraph[auto]": ("stgraph_case", {"backend": "auto"})}
    table |= {f"stgraph[{name}]": ("stgraph_case", {"backend": name}) for name in available_backends()}
    table |= {"cKDTree": ("ckdtree_case", {}), "squidpy": ("squidpy_case", {})}
    if importlib.util.find_spec("torch_cluster") is not None:
        table["torch_cluster"] = ("torch_cluster_case", {})
    return table


def _versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for name in ("numpy", "scipy", "torch", "numba", "squidpy", "torch_cluster"):
        if importlib.util.find_spec(name) is not None:
            versions[name] = __import__(name).__version__
    return versions


def _ratios(results: list[dict]) -> list[dict]:
    by_key = {(row["n"], row["method"]): row for row in results if row["status"] == "ok"}
    ratios = []
    for n in sorted({row["n"] for row in results}):
        default = by_key.get((n, "stgraph[auto]"))
        if default is None:
            continue
        entry = {"n": n}
        for peer, key in (("cKDTree", "default_over_ckdtree"), ("squidpy", "squidpy_over_default")):
            other = by_key.get((n, peer))
            if other is not None:
                a, b = (default, other) if peer == "cKDTree" else (other, default)
                entry[key + "_time"] = a["seconds"] / b["seconds"]
                entry[key + "_cpu_time"] = a["cpu_seconds"] / b["cpu_seconds"]
                entry[key + "_memory"] = a["peak_bytes"] / max(b["peak_bytes"], 1)
        ratios.append(entry)
    return ratios


def _print_table(results: list[dict], ratios: list[dict]) -> None:
    print(f"{'N':>9} {'method':<16} {'best s':>8} {'cpu s':>8} {'peak MiB':>9} {'edges':>10}  all s")
    for row in results:
        if row["status"] != "ok":
            print(f"{row['n']:>9} {row['method']:<16} {row['status']:>8}")
            continue
        all_s = ", ".join(f"{s:.3f}" for s in row["all_seconds"])
        print(
            f"{row['n']:>9} {row['method']:<16} {row['seconds']:>8.3f} {row['cpu_seconds']:>8.3f} "
            f"{row['peak_bytes'] / 2**20:>9.1f} {row['summary']['edges']:>10}  {all_s}"
        )
    for entry in ratios:
        parts = [f"{k}={v:.2f}" for k, v in entry.items() if k != "n"]
        print(f"N={entry['n']}: " + ", ".join(parts))


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="1e4,1e5,1e6", help="comma-separated point counts, e.g. 1e4,1e5")
    parser.add_argument("--repeats", type=int, default=3, help="timed calls per case (best is reported)")
    parser.add_argument("--threads", type=int, default=2, help="threads for numba/torch/BLAS")
    parser.add_argument("--timeout", type=float, default=900.0, help="seconds per case before it is skipped")
    parser.add_argument("--methods", default=None, help="comma-separated subset of method labels")
    parser.add_argument("--out", type=Path, default=RESULTS, help="JSON output path")
    args = parser.parse_args(argv)

    sizes = [int(float(s)) for s in args.sizes.split(",")]
    table = methods()
    chosen = list(table) if args.methods is None else args.methods.split(",")
    results = []
    for n in sizes:
        for label in chosen:
            function, extra = table[label]
            # squidpy is the slow peer: one timed call at the largest size keeps the run short.
            repeats = 1 if label == "squidpy" and n >= 10**6 else args.repeats
            record = run_case(
                f"{THIS}:{function}", {"n": n, **extra}, repeats=repeats, timeout=args.timeout, threads=args.threads
            )
            results.append({"n": n, "method": label, "repeats": repeats, **record})
            print(f"done N={n} {label}: {record.get('seconds', record['status'])}", file=sys.stderr, flush=True)
    ratios = _ratios(results)
    _print_table(results, ratios)
    report = {
        "benchmark": "radius_graph",
        "date": time.strftime("%Y-%m-%d %H:%M"),
        "machine": {
            "platform": platform.platform(),
            "cpu_count": os.cpu_count(),
            "threads": args.threads,
            # Other jobs on the machine make wall times noisy: record how busy it was.
            "load_average_1_5_15_min_at_end": list(os.getloadavg()),
        },
        "versions": _versions(),
        "settings": {
            "radius_um": RADIUS,
            "density_per_um2": 1.0,
            "dtype": "float32",
            "warmup": f"one call on the first {WARMUP_POINTS} points per subprocess",
            "repeats": args.repeats,
            "timeout_seconds": args.timeout,
            "memory": "peak RSS (VmHWM after reset via /proc/self/clear_refs) minus RSS after set-up",
        },
        "results": results,
        "ratios": ratios,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
