"""The cells × genes table that tools write into."""
import re

import anndata as ad
import numpy as np
import pandas as pd
import pytest
from spatialdata.models import TableModel

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
    # Documented columns: the count of molecules per cell and the cell id, outlines or not.
    assert table.X.dtype == np.float32
    np.testing.assert_array_equal(table.obs["n_transcripts"], expected.sum(axis=1).to_numpy())
    without_outlines = sg.io.cell_gene_table(sdata.subset(["transcripts"]))
    assert without_outlines.obs["cell_id"].astype(str).tolist() == table.obs_names.tolist()
    assert "region" not in without_outlines.obs


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


def test_cell_key_names_the_outlines_the_table_is_annotated_to(sim):
    sdata, _ = sim
    renamed = sdata.subset(["transcripts"])
    renamed.shapes["cells"] = sdata.shapes["cell_boundaries"]
    table = sg.io.cell_gene_table(renamed, cell_key="cells")
    default = sg.io.cell_gene_table(sdata)
    assert table.uns["spatialdata_attrs"]["region"] == "cells" and (table.obs["region"] == "cells").all()
    np.testing.assert_array_equal(table.X.toarray(), default.X.toarray())
    assert table.obs_names.tolist() == default.obs_names.tolist()
    assert "region" not in sg.io.cell_gene_table(sdata, cell_key=None).obs
    with pytest.raises(ValueError, match=re.escape(
        "sdata has no shapes element cell_key='cell'; it has ['cell_boundaries', 'nucleus_boundaries'] "
        "(pass cell_key=None for none)"
    )):
        sg.io.get_table(sdata, table_key="other", cell_key="cell")
    # A list was refused as unhashable, naming no argument.
    with pytest.raises(TypeError, match=r"^cell_key must be a string or None, got list$"):
        sg.io.get_table(sdata, table_key="other", cell_key=["cells"])
    assert "other" not in sdata.tables


def test_get_table_rejects_an_existing_table_that_misses_cells_or_genes():
    sdata = sg.datasets.simulate(n_cells=3, n_genes=6, seed=0)[0]
    full = sg.io.cell_gene_table(sdata)
    unrelated = ad.AnnData(np.zeros((5, 2)))
    for table, match in (
        (unrelated, r"3 cell\(s\) of the transcripts missing from its obs \(e\.g\. \['cell_0', 'cell_1', 'cell_2'\]\); "
                    r"6 gene\(s\) of the transcripts missing from its var"),
        (full[:2].copy(), r"1 cell\(s\) .* obs \(e\.g\. \['cell_2'\]\)\. Delete sdata\.tables\['table'\]"),
        (full[:, 2:].copy(), r"2 gene\(s\) .* var \(e\.g\. \['gene_0', 'gene_1'\]\)\. Delete"),
    ):
        sdata.tables["table"] = table
        with pytest.raises(ValueError, match=match):
            sg.io.get_table(sdata)
        assert sdata.tables["table"] is table  # left as it was
    # Cells are matched through the instance_key column, whatever the obs_names; extra cells and genes are fine.
    cells = ["cell_0", "cell_1", "cell_2", "cell_9"]
    wider = ad.AnnData(
        np.zeros((4, 7)),
        obs=pd.DataFrame({"cell_id": cells, "region": pd.Categorical(["cell_boundaries"] * 4)},
                         index=[f"row{i}" for i in range(4)]),
        var=pd.DataFrame(index=[f"gene_{j}" for j in range(7)]),
    )
    sdata.tables["table"] = TableModel.parse(wider, region="cell_boundaries", region_key="region", instance_key="cell_id")
    assert sg.io.get_table(sdata) is sdata.tables["table"]


def test_get_table_errors_name_the_elements_there_are():
    sdata = sg.datasets.simulate(n_cells=3, n_genes=4, seed=1)[0]
    with pytest.raises(KeyError, match=re.escape("no points element 'spots'; the points are ['transcripts']")):
        sg.io.get_table(sdata, points_key="spots")
    sg.io.get_table(sdata)
    # SpatialData refused these names only after the table was counted (or a tool's work done).
    for key, message in (
        ("transcripts", "is the name of one of sdata's points; SpatialData names must be unique across element types"),
        ("Cell_Boundaries", "differs only in case from sdata's shapes element 'cell_boundaries'"),
        ("TABLE", "differs only in case from sdata's tables element 'table'"),
        ("a b", "is not a valid SpatialData element name"),
    ):
        for check in (sg.io.get_table, sg.io.check_table):
            with pytest.raises(ValueError, match=re.escape(f"table_key={key!r} {message}")):
                check(sdata, table_key=key)
    with pytest.raises(TypeError, match="^table_key must be a string, got int$"):
        sg.io.check_table(sdata, table_key=3)
    assert list(sdata.tables) == ["table"]
    assert sg.io.get_table(sdata, table_key="counts") is sdata.tables["counts"]


