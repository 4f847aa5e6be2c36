"""Tests of :func:`stgraph.datasets.simulate.simulate`: determinism, schema, planted truth."""
from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest
import shapely
from spatialdata.models import get_axes_names

from stgraph import datasets
from stgraph.datasets.simulate import (
    BACKGROUND_DOMAIN,
    LOCALIZATION_PATTERNS,
    SimulationTruth,
    simulate,
)
from stgraph.datasets._sim_regions import NearOutline
from stgraph.datasets._sim_shapes import star_polygons
from stgraph.io import _schema as schema
from stgraph.io import transcripts_frame


@pytest.fixture(scope="module")
def full():
    """Every planted feature on, 40 cells."""
    sdata, truth = simulate(
        40, 40, colocalized_pairs=3, n_domains=2, genes_per_domain=3,
        frac_cells_without_nucleus=0.1, seed=7,
    )
    return sdata, sdata.points[schema.POINTS_KEY].compute(), truth


def _per_row(points: pd.DataFrame, shapes, values) -> np.ndarray:
    """Look up, per points row, the shape of its cell (None when the cell has none)."""
    lookup = dict(zip(shapes.index, values))
    return np.array([lookup.get(c) for c in points[schema.CELL].astype(str)], dtype=object)


def _distance(points: pd.DataFrame, geoms: np.ndarray) -> np.ndarray:
    """Distance of each row to the given per-row geometry (shapely, not the simulator's)."""
    return shapely.distance(shapely.points(points[["x", "y"]].to_numpy()), geoms)


def test_same_seed_same_output_different_seed_different():
    a_sdata, a_truth = simulate(6, 12, colocalized_pairs=1, n_domains=1, seed=3)
    b_sdata, b_truth = simulate(6, 12, colocalized_pairs=1, n_domains=1, seed=3)
    c_sdata, c_truth = simulate(6, 12, colocalized_pairs=1, n_domains=1, seed=4)
    a = a_sdata.points["transcripts"].compute()
    pd.testing.assert_frame_equal(a, b_sdata.points["transcripts"].compute())
    pd.testing.assert_frame_equal(a_truth.patterns, b_truth.patterns)
    np.testing.assert_array_equal(a_truth.transcript_domain, b_truth.transcript_domain)
    assert a_sdata.shapes["cell_boundaries"].geometry.equals(
        b_sdata.shapes["cell_boundaries"].geometry
    )
    c = c_sdata.points["transcripts"].compute()
    assert len(a) != len(c) or not np.allclose(a["x"], c["x"])
    assert not a_truth.patterns["pattern"].equals(c_truth.patterns["pattern"])


def test_schema(full):
    sdata, points, truth = full
    assert list(points.columns) == [
        "x", "y", "gene", "cell_id", "in_nucleus", "nucleus_id", "is_control"
    ]
    assert isinstance(truth, SimulationTruth)
    # The io package's schema validation accepts the simulated points as they are.
    pd.testing.assert_frame_equal(transcripts_frame(sdata), points)
    assert points["gene"].cat.categories.tolist() == [f"gene_{i:02d}" for i in range(40)]
    assert set(points["cell_id"].astype(str)) <= set(sdata.shapes["cell_boundaries"].index)
    assert not points["cell_id"].isna().any() and not points["is_control"].any()
    nuclei = sdata.shapes["nucleus_boundaries"]
    assert len(nuclei) == 36 and set(nuclei.index) <= set(sdata.shapes["cell_boundaries"].index)
    # in_nucleus is exactly containment in the row's own nucleus polygon.
    nucleus = _per_row(points, nuclei, nuclei.geometry)
    has = nucleus != None  # noqa: E711 - object array of polygons and None
    inside = np.zeros(len(points), dtype=bool)
    inside[has] = shapely.contains_xy(
        nucleus[has], points["x"].to_numpy()[has], points["y"].to_numpy()[has]
    )
    np.testing.assert_array_equal(points["in_nucleus"].to_numpy(), inside)
    expected_id = np.where(inside, points["cell_id"].astype(str), None)
    np.testing.assert_array_equal(
        points["nucleus_id"].astype(object).where(points["in_nucleus"], None).to_numpy(),
        expected_id,
    )
    for name in ("transcript_pattern", "transcript_source", "transcript_domain"):
        assert len(getattr(truth, name)) == len(points)


