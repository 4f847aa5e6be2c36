"""stgraph.tl.localization with the shipped pattern checkpoint, and its models."""
from __future__ import annotations

import re
import warnings

import matplotlib

matplotlib.use("Agg")

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely
import spatialdata
import torch
from sklearn.metrics import roc_auc_score

import stgraph
from stgraph.datasets import simulate
from stgraph.io import read_transcripts
from stgraph.localization import (
    PATTERNS,
    PatternModel,
    fit_pattern_model,
    read_cell_transcripts,
    train_pattern_model,
    tune_thresholds,
)
from stgraph.localization._compartment import gene_nuclear_prior, predict_compartment
from stgraph.localization._pretrained import load_pretrained
from stgraph.localization._train import labelled_batch
from stgraph.pl._localization import localization_composition, localization_transcripts
from stgraph.tl._localization import localization

MIN = 5


@pytest.fixture(scope="module")
def clean():
    """Cells with a nucleus whose molecules all follow their planted pattern (purity 1)."""
    return simulate(16, 20, purity=1.0, mean_counts=30.0, seed=7)


@pytest.fixture(scope="module")
def scored(clean):
    sdata, truth = clean
    return localization(sdata, copy=True, n_boot=20), truth


def test_pattern_head_recovers_planted_patterns(scored):
    sdata, truth = scored
    lpp = sdata.tables["table"].uns["lpp"]
    planted = truth.patterns.set_index(["cell_id", "gene"])["pattern"].astype(str)
    expected = planted.reindex(pd.MultiIndex.from_frame(lpp[["cell_id", "gene"]].astype(str))).to_numpy()
    predicted = lpp["top_pattern"].astype(str).to_numpy()
    assert len(lpp) > 200
    assert (predicted == expected).mean() >= 0.93
    # With 15 molecules or more, chance no longer mimics another pattern.
    clear = lpp["n_transcripts"].to_numpy() >= 15
    assert clear.sum() > 100 and (predicted[clear] == expected[clear]).mean() >= 0.97
    for pattern in PATTERNS:
        assert (predicted[clear & (expected == pattern)] == pattern).mean() >= 0.9, pattern


def test_outputs_are_valid_and_consistent(scored, clean):
    sdata, _ = scored
    table = sdata.tables["table"]
    lpp, lp = table.uns["lpp"], table.uns["lp"]
    probabilities = lpp[list(PATTERNS)].to_numpy()
    assert np.isfinite(probabilities).all() and (probabilities >= 0).all() and (probabilities <= 1).all()
    thresholds = np.array([table.uns["localization"]["thresholds"][p] for p in PATTERNS])
    assert table.uns["localization"]["pattern_model"] == "shipped" and table.uns["localization"]["n_boot"] == 20
    np.testing.assert_array_equal(lp[list(PATTERNS)].to_numpy(), (probabilities >= thresholds).astype(np.uint8))
    np.testing.assert_array_equal(lpp["top_pattern"].astype(str), np.array(PATTERNS)[probabilities.argmax(1)])
    assert (lpp["n_transcripts"] >= MIN).all()
    # Layers: nan exactly where a gene has fewer than MIN molecules in the cell.
    counts = np.asarray(table.X.todense())
    for pattern in PATTERNS:
        layer = table.layers[f"{pattern}_p"]
        assert layer.shape == table.shape
        np.testing.assert_array_equal(np.isnan(layer), counts < MIN)
    row = table.obs_names.get_indexer(lpp["cell_id"].astype(str))
    col = table.var_names.get_indexer(lpp["gene"].astype(str))
    np.testing.assert_allclose(table.layers["nuclear_p"][row, col], lpp["nuclear"], rtol=1e-6)
    assert (table.uns["lp_stats"].sum().sum()) == lp[list(PATTERNS)].to_numpy().sum()
    # Each molecule carries its (cell, gene)'s top pattern.
    points = sdata.points["transcripts"].compute()
    top = lpp.set_index(["cell_id", "gene"])["top_pattern"].astype(str)
    keys = pd.MultiIndex.from_arrays([points["cell_id"].astype(str), points["gene"].astype(str)])
    np.testing.assert_array_equal(points["pattern"].astype(object).fillna("-").to_numpy(), top.reindex(keys).fillna("-").to_numpy())
    p = points["p_nuclear"].to_numpy()
    assert np.isfinite(p).all() and (p >= 0).all() and (p <= 1).all()
    var = table.var
    assert ((var["nuclear_score_ci_low"] <= var["nuclear_score"]) & (var["nuclear_score"] <= var["nuclear_score_ci_high"])).all()
    # The input was not modified (copy=True).
    assert "pattern" not in clean[0].points["transcripts"].columns and "table" not in clean[0].tables


def test_bento_style_code_runs_unchanged_on_the_frames(scored):
    """What bento-tools 2.x does with uns['lp'] / ['lpp'] / ['lp_stats'] (its lp_stats,
    lp_diff_continuous's pivot, its called top pattern) gives stgraph's own results."""
    sdata, _ = scored
    table = sdata.tables["table"]
    lp, lpp, stats = table.uns["lp"], table.uns["lpp"], table.uns["lp_stats"]
    attrs = sdata.points["transcripts"].attrs["spatialdata_attrs"]
    instance_key, feature_key = attrs["instance_key"], attrs["feature_key"]
    assert [instance_key, feature_key] == list(lp.columns[:2]) == list(lpp.columns[:2])
    assert all(lp[p].dtype == np.uint8 for p in PATTERNS) and all(lpp[p].dtype == np.float64 for p in PATTERNS)
    # bento.tl.lp_stats
    groupby = list(lp.columns[~lp.columns.isin(PATTERNS)])
    groupby.remove(instance_key)
    counts = lp.groupby(groupby, observed=True)[list(PATTERNS)].sum().astype(int)
    pd.testing.assert_frame_equal(counts, stats)
    assert stats.index.name == feature_key and (stats.dtypes == np.int64).all()
    # bento.tl.lp_diff_continuous: cells x genes probabilities
    wide = lpp.pivot(index=instance_key, columns=stats.index.name, values="nuclear")
    layer = table.to_df("nuclear_p").reindex(index=wide.index.astype(str), columns=wide.columns.astype(str))
    np.testing.assert_allclose(wide.to_numpy(), layer.to_numpy(), rtol=1e-6)
    # Bento's points 'pattern': the most probable called pattern, which top_pattern is where that is the most probable.
    called = lpp[list(PATTERNS)].mask(lp[list(PATTERNS)] == 0)
    agree = called.max(axis=1).to_numpy() == lpp[list(PATTERNS)].max(axis=1).to_numpy()
    assert agree.mean() > 0.9
    np.testing.assert_array_equal(called[agree].idxmax(axis=1).to_numpy(), lpp["top_pattern"][agree].astype(str).to_numpy())


def test_lp_stats_rows_are_the_scored_genes_as_in_bento():
    """Bento's lp_stats counts, per gene of ``lp``, the cells where each pattern is
    called; a gene never scored has no row (a row of zeros would read as scored in
    some cells with no pattern called)."""
    sdata = read_transcripts(
        pd.DataFrame(
            {
                "x": np.r_[np.linspace(1, 9, 20), np.linspace(21, 29, 20), [5.0, 6.0]],
                "y": np.r_[np.linspace(2, 8, 20), np.linspace(2, 8, 20), [5.0, 5.0]],
                "gene": ["g1"] * 40 + ["rare"] * 2,
                "cell": ["a"] * 20 + ["b"] * 20 + ["a", "a"],
            }
        ),
        x="x", y="y", gene="gene", cell="cell",
        cell_boundaries=gpd.GeoSeries({"a": shapely.box(0, 0, 10, 10), "b": shapely.box(20, 0, 30, 10)}),
    )
    localization(sdata, compartment=None)
    table = sdata.tables["table"]
    stats, lp = table.uns["lp_stats"], table.uns["lp"]
    assert len(lp) == 2 and stats.index.astype(str).tolist() == ["g1"]
    assert stats.loc["g1"].to_dict() == lp[list(PATTERNS)].sum().to_dict()


