"""Geometry, Bento's RNAforest features and the gene score of stgraph.localization."""
from __future__ import annotations

import itertools
import re
import warnings

import numpy as np
import pandas as pd
import pytest
import shapely

from stgraph.localization import RNAFOREST_FEATURES, cell_geometry, cell_transcripts, rnaforest_features
from stgraph.localization._gene_score import nuclear_enrichment
from stgraph.localization._geometry import outline_distance
from stgraph.localization._rnaforest import ripley_h_statistics
from stgraph.localization._train import tune_thresholds

SQUARE = shapely.box(0, 0, 10, 10)
NUCLEUS = shapely.box(3, 3, 7, 7)


def _sample(points: list[tuple[float, float, str, str]], nuclei: dict | None = None):
    frame = pd.DataFrame(points, columns=["x", "y", "gene", "cell_id"])
    cells = pd.Series({"a": SQUARE, "b": shapely.box(20, 0, 30, 10)})
    nucleus = pd.Series({"a": NUCLEUS} if nuclei is None else nuclei, dtype=object)
    return cell_transcripts(frame, cells, nucleus)


def test_cell_geometry_of_a_square_with_a_nucleus():
    geometry = cell_geometry(pd.Series({"a": SQUARE, "b": shapely.box(20, 0, 30, 10)}), pd.Series({"a": NUCLEUS}))
    np.testing.assert_allclose(geometry.area, [100, 100])
    np.testing.assert_allclose(geometry.centroid, [[5, 5], [25, 5]])
    np.testing.assert_allclose(geometry.radius, [np.sqrt(50)] * 2)
    np.testing.assert_allclose(geometry.span, [np.sqrt(200)] * 2)
    # Mean squared distance to the centroid of a uniform point in a w x h box: (w²+h²)/12.
    np.testing.assert_allclose(geometry.inertia, [200 / 12] * 2)
    np.testing.assert_allclose(geometry.equivalent_radius, [np.sqrt(100 / np.pi)] * 2)
    assert geometry.has_nucleus.tolist() == [True, False]
    np.testing.assert_allclose(geometry.nucleus_area, [16, 0])


def test_several_nuclei_of_a_cell_are_merged_and_nuclei_in_no_cell_are_named():
    cells = pd.Series({"a": SQUARE, "b": shapely.box(20, 0, 30, 10)})
    extra = shapely.box(8, 8, 9, 9)  # a second nucleus of "a", under an id that is no cell's
    nuclei = pd.Series({"a": NUCLEUS, "n2": extra, "n3": shapely.box(22, 2, 24, 4), "n4": shapely.box(50, 50, 51, 51)})
    with pytest.warns(UserWarning, match=r"1 nucleus outline\(s\) neither carry a cell id nor overlap a cell \(e\.g\. \['n4'\]\)"):
        geometry = cell_geometry(cells, nuclei)
    np.testing.assert_allclose(geometry.nucleus_area, [16 + 1, 4])
    assert geometry.nuclei[0].equals(shapely.union_all([NUCLEUS, extra]))
    frame = pd.DataFrame([(8.5, 8.5, "g", "a"), (1, 1, "g", "a")], columns=["x", "y", "gene", "cell_id"])
    with pytest.warns(UserWarning, match="n4"):
        transcripts = cell_transcripts(frame, cells, nuclei)
    np.testing.assert_array_equal(transcripts.transcript_geometry.in_nucleus, [True, False])


def test_a_nucleus_across_two_cells_goes_to_the_one_holding_most_of_it():
    """A nucleus under its own id on the border of two cells went to none when its
    point on the surface lay on the border, within neither cell."""
    cells = pd.Series({"a": SQUARE, "b": shapely.box(10, 0, 20, 10)})
    for nucleus, owners in (
        (shapely.box(7, 3, 12, 7), [True, False]),
        (shapely.box(8, 3, 14, 7), [False, True]),
        (shapely.box(7, 3, 13, 7), None),  # half in each: one of them
    ):
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            geometry = cell_geometry(cells, pd.Series({"n1": nucleus}))
        assert geometry.has_nucleus.sum() == 1 and geometry.nucleus_area.sum() == nucleus.area
        if owners is not None:
            assert geometry.has_nucleus.tolist() == owners