def test_table_functions_refuse_what_is_not_a_spatialdata(sim):
    sdata, _ = sim
    frame = sg.io.transcripts_frame(sdata)
    for function in (sg.io.get_table, sg.io.check_table, sg.io.cell_gene_table):
        for wrong, name in ((frame, "DataFrame"), (sg.io.cell_gene_table(sdata), "AnnData")):
            with pytest.raises(TypeError, match=f"^expected a SpatialData, got {name}$"):
                function(wrong)
        # The points element itself, a dask DataFrame, was "got DataFrame" as a pandas one.
        message = r"^expected a SpatialData, got a dask DataFrame \(a points element\?\): pass the SpatialData that holds it$"
        with pytest.raises(TypeError, match=message):
            function(sdata.points["transcripts"])
    with pytest.raises(TypeError, match=message):
        sg.graph.transcript_graph(sdata.points["transcripts"], 1.0)


def test_tools_check_an_existing_table_before_writing_anything():
    sdata = sg.datasets.simulate(n_cells=3, n_genes=6, seed=0)[0]
    sdata.tables["table"] = ad.AnnData(np.zeros((5, 2)))
    before = sg.io.transcripts_frame(sdata)
    for tool in (sg.tl.colocalization, sg.tl.domains):
        with pytest.raises(ValueError, match=r"3 cell\(s\) of the transcripts missing from its obs"):
            tool(sdata, radius=3.0)
        pd.testing.assert_frame_equal(sg.io.transcripts_frame(sdata), before)
        assert set(sdata.tables) == {"table"} and not sdata.tables["table"].uns
        assert set(sdata.shapes) == {"cell_boundaries", "nucleus_boundaries"}
    # Without writing, the table does not matter.
    result = sg.tl.domains(sdata, radius=3.0, n_domains=2, inplace=False)
    assert len(result.labels) == len(before)


@pytest.mark.parametrize(
    ("tool", "written"),
    [
        (lambda sdata: sg.tl.localization(sdata, n_boot=5), ["pattern", "p_nuclear"]),
        (lambda sdata: sg.tl.domains(sdata, radius=3.0, n_domains=2), ["domain"]),
    ],
)
def test_tools_write_only_their_columns_into_the_points(tool, written):
    import dask.dataframe as dd
    from spatialdata.models import PointsModel
    from spatialdata.transformations import Scale, get_transformation, set_transformation

    sdata = sg.datasets.simulate(n_cells=4, n_genes=6, seed=2)[0]
    frame = sdata.points["transcripts"].compute()
    # Points as a user may hold them: rows not sorted by index, three partitions, a transformation.
    shuffled = frame.iloc[np.random.default_rng(0).permutation(len(frame))]
    with pytest.warns(UserWarning, match="not monotonic increasing"):
        points = PointsModel.parse(dd.from_pandas(shuffled, npartitions=3, sort=False), feature_key="gene",
                                   instance_key="cell_id")
    set_transformation(points, Scale([0.5, 0.5], axes=("x", "y")), "global")
    sdata.points["transcripts"] = points
    for outlines in sdata.shapes.values():  # aligned with the points, as the tools require
        set_transformation(outlines, Scale([0.5, 0.5], axes=("x", "y")), "global")
    before = points.compute()
    tool(sdata)
    after = sdata.points["transcripts"]
    assert list(after.columns) == list(before.columns) + written
    pd.testing.assert_frame_equal(after.compute()[list(before.columns)], before)
    assert after.npartitions == 3
    assert get_transformation(after) == Scale([0.5, 0.5], axes=("x", "y"))
    # Domain outlines had the identity: in global they lay twice as far out as their molecules.
    for outlines in sdata.shapes.values():
        assert get_transformation(outlines) == Scale([0.5, 0.5], axes=("x", "y"))
    assert after.attrs["spatialdata_attrs"] == {"feature_key": "gene", "instance_key": "cell_id"}


