"""Subcellular domains: planted domains in simulations, nucleus vs cytoplasm on MERFISH.

**Simulation.** :func:`stgraph.datasets.simulate` with ``n_domains`` planted
domain types (every cell holds one small region per type where the type's genes
are concentrated); ``truth.transcript_domain`` labels each molecule by the region
it lies in (0 outside all). Two settings:

- ``domains_only``: every gene uniform in its cell apart from the domains
  (``patterns="none"``), so the domains are the only subcellular structure;
- ``with_patterns``: the default localization patterns (nuclear, nuclear edge,
  cytoplasmic, membrane, none) on top, a competing structure that the truth
  labels count as background.

:func:`stgraph.tl.domains` with ``k = n_domains + 1`` given, and with ``k``
chosen in ``(2, 8)`` by silhouette; adjusted Rand index (ARI) with the truth.
The ARI also counts how the background is split: in ``with_patterns`` a
clustering that separates, say, nuclear from cytoplasmic background loses ARI
even when it finds every planted domain. So for the composition with ``k`` given
the benchmark also reports, per planted domain, the F1 of the found domain that
matches it best (``best_match_f1_composition_k_given``), which ignores the
background.
Representations: neighbourhood composition, and the encoder context of a
masked gene model pretrained (``--steps``) on that simulation's graph (the gene
distribution it predicts at each transcript with the transcript's gene hidden,
see :mod:`stgraph.domains._features`), alone and with the composition.

**Real MERFISH** (U2-OS sample): ``k = 2`` domains of the transcripts in cells,
ARI with the nucleus / cytoplasm split (``in_nucleus``), for the composition
(radius 3 µm) and for the encoder context of an encoder pretrained on, and run
over, the 0.5 µm graph (as in ``benchmarks/pretrain_merfish.py``); runtime of
:func:`stgraph.tl.domains`.

Usage: ``PYTHONPATH=. python benchmarks/domains.py``; prints a table and writes
``benchmarks/results/domains.json``.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch
from sklearn.metrics import adjusted_rand_score

import stgraph
from stgraph.tl._domains import domains

from benchmarks._common import config, machine, pretrain, write_result

RESULT = Path(__file__).resolve().parent / "results" / "domains.json"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--n-cells", type=int, default=50)
    parser.add_argument("--n-genes", type=int, default=60)
    parser.add_argument("--n-domains", type=int, default=3)
    parser.add_argument("--radius", type=float, default=3.0, help="simulation graph radius, µm")
    parser.add_argument("--steps", type=int, default=1000, help="pretraining steps (0: no encoder runs)")
    parser.add_argument("--merfish-radius", type=float, default=3.0, help="MERFISH composition radius, µm")
    parser.add_argument("--merfish-encoder-radius", type=float, default=0.5, help="MERFISH encoder radius, µm")
    parser.add_argument("--merfish-steps", type=int, default=300)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--skip-merfish", action="store_true")
    parser.add_argument("--out", type=Path, default=RESULT)
    return parser.parse_args(argv)


def ari(truth: np.ndarray, labels, keep: np.ndarray | None = None) -> float:
    codes = np.asarray(labels.codes)
    keep = codes >= 0 if keep is None else keep & (codes >= 0)
    return float(adjusted_rand_score(truth[keep], codes[keep]))


def best_match_f1(truth: np.ndarray, labels) -> list[float]:
    """For each planted domain ``1..n``, the F1 of the found domain that matches it best."""
    codes = np.asarray(labels.codes)
    keep = codes >= 0
    truth, codes = truth[keep], codes[keep]
    scores = []
    for planted in range(1, int(truth.max()) + 1):
        inside = truth == planted
        overlap = np.bincount(codes[inside], minlength=codes.max() + 1)
        sizes = np.bincount(codes, minlength=codes.max() + 1)
        scores.append(float((2 * overlap / (inside.sum() + sizes)).max()))
    return scores


def simulation_case(args: argparse.Namespace, seed: int, setting: str) -> dict:
    patterns = ["none"] * args.n_genes if setting == "domains_only" else None
    sdata, truth = stgraph.datasets.simulate(
        args.n_cells, args.n_genes, n_domains=args.n_domains, patterns=patterns, seed=seed
    )
    graph = stgraph.graph.transcript_graph(sdata, args.radius, within="cell")
    torch.set_num_threads(args.threads)
    k = args.n_domains + 1
    out: dict = {"seed": seed, "setting": setting, "n_transcripts": int(graph.num_nodes)}
    start = time.perf_counter()
    given = domains(sdata, graph=graph, n_domains=k, inplace=False)
    out["seconds_composition"] = time.perf_counter() - start
    chosen = domains(sdata, graph=graph, inplace=False)
    out["ari"] = {"composition_k_given": ari(truth.transcript_domain, given.labels)}
    out["ari"]["composition_k_chosen"] = ari(truth.transcript_domain, chosen.labels)
    out["best_match_f1_composition_k_given"] = best_match_f1(truth.transcript_domain, given.labels)
    out["k_chosen"] = int(chosen.clustering.n_domains)
    out["silhouette"] = {str(k): v for k, v in chosen.clustering.criterion.items()}
    if args.steps > 0:
        start = time.perf_counter()
        model = pretrain(graph, args.steps, "cell")
        out["seconds_pretrain"] = time.perf_counter() - start
        for representation in ("embedding", "both"):
            start = time.perf_counter()
            labels = domains(
                sdata, model, graph=graph, n_domains=k, representation=representation, inplace=False
            ).labels
            out[f"seconds_{representation}"] = time.perf_counter() - start
            out["ari"][f"{representation}_k_given"] = ari(truth.transcript_domain, labels)
    return out


def merfish_case(args: argparse.Namespace) -> dict:
    sdata = stgraph.datasets.merfish_u2os()
    graph = stgraph.graph.transcript_graph(sdata, args.merfish_radius, within="cell")
    torch.set_num_threads(args.threads)
    in_cell = graph.cell.numpy() >= 0
    nucleus = graph.in_nucleus.numpy().astype(int)
    start = time.perf_counter()
    composition = domains(sdata, graph=graph, n_domains=2, inplace=False)
    seconds = {"domains_composition": time.perf_counter() - start}
    out = {"n_transcripts_in_cells": int(in_cell.sum()), "nuclear_fraction": float(nucleus[in_cell].mean())}
    out["ari_nucleus"] = {"composition": ari(nucleus, composition.labels, in_cell)}
    if args.merfish_steps > 0:
        # The encoder works on its own (smaller) radius, as in benchmarks/pretrain_merfish.py.
        encoder_graph = stgraph.graph.transcript_graph(sdata, args.merfish_encoder_radius, within="cell")
        start = time.perf_counter()
        model = pretrain(encoder_graph, args.merfish_steps, "tile")
        seconds["pretrain"] = time.perf_counter() - start
        for representation in ("embedding", "both"):
            start = time.perf_counter()
            labels = domains(
                sdata, model, graph=graph, encoder_graph=encoder_graph, n_domains=2,
                representation=representation, inplace=False,
            ).labels
            seconds[f"domains_{representation}"] = time.perf_counter() - start
            out["ari_nucleus"][representation] = ari(nucleus, labels, in_cell)
    out["seconds"] = seconds
    return out


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    simulations = [
        simulation_case(args, seed, setting)
        for setting in ("domains_only", "with_patterns")
        for seed in args.seeds
    ]
    summary = {}
    for setting in ("domains_only", "with_patterns"):
        runs = [s for s in simulations if s["setting"] == setting]
        summary[setting] = {
            key: float(np.mean([r["ari"][key] for r in runs if key in r["ari"]]))
            for key in runs[0]["ari"]
        }
    result = {
        "config": config(args),
        "simulation": simulations,
        "mean_ari": summary,
        "target_met_domains_only": {
            key: bool(value >= 0.8) for key, value in summary["domains_only"].items()
        },
        "machine": machine(),
    }
    for setting, values in summary.items():
        print(setting, {k: round(v, 3) for k, v in values.items()})
    if not args.skip_merfish:
        result["merfish"] = merfish_case(args)
        print("MERFISH nucleus/cytoplasm ARI:", result["merfish"]["ari_nucleus"])
        print("  seconds:", {k: round(v, 1) for k, v in result["merfish"]["seconds"].items()})
    write_result(args.out, result)
    return result


if __name__ == "__main__":
    main()
