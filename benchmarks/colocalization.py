"""Gene colocalization: planted pairs in simulations, reproducibility on real MERFISH.

**Simulation.** :func:`stgraph.datasets.simulate` with planted colocalized pairs
(B molecules placed around A molecules with a Gaussian offset of ``pair_sigma``
µm, on top of the genes' localization patterns). One within-cell radius graph;
an encoder is pretrained on it by masked gene modelling
(:func:`stgraph.tl.pretrain`, cell batches); then in one
:func:`stgraph.tl.colocalization` run on that graph, each method ranks the
unordered pairs ``{A, B}``, ``A != B``, by its statistic averaged over the two
orientations:

- ``attention``: the attention score (log2 observed / expected attention mass,
  trained encoder, heads and layers averaged, shrunk toward 0 with the default
  ``prior_events``), ``attention_unshrunk`` the same ratio without shrinkage,
  and ``attention_z`` its z-score;
- ``clq``: Leslie-Kronenfeld colocation quotient (and ``clq_bento``);
- ``binomial``: -log10 p-value of the proximal-pairs binomial test;
- ``attention_untrained``: the same score with the encoder at initialisation
  (distance-penalty ladder, random weights), to show what training adds.
- ``uniform_weight_score``: the same shrunk score with no model (every target
  spreads one unit evenly over its neighbours, i.e. the shrunk log2 CLQ), to show
  what the attention weights add over the shrinkage alone.

AUPRC of recovering the planted pairs (sklearn ``average_precision_score``).

**Real MERFISH** (U2-OS sample, 15 cells): the cells are split into two disjoint
halves (alternating in sorted id order); each half gets its own graph, its own
pretrained encoder and its own scores. For each method: the top-50 unordered
pairs of one half and the Spearman correlation of their statistics in that half and
in the other, averaged over the two directions (selecting on one half only keeps
the other half an independent replicate; selecting on both, or on the whole
sample, makes the halves anti-correlated within the selection), and the overlap
of the two top-50 sets. This top-50 Spearman is well defined and has expectation 0
when nothing replicates, but it is computed within a range-restricted selection
of 50 pairs, so it is attenuated and noisy (standard error about
``1 / sqrt(50 - 3) = 0.15``, reported as ``spearman_top_se``); the Spearman
correlation over *all* pairs scored in both halves (``spearman_all_pairs``, no
selection) is the stable summary. Runtime of the statistics on the whole
sample: attention score (encoder pass + statistics) against CLQ alone (uniform
weights) in the same run.

Usage: ``PYTHONPATH=. python benchmarks/colocalization.py [--seeds 0 1 ...]``;
prints a table and writes ``benchmarks/results/colocalization.json``.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from scipy import stats
from sklearn.metrics import average_precision_score

import stgraph
from stgraph.coloc import score_pairs
from stgraph.nn import TranscriptEncoder
from stgraph.tl._colocalization import colocalization
from stgraph.tl._pretrain import distance_penalty_ladder

from benchmarks._common import config, machine, pretrain, write_result

RESULT = Path(__file__).resolve().parent / "results" / "colocalization.json"
#: Statistic of each method (column of the pair table), higher = more colocalized.
METHOD_COLUMNS = {
    "attention": "score",
    "attention_unshrunk": "log2_ratio",
    "attention_z": "z",
    "clq": "clq",
    "clq_bento": "clq_bento",
    "binomial": "binom_pval",
}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--n-cells", type=int, default=50)
    parser.add_argument("--n-genes", type=int, default=60)
    parser.add_argument("--pairs", type=int, default=8, help="planted pairs")
    parser.add_argument("--radius", type=float, default=3.0, help="simulation graph radius, µm")
    parser.add_argument("--steps", type=int, default=300, help="pretraining steps (simulation)")
    parser.add_argument("--merfish-radius", type=float, default=0.5, help="MERFISH graph radius, µm")
    parser.add_argument("--merfish-steps", type=int, default=300, help="pretraining steps per half")
    parser.add_argument("--top", type=int, default=50, help="top pairs compared between halves")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--skip-merfish", action="store_true")
    parser.add_argument("--out", type=Path, default=RESULT)
    return parser.parse_args(argv)


def unordered(table: pd.DataFrame, column: str) -> pd.Series:
    """A method's statistic per unordered pair ``"A|B"`` (A < B), mean of both orientations."""
    a, b = table["gene_a"].astype(str), table["gene_b"].astype(str)
    if column == "log2_ratio":
        values = np.log2(table["mass"].to_numpy() / table["expected"].to_numpy())
    else:
        values = table[column].to_numpy(dtype=np.float64)
    if column == "binom_pval":
        values = -np.log10(np.maximum(values, 1e-300))
    frame = pd.DataFrame({"a": np.minimum(a, b), "b": np.maximum(a, b), "v": values})[a != b]
    return frame.groupby(frame["a"] + "|" + frame["b"])["v"].mean()


