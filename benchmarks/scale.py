"""Whole-sample tools at 10⁵ and 10⁶ transcripts, or at any ``--sizes`` (writes ``results/scale.json``).

Each size is one :func:`stgraph.datasets.simulate` sample (100 genes, 5 molecules per
(cell, gene) on average, cells as many as needed: 200 cells ≈ 10⁵ transcripts; with
``--genes G`` the same 500 molecules per cell spread over G genes), written
to a temporary zarr store. Each tool then runs on it in a fresh process
(:func:`benchmarks._measure.run_case`): the set-up reads the store and runs the tool
once on a small simulation (numba compilation, checkpoint load); the measured call runs
the tool on the whole sample, in place, with its defaults and:

- ``graph``: ``transcript_graph(sdata, radius=1.0)``;
- ``localization``: ``tl.localization(sdata)`` (patterns, compartment, gene score);
- ``colocalization``: ``tl.colocalization(sdata, radius=1.0)`` (no model: uniform weights);
- ``domains``: ``tl.domains(sdata, radius=3.0, n_domains=3)``;
- ``outlines``: ``io.outlines_from_transcripts`` for the cells and then for the
  nuclei (clipped to the measured cell outlines), as new shapes elements.

Reported: wall time, CPU time, peak memory above the loaded sample, and per transcript;
the scaling ratio is the time (or memory) per transcript at the largest size over that
at the smallest, 1.0 for linear cost.
"""
from __future__ import annotations

import argparse
import platform
import sys
import tempfile
import time
import warnings
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks._common import write_result  # noqa: E402
from benchmarks._measure import run_case  # noqa: E402
from stgraph.datasets import simulate  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results" / "scale.json"
N_GENES = 100
#: Molecules per cell on average, whatever the panel.
MOLECULES_PER_CELL = 500.0
CELLS_PER_TRANSCRIPT = 200 / 1e5
TOOLS = ("graph", "localization", "colocalization", "domains", "outlines")


def _run_tool(tool: str, sdata) -> dict:
    import stgraph as st

    if tool == "graph":
        return {"edges": int(st.graph.transcript_graph(sdata, radius=1.0).edge_index.shape[1])}
    if tool == "localization":
        st.tl.localization(sdata)
        return {"scored_groups": int(len(sdata.tables["table"].uns["lpp"]))}
    if tool == "colocalization":
        st.tl.colocalization(sdata, radius=1.0)
        return {"pairs": int(len(sdata.tables["table"].uns["colocalization"]))}
    if tool == "domains":
        st.tl.domains(sdata, radius=3.0, n_domains=3)
        return {"n_domains": int(sdata.points["transcripts"]["domain"].compute().nunique())}
    if tool == "outlines":
        st.io.outlines_from_transcripts(sdata, key="cell_hulls", overwrite=True)
        st.io.outlines_from_transcripts(sdata, kind="nucleus", key="nucleus_hulls", overwrite=True)
        return {"cells": len(sdata.shapes["cell_hulls"]), "nuclei": len(sdata.shapes["nucleus_hulls"])}
    raise ValueError(f"unknown tool {tool!r}")


def tool_case(tool: str, path: str, n_genes: int = N_GENES):
    """Set-up of one measured call: warm the tool up on a small sample, read the big one."""
    import spatialdata

    warnings.simplefilter("ignore")
    _run_tool(tool, simulate(20, n_genes, mean_counts=MOLECULES_PER_CELL / n_genes, seed=1)[0])
    sdata = spatialdata.read_zarr(path)
    return lambda: _run_tool(tool, sdata)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1e5,1e6", help="comma-separated transcript counts (approximate)")
    parser.add_argument("--tools", default=",".join(TOOLS), help=f"comma-separated subset of {TOOLS}")
    parser.add_argument("--genes", type=int, default=N_GENES, help="panel size (molecules per cell stay the same)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--timeout", type=float, default=1800.0, help="seconds per case")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    sizes = [int(float(s)) for s in args.sizes.split(",")]
    tools = args.tools.split(",")
    unknown = sorted(set(tools) - set(TOOLS))
    if unknown:
        parser.error(f"unknown tools {unknown}; choose from {TOOLS}")

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for size in sizes:
            n_cells = max(1, round(size * CELLS_PER_TRANSCRIPT))
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                sdata, _ = simulate(n_cells, args.genes, mean_counts=MOLECULES_PER_CELL / args.genes, seed=0)
            n = len(sdata.points["transcripts"])
            path = str(Path(tmp) / f"sample_{size}.zarr")
            sdata.write(path)
            del sdata
            for tool in tools:
                record = run_case("benchmarks.scale:tool_case", {"tool": tool, "path": path, "n_genes": args.genes},
                                  repeats=1, timeout=args.timeout, threads=args.threads)
                row = {"tool": tool, "n_transcripts": n, "n_cells": n_cells, **record}
                if record.get("status") == "ok":
                    row["microseconds_per_transcript"] = 1e6 * record["seconds"] / n
                    row["bytes_per_transcript"] = record["peak_bytes"] / n
                    print(f"{tool:15s} {n:>9,d} transcripts  {record['seconds']:7.1f} s  "
                          f"{record['peak_bytes'] / 2**20:7.0f} MiB  "
                          f"{row['microseconds_per_transcript']:6.1f} µs and {row['bytes_per_transcript']:5.0f} B "
                          "per transcript", flush=True)
                else:
                    print(f"{tool:15s} {n:>9,d} transcripts  {record}", flush=True)
                rows.append(row)
    scaling = {}
    for tool in tools:
        done = [r for r in rows if r["tool"] == tool and r.get("status") == "ok"]
        if len(done) >= 2:
            small, large = done[0], done[-1]
            scaling[tool] = {
                "from": small["n_transcripts"], "to": large["n_transcripts"],
                "time_per_transcript_ratio": large["microseconds_per_transcript"] / small["microseconds_per_transcript"],
                "memory_per_transcript_ratio": large["bytes_per_transcript"] / small["bytes_per_transcript"],
            }
            print(f"{tool:15s} per-transcript time ×{scaling[tool]['time_per_transcript_ratio']:.2f}, "
                  f"memory ×{scaling[tool]['memory_per_transcript_ratio']:.2f} from {small['n_transcripts']:,d} "
                  f"to {large['n_transcripts']:,d} transcripts")
    write_result(args.out, {
        "benchmark": "scale",
        "date": time.strftime("%Y-%m-%d %H:%M"),
        "machine": {"platform": platform.platform(), "threads": args.threads, "torch": torch.__version__},
        "settings": {"n_genes": args.genes, "mean_counts": MOLECULES_PER_CELL / args.genes, "sizes": sizes, "tools": tools},
        "results": rows,
        "scaling": scaling,
    })
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
