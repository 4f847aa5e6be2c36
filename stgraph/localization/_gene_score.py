"""Gene-level nuclear enrichment from per-transcript nuclear probabilities."""
from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
from scipy import sparse, special

from stgraph._validation import check_codes, check_int, check_real, check_seed

#: Half a molecule on each side keeps the log-odds finite.
_PSEUDOCOUNT = 0.5


def nuclear_enrichment(
    p_nuclear: np.ndarray,
    gene: np.ndarray,
    cell: np.ndarray,
    n_genes: int,
    n_cells: int,
    *,
    n_boot: int = 200,
    confidence: float = 0.95,
    seed: int = 0,
) -> pd.DataFrame:
    r"""Nuclear-enrichment score of every gene, with a bootstrap interval over cells.

    With :math:`P_g = \sum p` and :math:`Q_g = \sum (1 - p)` the expected nuclear
    and cytoplasmic molecule counts of gene :math:`g` (sums over its transcripts),

    .. math::
        s_g = \log\frac{P_g + 0.5}{Q_g + 0.5} - \log\frac{P + 0.5}{Q + 0.5}

    where :math:`P, Q` sum over all genes: the log-odds of nuclear vs cytoplasmic
    for the gene minus that of all transcripts (0: as nuclear as the average
    molecule). The interval accounts for the counting noise and for the variation
    between cells: it is the equal-tailed interval of the Jeffreys posterior
    :math:`\mathrm{Beta}((P_g + 0.5)/D_g, (Q_g + 0.5)/D_g)` of the gene's nuclear
    fraction on the log-odds scale, minus the overall term, where the design effect
    :math:`D_g = \max(1, V_g / (1/(P_g + 0.5) + 1/(Q_g + 0.5)))` compares the variance
    :math:`V_g` of :math:`s_g` over ``n_boot`` resamplings of the cells with
    replacement with the binomial counting variance. Molecules that vary no more
    between cells than counting explains (:math:`D_g = 1`) get the Jeffreys interval,
    which keeps its coverage for a gene seen in one cell or never in the nucleus,
    where resampling cells alone gives an interval of nearly zero width; variation
    between cells widens it by :math:`\sqrt{D_g}`.

    Parameters
    ----------
    p_nuclear
        ``(N,)`` nuclear probability of each transcript, in ``[0, 1]``.
    gene, cell
        ``(N,)`` gene code (``0 .. n_genes - 1``) and cell position
        (``0 .. n_cells - 1``) of each transcript.
    n_genes, n_cells
        Number of genes and cells.
    n_boot
        Bootstrap replicates.
    confidence
        Coverage of the interval, in ``(0, 1)``.
    seed
        Non-negative seed of the resampling.

    Returns
    -------
    One row per gene code: ``score``, ``ci_low``, ``ci_high``, ``n_transcripts``
    and ``n_cells`` (cells with the gene); ``nan`` scores for absent genes. An end
    of the interval is infinite only where the posterior puts the nuclear fraction
    within float precision of 0 or 1.

    Raises
    ------
    ValueError
        If ``p_nuclear`` holds values outside ``[0, 1]`` (NaN included), ``p_nuclear``,
        ``gene`` and ``cell`` differ in length, a code lies outside its range, or
        ``n_boot``, ``confidence`` or ``seed`` is out of range.
    TypeError
        If the codes are not integers, or ``n_boot``, ``confidence`` or ``seed`` is not
        a number of the right kind.
    """
    if not 0 < check_real("confidence", confidence) < 1:
        raise ValueError(f"confidence must lie in (0, 1), got {confidence}")
    check_int("n_boot", n_boot)
    check_seed(seed)
    gene = check_codes("gene", gene, n_genes)
    cell = check_codes("cell", cell, n_cells)
    if cell.size != gene.size:
        raise ValueError(f"cell has {cell.size} entries but gene has {gene.size}")
    p_nuclear = _checked_probabilities(p_nuclear, gene.size)
    # Sparse cells x genes sums: a dense table of a whole sample (1e5 cells x 5,000 genes)
    # would take gigabytes, the sums only one entry per (cell, gene) pair present.
    shape = (n_cells, n_genes)
    nuclear = sparse.csr_matrix((p_nuclear, (cell, gene)), shape=shape)
    count = sparse.csr_matrix((np.ones(gene.size), (cell, gene)), shape=shape)
    cytoplasmic = count - nuclear

    def score(weights: np.ndarray) -> np.ndarray:
        """Scores for cell weights ``(B, n_cells)`` -> ``(B, n_genes)``."""
        p, q = _weighted_sums(weights, nuclear), _weighted_sums(weights, cytoplasmic)
        overall = np.log((p.sum(1, keepdims=True) + _PSEUDOCOUNT) / (q.sum(1, keepdims=True) + _PSEUDOCOUNT))
        return np.log((p + _PSEUDOCOUNT) / (q + _PSEUDOCOUNT)) - overall

    n_transcripts = np.asarray(count.sum(0)).ravel().astype(np.int64)
    point = score(np.ones((1, n_cells)))[0]
    rng = np.random.default_rng(seed)
    if n_cells:
        weights = rng.multinomial(n_cells, np.full(n_cells, 1.0 / n_cells), size=n_boot).astype(float)
    else:  # no cell, so every gene is absent (nan)
        weights = np.zeros((n_boot, 0))
    replicates = score(weights)
    # A replicate without any molecule of the gene says nothing about it.
    replicates[_weighted_sums(weights, count) == 0] = np.nan
    a = np.asarray(nuclear.sum(0)).ravel() + _PSEUDOCOUNT
    b = np.asarray(cytoplasmic.sum(0)).ravel() + _PSEUDOCOUNT
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-nan columns of absent genes
        between_cells = np.nanvar(replicates, axis=0, ddof=1)
    design_effect = np.fmax(1.0, np.nan_to_num(between_cells / (1 / a + 1 / b), nan=1.0))
    overall = np.log((nuclear.sum() + _PSEUDOCOUNT) / (cytoplasmic.sum() + _PSEUDOCOUNT))
    tail = (1 - confidence) / 2
    low, high = (
        _logit(special.betaincinv(a / design_effect, b / design_effect, level)) - overall
        for level in (tail, 1 - tail)
    )
    absent = n_transcripts == 0
    return pd.DataFrame(
        {
            "score": np.where(absent, np.nan, point),
            "ci_low": np.where(absent, np.nan, low),
            "ci_high": np.where(absent, np.nan, high),
            "n_transcripts": n_transcripts,
            "n_cells": count.getnnz(axis=0).astype(np.int64),
        }
    )


