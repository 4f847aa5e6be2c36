"""The cells × genes table that tools write into."""
import numpy as np
import pandas as pd
import pytest

import stgraph as sg


@pytest.fixture(scope="module")
def sim():
    sdata, truth = sg.datasets.simulate(n_cells=6, n_genes=8, seed=3)
    return sdata, truth


def test_counts_and_centroids_match_pandas(sim):
    sdata, _ = sim
    frame = sg.io.transcripts_frame(sdata)
    table = sg.io.cell_gene_table(sdata)
    expected = pd.crosstab(frame["cell_id"], frame["gene"]).reindex(
        index=table.obs_names, columns=table.var_names, fill_value=0
    )
    np.testing.assert_array_equal(table.X.toarray(), expected.to_numpy())
    centroid = frame.groupby("cell_id", observed=True)[["x", "y"]].mean().loc[table.obs_names]
    np.testing.assert_allclose(table.obsm["spatial"], centroid.to_numpy(), rtol=1e-12)


def test_counts_equal_simulated_truth(sim):
    sdata, truth = sim
    table = sg.io.cell_gene_table(sdata)
    patterns = truth.patterns.set_index(["cell_id", "gene"])["n_transcripts"]
    for cell in table.obs_names[:3]:
        for j, gene in enumerate(table.var_names):
            assert table[cell, gene].X.toarray()[0, 0] == patterns.loc[(cell, gene)]


def test_get_table_adds_once_and_keeps_existing():
    sdata = sg.datasets.simulate(n_cells=3, n_genes=4, seed=1)[0]
    assert "table" not in sdata.tables
    first = sg.io.get_table(sdata)
    first.uns["marker"] = 1
    assert sg.io.get_table(sdata).uns["marker"] == 1
    assert first.uns["spatialdata_attrs"]["region"] == "cell_boundaries"
