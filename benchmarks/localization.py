"""Benchmark of :func:`stgraph.tl.localization` (writes ``results/localization.json``).

1. **Simulation.** Macro-F1 of the top pattern over Bento's five patterns on held-out
   simulated cells (other seeds, cell sizes, shapes, densities and expression levels
   than training), for the shipped pattern head and for two classifiers on Bento's 13
   RNAforest features (:mod:`stgraph.localization._rnaforest`): a random forest (as
   in Bento) and a histogram gradient-boosted classifier, both trained on the very
   simulations the checkpoint was trained on (regenerated from its
   ``training_info``). The gain is taken over the better of the two on each held-out
   set. For scale, the same groups are also classified by a
   likelihood oracle that knows the simulator's rules (each (cell, gene)'s true
   purity, the band width, exact region areas): an upper bound no method reaches
   without that knowledge, so ``oracle - baseline`` is the largest possible gain.
   The gain gets a 95 % interval by resampling cells; a pooled macro-F1 over both
   held-out settings is reported beside the per-setting ones. Each setting is
   then redrawn with three development seeds (``seed_spread``) to show how much
   the gain and its ceiling move from one draw of cells to the next.
2. **Real MERFISH** (:func:`stgraph.datasets.merfish_u2os`, 13 cells with a nucleus).
   3-fold split of those cells. Mode (b): the held-out cells' nucleus outlines are
   removed, the compartment model learns on the training cells and predicts the
   held-out molecules; per-transcript nuclear AUROC against the baseline scoring each
   molecule by its gene's nuclear fraction in the training cells. Mode (a): the
   outlines are kept as features. Gene level: Spearman correlation between the
   nuclear-enrichment score computed on the held-out cells and their observed nuclear
   fraction (genes with at least 20 held-out molecules), in both modes.
3. **Real Xenium and CosMx** (the native files in ``../shared/data``, when present),
   which ship no cell outlines: they are drawn around each cell's molecules with
   :func:`stgraph.io.outlines_from_transcripts`; Xenium's nucleus outlines are
   measured, CosMx's are drawn around the molecules the platform calls nuclear
   (``CellComp``). The same split and scores as part 2, the truth being the
   platform's own per-molecule call (Xenium ``overlaps_nucleus``, CosMx
   ``CellComp == "Nuclear"``); on CosMx only mode (b), since outlines drawn from
   the truth cannot be features.
4. **Time** of ``tl.localization`` on the whole sample (174,827 molecules, 15 cells)
   with the shipped checkpoint, in a fresh process limited to ``--threads`` threads,
   against the same-run time of the Bento-style peer (RNAforest features + random
   forest prediction on the same sample).

``--retrain`` first retrains the shipped checkpoint (``train_pattern_model()`` with
its defaults) and overwrites it. ``--quick`` shrinks the simulations for a smoke run
(numbers not comparable). ``--parts`` runs some parts only and updates just their
entries of the JSON.
"""
from __future__ import annotations

import argparse
import json
import pickle
import platform
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from scipy.stats import spearmanr
from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier
from sklearn.metrics import f1_score, roc_auc_score
from sklearn.model_selection import KFold

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import spatialdata  # noqa: E402