def test_polar_inertia_subtracts_holes():
    holed = shapely.Polygon(SQUARE.exterior.coords, [shapely.box(4, 4, 6, 6).exterior.coords])
    geometry = cell_geometry(pd.Series({"h": holed}))
    expected = (100 * 200 / 12 - 4 * 8 / 12) / 96
    np.testing.assert_allclose(geometry.inertia, [expected])
    # The radius is the exterior's: the hole's vertices, 1.41 from the centroid, do not count.
    np.testing.assert_allclose(geometry.radius, [np.sqrt(50)])


def test_radius_of_a_cell_in_two_parts_uses_both_exteriors():
    two = shapely.MultiPolygon([shapely.box(0, 0, 2, 2), shapely.box(8, 0, 10, 2)])
    geometry = cell_geometry(pd.Series({"m": two}))
    np.testing.assert_allclose(geometry.centroid, [[5, 1]])
    # The 10 ring vertices (closing ones repeated): 5 on the inner sides at
    # sqrt(9 + 1) from the centroid, 5 on the outer sides at sqrt(25 + 1).
    expected = (np.sqrt(10) + np.sqrt(26)) / 2
    np.testing.assert_allclose(geometry.radius, [expected])


def test_cell_geometry_rejects_bad_outlines():
    with pytest.raises(ValueError, match="not unique"):
        cell_geometry(pd.Series([SQUARE, SQUARE], index=["a", "a"]))
    with pytest.raises(ValueError, match="no polygon"):
        cell_geometry(pd.Series({"a": shapely.Polygon()}))


def test_transcript_geometry_signed_nucleus_distance():
    sample = _sample([(5, 5, "g", "a"), (1, 5, "g", "a"), (25, 5, "g", "b"), (50, 50, "g", None)])
    tg = sample.transcript_geometry
    assert sample.index.tolist() == [0, 1, 2]  # the unassigned molecule is dropped
    np.testing.assert_allclose(tg.cell_distance, [5, 1, 5])
    np.testing.assert_allclose(tg.cell_offset, [0, 4, 0])
    np.testing.assert_allclose(tg.nucleus_distance, [-2, 2, 0])
    np.testing.assert_allclose(tg.nucleus_offset, [0, 4, 0])
    assert tg.in_nucleus.tolist() == [True, False, False]
    assert tg.has_nucleus.tolist() == [True, True, False]


def test_rnaforest_features_of_four_nuclear_molecules():
    corners = [(4, 4), (6, 4), (4, 6), (6, 6)]
    sample = _sample([(x, y, "g", "a") for x, y in corners] + [(x + 20, y, "g", "b") for x, y in corners])
    groups = sample.groups(min_transcripts=4)
    features = rnaforest_features(sample, groups)
    assert list(features.columns) == ["n_transcripts", *RNAFOREST_FEATURES]
    radius = np.sqrt(50)
    with_nucleus, without = features.iloc[0], features.iloc[1]
    assert with_nucleus["n_transcripts"] == 4
    assert with_nucleus["cell_inner_proximity"] == pytest.approx(1 - 4 / radius)
    assert with_nucleus["nucleus_inner_proximity"] == pytest.approx(1 - 1 / radius)
    assert with_nucleus["nucleus_outer_proximity"] == 0
    for key in ("cell_inner_asymmetry", "nucleus_inner_asymmetry", "nucleus_outer_asymmetry"):
        assert with_nucleus[key] == pytest.approx(0, abs=1e-12)
    # Mean squared distance 2 to the centre, over 200/12 for a uniform point.
    assert with_nucleus["point_dispersion_norm"] == pytest.approx(2 / (200 / 12))
    assert with_nucleus["nucleus_dispersion_norm"] == pytest.approx(2 / (200 / 12))
    # All six pairs are closer than span/4, so K = area and H = sqrt(100/pi) - span/4.
    assert with_nucleus["l_half_radius"] == pytest.approx((np.sqrt(100 / np.pi) - np.sqrt(200) / 4) / radius)
    # The cell without nucleus: same cell features, nucleus ones 0 / nan as in Bento.
    assert without["cell_inner_proximity"] == pytest.approx(with_nucleus["cell_inner_proximity"])
    assert without["nucleus_inner_proximity"] == 0 and without["nucleus_inner_asymmetry"] == 0
    assert np.isnan(without["nucleus_dispersion_norm"])