def test_cells_disjoint_nuclei_inside_with_margin(full):
    sdata, _, truth = full
    cells = sdata.shapes["cell_boundaries"].geometry
    assert cells.is_valid.all()
    assert shapely.union_all(cells.to_numpy()).area == pytest.approx(cells.area.sum(), rel=1e-9)
    radius = np.sqrt(cells.area / np.pi)
    assert radius.min() >= 10 - 1e-6 and radius.max() <= 25 + 1e-6
    np.testing.assert_allclose(truth.cells["radius"], radius.to_numpy())
    # Band widths scale with cell size; shapes vary in elongation.
    np.testing.assert_allclose(truth.cells["edge_width"], 0.15 * radius.to_numpy())
    box = cells.minimum_rotated_rectangle().exterior
    sides = np.array([[shapely.Point(b.coords[0]).distance(shapely.Point(b.coords[i]))
                       for i in (1, 3)] for b in box])
    aspect = sides.max(axis=1) / sides.min(axis=1)
    assert aspect.min() < 1.2 and aspect.max() > 1.6
    nuclei = sdata.shapes["nucleus_boundaries"].geometry
    width = truth.cells.set_index("cell_id")["edge_width"]
    for cell_id, nucleus in nuclei.items():
        assert cells[cell_id].contains(nucleus)
        assert nucleus.exterior.distance(cells[cell_id].exterior) >= width[cell_id] - 1e-9
    # Nuclei are offset from the cell centroid but not all at it.
    shifts = [nuclei[i].centroid.distance(cells[i].centroid) / radius[i] for i in nuclei.index]
    assert 0.02 < np.median(shifts) < 0.2


def test_all_transcripts_inside_their_cell(full):
    sdata, points, _ = full
    cells = _per_row(points, sdata.shapes["cell_boundaries"], sdata.shapes["cell_boundaries"].geometry)
    assert shapely.contains_xy(cells, points["x"].to_numpy(), points["y"].to_numpy()).all()


def test_the_truth_table_of_a_large_panel_stays_small():
    # 10⁷ (cell, gene) rows of string ids took 1.4 GB: a 20,000-cell, 5,000-gene
    # simulation was killed for memory before it returned.
    _, truth = simulate(200, 500, mean_counts=0.01, seed=0)
    table = truth.patterns
    assert len(table) == 200 * 500
    assert table.memory_usage(deep=True, index=False).sum() / len(table) < 25  # bytes per row
    assert list(table["cell_id"].cat.categories[:2]) == ["cell_000", "cell_001"]
    assert table["gene"].iloc[501] == "gene_001" and table["cell_id"].iloc[501] == "cell_001"


def test_counts_match_truth_and_are_overdispersed(full):
    _, points, truth = full
    observed = points.groupby(["cell_id", "gene"], observed=False).size()
    observed.index = observed.index.map(lambda key: (str(key[0]), str(key[1])))
    expected = truth.patterns.set_index(["cell_id", "gene"])["n_transcripts"]
    assert len(observed) == len(expected) == 40 * 40
    np.testing.assert_array_equal(observed.loc[expected.index].to_numpy(), expected.to_numpy())
    per_gene = truth.patterns.groupby("gene")["n_transcripts"]
    # Some genes are rare (a handful per cell), counts vary beyond Poisson.
    assert per_gene.mean().min() < 5
    assert (per_gene.var() > per_gene.mean()).mean() > 0.8
    key = truth.patterns.set_index(["cell_id", "gene"])["pattern"].astype(str)
    rows = pd.MultiIndex.from_arrays([points["cell_id"].astype(str), points["gene"].astype(str)])
    np.testing.assert_array_equal(truth.transcript_pattern, key.loc[rows].to_numpy())