from benchmarks._measure import run_case  # noqa: E402
from stgraph.datasets import merfish_u2os, simulate  # noqa: E402
from stgraph.io import outlines_from_transcripts, read_cosmx, read_xenium  # noqa: E402
from stgraph.localization import (  # noqa: E402
    PATTERNS,
    RNAFOREST_FEATURES,
    read_cell_transcripts,
    rnaforest_features,
    train_pattern_model,
)
from stgraph.localization._features import reference_points  # noqa: E402
from stgraph.localization._gene_score import nuclear_enrichment  # noqa: E402
from stgraph.localization._geometry import transcript_geometry  # noqa: E402
from stgraph.localization._pretrained import PRETRAINED_PATH, load_pretrained  # noqa: E402
from stgraph.localization._train import planted_labels  # noqa: E402
from stgraph.tl._localization import localization  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results" / "localization.json"
PARTS = ("simulation", "merfish", "platforms", "time")
DATA = ROOT.parent / "shared" / "data"
XENIUM, COSMX = DATA / "xenium_lung_10k", DATA / "cosmx_lung12"
MIN_TRANSCRIPTS = 5
#: Held-out simulations: seeds unused in training, other size / shape / density mixes.
HELD_OUT = {
    "varied_shapes": dict(seed=1000, cell_radius=(8.0, 30.0), mean_counts=20.0, elongation=(1.1, 2.2),
                          irregularity=0.2, frac_cells_without_nucleus=0.1),
    "large_dense": dict(seed=1001, cell_radius=(15.0, 40.0), mean_counts=60.0, elongation=(1.0, 1.5),
                        irregularity=0.3, nucleus_scale=(0.45, 0.6), gene_variability=0.8),
}
#: Development seeds: each held-out setting is redrawn with these (plus its position
#: in ``HELD_OUT``) to show the spread of the gain and of its ceiling.
SPREAD_SEEDS = (2000, 2002, 2004)
MIN_HELD_OUT_MOLECULES = 20
#: Classifiers on the RNAforest features; the gain is taken over the better one.
BASELINES = ("rnaforest_baseline", "rnaforest_gradient_boosted")


def rnaforest_table(sdata, truth=None):
    """RNAforest features (and planted labels) of every (cell, gene) with >= 5 molecules."""
    _, transcripts = read_cell_transcripts(sdata)
    groups = transcripts.groups(MIN_TRANSCRIPTS)
    features = rnaforest_features(transcripts, groups)[list(RNAFOREST_FEATURES)].to_numpy()
    return features, (None if truth is None else planted_labels(truth, transcripts, groups))


def oracle_predictions(sdata, truth) -> tuple[np.ndarray, np.ndarray]:
    """Most likely pattern of each group under the simulator's own rules, and the
    planted one.

    A molecule of a (cell, gene) with purity ``q`` and pattern region ``P`` has
    density ``q 1[x in P] / |P| + (1 - q) / |cell|`` (areas as fractions of the
    cell, measured on a 4096-point grid); the oracle sums the log densities.
    """
    _, transcripts = read_cell_transcripts(sdata)
    groups = transcripts.groups(MIN_TRANSCRIPTS)
    geometry = transcripts.geometry
    width = truth.cells.set_index("cell_id").loc[geometry.cell_ids, "edge_width"].to_numpy()

    def regions(tg, cell):
        band = width[cell]
        near_membrane = tg.cell_distance < band
        return np.stack([
            near_membrane,
            ~tg.in_nucleus & ~near_membrane,
            np.ones(len(cell), dtype=bool),
            tg.in_nucleus,
            tg.has_nucleus & (np.abs(tg.nucleus_distance) < band / 2),
        ], axis=1)

    grid, grid_cell = reference_points(geometry, 4096)
    inside = regions(transcript_geometry(grid, grid_cell, geometry), grid_cell)
    area = np.stack([np.bincount(grid_cell, weights=inside[:, k], minlength=len(geometry)) for k in range(5)], 1)
    area /= np.bincount(grid_cell, minlength=len(geometry))[:, None]
    purity = truth.patterns.set_index(["cell_id", "gene"])["purity"]
    key = pd.MultiIndex.from_arrays([geometry.cell_ids[groups.cell], transcripts.gene_names[groups.gene]])
    kept = groups.member >= 0
    member = groups.member[kept]
    q = purity.reindex(key).to_numpy()[member, None]
    density = q * regions(transcripts.transcript_geometry, transcripts.cell)[kept] / np.maximum(
        area[transcripts.cell[kept]], 1e-12) + (1 - q)
    log_likelihood = np.zeros((len(groups), len(PATTERNS)))
    np.add.at(log_likelihood, member, np.log(density))
    no_nucleus = ~geometry.has_nucleus[groups.cell]
    log_likelihood[np.ix_(no_nucleus, [PATTERNS.index("nuclear"), PATTERNS.index("nuclear_edge")])] = -np.inf
    return log_likelihood.argmax(1), planted_labels(truth, transcripts, groups)