def test_rnaforest_features_of_a_uniform_disc_and_of_its_rim():
    radius = 10.0
    cell = shapely.Point(0, 0).buffer(radius, quad_segs=256)
    nucleus = shapely.Point(0, 0).buffer(radius / 2, quad_segs=256)
    # Sunflower spiral: deterministic points spread uniformly over the disc.
    k = np.arange(20000)
    rho, theta = radius * np.sqrt((k + 0.5) / k.size), k * np.pi * (3 - np.sqrt(5))
    rim = np.linspace(0, 2 * np.pi, 400, endpoint=False)
    xy = np.concatenate([np.c_[rho * np.cos(theta), rho * np.sin(theta)], 0.99 * radius * np.c_[np.cos(rim), np.sin(rim)]])
    frame = pd.DataFrame({"x": xy[:, 0], "y": xy[:, 1], "gene": ["disc"] * k.size + ["rim"] * rim.size, "cell_id": "c"})
    sample = cell_transcripts(frame, pd.Series({"c": cell}), pd.Series({"c": nucleus}))
    groups = sample.groups()
    features = rnaforest_features(sample, groups).set_axis(sample.gene_names[groups.gene])
    # Uniform in a disc of radius R: E[r] = 2R/3, E[r²] = R²/2; inside the nucleus
    # (R/2) E[r] = R/3, outside it E[r] = 7R/9.
    disc = {
        "cell_inner_proximity": 2 / 3,
        "nucleus_inner_proximity": 1 - (1 / 2 - 1 / 3),
        "nucleus_outer_proximity": 1 - (7 / 9 - 1 / 2),
        "cell_inner_asymmetry": 0.0,
        "nucleus_inner_asymmetry": 0.0,
        "nucleus_outer_asymmetry": 0.0,
        "point_dispersion_norm": 1.0,
        "nucleus_dispersion_norm": 1.0,
    }
    # All molecules at 0.99 R: 0.01 R from the outline, 0.49 R outside the nucleus.
    ring = dict(disc, cell_inner_proximity=0.99, nucleus_outer_proximity=0.51, nucleus_inner_proximity=0.0)
    ring.update(point_dispersion_norm=2 * 0.99**2, nucleus_dispersion_norm=2 * 0.99**2)
    for gene, expected in (("disc", disc), ("rim", ring)):
        got = features.loc[gene, list(expected)].astype(float)
        np.testing.assert_allclose(got, list(expected.values()), rtol=0, atol=1e-4, err_msg=gene)


def test_rnaforest_features_skip_small_groups():
    sample = _sample([(5, 5, "g", "a"), (2, 2, "g", "a"), (5, 5, "h", "a")])
    assert len(rnaforest_features(sample, sample.groups(min_transcripts=2))) == 1
    assert rnaforest_features(sample, sample.groups(min_transcripts=3)).shape == (0, 14)


