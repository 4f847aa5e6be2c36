"""Saving and reloading the tools' results: a zarr store, then the tools again on it."""
from __future__ import annotations

import warnings

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import spatialdata

import stgraph
from stgraph.coloc import ColocalizationResult


def run_tools(sdata):
    """The three transcript tools, as `stgraph run` calls them; their results."""
    stgraph.tl.localization(sdata, seed=0)
    pairs = stgraph.tl.colocalization(sdata, radius=1.0, per_cell=True, seed=0)
    found = stgraph.tl.domains(sdata, radius=3.0, n_domains=2, seed=0)
    return pairs, found


def assert_uns_equal(written: dict, read: dict) -> None:
    """anndata reads lists back as arrays (strings as numpy StringDType from zarr)."""
    assert written.keys() == read.keys()
    for key, value in written.items():
        if isinstance(value, pd.DataFrame):
            pd.testing.assert_frame_equal(read[key], value)
        elif isinstance(value, dict):
            assert_uns_equal(value, read[key])
        elif isinstance(value, (list, np.ndarray)):
            np.testing.assert_array_equal(np.asarray(read[key]).astype(np.asarray(value).dtype), value)
        else:
            assert read[key] == value and type(read[key]) is type(value), key


def assert_results_equal(expected, got) -> None:
    """Every result of :func:`run_tools` in ``got`` equals that in ``expected``; the
    domain labels by value (a store gives their integer categories back in order of
    first appearance, see tl.domains)."""
    a, b = expected.tables["table"], got.tables["table"]
    for part in ("obs", "var"):
        pd.testing.assert_frame_equal(getattr(b, part), getattr(a, part))
    np.testing.assert_array_equal(b.X.toarray(), a.X.toarray())
    assert a.layers.keys() == b.layers.keys()
    for name in a.layers:
        np.testing.assert_array_equal(b.layers[name], a.layers[name])
    assert_uns_equal(dict(a.uns), dict(b.uns))
    frame_a, frame_b = expected.points["transcripts"].compute(), got.points["transcripts"].compute()
    pd.testing.assert_series_equal(frame_b.pop("domain").astype(float), frame_a.pop("domain").astype(float))
    pd.testing.assert_frame_equal(frame_b, frame_a)
    assert expected.shapes.keys() == got.shapes.keys()
    for name, shapes in expected.shapes.items():
        assert got.shapes[name].geom_equals(shapes).all()
        pd.testing.assert_frame_equal(pd.DataFrame(got.shapes[name].drop(columns="geometry")),
                                      pd.DataFrame(shapes.drop(columns="geometry")))


def test_results_survive_a_zarr_store_and_the_tools_rerun_alike(tmp_path):
    sdata, _ = stgraph.datasets.simulate(4, 8, n_domains=2, frac_cells_without_nucleus=0.25, seed=1)
    pairs, found = run_tools(sdata)
    # A large store reads back in several partitions, with categories unknown to dask.
    points = sdata.points["transcripts"]
    split = points.repartition(npartitions=3)
    split.attrs.update(points.attrs)
    sdata.points["transcripts"] = split
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="zarr v3 autosharding", category=UserWarning)
        sdata.write(tmp_path / "result.zarr")
    back = spatialdata.read_zarr(tmp_path / "result.zarr")
    assert back.points["transcripts"].npartitions == 3
    assert_results_equal(sdata, back)
    stored = ColocalizationResult.from_uns(back.tables["table"].uns)
    pd.testing.assert_frame_equal(stored.table, pairs.table)
    assert stored.genes.equals(pairs.genes)
    # The tools again on the reloaded store, over their own earlier results: the same results.
    pairs_again, found_again = run_tools(back)
    assert_results_equal(sdata, back)
    pd.testing.assert_frame_equal(pairs_again.table, pairs.table)
    pd.testing.assert_frame_equal(found_again.enrichment, found.enrichment)
    # The table as h5ad: its results read back alike (strings of lists as object arrays).
    back.tables["table"].write_h5ad(tmp_path / "table.h5ad")
    table = ad.read_h5ad(tmp_path / "table.h5ad")
    for layer, values in back.tables["table"].layers.items():
        np.testing.assert_array_equal(table.layers[layer], values)
    assert_uns_equal(dict(back.tables["table"].uns), dict(table.uns))


def test_results_saved_into_the_store_they_were_read_from(tmp_path):
    # The way the README gives: SpatialData refuses to overwrite an element of the store
    # it was read from, and takes it after deleting it there (the table is in memory once
    # read, the points once localization wrote its columns).
    sdata, _ = stgraph.datasets.simulate(3, 8, seed=2)
    stgraph.tl.localization(sdata, seed=0)
    store = tmp_path / "sample.zarr"
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="zarr v3 autosharding", category=UserWarning)
        sdata.write(store)
        back = spatialdata.read_zarr(store)
        stgraph.tl.localization(back, seed=1)
        for name in ("table", "transcripts"):
            with pytest.raises(ValueError, match="^Cannot overwrite. The target path of the write operation is in use"):
                back.write_element(name, overwrite=True)
            back.delete_element_from_disk(name)
            back.write_element(name)
    again = spatialdata.read_zarr(store)
    assert again.tables["table"].uns["localization"]["seed"] == 1
    assert not np.array_equal(again.points["transcripts"]["p_nuclear"].compute(),
                              sdata.points["transcripts"]["p_nuclear"].compute(), equal_nan=True)
    pd.testing.assert_frame_equal(again.points["transcripts"].compute(), back.points["transcripts"].compute())
    for key in ("lp", "lpp", "lp_stats"):
        pd.testing.assert_frame_equal(again.tables["table"].uns[key], back.tables["table"].uns[key])
    np.testing.assert_array_equal(again.tables["table"].layers["nuclear_p"], back.tables["table"].layers["nuclear_p"])


def test_domain_params_without_clipping_outlines_survive_a_zarr_store(tmp_path):
    # cell_key=None records None (no outlines clipped), which the store must keep.
    sdata, _ = stgraph.datasets.simulate(3, 9, n_domains=2, seed=0)
    stgraph.tl.domains(sdata, radius=3.0, n_domains=2, cell_key=None, seed=0)
    stgraph.tl.domains(sdata, radius=3.0, n_domains=2, key_added="clipped", seed=0)
    uns = sdata.tables["table"].uns
    assert uns["domain_params"]["cell_key"] is None
    assert uns["clipped_params"]["cell_key"] == "cell_boundaries"
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="zarr v3 autosharding", category=UserWarning)
        sdata.write(tmp_path / "domains.zarr")
    back = spatialdata.read_zarr(tmp_path / "domains.zarr").tables["table"].uns
    assert_uns_equal(dict(uns), dict(back))
    assert back["domain_params"]["cell_key"] is None