def test_pattern_regions_exact(full):
    """Molecules placed by their pattern lie in the documented region."""
    sdata, points, truth = full
    cells, nuclei = sdata.shapes["cell_boundaries"], sdata.shapes["nucleus_boundaries"]
    width = truth.cells.set_index("cell_id")["edge_width"]
    w = points["cell_id"].astype(str).map(width).to_numpy()
    d_membrane = _distance(points, _per_row(points, cells, cells.geometry.exterior))
    envelope = _per_row(points, nuclei, nuclei.geometry.exterior)
    placed = truth.transcript_source == "pattern"
    for pattern in LOCALIZATION_PATTERNS:
        rows = placed & (truth.transcript_pattern == pattern)
        assert rows.sum() > 100, pattern
        if pattern == "nuclear":
            assert points["in_nucleus"].to_numpy()[rows].all()
        elif pattern == "nuclear_edge":
            assert (_distance(points[rows], envelope[rows]) <= w[rows] / 2 + 1e-9).all()
        elif pattern == "cell_edge":
            assert (d_membrane[rows] <= w[rows] + 1e-9).all()
        elif pattern == "cytoplasmic":
            assert not points["in_nucleus"].to_numpy()[rows].any()
            assert (d_membrane[rows] > w[rows] - 1e-9).all()
    # Nucleus-free cells hold no nuclear patterns.
    no_nucleus = truth.cells.loc[~truth.cells["has_nucleus"], "cell_id"]
    assert len(no_nucleus) == 4
    in_free = truth.patterns["cell_id"].isin(no_nucleus)
    assert not truth.patterns.loc[in_free, "pattern"].isin(["nuclear", "nuclear_edge"]).any()


def test_patterns_with_background_keep_their_signal(full):
    """All molecules of a pattern, background included, still show it with margin."""
    sdata, points, truth = full
    cells, nuclei = sdata.shapes["cell_boundaries"], sdata.shapes["nucleus_boundaries"]
    radius = points["cell_id"].astype(str).map(truth.cells.set_index("cell_id")["radius"])
    d_membrane = _distance(points, _per_row(points, cells, cells.geometry.exterior)) / radius
    envelope = _per_row(points, nuclei, nuclei.geometry.exterior)
    has_nucleus = envelope != None  # noqa: E711
    pattern_genes = ~np.isin(truth.transcript_source, ["pair", "domain"])

    def rows(pattern):
        return pattern_genes & has_nucleus & (truth.transcript_pattern == pattern)

    d_envelope = np.full(len(points), np.nan)
    d_envelope[has_nucleus] = _distance(points[has_nucleus], envelope[has_nucleus])
    d_envelope /= radius
    in_nucleus = points["in_nucleus"].to_numpy()
    # Purity is U(0.7, 0.9): about 80 % follow the pattern, the rest is uniform.
    follows = truth.transcript_source[pattern_genes] == "pattern"
    assert 0.77 < follows.mean() < 0.83
    assert in_nucleus[rows("nuclear")].mean() > 0.8
    assert in_nucleus[rows("cytoplasmic")].mean() < 0.1
    assert d_membrane[rows("cell_edge")].mean() < 0.5 * d_membrane[rows("none")].mean()
    assert d_envelope[rows("nuclear_edge")].mean() < 0.5 * d_envelope[rows("none")].mean()
    # The membrane band is 0.15 R wide; cytoplasmic molecules avoid it.
    in_band = d_membrane < 0.15
    assert in_band[rows("cytoplasmic")].mean() < 0.5 * in_band[rows("none")].mean()