def test_ripley_statistics_match_a_brute_force_count():
    rng = np.random.default_rng(0)
    points = rng.uniform(0, 10, size=(30, 2))
    area, span, radius = 100.0, np.sqrt(200), np.sqrt(50)
    radii = np.linspace(span / 50, span / 2, 50)
    pairs = [np.linalg.norm(points[i] - points[j]) for i, j in itertools.combinations(range(30), 2)]

    def h(r):
        k = area * sum(d < r for d in pairs) / len(pairs)
        return (np.sqrt(k / np.pi) - r) / radius

    expected_h = np.array([h(r) for r in radii])
    smooth = np.convolve(expected_h, np.ones(5) / 5, mode="valid")
    gradient = np.gradient(smooth, (radii[1] - radii[0]) / radius)
    got = ripley_h_statistics(points, area, span, radius)
    ranks = pd.Series(expected_h).rank().to_numpy()
    np.testing.assert_allclose(
        got,
        [expected_h.max(), gradient.max(), gradient.min(), np.corrcoef(ranks, np.arange(50))[0, 1], h(span / 4)],
    )
    assert np.isnan(ripley_h_statistics(points[:1], area, span, radius)).all()


def test_nuclear_enrichment_score_and_interval():
    # Gene 0 nuclear everywhere, gene 1 cytoplasmic, gene 2 absent; 3 cells.
    p = np.array([1.0, 1.0, 0.0, 0.0, 1.0, 0.0, 0.9, 0.1])
    gene = np.array([0, 0, 1, 1, 0, 1, 0, 1])
    cell = np.array([0, 0, 0, 0, 1, 1, 2, 2])
    table = nuclear_enrichment(p, gene, cell, n_genes=3, n_cells=3, n_boot=50, seed=1)
    # Gene 0: 3.9 expected nuclear and 0.1 cytoplasmic molecules, gene 1 the reverse,
    # all genes 4 and 4 (log-odds 0); pseudocounts 0.5.
    np.testing.assert_allclose(table["score"][:2], [np.log(4.4 / 0.6), np.log(0.6 / 4.4)])
    assert np.isnan(table.loc[2, ["score", "ci_low", "ci_high"]].astype(float)).all()
    assert table["n_transcripts"].tolist() == [4, 4, 0]
    assert table["n_cells"].tolist() == [3, 3, 0]
    assert (table["ci_low"][:2] <= table["score"][:2]).all() and (table["score"][:2] <= table["ci_high"][:2]).all()
    again = nuclear_enrichment(p, gene, cell, n_genes=3, n_cells=3, n_boot=50, seed=1)
    pd.testing.assert_frame_equal(table, again)
    # No cell: every gene is absent (it failed inside numpy's multinomial).
    empty = nuclear_enrichment(np.zeros(0), np.zeros(0, int), np.zeros(0, int), n_genes=3, n_cells=0, n_boot=5)
    assert np.isnan(empty[["score", "ci_low", "ci_high"]].to_numpy(float)).all()
    assert empty["n_transcripts"].tolist() == [0, 0, 0] and empty["n_cells"].tolist() == [0, 0, 0]


def test_nuclear_enrichment_interval_is_the_jeffreys_interval_widened_by_the_design_effect():
    from scipy import stats

    rng = np.random.default_rng(2)
    gene, cell, p = rng.integers(0, 4, 300), rng.integers(0, 12, 300), rng.uniform(0, 1, 300)
    gene[(gene == 3) & (cell != 0)] = 0  # gene 3 only in cell 0: absent from some resamples
    p[gene == 2] = np.where(cell[gene == 2] < 6, 0.95, 0.05)  # gene 2 varies between cells

    def log_odds(p, gene):
        nuclear, total = np.bincount(gene, p, 4), np.bincount(gene, minlength=4)
        overall = np.log((nuclear.sum() + 0.5) / (total.sum() - nuclear.sum() + 0.5))
        with np.errstate(invalid="ignore"):
            return np.where(total > 0, np.log((nuclear + 0.5) / (total - nuclear + 0.5)) - overall, np.nan)

    table = nuclear_enrichment(p, gene, cell, n_genes=4, n_cells=12, n_boot=300, confidence=0.9, seed=4)
    # The same draws as the function: how often each cell is picked in each replicate.
    picks = np.random.default_rng(4).multinomial(12, np.full(12, 1 / 12), size=300)
    replicates = []
    for times in picks:
        rows = np.concatenate([np.flatnonzero(cell == c) for c in np.repeat(np.arange(12), times)])
        replicates.append(log_odds(p[rows], gene[rows]))
    assert np.isnan(np.array(replicates)[:, 3]).any()
    nuclear, total = np.bincount(gene, p, 4), np.bincount(gene, minlength=4)
    a, b = nuclear + 0.5, total - nuclear + 0.5
    design = np.maximum(1.0, np.nanvar(replicates, axis=0, ddof=1) / (1 / a + 1 / b))
    overall = np.log((nuclear.sum() + 0.5) / (total.sum() - nuclear.sum() + 0.5))
    np.testing.assert_allclose(table["score"], log_odds(p, gene), rtol=1e-12)
    for column, level in (("ci_low", 0.05), ("ci_high", 0.95)):
        fraction = stats.beta(a / design, b / design).ppf(level)
        np.testing.assert_allclose(table[column], np.log(fraction) - np.log1p(-fraction) - overall, rtol=1e-9)
    assert design[2] > 3 and design[1] < 2  # the gene that varies between cells gets a wider interval


