"""Data-parallel masked gene modelling (torch.distributed) against one process.

Pretrains the encoder of ``benchmarks/pretrain_merfish.py`` (0.5 µm graph of the
MERFISH sample, d_model 64, 2 layers, 4 heads, tiles of 10 µm) for ``--steps``
steps of ``--batch-size`` tiles in three ways, each in fresh processes:

- ``one_process``: one process, one thread;
- ``two_processes``: two processes of one thread each, data-parallel over a gloo
  process group (what ``torchrun --nproc-per-node 2`` starts);
- ``one_process_two_threads``: one process, two threads (the other way to use two
  cores).

Time is the ``stgraph.tl.pretrain`` call (tile units, model, training) after the
graph is built, the slowest process for the data-parallel run. The data-parallel
model must be the one-process model: the largest weight difference is reported
(the attention's key biases are left out: their true gradient is 0, see
``tests/test_parallel.py``).

Usage: ``PYTHONPATH=. python benchmarks/parallel_pretrain.py [--steps N]``; prints a
table and writes ``benchmarks/results/parallel_pretrain.json``.
"""
from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

import stgraph
from benchmarks._common import machine, write_result
from benchmarks._measure import thread_env

RESULT = Path(__file__).resolve().parent / "results" / "parallel_pretrain.json"


def _worker(rank: int, world_size: int, threads: int, init_file: str, out: str, steps: int, batch_size: int) -> None:
    os.environ.update(thread_env(threads))
    torch.set_num_threads(threads)
    if world_size > 1:
        dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world_size)
    graph = stgraph.graph.transcript_graph(stgraph.datasets.merfish_u2os(), 0.5)
    start = time.perf_counter()
    result = stgraph.tl.pretrain(graph, steps=steps, batch_size=batch_size, tile_size=10.0, lr=3e-3,
                                 device="cpu", progress=False, seed=0)
    seconds = time.perf_counter() - start
    torch.save({"seconds": seconds, "history": result.history, "weights": result.model.state_dict()},
               Path(out) / f"rank{rank}.pt")
    if world_size > 1:
        dist.destroy_process_group()


def run(world_size: int, threads: int, steps: int, batch_size: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        ctx = mp.get_context("spawn")
        procs = [ctx.Process(target=_worker, args=(r, world_size, threads, f"{tmp}/init", tmp, steps, batch_size))
                 for r in range(world_size)]
        for p in procs:
            p.start()
        for p in procs:
            p.join()
            if p.exitcode != 0:
                raise RuntimeError(f"a training process failed (exit code {p.exitcode})")
        ranks = [torch.load(Path(tmp) / f"rank{r}.pt") for r in range(world_size)]
    return {"seconds": max(r["seconds"] for r in ranks), "history": ranks[0]["history"],
            "weights": ranks[0]["weights"]}


def largest_difference(a: dict, b: dict) -> float:
    return max(float((a[k] - b[k]).abs().max()) for k in a if not k.endswith("lin_key.bias"))


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--batch-size", type=int, default=16, help="tiles per step, all processes together")
    parser.add_argument("--out", type=Path, default=RESULT)
    args = parser.parse_args(argv)
    cases = {"one_process": (1, 1), "two_processes": (2, 1), "one_process_two_threads": (1, 2)}
    runs = {name: run(w, t, args.steps, args.batch_size) for name, (w, t) in cases.items()}
    base = runs["one_process"]
    report = {
        "machine": machine(),
        "load_average_after": os.getloadavg(),
        "settings": {"steps": args.steps, "batch_size": args.batch_size, "radius": 0.5, "d_model": 64,
                     "n_layers": 2, "heads": 4, "tile_size": 10.0},
        "cases": {name: {"processes": w, "threads_per_process": t, "seconds": runs[name]["seconds"],
                         "final_loss": runs[name]["history"][-1]}
                  for name, (w, t) in cases.items()},
        "speedup_two_processes_over_one": base["seconds"] / runs["two_processes"]["seconds"],
        "speedup_two_processes_over_two_threads":
            runs["one_process_two_threads"]["seconds"] / runs["two_processes"]["seconds"],
        "largest_weight_difference_two_processes_vs_one": largest_difference(
            runs["two_processes"]["weights"], base["weights"]),
        "largest_loss_difference_two_processes_vs_one": max(
            abs(a - b) for a, b in zip(runs["two_processes"]["history"], base["history"])),
    }
    print("| run | processes × threads | seconds | final loss |")
    print("|---|---|---|---|")
    for name, case in report["cases"].items():
        print(f"| {name} | {case['processes']} × {case['threads_per_process']} | {case['seconds']:.1f} "
              f"| {case['final_loss']:.4f} |")
    print(f"two processes: {report['speedup_two_processes_over_one']:.2f}x one process, "
          f"{report['speedup_two_processes_over_two_threads']:.2f}x one process of two threads; "
          f"largest weight difference {report['largest_weight_difference_two_processes_vs_one']:.1e}, "
          f"loss difference {report['largest_loss_difference_two_processes_vs_one']:.1e}")
    write_result(args.out, report)
    return report


if __name__ == "__main__":
    main()