def auprc(statistic: pd.Series, planted: set[str]) -> float:
    labels = statistic.index.isin(list(planted))
    return float(average_precision_score(labels, statistic.to_numpy()))


def untrained_encoder(graph, seed: int) -> TranscriptEncoder:
    torch.manual_seed(seed)
    return TranscriptEncoder(
        len(graph.gene_names),
        conv_kwargs=dict(lambda_init=distance_penalty_ladder(graph.radius, 4)),
    )


def simulation_case(args: argparse.Namespace, seed: int) -> dict:
    sdata, truth = stgraph.datasets.simulate(
        args.n_cells, args.n_genes, colocalized_pairs=args.pairs, seed=seed
    )
    planted = {"|".join(sorted(p)) for p in zip(truth.pairs["gene_a"], truth.pairs["gene_b"])}
    graph = stgraph.graph.transcript_graph(sdata, args.radius, within="cell")
    torch.set_num_threads(args.threads)
    start = time.perf_counter()
    trained = pretrain(graph, args.steps, "cell", seed)
    train_s = time.perf_counter() - start
    start = time.perf_counter()
    table = colocalization(sdata, trained, graph=graph, inplace=False).table
    score_s = time.perf_counter() - start
    untrained = colocalization(sdata, untrained_encoder(graph, seed), graph=graph, inplace=False).table
    scores = {name: auprc(unordered(table, column), planted) for name, column in METHOD_COLUMNS.items()}
    scores["attention_untrained"] = auprc(unordered(untrained, "score"), planted)
    uniform = colocalization(sdata, graph=graph, inplace=False).table
    scores["uniform_weight_score"] = auprc(unordered(uniform, "score"), planted)
    fdr_hits = table[(table["fdr"] <= 0.05) & (table["gene_a"] != table["gene_b"])]
    found = set(unordered(fdr_hits, "score").index)
    return {
        "seed": seed,
        "n_transcripts": int(graph.num_nodes),
        "n_edges": int(graph.edge_index.shape[1]),
        "n_planted": len(planted),
        "n_candidate_pairs": int(unordered(table, "score").size),
        "auprc": scores,
        "attention_fdr05": {
            "pairs": len(found),
            "planted_found": len(found & planted),
            "false_discovery_proportion": (len(found - planted) / len(found)) if found else 0.0,
        },
        "final_train_loss": float(np.nanmean(trained.history[-20:])),  # NaN: a step without target
        "seconds": {"pretrain": train_s, "colocalization": score_s},
    }