def test_cells_are_those_with_molecules_or_an_outline():
    import geopandas as gpd
    import shapely

    frame = pd.DataFrame({"x": [1.0, 3.0, 21.0], "y": [1.0, 5.0, 2.0], "gene": ["g1", "g2", "g1"],
                          "cell": pd.Categorical(["a", "a", "b"], categories=["a", "b", "c", "d"])})
    outlines = gpd.GeoSeries({"a": shapely.box(0, 0, 10, 10), "b": shapely.box(20, 0, 30, 10),
                              "c": shapely.box(40, 0, 50, 10)})
    sdata = sg.io.read_transcripts(frame, x="x", y="y", gene="gene", cell="cell", cell_boundaries=outlines)
    table = sg.io.cell_gene_table(sdata)
    # d (an unused category without outline, as a crop leaves) has no row; c (empty) sits at its outline's centre.
    assert table.obs_names.tolist() == ["a", "b", "c"]
    assert table.obs["n_transcripts"].tolist() == [2, 1, 0]
    np.testing.assert_array_equal(table.obsm["spatial"], [[2.0, 3.0], [21.0, 2.0], [45.0, 5.0]])
    np.testing.assert_array_equal(table.X.toarray(), [[1, 1], [1, 0], [0, 0]])
    # An outlined cell that is no category (string ids carry no unused categories) still gets a row, last.
    outlines["e"] = shapely.box(60, 0, 70, 4)
    plain = frame.assign(cell=frame["cell"].astype(str))
    with pytest.warns(UserWarning, match=r"2 of 4 cell_boundaries match no cell id"):
        sdata = sg.io.read_transcripts(plain, x="x", y="y", gene="gene", cell="cell", cell_boundaries=outlines)
    table = sg.io.cell_gene_table(sdata)
    assert table.obs_names.tolist() == ["a", "b", "c", "e"]
    assert table.obs["n_transcripts"].tolist() == [2, 1, 0, 0]
    np.testing.assert_array_equal(table.obsm["spatial"][2:], [[45.0, 5.0], [65.0, 2.0]])
    np.testing.assert_array_equal(table.X.toarray(), [[1, 1], [1, 0], [0, 0], [0, 0]])


def test_table_rows_match_integer_labelled_outlines_in_spatialdata():
    import geopandas as gpd
    import shapely
    import spatialdata
    from spatialdata.models import ShapesModel

    frame = pd.DataFrame({"x": [1.0, 3.0, 21.0, 22.0], "y": [1.0, 5.0, 2.0, 3.0],
                          "gene": ["g1", "g2", "g1", "g1"], "cell": [1, 1, 2, 2]})
    sdata = sg.io.read_transcripts(frame, x="x", y="y", gene="gene", cell="cell")
    # Outlines labelled by integers, as spatialdata-io's readers of some platforms give them.
    outlines = gpd.GeoDataFrame(geometry=[shapely.box(0, 0, 10, 10), shapely.box(20, 0, 30, 10)], index=[1, 2])
    sdata.shapes["cell_boundaries"] = ShapesModel.parse(outlines)
    table = sg.io.get_table(sdata)
    assert table.obs["cell_id"].tolist() == [1, 2] and table.obs_names.tolist() == ["1", "2"]
    _, joined = spatialdata.join_spatialelement_table(
        sdata=sdata, spatial_element_names="cell_boundaries", table_name="table", how="left"
    )
    assert joined.obs_names.tolist() == ["1", "2"]
    crop = spatialdata.bounding_box_query(
        sdata, axes=("x", "y"), min_coordinate=[15, 0], max_coordinate=[35, 10], target_coordinate_system="global"
    )
    assert crop.tables["table"].obs_names.tolist() == ["2"]
    sg.io.check_table(crop)  # the cropped table still covers the cropped transcripts
    # String labels and cells without an outline keep string ids.
    assert sg.io._table._outline_labels(pd.Index(["1", "x"]), pd.Index([1, 2])).tolist() == ["1", "x"]


