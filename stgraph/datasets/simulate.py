"""Seeded synthetic cells with ground truth: :func:`simulate`.

The simulator draws cells with irregular outlines, places every molecule by a known
rule and returns the rules next to the data, so that localization, colocalization
and domain methods can be trained and scored against exact answers.
"""
from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
import spatialdata

from stgraph._validation import check_int, check_seed
from stgraph.io import _schema as schema
from stgraph.io._generic import assemble

from ._sim_regions import CellGeometry, sample_in_polygon
from ._sim_shapes import fit_inside, grid_offsets, polygon_area, star_polygons

#: Bento's five RNA localization patterns, in Bento's (alphabetical) order.
LOCALIZATION_PATTERNS = ("cell_edge", "cytoplasmic", "none", "nuclear", "nuclear_edge")
#: How a simulated molecule was placed (``SimulationTruth.transcript_source``).
TRANSCRIPT_SOURCES = ("pattern", "background", "pair", "domain")
#: Label of molecules outside every planted domain.
BACKGROUND_DOMAIN = 0

_NONE = LOCALIZATION_PATTERNS.index("none")
_NEEDS_NUCLEUS = [LOCALIZATION_PATTERNS.index(p) for p in ("nuclear", "nuclear_edge")]
_PATTERN_MODES = ("per_gene", "per_cell_gene")
#: Candidate centres tried per domain blob before shrinking it into place.
_DOMAIN_TRIES = 64

# Size limits, each about 20 GB of memory at the peak (measured: about 40 kB and 0.5 ms
# per cell, 50 bytes per (cell, gene), 230 bytes and 2 µs per molecule): a larger run
# failed with a MemoryError only after minutes (n_cells=2**40: 48 s).
#: Most cells :func:`simulate` draws.
MAX_CELLS = 5 * 10**5
#: Most (cell, gene) pairs ``n_cells * n_genes`` (a row each in ``SimulationTruth.patterns``).
MAX_CELL_GENES = 4 * 10**8
#: Most expected molecules ``n_cells * n_genes * mean_counts``.
MAX_MOLECULES = 10**8


@dataclass(frozen=True)
class SimulationTruth:
    """Ground truth of one :func:`simulate` run.

    Attributes
    ----------
    patterns
        One row per (cell, gene), zero counts included: ``cell_id``, ``gene``
        (categoricals over the cell ids and the gene names, in order),
        ``pattern`` (categorical over :data:`LOCALIZATION_PATTERNS`),
        ``n_transcripts`` and ``purity`` (probability that a molecule not sent to a
        domain follows the pattern rather than the uniform background).
    gene_patterns
        Dominant pattern of each gene (index: gene).
    pairs
        Planted colocalized pairs: ``gene_a``, ``gene_b``, ``n_cells`` (cells where
        the pair is active).
    pair_cells
        ``gene_a``, ``gene_b``, ``cell_id`` of every cell where the pair is active.
    transcript_pattern
        Pattern of each molecule's (cell, gene), aligned with the points rows.
    transcript_source
        How each molecule was placed, one of :data:`TRANSCRIPT_SOURCES`.
    transcript_domain
        Domain label of each molecule from its position: ``1..n_domains`` inside a
        domain region, :data:`BACKGROUND_DOMAIN` (0) elsewhere.
    domain_genes
        Enriched genes of each domain label ``1..n_domains``.
    domain_regions
        One polygon per (cell, domain): columns ``cell_id``, ``domain``, ``geometry``.
    cells
        Per cell: ``cell_id``, ``has_nucleus``, ``area`` (µm²), ``radius``
        (equivalent radius ``sqrt(area / pi)``) and ``edge_width`` (µm).
    params
        Every parameter of the call, defaults included.
    """

    patterns: pd.DataFrame
    gene_patterns: pd.Series
    pairs: pd.DataFrame
    pair_cells: pd.DataFrame
    transcript_pattern: np.ndarray
    transcript_source: np.ndarray
    transcript_domain: np.ndarray
    domain_genes: dict[int, list[str]]
    domain_regions: gpd.GeoDataFrame
    cells: pd.DataFrame
    params: dict[str, Any] = field(default_factory=dict)