def test_compartment_with_outlines_matches_the_nuclei(scored):
    points = scored[0].points["transcripts"].compute()
    with_nucleus = points["cell_id"].astype(str).isin(scored[0].shapes["nucleus_boundaries"].index)
    assert roc_auc_score(points["in_nucleus"][with_nucleus], points["p_nuclear"][with_nucleus]) > 0.99


def test_same_seed_same_results(clean, scored):
    again = localization(clean[0], copy=True, n_boot=20)
    first, second = scored[0].tables["table"], again.tables["table"]
    pd.testing.assert_frame_equal(first.uns["lpp"], second.uns["lpp"])
    pd.testing.assert_frame_equal(first.var, second.var)
    np.testing.assert_array_equal(
        scored[0].points["transcripts"].compute()["p_nuclear"], again.points["transcripts"].compute()["p_nuclear"]
    )


def test_a_numpy_seed_gives_the_results_of_the_same_python_seed():
    # np.int64 reached torch.Generator.manual_seed, which refused it ("an integer is required")
    sdata = simulate(4, 8, seed=0)[0]
    python = localization(sdata, seed=3, n_boot=5, copy=True).tables["table"]
    numpy = localization(sdata, seed=np.int64(3), n_boot=5, copy=True).tables["table"]
    pd.testing.assert_frame_equal(python.var, numpy.var)
    assert numpy.uns["localization"]["seed"] == 3 and type(numpy.uns["localization"]["seed"]) is int

def test_withheld_outlines_beat_the_gene_prior():
    sdata, _ = simulate(12, 20, mean_counts=40.0, seed=3)
    _, transcripts = read_cell_transcripts(sdata)
    train, held = np.arange(8), np.arange(8, 12)
    result = predict_compartment(transcripts, mode="withheld", training_cells=train)
    assert (result.mode == "withheld").all()
    label = transcripts.transcript_geometry.in_nucleus
    in_train, in_held = np.isin(transcripts.cell, train), np.isin(transcripts.cell, held)
    prior = gene_nuclear_prior(transcripts.gene[in_train], label[in_train], len(transcripts.gene_names))
    model_auc = roc_auc_score(label[in_held], result.p_nuclear[in_held])
    prior_auc = roc_auc_score(label[in_held], prior[transcripts.gene[in_held]])
    assert model_auc > 0.85 and model_auc > prior_auc + 0.05


def test_withheld_mode_never_reads_the_outlines_of_predicted_cells(clean):
    """Mode (b) through tl.localization: removing the predicted cells' nucleus outlines
    changes nothing, and without them mode "auto" falls back to the same predictions."""
    import spatialdata

    sdata = clean[0]
    train = [f"cell_{i:02d}" for i in range(10)]
    withheld = localization(sdata, compartment="withheld", training_cells=train, copy=True, n_boot=10)
    stripped = spatialdata.deepcopy(sdata)
    nuclei = stripped.shapes["nucleus_boundaries"]
    stripped.shapes["nucleus_boundaries"] = nuclei[nuclei.index.astype(str).isin(train)]
    auto = localization(stripped, compartment="auto", training_cells=train, copy=True, n_boot=10)
    assert withheld.tables["table"].uns["localization"]["compartment"] == "withheld"
    points = withheld.points["transcripts"].compute()
    p = points["p_nuclear"].to_numpy()
    held = ~points["cell_id"].astype(str).isin(train).to_numpy()
    # Equal up to float32 rounding (the MLP sees differently sized batches).
    np.testing.assert_allclose(p[held], auto.points["transcripts"].compute()["p_nuclear"].to_numpy()[held], rtol=1e-5, atol=1e-9)
    assert held.sum() > 1000 and np.isfinite(p).all() and ((p >= 0) & (p <= 1)).all()
    assert roc_auc_score(points["in_nucleus"][held], p[held]) > 0.9


def _edge_case_sdata(with_nuclei: bool = True):
    """Cell a (nucleus), b (no nucleus), c (no molecule); gene 'solo' has one molecule;
    two molecules lie outside every cell."""
    rng = np.random.default_rng(0)
    rows = []
    for cell, x0 in (("a", 0.0), ("b", 20.0)):
        for gene in ("g1", "g2"):
            xy = rng.uniform(1, 9, size=(30, 2)) + [x0, 0]
            rows += [(x, y, gene, cell) for x, y in xy]
    rows += [(5.0, 5.0, "solo", "a"), (100.0, 100.0, "g1", None), (101.0, 100.0, "g2", None)]
    frame = pd.DataFrame(rows, columns=["x", "y", "gene", "cell"])
    # The unused category gives the empty cell c a row in the table.
    frame["cell"] = pd.Categorical(frame["cell"], categories=["a", "b", "c"])
    cells = gpd.GeoSeries({"a": shapely.box(0, 0, 10, 10), "b": shapely.box(20, 0, 30, 10), "c": shapely.box(40, 0, 50, 10)})
    nuclei = gpd.GeoSeries({"a": shapely.box(3, 3, 7, 7)}) if with_nuclei else None
    return read_transcripts(frame, x="x", y="y", gene="gene", cell="cell", cell_boundaries=cells, nucleus_boundaries=nuclei)


def test_edge_cases_get_documented_outputs():
    sdata = _edge_case_sdata()
    localization(sdata, n_boot=10)
    table = sdata.tables["table"]
    points = sdata.points["transcripts"].compute()
    lpp = table.uns["lpp"]
    assert sorted(zip(lpp["cell_id"].astype(str), lpp["gene"].astype(str))) == [("a", "g1"), ("a", "g2"), ("b", "g1"), ("b", "g2")]
    assert table.obs_names.tolist() == ["a", "b", "c"]
    for pattern in PATTERNS:
        layer = pd.DataFrame(table.layers[f"{pattern}_p"], index=table.obs_names, columns=table.var_names)
        assert layer.loc["c"].isna().all() and np.isnan(layer.loc["a", "solo"])
        assert np.isfinite(layer.loc[["a", "b"], ["g1", "g2"]].to_numpy()).all()
    assert "solo" not in table.uns["lp_stats"].index  # never scored: no row, as in Bento
    solo = points["gene"] == "solo"
    assert points.loc[solo, "pattern"].isna().all() and np.isfinite(points.loc[solo, "p_nuclear"]).all()
    outside = points["cell_id"].isna()
    assert points.loc[outside, "pattern"].isna().all() and points.loc[outside, "p_nuclear"].isna().all()
    # Cell b has no nucleus: its molecules are scored by the outline-free model.
    in_b = (points["cell_id"] == "b").to_numpy()
    assert np.isfinite(points.loc[in_b, "p_nuclear"]).all()
    assert table.uns["localization"]["training_cells"] == ["a"]
    assert np.isfinite(table.var.loc[["g1", "g2", "solo"], "nuclear_score"]).all()