def merfish_case(args: argparse.Namespace) -> dict:
    sdata = stgraph.datasets.merfish_u2os()
    frame = stgraph.io.transcripts_frame(sdata)
    cells = sorted(frame["cell_id"].dropna().unique().astype(str))
    halves = [cells[0::2], cells[1::2]]
    torch.set_num_threads(args.threads)
    per_half, seconds = [], {}
    for k, half in enumerate(halves):
        subset = frame[frame["cell_id"].astype(str).isin(half)].copy()
        subset["cell_id"] = subset["cell_id"].cat.remove_unused_categories()
        half_sdata = stgraph.io.read_transcripts(subset, x="x", y="y", gene="gene", cell="cell_id",
                                                 nucleus="nucleus_id", in_nucleus="in_nucleus")
        graph = stgraph.graph.transcript_graph(half_sdata, args.merfish_radius, within="cell")
        start = time.perf_counter()
        model = pretrain(graph, args.merfish_steps, "tile")
        seconds[f"pretrain_half{k}"] = time.perf_counter() - start
        per_half.append(colocalization(half_sdata, model, graph=graph, inplace=False).table)
    reproducibility = {}
    for name, column in METHOD_COLUMNS.items():
        halves_stat = [unordered(t, column) for t in per_half]
        common = halves_stat[0].index.intersection(halves_stat[1].index)
        tops, rhos = [], []
        for own, other in (halves_stat, halves_stat[::-1]):
            top = own[common].sort_values(ascending=False, kind="stable").index[: args.top]
            tops.append(set(top))
            rhos.append(float(stats.spearmanr(own[top], other[top]).statistic))
        reproducibility[name] = {
            "spearman_top": float(np.mean(rhos)),
            "spearman_top_se": float(1 / np.sqrt(args.top - 3)),
            "spearman_all_pairs": float(
                stats.spearmanr(halves_stat[0][common], halves_stat[1][common]).statistic
            ),
            "spearman_each_direction": rhos,
            "top_overlap": len(tops[0] & tops[1]) / args.top,
            "n_common_pairs": int(common.size),
        }

    # Runtime on the whole sample, same graph: attention score vs CLQ-only statistics.
    graph = stgraph.graph.transcript_graph(sdata, args.merfish_radius, within="cell")
    start = time.perf_counter()
    model = pretrain(graph, args.merfish_steps, "tile")
    seconds["pretrain_all"] = time.perf_counter() - start
    start = time.perf_counter()
    full = colocalization(sdata, model, graph=graph, inplace=False)
    seconds["attention_score_all"] = time.perf_counter() - start
    gene = np.where(graph.is_control.numpy(), -1, graph.gene.numpy())
    start = time.perf_counter()
    score_pairs(graph.edge_index.numpy(), gene, graph.cell.numpy(), gene_names=graph.gene_names)
    seconds["clq_only_all"] = time.perf_counter() - start
    top = full.table[full.table["gene_a"] != full.table["gene_b"]]
    top = top.sort_values("score", ascending=False).head(10)
    return {
        "n_transcripts": int(graph.num_nodes),
        "n_edges": int(graph.edge_index.shape[1]),
        "halves": halves,
        "reproducibility": reproducibility,
        "top_pairs_attention": [
            {"gene_a": str(r.gene_a), "gene_b": str(r.gene_b), "score": float(r.score), "fdr": float(r.fdr)}
            for r in top.itertuples()
        ],
        "seconds": seconds,
        "attention_vs_clq_time_ratio": seconds["attention_score_all"] / seconds["clq_only_all"],
    }


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    simulations = [simulation_case(args, seed) for seed in args.seeds]
    methods = list(simulations[0]["auprc"])
    mean_auprc = {m: float(np.mean([s["auprc"][m] for s in simulations])) for m in methods}
    result = {
        "config": config(args),
        "simulation": simulations,
        "mean_auprc": mean_auprc,
        "attention_minus_clq": mean_auprc["attention"] - mean_auprc["clq"],
        "target_met": bool(mean_auprc["attention"] >= mean_auprc["clq"] + 0.1),
        "machine": machine(),
    }
    print(f"{'method':<22}" + "".join(f"seed {s:<5}" for s in args.seeds) + "mean")
    for m in methods:
        row = "".join(f"{s['auprc'][m]:<10.3f}" for s in simulations)
        print(f"{m:<22}{row}{mean_auprc[m]:.3f}")
    print(f"attention - clq = {result['attention_minus_clq']:+.3f} (target +0.1: {result['target_met']})")
    if not args.skip_merfish:
        result["merfish"] = merfish_case(args)
        print(f"\nMERFISH halves: spearman top {args.top} / overlap / spearman all pairs")
        for m, r in result["merfish"]["reproducibility"].items():
            print(f"  {m:<18} {r['spearman_top']:+.3f} / {r['top_overlap']:.2f} / {r['spearman_all_pairs']:+.3f}")
        print("  seconds:", {k: round(v, 1) for k, v in result["merfish"]["seconds"].items()})
    write_result(args.out, result)
    return result


if __name__ == "__main__":
    main()