def simulate(
    n_cells: int = 20,
    n_genes: int = 50,
    *,
    patterns: Mapping[str, str] | Sequence[str] | None = None,
    pattern_mode: str = "per_cell_gene",
    pattern_switch: float = 0.25,
    mean_counts: float = 20.0,
    gene_variability: float = 1.0,
    count_dispersion: float = 3.0,
    purity: float | tuple[float, float] = (0.7, 0.9),
    edge_width: float = 0.15,
    cell_radius: float | tuple[float, float] = (10.0, 25.0),
    elongation: float | tuple[float, float] = (1.0, 1.8),
    irregularity: float = 0.15,
    nucleus_scale: float | tuple[float, float] = (0.35, 0.55),
    nucleus_offset: float = 0.2,
    frac_cells_without_nucleus: float = 0.0,
    cell_gap: float = 5.0,
    colocalized_pairs: int | Sequence[tuple[str, str]] = 0,
    pair_sigma: float = 0.5,
    pair_cell_fraction: float = 0.8,
    n_domains: int = 0,
    genes_per_domain: int = 3,
    domain_radius: float = 0.2,
    domain_enrichment: float = 0.7,
    z_thickness: float | None = None,
    seed: int = 0,
) -> tuple[spatialdata.SpatialData, SimulationTruth]:
    """Simulate single-molecule spatial transcriptomics of isolated cells.

    **Cells.** Each cell is a star-convex polygon (64 vertices) with random harmonic
    wiggles (``irregularity``), stretched by an aspect ratio drawn from
    ``elongation`` and scaled to an equivalent radius ``R = sqrt(area / pi)`` drawn
    uniformly from ``cell_radius`` (µm). Cells sit on a jittered square grid, at
    least ``cell_gap`` apart, never overlapping. The nucleus is a smoother polygon
    of equivalent radius ``R * U(nucleus_scale)``, roughly aligned with the cell,
    shifted from the cell centre by up to ``nucleus_offset * R`` and kept at least
    the edge width ``w = edge_width * R`` from the membrane (shifted back or shrunk
    when needed). A fraction ``frac_cells_without_nucleus`` of cells has none.

    **Counts.** Molecules of gene ``g`` in cell ``c`` are negative binomial
    (gamma-Poisson) with mean ``mu_g * area_c / mean(area)`` and size
    ``count_dispersion``; ``mu_g = mean_counts * exp(gene_variability * N(0, 1) -
    gene_variability**2 / 2)`` so genes range from a handful of molecules to many.
    The mean density is ``n_genes * mean_counts / mean(area)`` molecules per µm²
    (about 1 with the defaults; real MERFISH is 5-10).

    **Localization patterns.** Every (cell, gene) has one of
    :data:`LOCALIZATION_PATTERNS`. Each of its molecules follows the pattern with
    probability ``purity`` (drawn per (cell, gene) when a range) and is otherwise
    uniform over the whole cell. Pattern regions, with ``w = edge_width * R``:
    ``nuclear`` the nucleus; ``nuclear_edge`` within ``w / 2`` of the nuclear
    envelope on either side; ``cell_edge`` within ``w`` of the membrane;
    ``cytoplasmic`` outside the nucleus and farther than ``w`` from the membrane;
    ``none`` the whole cell. Molecules are uniform within the region.
    Genes get dominant patterns (``patterns``, or the five patterns in turn over the
    genes in random order, a planted pair's B taking A's); with ``pattern_mode="per_cell_gene"`` each (cell, gene)
    switches to another pattern, uniformly chosen, with probability
    ``pattern_switch``. In cells without nucleus, ``nuclear`` and ``nuclear_edge``
    become ``none``.

    **Colocalized pairs.** For a planted pair (A, B), in a random fraction
    ``pair_cell_fraction`` of cells (those where A has molecules), B's pattern
    molecules sit at random molecules of A plus an isotropic Gaussian offset of
    standard deviation ``pair_sigma`` µm per axis (redrawn while outside the cell),
    and B takes A's pattern there. B's background molecules stay uniform. Pair genes
    are distinct; other genes are independent.

    **Domains.** ``n_domains`` domain types, each with ``genes_per_domain`` enriched
    genes of its own (disjoint from pair genes). Every cell holds one region per
    domain type: a small irregular polygon of equivalent radius ``domain_radius * R``
    inside the cell, not overlapping the cell's other domain regions when possible.
    A fraction ``domain_enrichment`` of the enriched genes' molecules is drawn
    uniformly in the region; the rest follows the gene's pattern. Each molecule's
    domain label is that of the region it lies in (lowest label on overlap),
    :data:`BACKGROUND_DOMAIN` outside all. The pattern of an enriched gene's
    (cell, gene) describes its molecules outside the domain.

    Parameters
    ----------
    n_cells
        Number of cells.
    n_genes
        Number of genes, named ``gene_00, gene_01, ...`` (zero-padded to the
        width of ``n_genes - 1``; cells likewise ``cell_00, ...``).
    patterns
        Dominant pattern per gene: a mapping gene name -> pattern (unlisted genes
        get default ones) or a sequence of ``n_genes`` patterns.
    pattern_mode
        ``"per_gene"``: every cell uses the gene's dominant pattern (except
        nucleus-free cells and active pairs, see above); ``"per_cell_gene"``: also
        random switches with probability ``pattern_switch``.
    pattern_switch
        Switch probability for ``pattern_mode="per_cell_gene"``.
    mean_counts
        Mean molecules per (cell, gene) for a cell of mean area.
    gene_variability
        Standard deviation of log gene means.
    count_dispersion
        Negative binomial size; larger is closer to Poisson.
    purity
        Fraction of pattern-following molecules, or a ``(low, high)`` range drawn
        uniformly per (cell, gene). The default leaves 10-30 % as background.
    edge_width
        Membrane band width as a fraction of the cell's equivalent radius.
    cell_radius
        Equivalent cell radius in µm, or a range drawn uniformly per cell.
    elongation
        Cell aspect ratio (>= 1), or a range.
    irregularity
        Amplitude of the random outline harmonics (0 gives ellipses).
    nucleus_scale
        Nucleus equivalent radius relative to the cell's, or a range.
    nucleus_offset
        Largest shift of the nucleus from the cell centre, relative to ``R``.
    frac_cells_without_nucleus
        Fraction of cells drawn without nucleus (rounded to a number of cells).
    cell_gap
        Minimal distance between neighbouring cells, µm.
    colocalized_pairs
        Number of random pairs to plant, or a list of ``(gene_a, gene_b)`` names.
    pair_sigma
        Offset standard deviation of B molecules around A molecules, µm.
    pair_cell_fraction
        Probability that a pair is active in a cell.
    n_domains
        Number of domain types (0: none).
    genes_per_domain
        Enriched genes per domain type.
    domain_radius
        Domain region equivalent radius relative to the cell's.
    domain_enrichment
        Fraction of an enriched gene's molecules drawn inside its domain region.
    z_thickness
        If given, add a ``z`` column uniform in ``[0, z_thickness]`` µm (patterns
        are defined in ``x, y`` only).
    seed
        Seed of the only random generator used; same seed, same output.

    Returns
    -------
    sdata
        :class:`spatialdata.SpatialData` with points ``transcripts`` (columns of
        :mod:`stgraph.io._schema`; rows grouped by cell, in random order within a
        cell) and shapes ``cell_boundaries`` / ``nucleus_boundaries`` indexed by
        cell id (the nucleus shares its cell's id;
        ``nucleus_boundaries`` is left out when no cell has a nucleus).
    truth
        :class:`SimulationTruth`.

    Raises
    ------
    TypeError, ValueError
        For arguments of the wrong type or out of range, unknown patterns or genes,
        or more pair and domain genes than genes.
    ValueError
        Before any work, for more than :data:`MAX_CELLS` cells (500,000), more than
        :data:`MAX_CELL_GENES` (cell, gene) pairs ``n_cells * n_genes``
        (400,000,000), or more than :data:`MAX_MOLECULES` expected molecules
        ``n_cells * n_genes * mean_counts`` (100,000,000): each limit is about 20 GB
        of memory.

    Examples
    --------
    >>> sdata, truth = simulate(4, 10, colocalized_pairs=1, n_domains=1, seed=0)
    >>> points = sdata.points["transcripts"].compute()
    >>> bool(len(points) == truth.patterns["n_transcripts"].sum() == len(truth.transcript_domain))
    True
    >>> sorted(truth.patterns["pattern"].cat.categories) == list(LOCALIZATION_PATTERNS)
    True
    """
    # A copy: the caller's lists and mappings would otherwise change the recorded truth.
    params = copy.deepcopy(locals())
    # Python integers: a product of NumPy ones could wrap around past the size limits.
    n_cells, n_genes = check_int("n_cells", n_cells, 1), check_int("n_genes", n_genes, 1)
    check_int("n_domains", n_domains, 0)
    check_int("genes_per_domain", genes_per_domain, 1)
    check_seed(seed)
    if pattern_mode not in _PATTERN_MODES:
        raise ValueError(f"pattern_mode must be one of {_PATTERN_MODES}, got {pattern_mode!r}")
    _check_range("pattern_switch", pattern_switch, 0.0, 1.0)
    _check_range("mean_counts", mean_counts, 0.0, np.inf)
    _check_size("n_cells", n_cells, "cells", "MAX_CELLS", MAX_CELLS, "simulate fewer cells")
    _check_size(f"n_cells * n_genes = {n_cells} * {n_genes}", n_cells * n_genes, "(cell, gene) pairs",
                "MAX_CELL_GENES", MAX_CELL_GENES, "simulate fewer cells or genes")
    _check_size(f"n_cells * n_genes * mean_counts = {n_cells} * {n_genes} * {mean_counts:g}",
                n_cells * n_genes * mean_counts, "expected molecules", "MAX_MOLECULES", MAX_MOLECULES,
                "simulate fewer cells or genes, or lower mean_counts")
    _check_range("gene_variability", gene_variability, 0.0, np.inf)
    _check_range("count_dispersion", count_dispersion, 0.0, np.inf, low_open=True)
    purity_range = _check_range("purity", purity, 0.0, 1.0)
    _check_range("edge_width", edge_width, 0.0, 0.4, low_open=True)
    radius_range = _check_range("cell_radius", cell_radius, 0.0, np.inf, low_open=True)
    elongation_range = _check_range("elongation", elongation, 1.0, np.inf)
    _check_range("irregularity", irregularity, 0.0, 1.0)
    nucleus_range = _check_range("nucleus_scale", nucleus_scale, 0.0, 0.8, low_open=True)
    _check_range("nucleus_offset", nucleus_offset, 0.0, 1.0)
    _check_range("frac_cells_without_nucleus", frac_cells_without_nucleus, 0.0, 1.0)
    _check_range("cell_gap", cell_gap, 0.0, np.inf)
    _check_range("pair_sigma", pair_sigma, 0.0, np.inf, low_open=True)
    _check_range("pair_cell_fraction", pair_cell_fraction, 0.0, 1.0)
    _check_range("domain_radius", domain_radius, 0.0, 0.5, low_open=True)
    _check_range("domain_enrichment", domain_enrichment, 0.0, 1.0)
    if z_thickness is not None:
        _check_range("z_thickness", z_thickness, 0.0, np.inf, low_open=True)

    rng = np.random.default_rng(seed)
    genes = np.array([f"gene_{i:0{len(str(n_genes - 1))}d}" for i in range(n_genes)])
    cell_ids = np.array([f"cell_{i:0{len(str(n_cells - 1))}d}" for i in range(n_cells)])
    dominant = _dominant_patterns(rng, patterns, genes)
    pairs, domain_genes = _pick_special_genes(
        rng, colocalized_pairs, n_domains, genes_per_domain, genes
    )
    if patterns is None:
        dominant[pairs[:, 1]] = dominant[pairs[:, 0]]

    cells, nuclei, radius = _draw_cells(
        rng, n_cells, radius_range, elongation_range, irregularity, nucleus_range,
        nucleus_offset, frac_cells_without_nucleus, cell_gap, edge_width,
    )
    has_nucleus = np.array([nucleus is not None for nucleus in nuclei])
    area = polygon_area(cells)
    counts = _draw_counts(rng, area, n_genes, mean_counts, gene_variability, count_dispersion)
    pair_active = (rng.random((n_cells, len(pairs))) < pair_cell_fraction) & (
        counts[:, pairs[:, 0]] > 0
    )
    pattern = _assign_patterns(
        rng, dominant, n_cells, pattern_mode, pattern_switch, pairs, pair_active, has_nucleus
    )
    purity_cg = rng.uniform(*purity_range, size=(n_cells, n_genes))

    geometries = [CellGeometry(c, n, edge_width * r) for c, n, r in zip(cells, nuclei, radius)]
    regions = _draw_domain_regions(rng, geometries, radius, n_domains, domain_radius, irregularity)
    domain_of_gene = np.zeros(n_genes, dtype=int)
    for d, members in enumerate(domain_genes, start=1):
        domain_of_gene[members] = d

    per_cell = [
        _place_cell(
            rng, geometries[c], regions[c], counts[c], pattern[c], purity_cg[c],
            domain_of_gene, domain_enrichment, pairs[pair_active[c]], pair_sigma,
        )
        for c in range(n_cells)
    ]
    xy = np.concatenate([p[0] for p in per_cell])
    gene_idx = np.concatenate([p[1] for p in per_cell])
    source = np.concatenate([p[2] for p in per_cell])
    domain = np.concatenate([p[3] for p in per_cell])
    cell_idx = np.repeat(np.arange(n_cells), [len(p[1]) for p in per_cell])
    in_nucleus = np.concatenate([geometries[c].in_nucleus(p[0]) for c, p in enumerate(per_cell)])

    z = None if z_thickness is None else rng.uniform(0.0, z_thickness, size=len(xy))
    points = _points_frame(xy, z, gene_idx, cell_idx, in_nucleus, genes, cell_ids, has_nucleus)
    sdata = assemble(
        points,
        cell_boundaries=gpd.GeoSeries(shapely.polygons(cells), index=cell_ids),
        # spatialdata cannot hold an empty shapes element.
        nucleus_boundaries=gpd.GeoSeries(
            [shapely.Polygon(n) for n in nuclei if n is not None], index=cell_ids[has_nucleus]
        ) if has_nucleus.any() else None,
    )
    pattern_names = np.array(LOCALIZATION_PATTERNS)
    active_cell, active_pair = np.nonzero(pair_active)
    truth = SimulationTruth(
        # One row per (cell, gene): categorical ids keep 10⁷ rows at ~20 B each (strings took 140).
        patterns=pd.DataFrame({
            "cell_id": pd.Categorical.from_codes(np.repeat(np.arange(n_cells), n_genes), cell_ids),
            "gene": pd.Categorical.from_codes(np.tile(np.arange(n_genes), n_cells), genes),
            "pattern": pd.Categorical.from_codes(pattern.ravel(), LOCALIZATION_PATTERNS),
            "n_transcripts": counts.ravel(),
            "purity": purity_cg.ravel(),
        }),
        gene_patterns=pd.Series(pattern_names[dominant], index=pd.Index(genes, name="gene"),
                                name="pattern"),
        pairs=pd.DataFrame({
            "gene_a": genes[pairs[:, 0]],
            "gene_b": genes[pairs[:, 1]],
            "n_cells": pair_active.sum(axis=0),
        }),
        pair_cells=pd.DataFrame({
            "gene_a": genes[pairs[active_pair, 0]],
            "gene_b": genes[pairs[active_pair, 1]],
            "cell_id": cell_ids[active_cell],
        }),
        transcript_pattern=pattern_names[pattern[cell_idx, gene_idx]],
        transcript_source=np.array(TRANSCRIPT_SOURCES)[source],
        transcript_domain=domain,
        domain_genes={d: genes[m].tolist() for d, m in enumerate(domain_genes, start=1)},
        domain_regions=gpd.GeoDataFrame(
            {
                "cell_id": np.repeat(cell_ids, n_domains),
                "domain": np.tile(np.arange(1, n_domains + 1), n_cells),
            },
            geometry=[shapely.Polygon(r) for cell_regions in regions for r in cell_regions],
        ),
        cells=pd.DataFrame({
            "cell_id": cell_ids,
            "has_nucleus": has_nucleus,
            "area": area,
            "radius": radius,
            "edge_width": edge_width * radius,
        }),
        params=params,
    )
    return sdata, truth