def test_a_rerun_replaces_every_output_of_the_earlier_one_and_keeps_the_rest():
    sdata = simulate(6, 8, seed=1)[0]
    localization(sdata, min_transcripts=2, n_boot=5)
    table = sdata.tables["table"]
    assert len(table.uns["lpp"]) == 39 and table.var["nuclear_score"].notna().any()
    table.obs["mine"] = 1
    table.uns["mine"] = "kept"
    localization(sdata, min_transcripts=30, compartment=None)
    table = sdata.tables["table"]
    lpp = table.uns["lpp"]
    assert len(lpp) == len(table.uns["lp"]) == 13 and lpp["n_transcripts"].min() >= 30
    assert table.uns["localization"]["min_transcripts"] == 30
    for pattern in PATTERNS:
        assert np.isfinite(table.layers[f"{pattern}_p"]).sum() == 13
    assert table.var["nuclear_score"].isna().all()
    points = sdata.points["transcripts"].compute()
    assert points["p_nuclear"].isna().all() and points["pattern"].notna().sum() == lpp["n_transcripts"].sum()
    assert table.obs["mine"].eq(1).all() and table.uns["mine"] == "kept"
    # Below the 5 molecules the head learned from, single molecules get confident calls.
    lpp = localization(sdata, min_transcripts=1, compartment=None, copy=True).tables["table"].uns["lpp"]
    single = lpp.loc[lpp["n_transcripts"] == 1, list(PATTERNS)].max(axis=1).to_numpy()
    assert len(single) == 4 and (single >= 0.99).sum() == 3


def test_invalid_outlines_are_repaired_with_a_warning():
    """A bow-tie cell (self-intersecting ring) had shapely's area of 50 instead of its
    lobes' 83.3, so every length scaled by the cell's radius was off."""
    bow_tie = shapely.Polygon([(0, 0), (10, 10), (10, 0), (0, 20)])
    frame = pd.DataFrame({"x": [9.0, 9.5, 8.5, 2.0, 2.0, 1.0], "y": [5.0, 3.0, 6.0, 12.0, 15.0, 16.0], "gene": "g",
                          "cell": "a"})
    sdata = read_transcripts(frame, x="x", y="y", gene="gene", cell="cell", cell_boundaries=gpd.GeoSeries({"a": bow_tie}))
    message = (
        "shapes element 'cell_boundaries': 1 invalid polygon(s) (e.g. {'a': 'Self-intersection[6.66666666666667 "
        "6.66666666666667]'}), repaired with shapely.make_valid"
    )
    with pytest.warns(UserWarning, match=re.escape(message)):
        _, transcripts = read_cell_transcripts(sdata)
    np.testing.assert_allclose(transcripts.geometry.area, [250 / 3])
    assert transcripts.transcript_geometry.in_cell.all()
    assert not sdata.shapes["cell_boundaries"].geometry.is_valid.any()  # the element is left as it was
    with pytest.warns(UserWarning, match=re.escape(message)):
        localization(sdata, compartment=None)
    assert len(sdata.tables["table"].uns["lpp"]) == 1


def test_outlines_that_do_not_fit_are_warned_of():
    """A nucleus half outside its cell (here one nucleus given to two cells) and a
    molecule far outside its cell's outline were used without a word."""
    rng = np.random.default_rng(0)
    xy = rng.uniform(1, 9, size=(80, 2)) + np.repeat([[0, 0], [10, 0]], 40, axis=0)

    def sdata(nuclei, stray=()):
        frame = pd.DataFrame({"x": xy[:, 0], "y": xy[:, 1], "gene": "g", "cell": ["a"] * 40 + ["b"] * 40})
        frame = pd.concat([frame, pd.DataFrame(stray, columns=["x", "y", "gene", "cell"])], ignore_index=True)
        cells = gpd.GeoSeries({"a": shapely.box(0, 0, 10, 10), "b": shapely.box(10, 0, 20, 10)})
        return read_transcripts(frame, x="x", y="y", gene="gene", cell="cell", cell_boundaries=cells,
                                nucleus_boundaries=gpd.GeoSeries(nuclei))

    shared = shapely.box(6, 3, 14, 7)
    message = (
        "localization: 2 nucleus outline(s) reach outside their cell (share of the nucleus outside: "
        "{'a': '50%', 'b': '50%'}); they are used as given"
    )
    with pytest.warns(UserWarning, match=re.escape(message)):
        localization(sdata({"a": shared, "b": shared}), n_boot=5)
    # On (not beyond) the outline, as the MERFISH sample's molecules are, is no stray.
    fits = sdata({"a": shapely.box(3, 3, 7, 7)}, stray=[(10.0, 5.0, "g", "a")])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        localization(fits, n_boot=5)
    message = (
        "localization: 2 molecule(s) of 1 cell(s) lie outside the outline of the cell they are assigned to "
        "(e.g. ['b']); they are scored as if inside"
    )
    with pytest.warns(UserWarning, match=re.escape(message)):
        localization(sdata({"a": shapely.box(3, 3, 7, 7)}, stray=[(25.0, 5.0, "g", "b"), (21.0, 5.0, "g", "b")]), n_boot=5)


def test_table_rows_come_from_the_outlines_named_by_cell_key():
    # With outlines under another name, the table came from `cell_boundaries`' absence:
    # cells without molecules got no row, and the table was annotated to no outlines.
    from spatialdata.models import ShapesModel

    sdata = _edge_case_sdata()
    outlines = sdata.shapes["cell_boundaries"]
    extra = gpd.GeoDataFrame(geometry=[shapely.box(60, 0, 70, 10)], index=pd.Index(["d"], name=outlines.index.name))
    sdata.shapes["my_cells"] = ShapesModel.parse(pd.concat([outlines, extra]))
    del sdata.shapes["cell_boundaries"]
    localization(sdata, cell_key="my_cells", n_boot=10)
    table = sdata.tables["table"]
    assert table.obs_names.tolist() == ["a", "b", "c", "d"]
    assert table.obs["n_transcripts"].tolist() == [61, 60, 0, 0]
    assert table.uns["spatialdata_attrs"]["region"] == "my_cells"
    assert (table.obs["region"] == "my_cells").all()
    assert np.isnan(table.layers["nuclear_p"][2:]).all() and np.isfinite(table.layers["nuclear_p"][:2, :2]).all()


def test_training_cell_without_outline_is_named_as_such_not_as_unknown():
    # A cell of the transcripts whose outline is missing was called an "unknown cell id".
    sdata = _edge_case_sdata()
    sdata.shapes["cell_boundaries"] = sdata.shapes["cell_boundaries"].drop(index="b")
    with pytest.warns(UserWarning, match="have transcripts but no outline"), pytest.raises(ValueError, match=(
        r"^training_cells: unknown cell ids \['nope'\]; "
        r"cells with transcripts but no outline in 'cell_boundaries' \['b'\]$"
    )):
        localization(sdata, training_cells=["a", "b", "nope"], copy=True)
    with pytest.warns(UserWarning, match="have transcripts but no outline"), pytest.raises(
        ValueError, match=r"^training_cells: cells with transcripts but no outline in 'cell_boundaries' \['b'\]$"
    ):
        localization(sdata, training_cells=["b"], copy=True)


def test_no_nucleus_anywhere_warns_and_leaves_compartment_nan():
    sdata = _edge_case_sdata(with_nuclei=False)
    with pytest.warns(UserWarning, match="no cell with a nucleus"):
        localization(sdata, n_boot=10)
    table = sdata.tables["table"]
    assert len(table.uns["lpp"]) == 4
    assert sdata.points["transcripts"].compute()["p_nuclear"].isna().all()
    assert table.var["nuclear_score"].isna().all()