def _weighted_sums(weights: np.ndarray, table: sparse.csr_matrix) -> np.ndarray:
    """``weights @ table`` as a dense ``(B, n_genes)`` array, for dense cell weights
    ``(B, n_cells)`` and a sparse cells x genes ``table``."""
    return np.asarray((table.T @ weights.T).T)


def _logit(fraction: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore"):  # a fraction of 0 or 1 is an unbounded end
        return np.log(fraction) - np.log1p(-fraction)


def _checked_probabilities(p_nuclear, n: int) -> np.ndarray:
    """``p_nuclear`` as float64 after checking that it holds ``n`` probabilities in [0, 1]."""
    p_nuclear = np.asarray(p_nuclear, dtype=np.float64)
    if p_nuclear.shape != (n,):
        raise ValueError(f"p_nuclear must hold one probability per transcript ({n}), got shape {p_nuclear.shape}")
    # NaN fails both comparisons: a missing probability is refused too.
    outside = ~((p_nuclear >= 0) & (p_nuclear <= 1))
    if outside.any():
        raise ValueError(
            f"p_nuclear must hold probabilities in [0, 1]; {int(outside.sum())} value(s) do not "
            f"(e.g. {float(p_nuclear[outside][0])} at position {int(np.argmax(outside))})"
        )
    return p_nuclear