def _check_size(expression: str, value: float, what: str, limit_name: str, limit: int, advice: str) -> None:
    """Refuse a size above its limit, naming the arguments that make it and the limit."""
    if value > limit:
        raise ValueError(
            f"{expression} = {value:,.0f} {what}, more than stgraph.datasets.{limit_name} = {limit:,} "
            f"(about 20 GB of memory): {advice}"
        )


def _check_range(
    name: str, value: Any, low: float, high: float, *, low_open: bool = False
) -> tuple[float, float]:
    """Validate a number or a ``(lo, hi)`` range within bounds; return the range."""
    pair = value if isinstance(value, (tuple, list)) else (value, value)
    if len(pair) != 2 or not all(
        isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool)
        for v in pair
    ):
        raise TypeError(f"{name} must be a number or a (low, high) pair, got {value!r}")
    lo, hi = float(pair[0]), float(pair[1])
    if not (np.isfinite(lo) and np.isfinite(hi)) or lo > hi:
        raise ValueError(f"{name} must be finite with low <= high, got {value!r}")
    if lo < low or (low_open and lo == low) or hi > high:
        bracket = "(" if low_open else "["
        raise ValueError(f"{name} must lie in {bracket}{low}, {high}], got {value!r}")
    return lo, hi


def _dominant_patterns(
    rng: np.random.Generator, patterns: Mapping[str, str] | Sequence[str] | None,
    genes: np.ndarray,
) -> np.ndarray:
    """Pattern index per gene: user choice, else the five in turn in random gene order."""
    default = rng.permutation(np.resize(np.arange(len(LOCALIZATION_PATTERNS)), len(genes)))
    if patterns is None:
        return default
    if isinstance(patterns, Mapping):
        unknown = set(patterns) - set(genes)
        if unknown:
            raise ValueError(f"patterns names unknown genes: {sorted(unknown)[:5]}")
        chosen = dict(zip(genes, default))
        chosen.update({g: _pattern_index(p) for g, p in patterns.items()})
        return np.array([chosen[g] for g in genes])
    if isinstance(patterns, np.ndarray) and patterns.ndim == 1:
        patterns = patterns.tolist()
    if isinstance(patterns, str) or not isinstance(patterns, Sequence):
        raise TypeError("patterns must be a mapping gene -> pattern, a sequence (list, tuple or 1-D array) or None")
    if len(patterns) != len(genes):
        raise ValueError(f"patterns has {len(patterns)} entries for {len(genes)} genes")
    return np.array([_pattern_index(p) for p in patterns])