def _f1(truth: np.ndarray, predicted: np.ndarray) -> dict:
    per_class = f1_score(truth, predicted, labels=range(len(PATTERNS)), average=None)
    return {"macro_f1": float(per_class.mean()), "f1": dict(zip(PATTERNS, per_class.round(4).tolist()))}


def _gain_interval(truth, ours, baseline, cell, n_boot: int = 200, seed: int = 0) -> list[float]:
    """95 % bootstrap interval (cells resampled) of the macro-F1 gain of ``ours`` over ``baseline``."""
    rng = np.random.default_rng(seed)
    codes, _ = pd.factorize(cell)
    members = np.split(np.argsort(codes, kind="stable"), np.cumsum(np.bincount(codes))[:-1])
    gains = []
    for _ in range(n_boot):
        rows = np.concatenate([members[c] for c in rng.integers(len(members), size=len(members))])
        gains.append(_f1(truth[rows], ours[rows])["macro_f1"] - _f1(truth[rows], baseline[rows])["macro_f1"])
    return np.percentile(gains, [2.5, 97.5]).tolist()


def simulation_benchmark(quick: bool) -> tuple[dict, RandomForestClassifier]:
    info = load_pretrained().training_info
    n_cells = 30 if quick else info["n_cells"]
    training = [
        simulate(n_cells, info["n_genes"], seed=info["seed"] + i, **kw) for i, kw in enumerate(info["simulations"])
    ]
    tables = [rnaforest_table(s, t) for s, t in training]
    x = np.concatenate([f for f, _ in tables])
    y = np.concatenate([lab for _, lab in tables])
    forest = RandomForestClassifier(n_estimators=500, random_state=0, n_jobs=-1).fit(x, y)
    boosted = HistGradientBoostingClassifier(max_iter=500, early_stopping=True, random_state=0).fit(x, y)
    out = {"training_groups": int(len(y)), "training_cells": n_cells * len(training), "held_out": {}}
    pooled = {"truth": [], "stgraph": [], **{key: [] for key in BASELINES}, "oracle_upper_bound": []}
    held_out_cells = 40 if quick else 150
    for name, params in HELD_OUT.items():
        labels, predicted, cell = _score_setting(params, forest, boosted, held_out_cells)
        scores = {key: _f1(labels, value) for key, value in predicted.items()}
        best = max(BASELINES, key=lambda key: scores[key]["macro_f1"])
        gain = scores["stgraph"]["macro_f1"] - scores[best]["macro_f1"]
        out["held_out"][name] = {
            "params": {k: v for k, v in params.items()},
            "n_groups": int(len(labels)),
            **scores,
            "best_baseline": best,
            "gain": gain,
            "gain_ci95_cells_resampled": _gain_interval(labels, predicted["stgraph"], predicted[best], cell),
            "largest_possible_gain": scores["oracle_upper_bound"]["macro_f1"] - scores[best]["macro_f1"],
        }
        pooled["truth"].append(labels)
        for key, value in predicted.items():
            pooled[key].append(value)
        print(f"{name:14s} groups {len(labels):5d}  stgraph macro-F1 {scores['stgraph']['macro_f1']:.4f}  "
              f"RNAforest RF {scores['rnaforest_baseline']['macro_f1']:.4f} "
              f"GB {scores['rnaforest_gradient_boosted']['macro_f1']:.4f}  gain over {best} {gain:+.4f} "
              f"(95% CI {out['held_out'][name]['gain_ci95_cells_resampled']})  "
              f"(oracle {scores['oracle_upper_bound']['macro_f1']:.4f})")
    gains = [v["gain"] for v in out["held_out"].values()]
    truth_all = np.concatenate(pooled.pop("truth"))
    out["pooled_macro_f1"] = {key: _f1(truth_all, np.concatenate(v))["macro_f1"] for key, v in pooled.items()}
    out["pooled_gain"] = out["pooled_macro_f1"]["stgraph"] - max(out["pooled_macro_f1"][key] for key in BASELINES)
    out["mean_gain"] = float(np.mean(gains))
    out["target_gain"] = 0.05
    out["target_met"] = bool(min(gains) >= 0.05)
    out["seed_spread"] = seed_spread(forest, boosted, held_out_cells, () if quick else SPREAD_SEEDS)
    return out, forest