def test_bad_arguments_are_rejected(clean):
    sdata = clean[0]
    with pytest.raises(ValueError, match="min_transcripts"):
        localization(sdata, min_transcripts=0, copy=True)
    with pytest.raises(ValueError, match="compartment"):
        localization(sdata, compartment="nucleus", copy=True)
    with pytest.raises(TypeError, match="model"):
        localization(sdata, model=3, copy=True)
    with pytest.raises(ValueError, match="unknown cell ids"):
        localization(sdata, training_cells=["nope"], copy=True)
    with pytest.raises(ValueError, match="without nucleus"):
        localization(_edge_case_sdata(), training_cells=["b"], copy=True)
    with pytest.raises(ValueError, match="cell_boundaries"):
        localization(sdata, cell_key="cell_boundaries_missing", copy=True)
    with pytest.raises(KeyError, match=r"no points element 'molecules'; the points are \['transcripts'\]"):
        localization(sdata, points_key="molecules", copy=True)
    with pytest.warns(UserWarning, match="match no cell id"):
        outside = read_transcripts(
            pd.DataFrame({"x": [100.0], "y": [100.0], "gene": ["g"], "cell": [None]}), x="x", y="y", gene="gene",
            cell="cell", cell_boundaries=gpd.GeoSeries({"a": shapely.box(0, 0, 10, 10)}),
        )
    with pytest.raises(ValueError, match="no transcript"):
        localization(outside)
    # A nucleus key that is not the default must exist: a misspelt one ran as "no nuclei".
    shapes = sorted(sdata.shapes)
    with pytest.raises(ValueError, match=re.escape(
            f"sdata has no shapes element nucleus_key='nuclei'; it has {shapes} "
            "(pass nucleus_key=None for none)")):
        localization(sdata, nucleus_key="nuclei", copy=True)


def test_bad_inputs_are_rejected_before_any_work():
    sdata = _edge_case_sdata()
    with pytest.raises(TypeError, match="expected a SpatialData, got DataFrame"):
        localization(sdata.points["transcripts"].compute(), copy=True)
    with pytest.raises(TypeError, match=r"^training_cells must be a list of names, got the string 'a': pass \['a'\]$"):
        localization(sdata, training_cells="a", copy=True)
    with pytest.raises(ValueError, match="training_cells is empty"):
        localization(sdata, training_cells=[], copy=True)
    with pytest.raises(ValueError, match=r"^training_cells names some cells more than once: \['a'\]$"):
        localization(sdata, training_cells=["a", "b", "a"], copy=True)
    # It was ignored silently, unknown ids included.
    with pytest.raises(ValueError, match="^training_cells trains the compartment model, which compartment=None leaves out$"):
        localization(sdata, training_cells=["unknown"], compartment=None, copy=True)
    for seed, error, wanted in ((-1, ValueError, "an integer >= 0"), (1.5, TypeError, "an integer")):
        with pytest.raises(error, match=f"^seed must be {wanted}, got {seed!r}$"):
            localization(sdata, seed=seed, copy=True)
    # n_boot was checked only once the patterns were scored, and never without a compartment.
    for compartment in ("auto", None):
        with pytest.raises(ValueError, match="^n_boot must be a positive integer, got 0$"):
            localization(sdata, n_boot=0, compartment=compartment, copy=True)
    # An existing table that does not cover the cells / genes is not written into.
    import anndata as ad

    unrelated = ad.AnnData(np.zeros((5, 2)))
    sdata.tables["table"] = unrelated
    with pytest.raises(ValueError, match=r"table 'table' does not match .* 2 cell\(s\) .*\['a', 'b'\].* 3 gene\(s\)"):
        localization(sdata)
    assert sdata.tables["table"] is unrelated and not unrelated.layers and "pattern" not in sdata.points["transcripts"].columns


def test_copy_must_be_a_bool():
    # copy="False" is a true string: it returned a scored copy and left sdata unscored.
    sdata = _edge_case_sdata()
    with pytest.raises(TypeError, match=r"^copy must be a bool \(True or False\), got 'False'$"):
        localization(sdata, copy="False", n_boot=10)
    assert "table" not in sdata.tables
    assert localization(sdata, copy=np.False_, n_boot=10) is None
    assert "pattern" in sdata.points["transcripts"].columns


def test_cells_without_outline_warn_and_are_not_scored():
    sdata = _edge_case_sdata()
    outlines = sdata.shapes["cell_boundaries"]
    sdata.shapes["cell_boundaries"] = outlines.loc[["a", "c"]]
    with pytest.warns(UserWarning, match=r"1 cell\(s\) have transcripts but no outline, so they are not scored: \['b'\]") as caught:
        localization(sdata, compartment=None)
    assert [w.filename for w in caught] == [__file__]  # it named stgraph/localization/_data.py
    table = sdata.tables["table"]
    assert sorted(set(table.uns["lpp"]["cell_id"].astype(str))) == ["a"]
    assert table.obs_names.tolist() == ["a", "b", "c"]
    assert np.isnan(table.layers["none_p"][1]).all() and np.isfinite(table.layers["none_p"][0, :2]).all()


def test_a_table_without_rows_for_scored_cells_is_refused():
    # check_table lets a table annotated to cell_boundaries lack b, which has no outline
    # there; scored with the outlines my_cells, b's results would have had no row.
    from spatialdata.models import ShapesModel

    import stgraph

    sdata = _edge_case_sdata()
    outlines = sdata.shapes["cell_boundaries"]
    sdata.shapes["my_cells"] = ShapesModel.parse(outlines.copy())
    sdata.shapes["cell_boundaries"] = outlines.loc[["a", "c"]]
    table = stgraph.io.cell_gene_table(sdata)[["a", "c"]].copy()
    sdata.tables["table"] = table
    stgraph.io.check_table(sdata)
    with pytest.raises(ValueError, match=r"^table 'table' has no row for 1 cell\(s\) with transcripts and an outline in 'my_cells' \(e.g. \['b'\]\)"):
        localization(sdata, cell_key="my_cells", n_boot=10)
    assert sdata.tables["table"] is table and not table.layers and "pattern" not in sdata.points["transcripts"].columns
    # With cell_boundaries, b is not scored, and the table may lack it.
    with pytest.warns(UserWarning, match=r"1 cell\(s\) have transcripts but no outline"):
        localization(sdata, n_boot=10)
    assert sorted(set(table.uns["lpp"]["cell_id"].astype(str))) == ["a"]
    assert np.isfinite(table.layers["none_p"][0, :2]).all()


def test_a_table_joined_from_samples_gets_results_in_the_rows_of_the_sample_scored():
    # spatialdata.concatenate joins the tables of two samples whose cells bear the same
    # ids (cell_0, ...): the first sample's results went to the second's rows, the last
    # row of each id, and its own rows stayed nan.
    import stgraph

    samples = {}
    for name, seed in (("a", 3), ("b", 4)):
        sdata, _ = simulate(3, 6, seed=seed)
        stgraph.io.get_table(sdata)
        samples[name] = sdata
    joined = spatialdata.concatenate(samples, concatenate_tables=True)
    table = joined.tables["table"]
    assert table.obs["cell_id"].astype(str).tolist() == ["cell_0", "cell_1", "cell_2"] * 2
    localization(joined, points_key="transcripts-a", cell_key="cell_boundaries-a",
                 nucleus_key="nucleus_boundaries-a", n_boot=10)
    alone = localization(samples["a"], n_boot=10, copy=True).tables["table"]
    table = joined.tables["table"]
    of_a = (table.obs["region"] == "cell_boundaries-a").to_numpy()
    for pattern in PATTERNS:
        np.testing.assert_array_equal(table.layers[f"{pattern}_p"][of_a], alone.layers[f"{pattern}_p"])
        assert np.isnan(table.layers[f"{pattern}_p"][~of_a]).all()
    # A cell of the sample scored without a row of its own there is refused, even
    # where another sample's row bears its id.
    lacking = spatialdata.concatenate(samples, concatenate_tables=True)
    lacking.tables["table"] = lacking.tables["table"][[0, 1, 3, 4, 5]].copy()
    with pytest.raises(ValueError, match=r"no row for 1 cell\(s\) with transcripts and an outline in 'cell_boundaries-a' \(e.g. \['cell_2'\]\)"):
        localization(lacking, points_key="transcripts-a", cell_key="cell_boundaries-a",
                     nucleus_key="nucleus_boundaries-a", n_boot=10)