def _pattern_index(pattern: str) -> int:
    if pattern not in LOCALIZATION_PATTERNS:
        raise ValueError(f"unknown pattern {pattern!r}; expected one of {LOCALIZATION_PATTERNS}")
    return LOCALIZATION_PATTERNS.index(pattern)


def _pick_special_genes(
    rng: np.random.Generator, colocalized_pairs: int | Sequence[tuple[str, str]],
    n_domains: int, genes_per_domain: int, genes: np.ndarray,
) -> tuple[np.ndarray, list[np.ndarray]]:
    """Indices of planted pairs ``(k, 2)`` and of each domain's genes, all distinct."""
    index = {g: i for i, g in enumerate(genes)}
    if isinstance(colocalized_pairs, (int, np.integer)) and not isinstance(colocalized_pairs, bool):
        check_int("colocalized_pairs", colocalized_pairs, 0)
        n_pair_genes = 2 * colocalized_pairs
        order = rng.permutation(len(genes))
        pairs = order[:n_pair_genes]  # shaped into pairs once the count is checked
    elif isinstance(colocalized_pairs, Sequence) and not isinstance(colocalized_pairs, str):
        try:
            pairs = np.array(
                [[index[a], index[b]] for a, b in colocalized_pairs], dtype=int
            ).reshape(-1, 2)
        except KeyError as err:
            raise ValueError(f"colocalized_pairs names unknown gene {err.args[0]!r}") from None
        except (TypeError, ValueError):
            raise TypeError("colocalized_pairs must hold (gene_a, gene_b) pairs") from None
        if len(np.unique(pairs)) != pairs.size:
            raise ValueError("colocalized_pairs must use each gene at most once")
        n_pair_genes = pairs.size
        order = np.concatenate(
            [pairs.ravel(), rng.permutation(np.setdiff1d(np.arange(len(genes)), pairs))]
        )
    else:
        raise TypeError("colocalized_pairs must be an int or a list of (gene_a, gene_b)")
    n_needed = n_pair_genes + n_domains * genes_per_domain
    if n_needed > len(genes):
        raise ValueError(
            f"{n_pair_genes} pair genes + {n_domains} x {genes_per_domain} domain genes "
            f"exceed n_genes={len(genes)}"
        )
    domain_genes = np.split(order[n_pair_genes:n_needed], n_domains) if n_domains else []
    return pairs.reshape(-1, 2), domain_genes