def test_pattern_modes_and_user_patterns():
    wanted = {"gene_0": "nuclear", "gene_1": "cell_edge"}
    _, truth = simulate(30, 10, patterns=wanted, pattern_mode="per_gene", seed=1)
    table = truth.patterns.pivot(index="cell_id", columns="gene", values="pattern")
    assert (table.nunique() == 1).all()
    assert (table["gene_0"] == "nuclear").all() and (table["gene_1"] == "cell_edge").all()
    assert truth.gene_patterns["gene_0"] == "nuclear"
    # Default dominant patterns take the five in turn: 10 genes, 2 each.
    _, truth = simulate(2, 10, pattern_mode="per_gene", seed=2)
    assert (truth.gene_patterns.value_counts() == 2).all()

    sequence = ["none"] * 50
    _, truth = simulate(60, 50, patterns=sequence, pattern_switch=0.3, seed=1)
    switched = (truth.patterns["pattern"] != "none").mean()
    assert abs(switched - 0.3) < 0.03
    assert set(truth.patterns["pattern"]) == set(LOCALIZATION_PATTERNS)
    # The same patterns as a NumPy array give the same cells.
    _, from_array = simulate(60, 50, patterns=np.array(sequence), pattern_switch=0.3, seed=1)
    pd.testing.assert_frame_equal(from_array.patterns, truth.patterns)


def test_cells_without_nucleus_get_none_instead():
    sdata, truth = simulate(
        10, 10, patterns=["nuclear", "nuclear_edge"] * 5, pattern_mode="per_gene",
        frac_cells_without_nucleus=0.3, seed=5,
    )
    free = truth.cells.loc[~truth.cells["has_nucleus"], "cell_id"]
    assert len(free) == 3 and not set(free) & set(sdata.shapes["nucleus_boundaries"].index)
    patterns = truth.patterns.set_index("cell_id")["pattern"]
    assert (patterns.loc[free] == "none").all()
    assert patterns.drop(free).isin(["nuclear", "nuclear_edge"]).all()
    points = sdata.points["transcripts"].compute()
    assert not points.loc[points["cell_id"].isin(free), "in_nucleus"].any()


def test_no_nucleus_anywhere():
    sdata, truth = simulate(3, 10, frac_cells_without_nucleus=1.0, seed=0)
    assert list(sdata.shapes) == ["cell_boundaries"]
    assert not truth.cells["has_nucleus"].any()
    assert set(truth.patterns["pattern"]) <= {"cell_edge", "cytoplasmic", "none"}


def test_near_outline_matches_exact_distance():
    rng = np.random.default_rng(0)
    vertices = star_polygons(rng, np.array([15.0]), np.array([1.6]), np.array([0.3]), 0.3)[0]
    xy = rng.uniform(-25, 25, size=(20000, 2))
    exact = shapely.distance(shapely.LinearRing(vertices), shapely.points(xy))
    for r in (0.5, 2.0, 6.0):
        np.testing.assert_array_equal(NearOutline(vertices, r)(xy), exact <= r)
        assert 100 < (exact <= r).sum() < 20000


def _median_nn_distance(points: pd.DataFrame, source: str, target: str, cells) -> float:
    """Median distance from source molecules to the nearest target molecule of their cell.

    The median (over all source molecules of the given cells) ignores the uniform
    background share of the source gene.
    """
    distances = []
    for cell in cells:
        sub = points[points["cell_id"] == cell]
        s = sub.loc[sub["gene"] == source, ["x", "y"]].to_numpy()
        t = sub.loc[sub["gene"] == target, ["x", "y"]].to_numpy()
        if len(s) and len(t):
            distances.append(np.linalg.norm(s[:, None] - t[None], axis=-1).min(axis=1))
    return float(np.median(np.concatenate(distances)))