def test_checkpoint_round_trip(tmp_path, clean):
    model = load_pretrained()
    assert 0 < sum(p.numel() for p in model.parameters()) < 100_000
    path = tmp_path / "model.pt"
    model.save(path)
    reloaded = PatternModel.load(path)
    batch, _ = labelled_batch(*clean)
    np.testing.assert_array_equal(model.predict_proba(batch), reloaded.predict_proba(batch))
    torch.testing.assert_close(model.thresholds, reloaded.thresholds)


def test_the_shipped_head_is_loaded_without_drawing_from_the_callers_torch_rng(clean, tmp_path):
    # Building the head drew its initial weights, which the checkpoint's then replace,
    # from the caller's generator: tl.localization moved the caller's next random numbers.
    path = tmp_path / "model.pt"
    load_pretrained().save(path)
    calls = {
        "load_pretrained": load_pretrained,
        "PatternModel.load": lambda: PatternModel.load(path),
        "localization": lambda: localization(clean[0], n_boot=5, copy=True),
    }
    for name, call in calls.items():
        torch.manual_seed(5)
        expected = torch.rand(4)
        torch.manual_seed(5)
        call()
        assert torch.equal(torch.rand(4), expected), name


def test_seeded_steps_do_not_reseed_the_callers_torch_rng(clean):
    """The tools seed their own draws; the caller's torch random stream is not reset to their seed."""
    batch, labels = labelled_batch(*simulate(6, 8, mean_counts=25.0, seed=11))
    model = PatternModel(hidden=8)
    calls = [
        lambda: localization(clean[0], n_boot=5, copy=True),
        lambda: fit_pattern_model(model, [batch], [labels], epochs=1, seed=3),
        lambda: train_pattern_model([simulate(6, 8, seed=1)], [simulate(3, 8, seed=2)], epochs=1, hidden=8),
    ]
    for call in calls:
        after = []
        for caller_seed in (123, 999):
            torch.manual_seed(caller_seed)
            call()
            after.append(torch.rand(4))
        assert not torch.equal(after[0], after[1])
    # Training draws nothing from the caller's stream: it goes on where it was.
    torch.manual_seed(5)
    expected = torch.rand(4)
    torch.manual_seed(5)
    calls[1]()
    torch.testing.assert_close(torch.rand(4), expected, rtol=0, atol=0)