def _assign_patterns(
    rng: np.random.Generator, dominant: np.ndarray, n_cells: int, pattern_mode: str,
    pattern_switch: float, pairs: np.ndarray, pair_active: np.ndarray,
    has_nucleus: np.ndarray,
) -> np.ndarray:
    """Pattern index per (cell, gene): dominant, switches, pair partners, no nucleus."""
    pattern = np.tile(dominant, (n_cells, 1))
    if pattern_mode == "per_cell_gene":
        switch = rng.random(pattern.shape) < pattern_switch
        other = pattern + rng.integers(1, len(LOCALIZATION_PATTERNS), size=pattern.shape)
        pattern = np.where(switch, other % len(LOCALIZATION_PATTERNS), pattern)
    for k, (a, b) in enumerate(pairs):
        pattern[pair_active[:, k], b] = pattern[pair_active[:, k], a]
    pattern[~has_nucleus] = np.where(
        np.isin(pattern[~has_nucleus], _NEEDS_NUCLEUS), _NONE, pattern[~has_nucleus]
    )
    return pattern


def _draw_cells(
    rng: np.random.Generator, n_cells: int, radius_range: tuple[float, float],
    elongation_range: tuple[float, float], irregularity: float,
    nucleus_range: tuple[float, float], nucleus_offset: float, frac_without: float,
    cell_gap: float, edge_width: float,
) -> tuple[np.ndarray, list[np.ndarray | None], np.ndarray]:
    """Cell outlines ``(n, m, 2)``, nucleus outlines (``None`` if absent), radii."""
    radius = rng.uniform(*radius_range, size=n_cells)
    elongation = rng.uniform(*elongation_range, size=n_cells)
    angle = rng.uniform(0.0, np.pi, size=n_cells)
    local = star_polygons(rng, radius, elongation, angle, irregularity)
    centres = grid_offsets(rng, np.linalg.norm(local, axis=-1).max(axis=1), cell_gap)
    cells = local + centres[:, None, :]

    # Nuclei are smoother than cells and roughly follow the cell's long axis.
    nucleus_local = star_polygons(
        rng,
        radius * rng.uniform(*nucleus_range, size=n_cells),
        1.0 + (elongation - 1.0) * rng.uniform(size=n_cells),
        angle + rng.normal(scale=0.2, size=n_cells),
        irregularity / 2,
    )
    direction = rng.uniform(0.0, 2.0 * np.pi, size=n_cells)
    shift = radius * rng.uniform(0.0, nucleus_offset, size=n_cells)
    offset = shift[:, None] * np.stack([np.cos(direction), np.sin(direction)], axis=1)
    without = rng.permutation(n_cells)[: int(round(frac_without * n_cells))]
    nuclei: list[np.ndarray | None] = [
        None if c in without else fit_inside(
            shapely.Polygon(cells[c]), nucleus_local[c], centres[c], offset[c],
            edge_width * radius[c],
        )
        for c in range(n_cells)
    ]
    return cells, nuclei, radius