def test_a_crop_of_a_table_with_cells_without_outline_is_still_accepted():
    # After a tool had made its table, spatialdata.bounding_box_query dropped the rows of
    # cells without an outline (their instances are in no shapes), and every tool then
    # refused the crop: "1 cell(s) of the transcripts missing from its obs (e.g. ['c'])".
    import geopandas as gpd
    import shapely
    import spatialdata

    frame = pd.DataFrame({"x": [1.0, 3.0, 21.0, 22.0, 24.0, 23.0, 2.0],
                          "y": [1.0, 5.0, 2.0, 3.0, 8.0, 8.5, 8.0],
                          "gene": ["g1", "g2", "g1", "g2", "g1", "g2", "g3"],
                          "cell": ["a", "a", "b", "b", "c", "c", None]})
    outlines = gpd.GeoSeries({"a": shapely.box(0, 0, 10, 10), "b": shapely.box(20, 0, 22.5, 5)})
    sdata = sg.io.read_transcripts(frame, x="x", y="y", gene="gene", cell="cell", cell_boundaries=outlines)
    sg.tl.colocalization(sdata, radius=5.0)
    assert sdata.tables["table"].obs_names.tolist() == ["a", "b", "c"]
    crop = spatialdata.bounding_box_query(
        sdata, axes=("x", "y"), min_coordinate=[15, 0], max_coordinate=[35, 10], target_coordinate_system="global"
    )
    # c keeps its two molecules in the crop but loses its row: it has no outline.
    assert crop.tables["table"].obs_names.tolist() == ["b"]
    assert sorted(sg.io.transcripts_frame(crop)["cell_id"].dropna().unique()) == ["b", "c"]
    sg.io.check_table(crop)
    result = sg.tl.colocalization(crop, radius=5.0)
    # Uniform weights: the quotient of (g1, g2) pools b and c, 1 / (1 * 1 / 1) in each.
    row = result.table.set_index(["gene_a", "gene_b"]).loc[("g1", "g2")]
    assert row["n_cells"] == 2 and row["clq"] == pytest.approx(1.0)
    assert "colocalization" in crop.tables["table"].uns
    # A cell with an outline the table annotates is still required.
    crop.tables["table"] = sdata.tables["table"][["a", "c"]].copy()
    with pytest.raises(ValueError, match=r"^table 'table' does not match the points 'transcripts': 1 cell\(s\) .*\['b'\]"):
        sg.io.check_table(crop)
    # A table annotated to no outlines of the data must hold every cell.
    plain = ad.AnnData(np.zeros((1, 3)), obs=pd.DataFrame(index=["b"]), var=pd.DataFrame(index=["g1", "g2", "g3"]))
    crop.tables["table"] = plain
    with pytest.raises(ValueError, match=r"1 cell\(s\) of the transcripts missing from its obs \(e.g. \['c'\]\)"):
        sg.io.check_table(crop)


def test_var_flags_control_probes_for_scanpy_qc():
    # The sample's 5 blanks (notarget*) are columns of the table like genes; scanpy's
    # QC and a filter need them flagged in var.
    table = sg.io.cell_gene_table(sg.datasets.merfish_u2os())
    assert table.var["is_control"].dtype == bool
    assert table.var_names[table.var["is_control"]].tolist() == [
        "notarget001", "notarget002", "notarget003", "notarget004", "notarget005"
    ]
    sc = pytest.importorskip("scanpy")
    sc.pp.calculate_qc_metrics(table, qc_vars=["is_control"], percent_top=None, inplace=True)
    frame = sg.io.transcripts_frame(sg.datasets.merfish_u2os())
    blanks = frame[frame["is_control"]].groupby("cell_id", observed=False).size()
    np.testing.assert_array_equal(
        table.obs["total_counts_is_control"], blanks.reindex(table.obs_names, fill_value=0).to_numpy()
    )
    # Molecules a reader flags count too, whatever the gene's name; so does the name of
    # a gene with no molecule left (a crop).
    frame = pd.DataFrame({"x": [0.0, 1.0, 2.0, 3.0], "y": 0.0, "cell": "c1",
                          "gene": pd.Categorical(["A", "probe7", "A", "B"], categories=["A", "probe7", "B", "BLANK_1"]),
                          "is_control": [False, True, False, False]})
    table = sg.io.cell_gene_table(sg.io.read_transcripts(frame, x="x", y="y", gene="gene", cell="cell"))
    assert table.var["is_control"].to_dict() == {"A": False, "probe7": True, "B": False, "BLANK_1": True}