def _score_setting(params: dict, forest, boosted, n_cells: int) -> tuple[np.ndarray, dict, np.ndarray]:
    """Planted labels, the top pattern of every method, and the cell of every group
    of one held-out simulation of ``n_cells`` cells and 50 genes."""
    sdata, truth = simulate(n_cells, 50, **params)
    features, labels = rnaforest_table(sdata, truth)
    scored = localization(sdata, compartment=None, copy=True, n_boot=1)
    lpp = scored.tables["table"].uns["lpp"]
    planted = truth.patterns.set_index(["cell_id", "gene"])["pattern"].astype(str)
    expected = planted.reindex(pd.MultiIndex.from_frame(lpp[["cell_id", "gene"]].astype(str))).to_numpy()
    # Both tables list the groups in the same (cell, gene) order.
    assert np.array_equal(pd.Categorical(expected, categories=PATTERNS).codes, labels)
    oracle_pred, oracle_truth = oracle_predictions(sdata, truth)
    assert np.array_equal(oracle_truth, labels)
    predicted = {
        "stgraph": pd.Categorical(lpp["top_pattern"].astype(str), categories=PATTERNS).codes,
        "rnaforest_baseline": forest.predict(features),
        "rnaforest_gradient_boosted": boosted.predict(features),
        "oracle_upper_bound": oracle_pred,
    }
    return labels, predicted, lpp["cell_id"].astype(str).to_numpy()


def seed_spread(forest, boosted, n_cells: int, seeds: tuple[int, ...]) -> dict:
    """Macro-F1, gain and largest possible gain of every held-out setting redrawn
    with other seeds (``seed + k`` for the ``k``-th setting), to show how much the
    single-seed numbers move.

    These are the development seeds on which model variants were compared, so
    stgraph's numbers there are, if anything, optimistic; the baselines' and the
    oracle's are not tuned on them.
    """
    out = {}
    for k, (name, params) in enumerate(HELD_OUT.items()):
        rows = []
        for seed in seeds:
            labels, predicted, _ = _score_setting({**params, "seed": seed + k}, forest, boosted, n_cells)
            scores = {key: _f1(labels, value)["macro_f1"] for key, value in predicted.items()}
            best = max(scores[key] for key in BASELINES)
            rows.append({"seed": seed + k, "macro_f1": scores, "gain": scores["stgraph"] - best,
                         "largest_possible_gain": scores["oracle_upper_bound"] - best})
            print(f"{name:14s} seed {seed + k}  gain {rows[-1]['gain']:+.4f}  "
                  f"largest possible {rows[-1]['largest_possible_gain']:+.4f}")
        out[name] = rows
    return out


def _without_nuclei(sdata: spatialdata.SpatialData, cells: list[str]) -> spatialdata.SpatialData:
    """A copy of ``sdata`` whose nucleus outlines of ``cells`` are removed."""
    copy = spatialdata.deepcopy(sdata)
    nuclei = copy.shapes["nucleus_boundaries"]
    copy.shapes["nucleus_boundaries"] = nuclei[~nuclei.index.astype(str).isin(cells)]
    return copy