def test_training_reduces_the_loss_and_is_seeded():
    batch, labels = labelled_batch(*simulate(12, 15, mean_counts=25.0, seed=11))

    def run():
        torch.manual_seed(0)
        model = PatternModel(hidden=16)
        return fit_pattern_model(model, [batch], [labels], epochs=4, batch_cells=4, seed=0), model

    history, model = run()
    assert history[-1] < history[0]
    again, other = run()
    assert history == again
    for a, b in zip(model.state_dict().values(), other.state_dict().values()):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    # Labels that do not match the batch are refused before any step, by name (they
    # failed inside torch: "Target size ... must be the same as input size").
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(ValueError, match=f"batch 0 has {batch.n_groups} groups but {len(labels) - 1} labels"):
        fit_pattern_model(model, [batch], [labels[:-1]], epochs=1)
    with pytest.raises(ValueError, match="1 batches but 2 label arrays"):
        fit_pattern_model(model, [batch], [labels, labels], epochs=1)
    with pytest.raises(TypeError, match="^epochs must be an integer"):
        fit_pattern_model(model, [batch], [labels], epochs=1.5)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_training_gradients_do_not_depend_on_thread_timing():
    """Two threads gave other gradients from one backward pass to the next: indexing the
    cell context by token (``cell_context[token_cell]``) back-propagates through an
    ``index_put_`` whose parallel float accumulation adds in thread order, so
    train_pattern_model with the same seed gave other weights (by up to 1e-6)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        # Two cells, many tokens each: the tokens of a cell all add into its row.
        batch, labels = labelled_batch(*simulate(2, 40, mean_counts=40.0, seed=4), max_tokens_per_group=None)
        assert batch.x.shape[0] == 4679
        torch.manual_seed(0)
        model = PatternModel()
        target = torch.nn.functional.one_hot(torch.from_numpy(labels), len(PATTERNS)).float()

        def gradients():
            model.zero_grad()
            torch.nn.functional.binary_cross_entropy_with_logits(model(batch), target).backward()
            return torch.cat([p.grad.flatten() for p in model.parameters()])

        first = gradients()
        assert all(torch.equal(gradients(), first) for _ in range(10))
    finally:
        torch.set_num_threads(threads)


def test_a_file_that_is_no_pattern_model_is_refused_by_name(clean, tmp_path):
    """A masked gene model checkpoint, a tensor or a text file failed with KeyError
    'config', IndexError or KeyError 101 from inside torch.load."""
    from stgraph.models import MaskedGeneModel, save_checkpoint
    from stgraph.nn import TranscriptEncoder

    torch.manual_seed(0)
    save_checkpoint(tmp_path / "mgm.pt", MaskedGeneModel(TranscriptEncoder(3, d_model=8, n_layers=1, heads=2), ["a", "b", "c"]))
    torch.save(torch.zeros(3), tmp_path / "tensor.pt")
    torch.save({"weights": 1}, tmp_path / "dict.pt")
    (tmp_path / "text.pt").write_text("hello")
    torch.save({"config": {"hidden": 16}, "state_dict": load_pretrained().state_dict()}, tmp_path / "other.pt")
    what = "is not a stgraph pattern model checkpoint"
    cases = {
        "mgm.pt": re.escape(
            "is a masked gene model checkpoint (stgraph.models.load_model reads it), not a stgraph "
            "pattern model checkpoint written by PatternModel.save"
        ) + "$",
        "tensor.pt": f"{what}: it holds a Tensor, not a dict$",
        "dict.pt": f"{what}: it lacks \\['config', 'state_dict'\\]$",
        "text.pt": f"{what}: torch.load cannot read it \\(KeyError\\)$",
        "other.pt": f"{what}: its weights do not fit a PatternModel \\(Error\\(s\\) in loading state_dict",
    }
    points = clean[0].points["transcripts"].compute()
    for name, message in cases.items():
        path = tmp_path / name
        with pytest.raises(ValueError, match=f"^{re.escape(str(path))} {message}"):
            PatternModel.load(path)
        with pytest.raises(ValueError, match=f"^{re.escape(str(path))} "):
            localization(clean[0], model=path)
    with pytest.raises(FileNotFoundError, match=f"^no stgraph pattern model checkpoint at {re.escape(str(tmp_path / 'no.pt'))}$"):
        localization(clean[0], model=tmp_path / "no.pt")
    with pytest.raises(FileNotFoundError, match="^no stgraph pattern model checkpoint at "):
        PatternModel.load(tmp_path)
    # Refused before anything was written.
    assert "table" not in clean[0].tables
    pd.testing.assert_frame_equal(clean[0].points["transcripts"].compute(), points)


def test_thresholds_set_on_a_model_make_the_calls_and_bad_ones_are_refused(clean):
    """One threshold was broadcast to all five patterns (uns recorded it for
    cell_edge only), and nan or 1.5 silently called nothing."""
    sdata = simulate(6, 8, seed=1)[0]
    model = load_pretrained()
    model.thresholds[PATTERNS.index("nuclear")] = 0.99  # shipped: 0.48, 4 calls
    out = localization(sdata, model=model, compartment=None, copy=True).tables["table"]
    lp, lpp, used = out.uns["lp"], out.uns["lpp"], out.uns["localization"]["thresholds"]
    assert used == dict(zip(PATTERNS, model.thresholds.tolist()))
    np.testing.assert_array_equal(lp[list(PATTERNS)].to_numpy(), (lpp[list(PATTERNS)] >= pd.Series(used)).to_numpy())
    assert lp["nuclear"].sum() == 3 and (lpp["top_pattern"] == "nuclear").sum() == 4
    for thresholds, message in (
        (torch.tensor([0.5]), "be a tensor of 5 values, one per pattern of .*, got \\(1,\\)$"),
        (None, "be a tensor of 5 values, one per pattern of .*, got NoneType$"),
        (torch.full((5,), float("nan")), "lie in \\[0, 1\\], got \\{'cell_edge': nan"),
        (torch.full((5,), 1.5), "lie in \\[0, 1\\], got \\{'cell_edge': 1.5"),
    ):
        model = load_pretrained()
        model.thresholds = thresholds
        with pytest.raises(ValueError, match=f"^model.thresholds must {message}"):
            localization(sdata, model=model, compartment=None)
    assert "table" not in sdata.tables


def test_retraining_is_one_call_and_the_result_is_usable(clean):
    samples = [simulate(6, 10, mean_counts=20.0, seed=1)]
    validation = [simulate(4, 10, mean_counts=20.0, seed=2)]
    model = train_pattern_model(samples, validation, epochs=2, batch_cells=3, hidden=8, heads=2)
    assert not model.training and model.config["hidden"] == 8
    batch, labels = labelled_batch(*validation[0], max_tokens_per_group=model.training_info["max_tokens_per_group"])
    np.testing.assert_array_equal(model.thresholds.numpy(), tune_thresholds(model.predict_proba(batch), labels).astype(np.float32))
    n_groups = len(labelled_batch(*samples[0])[1])
    assert model.training_info["n_groups"] == n_groups and model.training_info["simulations"] == "user samples"
    # Continued training starts from a copy: the given model is left as it was.
    before = {k: v.clone() for k, v in model.state_dict().items()}
    tuned = train_pattern_model(samples, validation, epochs=1, batch_cells=3, init=model)
    assert tuned.config == model.config and tuned.training_info["initialised_from"] == model.training_info
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert not torch.equal(tuned.head[-1].weight, model.head[-1].weight)
    with pytest.raises(ValueError, match="init"):
        train_pattern_model(samples, validation, epochs=1, init=model, hidden=16)
    out = localization(clean[0], model=model, compartment=None, copy=True)
    assert out.tables["table"].uns["localization"]["thresholds"] == dict(zip(PATTERNS, model.thresholds.tolist()))
    assert out.tables["table"].uns["localization"]["pattern_model"] == "given"
    assert out.points["transcripts"].compute()["p_nuclear"].isna().all()


def test_plots(scored):
    sdata, _ = scored
    ax = localization_composition(sdata, by="gene", top=5)
    heights = np.array([bar.get_height() for bar in ax.patches]).reshape(len(PATTERNS), 5)
    np.testing.assert_allclose(heights.sum(0), 1.0)
    ax = localization_composition(sdata, by="cell", groups=["cell_00", "cell_01"])
    assert [t.get_text() for t in ax.get_xticklabels()] == ["cell_00", "cell_01"]
    points = sdata.points["transcripts"].compute()
    in_cell = points[points["cell_id"].astype(str) == "cell_00"]
    ax = localization_transcripts(sdata, "pattern", cells=["cell_00"])
    assert len(ax.lines) == 2  # the cell and its nucleus
    drawn = {c.get_label(): len(c.get_offsets()) for c in ax.collections}
    expected = in_cell["pattern"].astype(object).fillna("not scored").value_counts().to_dict()
    assert {k: v for k, v in drawn.items() if v} == expected and expected["not scored"] > 0
    # 'none' and 'not scored' were two light greys (luminance 0.74 and 0.88).
    luminance = {c.get_label(): matplotlib.colors.to_rgb(c.get_facecolor()[0])[0] for c in ax.collections}
    assert luminance["not scored"] - luminance["none"] > 0.3
    ax = localization_transcripts(sdata, "p_nuclear", genes=["gene_00"])
    np.testing.assert_allclose(ax.collections[0].get_array(), points.loc[points["gene"] == "gene_00", "p_nuclear"])
    with pytest.raises(ValueError, match="color must be"):
        localization_transcripts(sdata, "gene")
    with pytest.raises(ValueError, match="by must be"):
        localization_composition(sdata, by="tissue")
    with pytest.raises(ValueError, match="run stgraph.tl.localization"):
        localization_composition(simulate(2, 3, seed=0)[0])


def test_plots_name_unknown_cells_and_genes(scored):
    sdata, _ = scored
    with pytest.raises(ValueError, match=r"genes: not in the data: \['zz'\]"):
        localization_transcripts(sdata, genes=["gene_00", "zz"])
    with pytest.raises(ValueError, match=r"cells: not in the data: \['zz', 'yy'\]"):
        localization_transcripts(sdata, cells=["zz", "cell_00", "yy"])
    with pytest.raises(TypeError, match=re.escape("cells must be a list of names, got the string 'cell_00': "
                                                  "pass ['cell_00']")):
        localization_transcripts(sdata, cells="cell_00")
    # An empty selection drew the outlines of no cell (cells) or no transcript (genes).
    for name in ("cells", "genes"):
        with pytest.raises(ValueError, match=f"^{name} is empty: name at least one, or pass None for all$"):
            localization_transcripts(sdata, **{name: []})
    # a negative or NaN marker size drew no transcript, silently
    for size in (-1, float("nan")):
        with pytest.raises(ValueError, match=f"^size must be a positive finite number, got {size:.1f}$"):
            localization_transcripts(sdata, size=size)


def test_plots_tell_unscored_cells_and_missing_compartments():
    sdata = _edge_case_sdata()
    sdata.shapes["cell_boundaries"] = sdata.shapes["cell_boundaries"].loc[["a", "c"]]
    with pytest.warns(UserWarning, match="no outline"):
        localization(sdata, compartment=None)
    # b has 60 molecules and a table row but no outline: it was "not in the data".
    with pytest.raises(ValueError, match=r"^groups: no \(cell, gene\) pair .* scored for \['b'\] \(cells without an outline are not scored\)$"):
        localization_composition(sdata, by="cell", groups=["a", "b"])
    with pytest.raises(ValueError, match=r"^groups: not in the data: \['zz'\]"):
        localization_composition(sdata, by="cell", groups=["a", "zz"])
    # Without a compartment every p_nuclear is nan, and the plot drew the outlines only.
    assert sdata.points["transcripts"]["p_nuclear"].compute().isna().all()
    with pytest.raises(ValueError, match=r"'p_nuclear'\] is nan everywhere: .* computed no compartment"):
        localization_transcripts(sdata, "p_nuclear")
    assert len(localization_transcripts(sdata, "pattern").collections) >= 1


def test_transcript_plot_draws_nuclei_indexed_by_their_own_ids():
    from spatialdata.models import ShapesModel

    sdata = _edge_case_sdata()
    # Nucleus ids that are no cell ids: tl.localization gives the nucleus to cell a.
    nuclei = gpd.GeoDataFrame(geometry=gpd.GeoSeries({"nuc_7": shapely.box(3, 3, 7, 7)}))
    sdata.shapes["nucleus_boundaries"] = ShapesModel.parse(nuclei)
    localization(sdata, n_boot=10)
    assert sdata.tables["table"].uns["localization"]["training_cells"] == ["a"]
    assert [line.get_linestyle() for line in localization_transcripts(sdata).lines] == ["-", "-", "-", "--"]
    dashed = [line for line in localization_transcripts(sdata, cells=["a"]).lines if line.get_linestyle() == "--"]
    assert len(dashed) == 1
    assert sorted(set(zip(*dashed[0].get_data()))) == [(3, 3), (3, 7), (7, 3), (7, 7)]
    assert len(localization_transcripts(sdata, cells=["b"]).lines) == 1


def test_transcript_plot_draws_holes_and_cells_without_molecules():
    """A ring-shaped cell was drawn without its hole, and an outlined cell without
    molecules was refused as "not in the data"."""
    from spatialdata.models import ShapesModel

    sdata = _edge_case_sdata()
    hole = shapely.box(24, 4, 26, 6)
    outlines = gpd.GeoDataFrame(
        geometry=gpd.GeoSeries({"a": shapely.box(0, 0, 10, 10), "b": shapely.box(20, 0, 30, 10).difference(hole),
                                "c": shapely.box(40, 0, 50, 10)})
    )
    sdata.shapes["cell_boundaries"] = ShapesModel.parse(outlines)
    with pytest.warns(UserWarning, match="4 molecule\\(s\\) of 1 cell\\(s\\) lie outside"):  # those of b in its hole
        localization(sdata, n_boot=10)
    lines = localization_transcripts(sdata, cells=["b"]).lines
    assert len(lines) == 2
    assert sorted(set(zip(*lines[1].get_data()))) == [(24, 4), (24, 6), (26, 4), (26, 6)]
    ax = localization_transcripts(sdata, cells=["c"])
    assert len(ax.lines) == 1 and sorted(set(zip(*ax.lines[0].get_data()))) == [(40, 0), (40, 10), (50, 0), (50, 10)]
    assert sum(len(c.get_offsets()) for c in ax.collections) == 0
    with pytest.raises(ValueError, match=re.escape("cells: not in the data: ['d']")):
        localization_transcripts(sdata, cells=["c", "d"])


@pytest.mark.parametrize(("top", "error", "wanted"),
                         [(0, ValueError, "a positive integer"), (-1, ValueError, "a positive integer"),
                          (2.5, TypeError, "an integer"), (True, TypeError, "an integer")])
def test_composition_needs_a_positive_top(scored, top, error, wanted):
    with pytest.raises(error, match=rf"top must be {wanted}, got {top!r}"):
        localization_composition(scored[0], top=top)


def test_composition_refuses_empty_or_unscored_groups(scored):
    with pytest.raises(ValueError, match="groups is empty"):
        localization_composition(scored[0], groups=[])
    with pytest.raises(ValueError, match=r"groups: not in the data: \['zz'\]"):
        localization_composition(scored[0], groups=["gene_00", "zz"])


def test_composition_refuses_one_gene_given_as_a_string(scored):
    # list("gene_00") was read letter by letter: "groups: not in the data: ['g', 'e', ...]".
    with pytest.raises(TypeError, match=r"^groups must be a list of names, got the string 'gene_00': pass \['gene_00'\]$"):
        localization_composition(scored[0], groups="gene_00")


def test_composition_tells_unscored_groups_from_unknown_ones():
    sdata = _edge_case_sdata()
    localization(sdata, n_boot=10)
    # 'solo' (one molecule) and the empty cell c are in the data but have no scored pair.
    for by, groups, unscored in (("gene", ["g1", "solo"], ["solo"]), ("cell", ["c", "a"], ["c"])):
        with pytest.raises(ValueError, match=re.escape(
                f"groups: no (cell, gene) pair with at least min_transcripts molecules was scored for {unscored}")):
            localization_composition(sdata, by=by, groups=groups)
    with pytest.raises(ValueError, match=re.escape("groups: not in the data: ['zz']")):
        localization_composition(sdata, groups=["solo", "zz"])


def test_transcript_plot_names_a_missing_element_and_the_available_ones(scored):
    sdata, _ = scored
    shapes = sorted(sdata.shapes)
    with pytest.raises(ValueError, match=rf"cell_key: not in the data: \['nope'\]; available: {re.escape(str(shapes))}"):
        localization_transcripts(sdata, cell_key="nope")
    with pytest.raises(KeyError, match=r"no points element 'nope'; the points are \['transcripts'\]"):
        localization_transcripts(sdata, points_key="nope")
    with pytest.raises(ValueError, match=re.escape(f"no shapes element nucleus_key='nope'; it has {shapes}")):
        localization_transcripts(sdata, nucleus_key="nope")


@pytest.mark.parametrize(("key", "value", "message"), [
    ("cell_key", None, "cell_key must be a string, got NoneType"),
    ("cell_key", 3, "cell_key must be a string, got int"),
    ("nucleus_key", 3, "nucleus_key must be a string or None, got int"),
])
def test_element_keys_that_are_not_names_are_refused_by_type(clean, key, value, message):
    # cell_key=None was looked up as a name: "sdata has no shapes element None" (the plot
    # said "cell_key: not in the data: ['None']"), as if the data lacked it.
    sdata = clean[0]
    calls = (lambda **keys: localization(sdata, copy=True, **keys), lambda **keys: localization_transcripts(sdata, **keys),
             lambda **keys: read_cell_transcripts(sdata, **keys))
    for call in calls:
        with pytest.raises(TypeError, match=f"^{re.escape(message)}$"):
            call(**{key: value})


def test_plots_refuse_what_is_not_a_spatialdata(scored):
    table = scored[0].tables["table"]
    for plot in (localization_composition, localization_transcripts):
        with pytest.raises(TypeError, match="^expected a SpatialData, got AnnData$"):
            plot(table)


def test_results_survive_a_zarr_round_trip(tmp_path):
    import spatialdata

    sdata = _edge_case_sdata()
    localization(sdata, n_boot=10)
    sdata.write(tmp_path / "sample.zarr")
    back = spatialdata.read_zarr(tmp_path / "sample.zarr")
    before, after = sdata.tables["table"], back.tables["table"]
    # The cell categories were named "cell_id" in memory, and unnamed read back.
    for key in ("lp", "lpp", "lp_stats"):
        pd.testing.assert_frame_equal(after.uns[key], before.uns[key])
    np.testing.assert_array_equal(before.layers["nuclear_p"], after.layers["nuclear_p"])
    np.testing.assert_array_equal(
        sdata.points["transcripts"].compute()["p_nuclear"], back.points["transcripts"].compute()["p_nuclear"]
    )


def test_circle_outlines_are_read_as_discs():
    # SpatialData circles (points with a radius, as spatialdata-io writes Xenium's cells):
    # as points, nuclei had no area and the compartment was left NaN with a misleading warning.
    import spatialdata
    from spatialdata.models import ShapesModel

    sdata, _ = simulate(4, 8, purity=1.0, mean_counts=30.0, seed=7)
    circles, discs = spatialdata.deepcopy(sdata), spatialdata.deepcopy(sdata)
    for key in ("cell_boundaries", "nucleus_boundaries"):
        outlines = sdata.shapes[key]
        frame = gpd.GeoDataFrame(
            {"radius": np.sqrt(outlines.area / np.pi)}, geometry=outlines.centroid, index=outlines.index
        )
        circles.shapes[key] = ShapesModel.parse(frame)
        polygons = gpd.GeoDataFrame(geometry=frame.geometry.buffer(frame["radius"], quad_segs=16), index=outlines.index)
        discs.shapes[key] = ShapesModel.parse(polygons)
    from_circles = localization(circles, copy=True, n_boot=2)
    from_discs = localization(discs, copy=True, n_boot=2)
    p_nuclear = from_circles.points["transcripts"].compute()["p_nuclear"]
    assert p_nuclear.notna().any()
    np.testing.assert_array_equal(p_nuclear, from_discs.points["transcripts"].compute()["p_nuclear"])
    pd.testing.assert_frame_equal(from_circles.tables["table"].uns["lpp"], from_discs.tables["table"].uns["lpp"])
    first = str(sdata.shapes["cell_boundaries"].index[0])
    assert len(localization_transcripts(from_circles, "pattern", cells=[first]).lines) == 2
    # Circles among polygons are refused (ShapesModel checks the first geometry only).
    mixed = spatialdata.deepcopy(sdata)
    nuclei = sdata.shapes["nucleus_boundaries"]
    geometry = [nuclei.geometry.iloc[0].centroid, *nuclei.geometry.iloc[1:]]
    mixed.shapes["nucleus_boundaries"] = ShapesModel.parse(
        gpd.GeoDataFrame({"radius": 1.0}, geometry=geometry, index=nuclei.index)
    )
    with pytest.raises(ValueError, match=re.escape(
        "shapes element 'nucleus_boundaries' holds ['Point', 'Polygon'] geometries: outlines must be polygons"
    )):
        localization(mixed, copy=True)


def test_prediction_chunks_bound_tokens_and_reference_points_together(clean):
    # A large panel gives few tokens per cell, but every cell embeds ~256 reference
    # points: a chunk bounded by tokens alone held all of them at once (1e6
    # transcripts, 20,000 cells, 5,000 genes: 5e6 reference points, +2.7 GB).
    from stgraph.localization._pattern_model import _cell_chunks

    model = load_pretrained()
    batch, _ = labelled_batch(*clean)
    bound = batch.x.shape[0] + 1  # every token fits in one chunk, not with the 16 x ~256 reference points
    assert batch.ref_x.shape[0] > 3000
    chunks = list(_cell_chunks(batch, bound))
    assert len(chunks) > 1
    for chunk in chunks:
        assert chunk.x.shape[0] + chunk.ref_x.shape[0] <= bound or chunk.n_cells == 1
    assert sum(c.n_groups for c in chunks) == batch.n_groups
    np.testing.assert_allclose(
        model.predict_proba(batch, max_tokens=bound), model.predict_proba(batch, max_tokens=10**9), atol=1e-6
    )


def test_reference_points_only_for_cells_with_a_group_to_score():
    # With a large panel most cells hold no (cell, gene) of min_transcripts molecules;
    # their ~256 reference points each were built for nothing (5e6 points, 0.8 GB,
    # 5 s for 20,000 cells of which a handful are scored).
    import dataclasses

    from stgraph.localization._features import reference_features
    from stgraph.localization._pattern_model import pattern_batch

    sdata, _ = simulate(12, 30, mean_counts=3.0, seed=4)
    _, transcripts = read_cell_transcripts(sdata)
    groups = transcripts.groups(8)
    scored = np.unique(groups.cell)
    assert 0 < scored.size < 12
    model = load_pretrained()
    batch = pattern_batch(transcripts, groups, model.context_radius)
    np.testing.assert_array_equal(np.unique(batch.ref_cell.numpy()), scored)
    every_x, every_cell = reference_features(transcripts.geometry)
    assert batch.ref_x.shape[0] < every_x.shape[0] * scored.size / 12 * 1.5
    full = dataclasses.replace(batch, ref_x=torch.from_numpy(every_x), ref_cell=torch.from_numpy(every_cell.astype(np.int64)))
    np.testing.assert_allclose(model.predict_proba(batch), model.predict_proba(full), atol=1e-6)


class _Stop(Exception):
    """Raised in place of the pattern model: the tests below need only the reading."""


def _read_and_warn(sdata, monkeypatch) -> list:
    """Warnings tl.localization gives up to its pattern model (which is stopped)."""
    def stop(*args, **kwargs):
        raise _Stop

    monkeypatch.setattr("stgraph.tl._localization.pattern_batch", stop)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(_Stop):
            localization(sdata, compartment=None, copy=True)
    return caught


def test_cells_cut_by_a_crop_warn_and_the_whole_sample_does_not(monkeypatch):
    # A crop keeps the outlines of the cells it cuts whole but drops their molecules
    # outside the box: these cells were scored on what was left without a word.
    sdata = stgraph.datasets.merfish_u2os()
    assert _read_and_warn(sdata, monkeypatch) == []
    # Nor a cell whose molecules stop short of its outline by about their spacing.
    assert _read_and_warn(simulate(seed=1)[0], monkeypatch) == []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # spatialdata's note on querying points
        cropped = spatialdata.bounding_box_query(
            sdata, axes=("x", "y"), min_coordinate=[50, 50], max_coordinate=[150, 150], target_coordinate_system="global"
        )
    caught = _read_and_warn(cropped, monkeypatch)
    assert [w.filename for w in caught] == [__file__]
    assert str(caught[0].message) == (
        "localization: 10 cell outline(s) reach beyond the extent of the transcripts (share of the cell outside "
        "their bounding box, widened by 2 spacings of the cell's molecules: {'10-0': '86%', '34-0': '81%', "
        "'13-0': '79%'}); the data look cropped (a crop such as spatialdata.bounding_box_query keeps "
        "the outlines of the cells it cuts whole but drops their molecules outside the box), so these cells are "
        "scored on part of their molecules and their patterns may be wrong; crop with a margin and keep the "
        "results of the cells wholly inside"
    )


def test_a_cell_without_molecules_is_not_named_as_cut():
    # Cell "b" lies far beyond the molecules but holds none of them: it is not scored,
    # so it was named (at 100 %) as scored on part of its molecules.
    from stgraph.localization._data import cell_transcripts
    from stgraph.tl._localization import _warn_cells_beyond_the_transcripts

    grid = np.arange(10, dtype=float) + 0.5
    x, y = np.meshgrid(grid, grid)
    points = pd.DataFrame({"x": x.ravel(), "y": y.ravel(), "gene": "g", "cell_id": "a"})
    cells = pd.Series([shapely.box(0, 0, 10, 10), shapely.box(100, 100, 110, 110)], index=["a", "b"])
    transcripts = cell_transcripts(points, cells)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        _warn_cells_beyond_the_transcripts(points, transcripts)
    assert caught == []
    # A crop: a's molecules stop at x = 6.5, its outline at 10, two spacings (2) past
    # the extent leave 1.5 of its width of 10 outside.
    points.loc[points.x > 7, ["x", "y"]] = 5.0
    transcripts = cell_transcripts(points, cells)
    with pytest.warns(UserWarning) as caught:
        _warn_cells_beyond_the_transcripts(points, transcripts)
    assert len(caught) == 1
    assert "1 cell outline(s)" in str(caught[0].message)
    assert "{'a': '15%'}" in str(caught[0].message)
