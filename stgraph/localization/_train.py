"""Training the pattern head on simulated cells with planted patterns."""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import torch
from torch import nn

from .._seeding import torch_seeded
from .._validation import check_int, check_real, check_seed
from ._data import CellGeneGroups, CellTranscripts, read_cell_transcripts
from ._pattern_model import PATTERNS, PatternBatch, PatternModel, pattern_batch

#: Simulation settings of the shipped checkpoint's training set: varied cell sizes,
#: shapes, nucleus sizes, expression levels and purities; 10 % of cells without
#: nucleus. Each entry is passed to :func:`stgraph.datasets.simulate`.
TRAINING_SIMULATIONS = (
    dict(cell_radius=(5.0, 20.0), elongation=(1.0, 1.6), irregularity=0.1, mean_counts=10.0,
         nucleus_scale=(0.3, 0.5), frac_cells_without_nucleus=0.1),
    dict(cell_radius=(10.0, 35.0), elongation=(1.0, 2.5), irregularity=0.25, mean_counts=25.0,
         nucleus_scale=(0.35, 0.6), purity=(0.6, 0.95), frac_cells_without_nucleus=0.1),
    dict(cell_radius=(6.0, 30.0), elongation=(1.2, 2.0), irregularity=0.15, mean_counts=40.0,
         gene_variability=1.3, nucleus_scale=(0.4, 0.65), frac_cells_without_nucleus=0.1),
)


def labelled_batch(
    sdata,
    truth,
    *,
    min_transcripts: int = 5,
    context_radius: float = 0.3,
    max_tokens_per_group: int | None = 32,
    seed: int = 0,
) -> tuple[PatternBatch, np.ndarray]:
    """Model input of a simulated sample and the planted pattern of each group.

    Training uses fewer tokens per group than inference (``32`` by default): a
    group's pattern is already clear from 32 molecules, and the steps are cheaper.

    Returns
    -------
    batch, labels
        :class:`PatternBatch` and the index into :data:`PATTERNS` of every group.
    """
    _, transcripts = read_cell_transcripts(sdata)
    groups = transcripts.groups(min_transcripts)
    labels = planted_labels(truth, transcripts, groups)
    if (labels < 0).any():
        raise ValueError("truth: some (cell, gene) groups have no planted pattern")
    batch = pattern_batch(transcripts, groups, context_radius, max_tokens_per_group, seed)
    return batch, labels.astype(np.int64)


def planted_labels(truth, transcripts: CellTranscripts, groups: CellGeneGroups) -> np.ndarray:
    """Index into :data:`PATTERNS` of the planted pattern of every group (``-1``
    where ``truth.patterns`` has no row for the group's (cell, gene))."""
    planted = truth.patterns.set_index(["cell_id", "gene"])["pattern"].astype(str)
    key = pd.MultiIndex.from_arrays([transcripts.geometry.cell_ids[groups.cell], transcripts.gene_names[groups.gene]])
    return pd.Categorical(planted.reindex(key).to_numpy(), categories=PATTERNS).codes


def fit_pattern_model(
    model: PatternModel,
    batches: Sequence[PatternBatch],
    labels: Sequence[np.ndarray],
    *,
    epochs: int = 30,
    lr: float = 3e-3,
    weight_decay: float = 1e-4,
    batch_cells: int = 16,
    seed: int = 0,
) -> list[float]:
    """Train ``model`` in place by AdamW on binary cross-entropy (one-hot targets).

    Each step sees ``batch_cells`` consecutive cells of one sample; the order of
    the steps is shuffled every epoch. The learning rate follows a one-cycle
    schedule peaking at ``lr``.

    Parameters
    ----------
    model
        The pattern head to train; it is left in eval mode.
    batches
        One :class:`PatternBatch` per sample (:func:`pattern_batch`).
    labels
        Pattern code (index into :data:`PATTERNS`) of every group of each batch.
    epochs
        Passes over all batches.
    lr, weight_decay
        AdamW peak learning rate and weight decay.
    batch_cells
        Cells per step.
    seed
        Seed of the step order and of torch during training.

    Returns
    -------
    The mean loss of every epoch.

    Raises
    ------
    ValueError
        If ``batches`` and ``labels`` differ in length, a batch and its labels in
        size, or a setting is out of range.
    TypeError
        If a setting is not a number of the right kind.
    """
    check_int("epochs", epochs)
    check_int("batch_cells", batch_cells)
    check_seed(seed)
    check_real("lr", lr)
    check_real("weight_decay", weight_decay, allow_zero=True)
    if len(batches) != len(labels):
        raise ValueError(f"{len(batches)} batches but {len(labels)} label arrays")
    for k, (batch, y) in enumerate(zip(batches, labels)):
        if len(y) != batch.n_groups:
            raise ValueError(f"batch {k} has {batch.n_groups} groups but {len(y)} labels")
    with torch_seeded(seed):
        rng = np.random.default_rng(seed)
        targets = [torch.nn.functional.one_hot(torch.from_numpy(y), len(PATTERNS)).float() for y in labels]
        steps = [(i, start) for i, b in enumerate(batches) for start in range(0, b.n_cells, batch_cells)]
        optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
        scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=lr, total_steps=epochs * len(steps))
        loss_fn = nn.BCEWithLogitsLoss()
        history = []
        model.train()
        for _ in range(epochs):
            total = 0.0
            for k in rng.permutation(len(steps)):
                i, start = steps[k]
                chunk = batches[i].cell_slice(start, min(start + batch_cells, batches[i].n_cells))
                if chunk.n_groups == 0:
                    scheduler.step()
                    continue
                g0 = int(torch.searchsorted(batches[i].group_cell, torch.tensor(start)))
                loss = loss_fn(model(chunk), targets[i][g0 : g0 + chunk.n_groups])
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                scheduler.step()
                total += loss.item()
            history.append(total / len(steps))
        model.eval()
        return history