def compartment_benchmark(sdata: spatialdata.SpatialData, modes: tuple[str, ...] = ("withheld", "outlines")) -> dict:
    """Part 2 of the module docstring on one sample: 3-fold split of the cells with a
    nucleus outline; the truth is the points' ``in_nucleus`` column."""
    points = sdata.points["transcripts"].compute()
    genes = points["gene"].astype(str).to_numpy()
    cells = points["cell_id"].astype(str).to_numpy()
    label = points["in_nucleus"].to_numpy()
    control = points["is_control"].to_numpy()
    outlined = sdata.shapes["cell_boundaries"].index.astype(str)
    with_nucleus = np.array(sorted(set(sdata.shapes["nucleus_boundaries"].index.astype(str)) & set(outlined)))
    folds = []
    pooled = {"y": [], "baseline": [], **{mode: [] for mode in modes}}
    for k, (train_idx, held_idx) in enumerate(KFold(3, shuffle=True, random_state=0).split(with_nucleus)):
        train, held = list(with_nucleus[train_idx]), list(with_nucleus[held_idx])
        is_train, is_held = np.isin(cells, train), np.isin(cells, held)
        fraction = pd.Series(label[is_train]).groupby(genes[is_train]).mean()
        baseline = pd.Series(genes[is_held]).map(fraction).fillna(label[is_train].mean()).to_numpy()
        fold = {"train_cells": train, "held_out_cells": held, "n_held_out_molecules": int(is_held.sum())}
        predictions = {}
        for mode in modes:
            data = _without_nuclei(sdata, held) if mode == "withheld" else sdata
            with warnings.catch_warnings():
                # cells too small for an outline drawn from their molecules are named; not scored either way
                warnings.filterwarnings("ignore", ".*cell\\(s\\) have transcripts but no outline", UserWarning)
                scored = localization(data, training_cells=train, compartment="auto", copy=True, n_boot=1)
            p = scored.points["transcripts"].compute()["p_nuclear"].to_numpy()
            predictions[mode] = p[is_held]
            fold[f"auroc_{mode}"] = float(roc_auc_score(label[is_held], p[is_held]))
        fold["auroc_gene_fraction_baseline"] = float(roc_auc_score(label[is_held], baseline))
        # Gene level on the held-out cells.
        keep = is_held & ~control
        gene_codes, gene_names = pd.factorize(genes[keep])
        cell_codes, _ = pd.factorize(cells[keep])
        observed = pd.Series(label[keep]).groupby(gene_codes).agg(["mean", "size"])
        enough = observed["size"].to_numpy() >= MIN_HELD_OUT_MOLECULES
        for mode in modes:
            p = pd.Series(predictions[mode], index=np.flatnonzero(is_held))[np.flatnonzero(keep)].to_numpy()
            score = nuclear_enrichment(p, gene_codes, cell_codes, len(gene_names), cell_codes.max() + 1, n_boot=1)
            fold[f"spearman_{mode}"] = float(spearmanr(score["score"][enough], observed["mean"][enough])[0])
        prior = pd.Series(gene_names).map(fraction).to_numpy()
        fold["spearman_gene_fraction_baseline"] = float(spearmanr(prior[enough], observed["mean"][enough])[0])
        fold["n_genes_scored"] = int(enough.sum())
        folds.append(fold)
        pooled["y"].append(label[is_held])
        pooled["baseline"].append(baseline)
        for mode in modes:
            pooled[mode].append(predictions[mode])
        print(f"fold {k}: AUROC " + " ".join(f"{mode} {fold[f'auroc_{mode}']:.3f}" for mode in modes)
              + f" baseline {fold['auroc_gene_fraction_baseline']:.3f}; Spearman "
              + " ".join(f"{mode} {fold[f'spearman_{mode}']:.3f}" for mode in modes)
              + f" baseline {fold['spearman_gene_fraction_baseline']:.3f} ({fold['n_genes_scored']} genes)")
    y = np.concatenate(pooled["y"])
    summary = {
        key: float(np.mean([f[key] for f in folds]))
        for key in folds[0]
        if key.startswith(("auroc", "spearman"))
    }
    summary["pooled_auroc_withheld"] = float(roc_auc_score(y, np.concatenate(pooled["withheld"])))
    summary["pooled_auroc_gene_fraction_baseline"] = float(roc_auc_score(y, np.concatenate(pooled["baseline"])))
    summary["target_met"] = bool(all(f["auroc_withheld"] > f["auroc_gene_fraction_baseline"] for f in folds))
    return {"n_cells_with_nucleus": int(len(with_nucleus)), "folds": folds, "mean": summary}


def merfish_benchmark() -> dict:
    return compartment_benchmark(merfish_u2os())