@pytest.mark.parametrize(
    ("setting", "low", "high"),
    [
        # (cells, molecules per cell of gene 0, cells holding gene 0, spread of the logit between cells)
        ((60, 4, 60, 0.0), 0.91, 0.99),   # many cells, only counting noise
        ((60, 4, 60, 1.0), 0.90, 0.99),   # many cells that differ
        ((60, 10, 1, 0.0), 0.90, 0.99),   # a gene seen in a single cell
        ((60, 2, 40, 0.0), 0.90, 1.00),   # rare nuclear molecules (fraction 0.02): often none at all
    ],
)
def test_nuclear_enrichment_interval_covers_the_truth_at_about_the_nominal_rate(setting, low, high):
    n_cells, per_cell, carriers, spread = setting
    fraction = 0.02 if per_cell == 2 else 0.5
    truth_gene, background = np.log(fraction / (1 - fraction)), 0.5
    rng = np.random.default_rng(11)
    hits, n_rep = 0, 200
    for rep in range(n_rep):
        # gene 1: a large background of 40 molecules per cell at fraction 0.5
        cells0 = np.repeat(np.arange(carriers), per_cell)
        logit = truth_gene + spread * rng.standard_normal(carriers)
        p0 = (rng.random(cells0.size) < 1 / (1 + np.exp(-logit[cells0]))).astype(float)
        cells1 = np.repeat(np.arange(n_cells), 40)
        p1 = (rng.random(cells1.size) < background).astype(float)
        p = np.r_[p0, p1]
        gene, cell = np.r_[np.zeros(p0.size, int), np.ones(p1.size, int)], np.r_[cells0, cells1]
        table = nuclear_enrichment(p, gene, cell, n_genes=2, n_cells=n_cells, n_boot=100, seed=rep)
        overall = np.log((p.sum() + 0.5) / (p.size - p.sum() + 0.5))
        # the truth: the mean logit of the cells holding the gene, against this sample's overall log-odds
        hits += table["ci_low"][0] <= truth_gene - overall <= table["ci_high"][0]
    assert low <= hits / n_rep <= high


def test_nuclear_enrichment_memory_grows_with_the_transcripts_not_cells_times_genes():
    # Dense cells x genes sums took 3 x 160 MB here (a whole Xenium 5k sample: gigabytes).
    import tracemalloc

    rng = np.random.default_rng(0)
    gene, cell, p = rng.integers(0, 2000, 2000), rng.integers(0, 10000, 2000), rng.uniform(0, 1, 2000)
    tracemalloc.start()
    try:
        table = nuclear_enrichment(p, gene, cell, n_genes=2000, n_cells=10000, n_boot=20)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 32 * 2**20
    assert table["n_transcripts"].sum() == 2000 and table["n_cells"].sum() == len(set(zip(cell, gene)))