def _draw_counts(
    rng: np.random.Generator, area: np.ndarray, n_genes: int, mean_counts: float,
    gene_variability: float, count_dispersion: float,
) -> np.ndarray:
    """Negative binomial molecule counts per (cell, gene)."""
    gene_mean = mean_counts * np.exp(
        gene_variability * rng.normal(size=n_genes) - gene_variability**2 / 2
    )
    mean = (area / area.mean())[:, None] * gene_mean[None, :]
    rate = rng.gamma(count_dispersion, mean / count_dispersion)
    return rng.poisson(rate)


def _draw_domain_regions(
    rng: np.random.Generator, geometries: list[CellGeometry], radius: np.ndarray,
    n_domains: int, domain_radius: float, irregularity: float,
) -> list[list[np.ndarray]]:
    """Per cell, one outline per domain type inside the cell, avoiding each other."""
    n_cells = len(geometries)
    if n_domains == 0:
        return [[] for _ in range(n_cells)]
    local = star_polygons(
        rng,
        np.repeat(radius * domain_radius, n_domains),
        rng.uniform(1.0, 1.5, size=n_cells * n_domains),
        rng.uniform(0.0, np.pi, size=n_cells * n_domains),
        irregularity,
    ).reshape(n_cells, n_domains, -1, 2)
    regions = []
    for geometry, outlines in zip(geometries, local):
        placed: list[np.ndarray] = []
        for outline in outlines:
            centres = geometry.sample(rng, "none", _DOMAIN_TRIES)
            candidates = shapely.polygons(outline[None] + centres[:, None, :])
            fits = shapely.contains(geometry.cell, candidates)
            for other in placed:
                fits &= ~shapely.intersects(shapely.Polygon(other), candidates)
            if fits.any():
                placed.append(outline + centres[np.argmax(fits)])
            else:
                centroid = np.array(geometry.cell.centroid.coords[0])
                placed.append(fit_inside(geometry.cell, outline, centroid, np.zeros(2), 0.0))
        regions.append(placed)
    return regions