def tune_thresholds(probabilities: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Per pattern, the threshold in ``0.05, 0.06, ..., 0.95`` that maximises the F1
    score of ``probability >= threshold`` against ``label == pattern``.

    Parameters
    ----------
    probabilities
        ``(N, K)`` probabilities of the groups, one column per pattern of
        :data:`PATTERNS` (as :meth:`PatternModel.predict_proba` returns them).
    labels
        ``(N,)`` true pattern of each group, an integer column index into
        ``probabilities``.

    Returns
    -------
    ``(K,)`` thresholds; the smallest of equally good ones, and 0.5 for a pattern
    no group has.
    """
    grid = np.round(np.arange(0.05, 0.951, 0.01), 2)
    best = np.full(probabilities.shape[1], 0.5)
    for k in range(probabilities.shape[1]):
        truth = labels == k
        if not truth.any():
            continue
        called = probabilities[:, k, None] >= grid[None, :]
        tp = (called & truth[:, None]).sum(0)
        f1 = 2 * tp / np.maximum(called.sum(0) + truth.sum(), 1)
        best[k] = grid[int(np.argmax(f1))]
    return best


def train_pattern_model(
    samples: Sequence[tuple] | None = None,
    validation: Sequence[tuple] | None = None,
    *,
    n_cells: int = 300,
    n_genes: int = 50,
    min_transcripts: int = 5,
    epochs: int = 40,
    lr: float = 3e-3,
    batch_cells: int = 16,
    max_tokens_per_group: int | None = 32,
    seed: int = 0,
    init: PatternModel | None = None,
    **model_kwargs,
) -> PatternModel:
    """Train a :class:`PatternModel` on simulated cells; one call.

    Parameters
    ----------
    samples
        ``(sdata, truth)`` pairs from :func:`stgraph.datasets.simulate` (or any
        sample with a ``truth.patterns`` table). Default: one simulation of
        ``n_cells`` cells and ``n_genes`` genes per entry of
        :data:`TRAINING_SIMULATIONS`, seeds ``seed, seed + 1, ...``.
    validation
        Pairs on which the per-pattern thresholds are tuned. Default: one more
        simulation of ``n_cells // 3`` cells per entry, seeds after the training
        ones.
    n_cells, n_genes
        Size of the default simulations.
    min_transcripts
        Groups with fewer transcripts are not used.
    epochs, lr, batch_cells
        Optimisation settings (see :func:`fit_pattern_model`).
    max_tokens_per_group
        Larger groups are represented by a random subset of this many molecules
        (see :func:`labelled_batch`).
    seed
        Seed of the simulations, the initial weights, the token subsampling and
        the batch order: the same seed gives the same weights on the CPU with the
        same number of torch threads.
    init
        Continue training a copy of this model (its configuration is kept)
        instead of starting from random weights.
    **model_kwargs
        Passed to :class:`PatternModel` (not with ``init``).

    Returns
    -------
    The trained model, in evaluation mode, with tuned thresholds.
    """
    if init is not None and model_kwargs:
        raise ValueError(f"model arguments {sorted(model_kwargs)} cannot be combined with init")
    default_samples = samples is None
    if samples is None or validation is None:
        from stgraph.datasets import simulate

        n_sims = len(TRAINING_SIMULATIONS)
        if samples is None:
            samples = [simulate(n_cells, n_genes, seed=seed + i, **kw) for i, kw in enumerate(TRAINING_SIMULATIONS)]
        if validation is None:
            validation = [
                simulate(max(n_cells // 3, 1), n_genes, seed=seed + n_sims + i, **kw)
                for i, kw in enumerate(TRAINING_SIMULATIONS)
            ]
    with torch_seeded(seed):
        model = PatternModel(**(model_kwargs if init is None else init.config))
    if init is not None:
        model.load_state_dict(init.state_dict())

    def prepare(pairs):
        return [
            labelled_batch(
                s, t, min_transcripts=min_transcripts, context_radius=model.context_radius,
                max_tokens_per_group=max_tokens_per_group, seed=seed,
            )
            for s, t in pairs
        ]

    prepared = prepare(samples)
    fit_pattern_model(
        model, [b for b, _ in prepared], [y for _, y in prepared],
        epochs=epochs, lr=lr, batch_cells=batch_cells, seed=seed,
    )
    held = prepare(validation)
    probabilities = np.concatenate([model.predict_proba(b) for b, _ in held])
    model.thresholds.copy_(torch.from_numpy(tune_thresholds(probabilities, np.concatenate([y for _, y in held]))))
    model.training_info = {
        "simulations": [dict(kw) for kw in TRAINING_SIMULATIONS] if default_samples else "user samples",
        "n_cells": n_cells, "n_genes": n_genes, "seed": seed, "epochs": epochs, "lr": lr,
        "batch_cells": batch_cells, "min_transcripts": min_transcripts, "max_tokens_per_group": max_tokens_per_group,
        "n_groups": int(sum(len(y) for _, y in prepared)),
        "initialised_from": None if init is None else dict(init.training_info),
    }
    return model