def test_nuclear_enrichment_refuses_codes_outside_their_range():
    p = np.array([1.0, 0.0, 0.5])
    # Gene code 2 of cell 0 used to be counted as gene 0 of cell 1.
    with pytest.raises(ValueError, match="gene must hold codes >= 0 and < 2, got codes from 0 to 2"):
        nuclear_enrichment(p, np.array([0, 2, 1]), np.array([0, 0, 1]), n_genes=2, n_cells=2)
    with pytest.raises(ValueError, match="cell must hold codes >= 0 and < 2, got codes from 0 to 2"):
        nuclear_enrichment(p, np.array([0, 1, 1]), np.array([0, 0, 2]), n_genes=2, n_cells=2)


def test_nuclear_enrichment_refuses_what_is_not_a_probability_per_transcript():
    # p = 1.5 gave a negative cytoplasmic count and a finite score; NaN made every score NaN
    # silently; a p_nuclear of the wrong length failed inside np.bincount.
    gene = np.array([0, 0, 1, 1])
    cell = np.array([0, 1, 0, 1])
    p = np.array([0.9, 0.8, 0.2, 0.1])
    for bad in (1.5, -0.25, np.nan):
        message = f"p_nuclear must hold probabilities in [0, 1]; 1 value(s) do not (e.g. {bad} at position 2)"
        with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
            nuclear_enrichment(np.where(np.arange(4) == 2, bad, p), gene, cell, n_genes=2, n_cells=2, n_boot=5)
    with pytest.raises(ValueError, match=r"^p_nuclear must hold one probability per transcript \(4\), got shape \(3,\)$"):
        nuclear_enrichment(p[:3], gene, cell, n_genes=2, n_cells=2)
    with pytest.raises(ValueError, match=r"^cell has 3 entries but gene has 4$"):
        nuclear_enrichment(p, gene, cell[:3], n_genes=2, n_cells=2)
    with pytest.raises(ValueError, match=r"^seed must be an integer >= 0, got -1$"):
        nuclear_enrichment(p, gene, cell, n_genes=2, n_cells=2, seed=-1)
    # 0 and 1 are probabilities.
    table = nuclear_enrichment(np.array([1.0, 1.0, 0.0, 0.0]), gene, cell, n_genes=2, n_cells=2, n_boot=5)
    np.testing.assert_allclose(table["score"], [np.log(2.5 / 0.5), np.log(0.5 / 2.5)])


def test_tune_thresholds_separates_classes():
    probabilities = np.array([[0.9, 0.2], [0.7, 0.35], [0.3, 0.8], [0.1, 0.4]])
    labels = np.array([0, 0, 1, 1])
    thresholds = tune_thresholds(probabilities, labels)
    # The first threshold in the grid reaching F1 = 1: above 0.3 for class 0, above
    # 0.35 for class 1.
    np.testing.assert_allclose(thresholds, [0.31, 0.36])
    # Not separable: for class 1 = [0.2, 0.6 | 0.8, 0.4], calling the top three
    # (F1 0.8) beats any stricter threshold.
    probabilities[1, 1] = 0.6
    assert tune_thresholds(probabilities, labels)[1] == pytest.approx(0.21)


def test_outline_distance_matches_shapely_with_holes_and_parts():
    polygons = np.array(
        [
            shapely.box(0, 0, 10, 10).difference(shapely.box(4, 4, 6, 6)),
            shapely.MultiPolygon([shapely.box(20, 0, 25, 5), shapely.box(26, 0, 30, 5)]),
        ],
        dtype=object,
    )
    rng = np.random.default_rng(0)
    xy = rng.uniform(-2, 32, size=(2000, 2))
    owner = rng.integers(0, 2, len(xy))
    distance, inside = outline_distance(xy, owner, polygons)
    np.testing.assert_allclose(distance, shapely.distance(shapely.points(xy), shapely.boundary(polygons[owner])), atol=1e-12)
    np.testing.assert_array_equal(inside, shapely.contains_xy(polygons[owner], xy[:, 0], xy[:, 1]))