def test_planted_pairs_are_close(full):
    _, points, truth = full
    assert len(truth.pairs) == 3
    counts = truth.patterns.set_index(["gene", "cell_id"])["n_transcripts"]
    n_possible = 0
    for a, n_cells in truth.pairs[["gene_a", "n_cells"]].itertuples(index=False):
        active = truth.pair_cells.loc[truth.pair_cells["gene_a"] == a, "cell_id"]
        assert len(active) == n_cells and (counts.loc[a].loc[active] > 0).all()
        n_possible += (counts.loc[a] > 0).sum()
    # pair_cell_fraction = 0.8 of the cells where A is expressed.
    assert 0.65 < truth.pairs["n_cells"].sum() / n_possible < 0.95
    patterns = truth.patterns.set_index(["cell_id", "gene"])["pattern"]
    special = set(truth.pairs[["gene_a", "gene_b"]].to_numpy().ravel())
    special |= {g for genes in truth.domain_genes.values() for g in genes}
    unplanted = sorted(set(points["gene"].cat.categories) - special)[:5]
    for a, b in truth.pairs[["gene_a", "gene_b"]].itertuples(index=False):
        cells = truth.pair_cells.loc[truth.pair_cells["gene_a"] == a, "cell_id"]
        assert (patterns.loc[list(zip(cells, [a] * len(cells)))].to_numpy()
                == patterns.loc[list(zip(cells, [b] * len(cells)))].to_numpy()).all()
        # B is placed near A, so measure from B's molecules to A; the same distance
        # from unplanted genes to A (same target density) is the null.
        planted = _median_nn_distance(points, b, a, cells)
        null = min(_median_nn_distance(points, c, a, cells) for c in unplanted)
        assert planted < 0.5 * null, (a, b, planted, null)
        # pair_sigma = 0.5 um: the nearest A is at most the planted offset away.
        assert planted < 2 * 0.5
    rows = truth.transcript_source == "pair"
    assert set(points.loc[rows, "gene"]) <= set(truth.pairs["gene_b"])


def test_domains(full):
    sdata, points, truth = full
    regions = truth.domain_regions
    assert len(regions) == 40 * 2 and set(regions["domain"]) == {1, 2}
    cells = sdata.shapes["cell_boundaries"].geometry
    assert all(cells[c].contains(g) for c, g in zip(regions["cell_id"], regions.geometry))
    # Labels are exactly the region each molecule lies in (0 outside all).
    expected = np.full(len(points), BACKGROUND_DOMAIN)
    for d in (2, 1):
        sub = regions[regions["domain"] == d].set_index("cell_id")
        geoms = _per_row(points, sub, sub.geometry)
        expected[shapely.contains_xy(geoms, points["x"].to_numpy(), points["y"].to_numpy())] = d
    np.testing.assert_array_equal(truth.transcript_domain, expected)
    # Enriched genes sit in their domain; other genes only by chance (small area).
    assert sorted(len(g) for g in truth.domain_genes.values()) == [3, 3]
    gene = points["gene"].astype(str).to_numpy()
    for d, genes in truth.domain_genes.items():
        mine = np.isin(gene, genes)
        assert (truth.transcript_domain[mine] == d).mean() > 0.6
        assert (truth.transcript_domain[~mine] == d).mean() < 0.1
    assert (truth.transcript_source == "domain").sum() > 0
    pair_genes = set(truth.pairs[["gene_a", "gene_b"]].to_numpy().ravel())
    assert not pair_genes & {g for genes in truth.domain_genes.values() for g in genes}