def platform_benchmark() -> dict:
    """Part 3 of the module docstring: the native Xenium and CosMx files, with the
    outlines they lack drawn by :func:`stgraph.io.outlines_from_transcripts`."""
    out = {}
    if XENIUM.exists():
        sdata = read_xenium(XENIUM)
        outlines_from_transcripts(sdata)
        print("Xenium (cell outlines from the molecules, grown to hold the measured nucleus outlines):")
        out["xenium"] = {"outlines": "cells drawn from molecules, holding the measured nuclei; nuclei measured",
                         **compartment_benchmark(sdata)}
    if COSMX.exists():
        sdata = read_cosmx(COSMX)
        outlines_from_transcripts(sdata)
        outlines_from_transcripts(sdata, kind="nucleus")
        print("CosMx (cell and nucleus outlines from the molecules):")
        out["cosmx"] = {"outlines": "cells and nuclei drawn from molecules",
                        **compartment_benchmark(sdata, modes=("withheld",))}
    return out


def timing_case():
    """Set-up of the timed call: the sample, a warm-up run (JIT, checkpoint load)."""
    sdata = merfish_u2os()
    localization(sdata, copy=True)

    def work():
        out = localization(sdata, copy=True)
        return {"n_scored": int(len(out.tables["table"].uns["lpp"]))}

    return work


def rnaforest_timing_case(forest_path: str):
    """Set-up of the Bento-style peer: RNAforest features then random-forest prediction."""
    sdata = merfish_u2os()
    with open(forest_path, "rb") as handle:
        forest = pickle.load(handle)

    def work():
        features, _ = rnaforest_table(sdata)
        return {"n_scored": int(len(forest.predict_proba(features)))}

    return work


def timing_benchmark(forest: RandomForestClassifier, threads: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "forest.pkl"
        forest.set_params(n_jobs=threads)
        with open(path, "wb") as handle:
            pickle.dump(forest, handle)
        ours = run_case("benchmarks.localization:timing_case", {}, repeats=3, timeout=900, threads=threads)
        peer = run_case("benchmarks.localization:rnaforest_timing_case", {"forest_path": str(path)},
                        repeats=3, timeout=900, threads=threads)
    out = {"threads": threads, "stgraph": ours, "rnaforest_peer": peer, "target_seconds": 8.0}
    if ours.get("status") == "ok" and peer.get("status") == "ok":
        out["ratio_to_peer"] = ours["seconds"] / peer["seconds"]
        out["target_met"] = ours["seconds"] <= 8.0
        print(f"time: stgraph {ours['seconds']:.2f} s, RNAforest+RF peer {peer['seconds']:.2f} s "
              f"(ratio {out['ratio_to_peer']:.2f}) with {threads} threads")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--retrain", action="store_true", help="retrain and overwrite the shipped checkpoint")
    parser.add_argument("--quick", action="store_true", help="small simulations (smoke run)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--parts", default=",".join(PARTS),
                        help=f"comma-separated subset of {','.join(PARTS)} (the JSON keeps the other entries)")
    args = parser.parse_args()
    parts = args.parts.split(",")
    if unknown := set(parts) - set(PARTS):
        parser.error(f"unknown parts {sorted(unknown)}; choose from {PARTS}")
    torch.manual_seed(0)
    complete = set(parts) == set(PARTS)
    result = {} if complete or not RESULTS.exists() else json.loads(RESULTS.read_text())
    result.update({"machine": platform.machine(), "python": platform.python_version(), "torch": torch.__version__})
    if args.retrain:
        start = time.perf_counter()
        model = train_pattern_model()
        model.save(PRETRAINED_PATH)
        result["retrain_seconds"] = time.perf_counter() - start
        print(f"retrained in {result['retrain_seconds']:.0f} s -> {PRETRAINED_PATH}")
    checkpoint = load_pretrained()
    result["checkpoint"] = {
        "bytes": PRETRAINED_PATH.stat().st_size,
        "parameters": sum(p.numel() for p in checkpoint.parameters()),
        "config": checkpoint.config,
        "thresholds": dict(zip(PATTERNS, checkpoint.thresholds.tolist())),
        "training": checkpoint.training_info,
    }
    forest = None
    if "simulation" in parts or "time" in parts:
        result["simulation"], forest = simulation_benchmark(args.quick)
    if "merfish" in parts:
        result["merfish"] = merfish_benchmark()
    if "platforms" in parts:
        result["platforms"] = platform_benchmark()
    if "time" in parts:
        result["time"] = timing_benchmark(forest, args.threads)
    if not args.quick:
        RESULTS.write_text(json.dumps(result, indent=2, default=str))
        print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