def _place_cell(
    rng: np.random.Generator, geometry: CellGeometry, regions: list[np.ndarray],
    counts: np.ndarray, pattern: np.ndarray, purity: np.ndarray,
    domain_of_gene: np.ndarray, domain_enrichment: float, active_pairs: np.ndarray,
    pair_sigma: float,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Positions, gene indices, source codes and domain labels of one cell's molecules.

    Rows come in random order.
    """
    n_domain = np.where(domain_of_gene > 0, rng.binomial(counts, domain_enrichment), 0)
    n_pattern = rng.binomial(counts - n_domain, purity)
    n_background = counts - n_domain - n_pattern
    follows_partner = np.zeros(len(counts), dtype=bool)
    follows_partner[active_pairs[:, 1]] = True
    genes = np.arange(len(counts))
    xy, gene, source = [], [], []

    def add(points: np.ndarray, gene_idx: np.ndarray, kind: str) -> None:
        xy.append(points)
        gene.append(gene_idx)
        source.append(np.full(len(gene_idx), TRANSCRIPT_SOURCES.index(kind)))

    for p, name in enumerate(LOCALIZATION_PATTERNS):
        chosen = (pattern == p) & ~follows_partner
        gene_idx = np.repeat(genes[chosen], n_pattern[chosen])
        if len(gene_idx):
            add(geometry.sample(rng, name, len(gene_idx)), gene_idx, "pattern")
    gene_idx = np.repeat(genes, n_background)
    add(geometry.sample(rng, "none", len(gene_idx)), gene_idx, "background")
    for d, outline in enumerate(regions, start=1):
        gene_idx = np.repeat(genes, np.where(domain_of_gene == d, n_domain, 0))
        add(sample_in_polygon(rng, outline, len(gene_idx)), gene_idx, "domain")
    all_xy, all_gene = np.concatenate(xy), np.concatenate(gene)
    for a, b in active_pairs:
        add(
            geometry.scatter_near(rng, all_xy[all_gene == a], n_pattern[b], pair_sigma),
            np.full(n_pattern[b], b), "pair",
        )

    order = rng.permutation(int(counts.sum()))
    all_xy = np.concatenate(xy)[order]
    domain = np.full(len(all_xy), BACKGROUND_DOMAIN)
    for d in range(len(regions), 0, -1):
        inside = shapely.contains_xy(shapely.Polygon(regions[d - 1]), all_xy[:, 0], all_xy[:, 1])
        domain[inside] = d
    return all_xy, np.concatenate(gene)[order], np.concatenate(source)[order], domain


def _points_frame(
    xy: np.ndarray, z: np.ndarray | None, gene_idx: np.ndarray, cell_idx: np.ndarray,
    in_nucleus: np.ndarray, genes: np.ndarray, cell_ids: np.ndarray, has_nucleus: np.ndarray,
) -> pd.DataFrame:
    """Transcript table in the :mod:`stgraph.io._schema` columns."""
    points = pd.DataFrame({schema.X: xy[:, 0], schema.Y: xy[:, 1]})
    if z is not None:
        points[schema.Z] = z
    points[schema.GENE] = pd.Categorical.from_codes(gene_idx, categories=genes)
    points[schema.CELL] = pd.Categorical.from_codes(cell_idx, categories=cell_ids)
    points[schema.IN_NUCLEUS] = in_nucleus
    # A nucleus carries its cell's id; codes index the cells that have one.
    points[schema.NUCLEUS] = pd.Categorical.from_codes(
        np.where(in_nucleus, np.cumsum(has_nucleus)[cell_idx] - 1, -1),
        categories=cell_ids[has_nucleus],
    )
    points[schema.IS_CONTROL] = False
    return points