def test_3d_slab():
    sdata, _ = simulate(3, 5, z_thickness=4.0, seed=0)
    points = sdata.points["transcripts"].compute()
    assert points["z"].between(0.0, 4.0).all() and points["z"].std() > 0.5
    assert get_axes_names(sdata.points["transcripts"]) == ("x", "y", "z")


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"n_cells": 0}, ValueError, "n_cells"),
        ({"n_genes": 2.5}, TypeError, "n_genes"),
        ({"patterns": {"gene_0": "membrane"}}, ValueError, "unknown pattern"),
        ({"patterns": {"nope": "none"}}, ValueError, "unknown genes"),
        ({"patterns": ["none"] * 3}, ValueError, "3 entries"),
        ({"pattern_mode": "per_cell"}, ValueError, "pattern_mode"),
        ({"purity": 1.5}, ValueError, "purity"),
        ({"purity": (0.9, 0.7)}, ValueError, "purity"),
        ({"cell_radius": "big"}, TypeError, "cell_radius"),
        ({"elongation": 0.5}, ValueError, "elongation"),
        ({"frac_cells_without_nucleus": -0.1}, ValueError, "frac_cells_without_nucleus"),
        ({"colocalized_pairs": 3, "n_domains": 2, "genes_per_domain": 3}, ValueError, "exceed"),
        ({"colocalized_pairs": 6}, ValueError, r"12 pair genes \+ 0 x 3 domain genes exceed n_genes=10"),
        ({"n_genes": 5, "colocalized_pairs": 10}, ValueError, "20 pair genes .* exceed n_genes=5"),
        ({"colocalized_pairs": [("gene_0", "gene_0")]}, ValueError, "at most once"),
        ({"colocalized_pairs": [("gene_0", "gene_99")]}, ValueError, "gene_99"),
        ({"colocalized_pairs": "gene_0"}, TypeError, "colocalized_pairs"),
        ({"pair_sigma": 0.0}, ValueError, "pair_sigma"),
        ({"seed": -1}, ValueError, "seed"),
    ],
)
def test_invalid_arguments(kwargs, error, match):
    with pytest.raises(error, match=match):
        simulate(**{"n_cells": 2, "n_genes": 10, **kwargs})


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        # A MemoryError after 48 s.
        ({"n_cells": 2**40}, "n_cells = 1,099,511,627,776 cells, more than stgraph.datasets.MAX_CELLS = "
                             "500,000 (about 20 GB of memory): simulate fewer cells"),
        ({"n_cells": 10**5, "n_genes": 10**5, "mean_counts": 0.001},
         "n_cells * n_genes = 100000 * 100000 = 10,000,000,000 (cell, gene) pairs, more than "
         "stgraph.datasets.MAX_CELL_GENES = 400,000,000 (about 20 GB of memory): simulate fewer cells or genes"),
        # NumPy integers: their product 2**64 wrapped around to 0.
        ({"n_cells": np.int64(4), "n_genes": np.int64(2**62), "mean_counts": 0.0},
         "n_cells * n_genes = 4 * 4611686018427387904 = 18,446,744,073,709,551,616 (cell, gene) pairs, more "
         "than stgraph.datasets.MAX_CELL_GENES = 400,000,000 (about 20 GB of memory): simulate fewer cells or genes"),
        ({"n_cells": 1000, "n_genes": 1000, "mean_counts": 200.0},
         "n_cells * n_genes * mean_counts = 1000 * 1000 * 200 = 200,000,000 expected molecules, more than "
         "stgraph.datasets.MAX_MOLECULES = 100,000,000 (about 20 GB of memory): simulate fewer cells or "
         "genes, or lower mean_counts"),
    ],
)
def test_sizes_beyond_the_memory_limits_are_refused_up_front(kwargs, message):
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        simulate(**kwargs)
    assert (datasets.MAX_CELLS, datasets.MAX_CELL_GENES, datasets.MAX_MOLECULES) == (5 * 10**5, 4 * 10**8, 10**8)


def test_named_pairs_and_zero_counts():
    _, truth = simulate(
        4, 10, colocalized_pairs=[("gene_3", "gene_7")], mean_counts=0.0, seed=0
    )
    assert truth.pairs[["gene_a", "gene_b"]].values.tolist() == [["gene_3", "gene_7"]]
    # Without A molecules a pair cannot be active anywhere.
    assert truth.pairs["n_cells"].tolist() == [0] and truth.patterns["n_transcripts"].sum() == 0


def test_params_do_not_follow_later_changes_to_the_arguments():
    # params held the caller's own list and dict: changing them changed the truth.
    patterns, cell_radius, pairs = {"gene_0": "nuclear"}, [10.0, 12.0], [("gene_1", "gene_2")]
    _, truth = simulate(2, 3, patterns=patterns, cell_radius=cell_radius, colocalized_pairs=pairs, seed=0)
    patterns["gene_1"] = "none"
    cell_radius[0] = 99.0
    pairs.append(("gene_0", "gene_1"))
    assert truth.params["patterns"] == {"gene_0": "nuclear"}
    assert truth.params["cell_radius"] == [10.0, 12.0]
    assert truth.params["colocalized_pairs"] == [("gene_1", "gene_2")]
