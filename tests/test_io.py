"""Readers of stgraph.io on the real shared data and on small generated files.

Expected values are computed here straight from the files (pyarrow, the csv module),
not through the readers' code.
"""
from __future__ import annotations

import csv
import gzip
import re
import warnings
from pathlib import Path

import anndata as ad
import dask.dataframe as dd
import geopandas as gpd
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
import shapely
import spatialdata as sd
from shapely.geometry import MultiPolygon
from spatialdata.models import Image2DModel, PointsModel, ShapesModel, TableModel
from spatialdata.transformations import Identity, Scale, get_transformation

from stgraph.io import (
    detect_format,
    from_spatialdata,
    read,
    read_cosmx,
    read_merscope,
    read_transcripts,
    read_xenium,
    transcripts_frame,
)
from stgraph.io._schema import control_mask
from stgraph.io._shapes import polygons_from_vertices

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
XENIUM = DATA / "xenium_lung_10k"
COSMX = DATA / "cosmx_lung12"
MERFISH = DATA / "merfish_u2os_bento" / "merfish_sample.zarr"
needs = {
    name: pytest.mark.skipif(not path.exists(), reason=f"shared data {path} is absent")
    for name, path in (("xenium", XENIUM), ("cosmx", COSMX), ("merfish", MERFISH))
}
SCHEMA_DTYPES = {"x": "float64", "y": "float64", "gene": "category", "cell_id": "category", "is_control": "bool"}


def assert_schema(frame: pd.DataFrame) -> None:
    for column, dtype in SCHEMA_DTYPES.items():
        assert str(frame[column].dtype) == dtype, column


# --------------------------------------------------------------------------- Xenium
@pytest.fixture(scope="module")
def xenium_raw() -> pa.Table:
    return pq.read_table(XENIUM / "transcripts.parquet")


@pytest.fixture(scope="module")
def xenium() -> pd.DataFrame:
    return transcripts_frame(read_xenium(XENIUM))


@needs["xenium"]
def test_xenium_molecules_match_the_file(xenium, xenium_raw):
    assert len(xenium) == xenium_raw.num_rows == 10_000
    assert_schema(xenium)
    assert str(xenium["z"].dtype) == "float64" and xenium["in_nucleus"].dtype == bool
    for ours, theirs in (("x", "x_location"), ("y", "y_location"), ("z", "z_location")):
        np.testing.assert_array_equal(xenium[ours].to_numpy(), xenium_raw[theirs].to_numpy().astype(np.float64))
    # already µm: the sample spans a few hundred µm, not thousands of pixels
    assert 0 < np.ptp(xenium["x"]) < 1000 and 0 < np.ptp(xenium["z"]) < 50
    np.testing.assert_array_equal(xenium["gene"].astype(str), xenium_raw["feature_name"].to_pylist())
    assert len(xenium["gene"].cat.categories) == len(pc.unique(xenium_raw["feature_name"])) == 370
    np.testing.assert_array_equal(
        xenium["in_nucleus"].to_numpy(), xenium_raw["overlaps_nucleus"].to_numpy() == 1
    )
    assert xenium["in_nucleus"].sum() == 3416
    for kept in ("transcript_id", "qv", "fov_name", "nucleus_distance"):
        np.testing.assert_array_equal(xenium[kept].to_numpy(), xenium_raw[kept].to_numpy())


@needs["xenium"]
def test_xenium_cell_assignment(xenium, xenium_raw):
    raw = np.asarray(xenium_raw["cell_id"].to_pylist(), dtype=object)
    unassigned = raw == "UNASSIGNED"
    assert unassigned.sum() == 202
    np.testing.assert_array_equal(xenium["cell_id"].isna().to_numpy(), unassigned)
    np.testing.assert_array_equal(xenium["cell_id"].astype(object)[~unassigned].to_numpy(), raw[~unassigned])
    assert xenium["cell_id"].nunique() == len(set(raw) - {"UNASSIGNED"}) == 165


@needs["xenium"]
def test_xenium_controls_are_flagged(xenium, xenium_raw):
    names = xenium_raw["feature_name"].to_pylist()
    pattern = re.compile(r"^(NegControlProbe|NegControlCodeword|BLANK|UnassignedCodeword|DeprecatedCodeword)_")
    expected = np.array([bool(pattern.match(n)) for n in names])
    np.testing.assert_array_equal(xenium["is_control"].to_numpy(), expected)
    assert expected.sum() == 25
    dropped = transcripts_frame(read_xenium(XENIUM, drop_controls=True))
    assert len(dropped) == 10_000 - 25
    assert not any(pattern.match(g) for g in dropped["gene"].cat.categories)
    np.testing.assert_array_equal(dropped.index, np.flatnonzero(~expected))


@needs["xenium"]
def test_xenium_min_qv(xenium_raw):
    qv = xenium_raw["qv"].to_numpy()
    frame = transcripts_frame(read_xenium(XENIUM, min_qv=20))
    assert len(frame) == (qv >= 20).sum() == 8617
    np.testing.assert_array_equal(frame.index, np.flatnonzero(qv >= 20))


@needs["xenium"]
def test_xenium_nucleus_polygons_match_the_vertices():
    vertices = pq.read_table(XENIUM / "nucleus_boundaries.parquet").to_pandas()
    shapes = read_xenium(XENIUM).shapes
    assert "cell_boundaries" not in shapes
    nuclei = shapes["nucleus_boundaries"]
    assert len(nuclei) == vertices["cell_id"].nunique() == 135
    for cell_id, rows in vertices.groupby("cell_id"):
        ring = np.asarray(nuclei.geometry[cell_id].exterior.coords)
        np.testing.assert_array_equal(ring, rows[["vertex_x", "vertex_y"]].to_numpy(dtype=np.float64))
    areas = nuclei.geometry.area
    assert 5 < areas.median() < 200  # µm², a nucleus


def test_xenium_older_layout(tmp_path):
    """Binary names, integer cell ids with -1, cell boundaries, two nuclei in one cell."""
    pq.write_table(
        pa.table({
            "transcript_id": pa.array([10, 11, 12, 13], pa.uint64()),
            "cell_id": pa.array([5, -1, 7, 5], pa.int64()),
            "overlaps_nucleus": pa.array([1, 0, 0, 1], pa.uint8()),
            "feature_name": pa.array([b"ACTB", b"BLANK_0001", b"GAPDH", b"ACTB"], pa.binary()),
            "x_location": pa.array([1.0, 2.0, 3.0, 4.0], pa.float32()),
            "y_location": pa.array([1.5, 2.5, 3.5, 4.5], pa.float32()),
            "z_location": pa.array([7.0, 8.0, 9.0, 10.0], pa.float32()),
            "qv": pa.array([40.0, 10.0, 25.0, 19.9], pa.float32()),
        }),
        tmp_path / "transcripts.parquet",
    )
    square = [(0, 0), (2, 0), (2, 2), (0, 2)]
    pq.write_table(
        pa.table({
            "cell_id": ["5"] * 4 + ["7"] * 4,
            "vertex_x": [x for x, _ in square] + [x + 5 for x, _ in square],
            "vertex_y": [y for _, y in square] * 2,
        }),
        tmp_path / "cell_boundaries.parquet",
    )
    pq.write_table(
        pa.table({
            "cell_id": ["5"] * 8,
            "label_id": [1] * 4 + [2] * 4,
            "vertex_x": [0.1, 0.5, 0.5, 0.1, 1.1, 1.5, 1.5, 1.1],
            "vertex_y": [0.1, 0.1, 0.5, 0.5, 1.1, 1.1, 1.5, 1.5],
        }),
        tmp_path / "nucleus_boundaries.parquet",
    )
    sdata = read_xenium(tmp_path, min_qv=20)
    frame = transcripts_frame(sdata)
    assert frame.index.tolist() == [0, 2]
    assert frame["gene"].astype(str).tolist() == ["ACTB", "GAPDH"]
    assert frame["cell_id"].astype(str).tolist() == ["5", "7"]
    all_rows = transcripts_frame(read_xenium(tmp_path))
    assert all_rows["cell_id"].isna().tolist() == [False, True, False, False]
    assert all_rows["is_control"].tolist() == [False, True, False, False]
    cells = sdata.shapes["cell_boundaries"]
    assert cells.index.tolist() == ["5", "7"] and cells.geometry.area.tolist() == [4.0, 4.0]
    nucleus = sdata.shapes["nucleus_boundaries"].geometry["5"]
    assert isinstance(nucleus, MultiPolygon) and len(nucleus.geoms) == 2
    assert nucleus.area == pytest.approx(2 * 0.16)


def test_xenium_index_is_the_row_number_whatever_pandas_wrote(tmp_path):
    # A subset saved with a named pandas index got that index back from the file's metadata.
    table = pd.DataFrame({"x_location": [1.0, 2.0, 3.0], "y_location": [1.0, 2.0, 3.0], "feature_name": list("ABA"),
                          "cell_id": ["c1", "UNASSIGNED", "c2"]}, index=pd.Index([40, 7, 19], name="row"))
    table.to_parquet(tmp_path / "transcripts.parquet")
    frame = transcripts_frame(read_xenium(tmp_path))
    assert isinstance(frame.index, pd.RangeIndex) and frame.index.name is None
    assert frame.index.tolist() == [0, 1, 2]
    assert frame["row"].tolist() == [40, 7, 19]  # kept as a column, not lost
    assert frame["cell_id"].isna().tolist() == [False, True, False]


def test_xenium_min_qv_is_validated(tmp_path):
    # checked before the folder is read: no transcripts.parquet needed
    for bad in (float("nan"), float("inf"), -1):
        with pytest.raises(ValueError, match=f"min_qv must be a non-negative finite number, got {float(bad)}"):
            read_xenium(tmp_path, min_qv=bad)
    with pytest.raises(TypeError, match="min_qv must be a real number, got str"):
        read_xenium(tmp_path, min_qv="20")
    pq.write_table(
        pa.table({"x_location": [1.0, 2.0], "y_location": [1.0, 2.0], "feature_name": ["A", "B"],
                  "cell_id": ["c1", "UNASSIGNED"], "qv": [30.0, 10.0]}),
        tmp_path / "transcripts.parquet",
    )
    with pytest.raises(ValueError, match=r"no transcript has qv >= min_qv=40 \(the highest qv is 30.0\)"):
        read_xenium(tmp_path, min_qv=40)
    assert transcripts_frame(read_xenium(tmp_path, min_qv=0)).index.tolist() == [0, 1]


def test_xenium_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="transcripts.parquet"):
        read_xenium(tmp_path)


def test_read_transcripts_refuses_complex_coordinates_and_repeated_column_labels():
    frame = pd.DataFrame({"X": [0.0, 1.0], "Y": [0.0, 1.0], "G": ["a", "b"], "C": ["c1", "c1"]})
    # complex coordinates were read silently as their real part
    with pytest.raises(TypeError, match=r"^coordinate column 'X' must be numeric, got dtype complex128$"):
        read_transcripts(frame.assign(X=frame["X"] + 1j), x="X", y="Y", gene="G")
    # a repeated gene label failed in pandas: "'DataFrame' object has no attribute 'name'"
    repeated = frame.set_axis(["X", "Y", "G", "G"], axis=1)
    with pytest.raises(ValueError, match=r"^column label\(s\) \['G'\] appear more than once in the transcript "
                                         r"table; rename them first$"):
        read_transcripts(repeated, x="X", y="Y", gene="G")


def test_read_transcripts_refuses_empty_and_blank_gene_names():
    # "" and " " became genes of those names in the points and the table
    frame = pd.DataFrame({"X": [0.0, 1.0, 2.0], "Y": [0.0, 1.0, 2.0], "G": ["a", "", " "]}, index=[5, 6, 7])
    with pytest.raises(ValueError, match=r"^gene column 'G' has 2 empty or blank name\(s\) \(first at row 6\)$"):
        read_transcripts(frame, x="X", y="Y", gene="G")
    # an integer index's label read "row np.int64(6)"
    frame = frame.assign(G="a", X=[0.0, np.nan, 2.0])
    with pytest.raises(ValueError, match=r"^coordinate column 'X' has 1 non-finite value\(s\) \(first at row 6\)$"):
        read_transcripts(frame, x="X", y="Y", gene="G")

@pytest.mark.parametrize("reader", [read, read_xenium, read_merscope, read_cosmx, detect_format])
@pytest.mark.parametrize("path", [5, None])
def test_a_path_that_is_no_path_is_refused_by_name(reader, path):
    # pathlib's own TypeError ("expected str, bytes or os.PathLike object") named no argument
    with pytest.raises(TypeError, match=f"^path must be a path \\(a string or os.PathLike\\), got {type(path).__name__}$"):
        reader(path)


@needs["xenium"]
def test_xenium_gzipped_csv_tables_read_like_the_parquet(xenium, tmp_path):
    """Older Xenium folders (or a download of the CSV alone) hold transcripts.csv.gz."""
    transcripts = pq.read_table(XENIUM / "transcripts.parquet").drop(["__index_level_0__"]).to_pandas()
    transcripts.to_csv(tmp_path / "transcripts.csv.gz", index=False)
    vertices = pq.read_table(XENIUM / "nucleus_boundaries.parquet").drop(["__index_level_0__"]).to_pandas()
    vertices.to_csv(tmp_path / "nucleus_boundaries.csv.gz", index=False)
    assert detect_format(tmp_path) == "xenium"
    sdata = read(tmp_path)
    frame = transcripts_frame(sdata)
    assert_schema(frame)
    assert len(frame) == 10_000 and frame.index.tolist() == list(range(10_000))
    for column in ("x", "y", "z", "qv"):  # float32 in the parquet, their shortest decimals in the CSV
        np.testing.assert_allclose(frame[column].to_numpy(), xenium[column].to_numpy(), rtol=1e-7, err_msg=column)
    for column in ("in_nucleus", "is_control"):
        assert frame[column].tolist() == xenium[column].tolist(), column
    for column in ("gene", "cell_id"):
        assert frame[column].astype(object).tolist() == xenium[column].astype(object).tolist(), column
    assert frame["cell_id"].isna().sum() == int((transcripts["cell_id"] == "UNASSIGNED").sum()) == 202
    nuclei = sdata.shapes["nucleus_boundaries"]
    expected = read_xenium(XENIUM).shapes["nucleus_boundaries"]
    assert len(nuclei) == 135 and nuclei.index.tolist() == expected.index.tolist()
    np.testing.assert_allclose(shapely.get_coordinates(nuclei.geometry), shapely.get_coordinates(expected.geometry),
                               rtol=1e-7)
    # beside the parquet, the parquet is read
    pq.write_table(pa.Table.from_pandas(transcripts.iloc[:10], preserve_index=False), tmp_path / "transcripts.parquet")
    assert len(transcripts_frame(read_xenium(tmp_path))) == 10


# --------------------------------------------------------------------------- CosMx
@pytest.fixture(scope="module")
def cosmx_rows() -> list[dict[str, str]]:
    with open(COSMX / "Lung12_tx_file.csv", newline="") as handle:
        return list(csv.DictReader(handle))


@pytest.fixture(scope="module")
def cosmx() -> pd.DataFrame:
    return transcripts_frame(read_cosmx(COSMX))


@needs["cosmx"]
def test_cosmx_coordinates_in_micrometres(cosmx, cosmx_rows):
    assert len(cosmx) == len(cosmx_rows) == 25_825
    assert_schema(cosmx)
    x_px = np.array([float(r["x_global_px"]) for r in cosmx_rows])
    y_px = np.array([float(r["y_global_px"]) for r in cosmx_rows])
    plane = np.array([int(r["z"]) for r in cosmx_rows])
    np.testing.assert_allclose(cosmx["x"], x_px * 0.18, rtol=1e-12)
    np.testing.assert_allclose(cosmx["y"], y_px * 0.18, rtol=1e-12)
    np.testing.assert_array_equal(cosmx["z_plane"], plane)
    np.testing.assert_allclose(cosmx["z"], plane * 0.8, rtol=1e-12)
    assert set(plane) == set(range(10))
    np.testing.assert_allclose(cosmx["x_local_px"], [float(r["x_local_px"]) for r in cosmx_rows], rtol=1e-12)
    override = transcripts_frame(read_cosmx(COSMX, pixel_size=0.12028, z_step=0.5))
    np.testing.assert_allclose(override["x"], x_px * 0.12028, rtol=1e-12)
    np.testing.assert_allclose(override["z"], plane * 0.5, rtol=1e-12)


@needs["cosmx"]
def test_cosmx_cells_compartments_and_controls(cosmx, cosmx_rows):
    expected = [None if r["cell_ID"] == "0" else f"{r['fov']}_{r['cell_ID']}" for r in cosmx_rows]
    got = cosmx["cell_id"].astype(object).where(cosmx["cell_id"].notna(), None).tolist()
    assert got == expected
    assert sum(e is None for e in expected) == 6860
    assert cosmx["cell_id"].nunique() == len({e for e in expected if e}) == 67 + 53  # cell_ID 0 excluded
    nuclear = np.array([r["CellComp"] == "Nuclear" for r in cosmx_rows])
    np.testing.assert_array_equal(cosmx["in_nucleus"], nuclear)
    assert nuclear.sum() == 12_737
    assert cosmx["CellComp"].astype(str).tolist() == [r["CellComp"] for r in cosmx_rows]
    negative = np.array([r["target"].startswith("NegPrb") for r in cosmx_rows])
    np.testing.assert_array_equal(cosmx["is_control"], negative)
    genes = cosmx["gene"].cat.categories
    assert len(genes) == len({r["target"] for r in cosmx_rows}) == 980
    assert sum(g.startswith("NegPrb") for g in genes) == 20
    assert cosmx["fov"].tolist() == [int(r["fov"]) for r in cosmx_rows]


@needs["cosmx"]
def test_cosmx_local_plus_fov_offset_equals_global(cosmx, cosmx_rows, tmp_path):
    with open(COSMX / "Lung12_fov_positions_file.csv", newline="") as handle:
        offsets = {row["fov"]: row for row in csv.DictReader(handle)}
    for axis in ("x", "y"):
        local = np.array([float(r[f"{axis}_local_px"]) for r in cosmx_rows])
        offset = np.array([float(offsets[r["fov"]][f"{axis}_global_px"]) for r in cosmx_rows])
        glob = np.array([float(r[f"{axis}_global_px"]) for r in cosmx_rows])
        assert np.abs(local + offset - glob).max() < 1e-6  # pixels
    # the reader's fallback path, on the same molecules without the global columns
    table = pd.read_csv(COSMX / "Lung12_tx_file.csv").drop(columns=["x_global_px", "y_global_px"])
    table.to_csv(tmp_path / "S1_tx_file.csv", index=False)
    (tmp_path / "S1_fov_positions_file.csv").write_text((COSMX / "Lung12_fov_positions_file.csv").read_text())
    fallback = transcripts_frame(read_cosmx(tmp_path))
    np.testing.assert_allclose(fallback["x"], cosmx["x"], rtol=0, atol=1e-6)
    np.testing.assert_allclose(fallback["y"], cosmx["y"], rtol=0, atol=1e-6)
    (tmp_path / "S1_fov_positions_file.csv").unlink()
    with pytest.raises(FileNotFoundError, match="fov_positions_file"):
        read_cosmx(tmp_path)


def test_cosmx_flags_a_molecule_detected_again_in_the_next_plane(tmp_path):
    # px of 0.18 µm: 0.3 px = 0.054 µm, 1 px = 0.18 µm (beyond the 0.1 µm default).
    rows = [
        # fov, cell_ID, x, y, z, target
        (1, 1, 100.0, 100.0, 3, "A"),   # 0: kept, the lowest of a chain
        (1, 1, 100.3, 100.0, 4, "A"),   # 1: duplicate of 0
        (1, 1, 100.0, 100.3, 5, "A"),   # 2: duplicate of 1
        (1, 1, 100.0, 100.0, 5, "B"),   # 3: another gene at the same place: kept
        (1, 1, 200.0, 200.0, 2, "A"),   # 4: kept
        (1, 1, 200.0, 200.3, 4, "A"),   # 5: two planes up: a molecule of its own
        (1, 1, 300.0, 300.0, 1, "A"),   # 6: kept
        (1, 1, 301.0, 300.0, 2, "A"),   # 7: 0.18 µm away: kept
        (1, 2, 400.0, 400.0, 7, "NegPrb1"),  # 8: upper copy of 9, listed first
        (1, 2, 400.0, 400.0, 6, "NegPrb1"),  # 9: kept
    ]
    table = pd.DataFrame(rows, columns=["fov", "cell_ID", "x_global_px", "y_global_px", "z", "target"])
    table["CellComp"] = "Cytoplasm"
    table.to_csv(tmp_path / "S_tx_file.csv", index=False)
    frame = transcripts_frame(read_cosmx(tmp_path))
    assert frame["z_duplicate"].tolist() == [False, True, True, False, False, False, False, False, True, False]
    wider = transcripts_frame(read_cosmx(tmp_path, duplicate_distance=0.2))
    assert np.flatnonzero(wider["z_duplicate"]).tolist() == [1, 2, 7, 8]
    assert not transcripts_frame(read_cosmx(tmp_path, duplicate_distance=0))["z_duplicate"].any()
    kept = transcripts_frame(read_cosmx(tmp_path, drop_z_duplicates=True))
    assert kept.index.tolist() == [0, 3, 4, 5, 6, 7, 9]  # rows of the file
    pd.testing.assert_frame_equal(kept.drop(columns="z_duplicate"),
                                  frame[~frame["z_duplicate"]].drop(columns="z_duplicate"), check_categorical=False)
    for kwargs, error, message in [
        ({"duplicate_distance": -0.1}, ValueError, "duplicate_distance must be a non-negative finite number"),
        ({"duplicate_distance": "0.1"}, TypeError, "duplicate_distance"),
        ({"drop_z_duplicates": 1}, TypeError, "drop_z_duplicates"),
    ]:
        with pytest.raises(error, match=message):
            read_cosmx(tmp_path, **kwargs)


@needs["cosmx"]
def test_cosmx_sample_duplicates_across_planes(cosmx):
    assert int(cosmx["z_duplicate"].sum()) == 1_296
    # Each flagged molecule has a same-gene molecule within 0.1 µm one plane below.
    flagged = cosmx[cosmx["z_duplicate"]]
    below = cosmx.set_index(["gene", "z_plane"]).sort_index()
    for _, row in flagged.head(50).iterrows():
        lower = below.loc[(row["gene"], row["z_plane"] - 1)]
        lower = lower.to_frame().T if isinstance(lower, pd.Series) else lower
        assert (np.hypot(lower["x"] - row["x"], lower["y"] - row["y"]) <= 0.1).any()


@needs["cosmx"]
def test_cosmx_reads_gzipped_flat_files(cosmx, tmp_path):
    # Exports ship *_tx_file.csv.gz; the reader looked for *_tx_file.csv only ("found none").
    table = pd.read_csv(COSMX / "Lung12_tx_file.csv").drop(columns=["x_global_px", "y_global_px"])
    table.to_csv(tmp_path / "S1_tx_file.csv.gz", index=False)
    positions = pd.read_csv(COSMX / "Lung12_fov_positions_file.csv")
    positions.to_csv(tmp_path / "S1_fov_positions_file.csv.gz", index=False)
    frame = transcripts_frame(read_cosmx(tmp_path))
    assert len(frame) == 25_825
    np.testing.assert_allclose(frame["x"], cosmx["x"], rtol=0, atol=1e-6)
    np.testing.assert_allclose(frame["y"], cosmx["y"], rtol=0, atol=1e-6)
    pd.testing.assert_series_equal(frame["cell_id"], cosmx["cell_id"])
    assert frame["CellComp"].astype(str).tolist() == cosmx["CellComp"].astype(str).tolist()
    # a plain and a gzipped transcript file side by side: which one is meant is unclear
    table.to_csv(tmp_path / "S1_tx_file.csv", index=False)
    with pytest.raises(FileNotFoundError, match=re.escape(
        "expected one *_tx_file.csv (or *_tx_file.csv.gz) in"
    ) + ".*'S1_tx_file.csv', 'S1_tx_file.csv.gz'"):
        read_cosmx(tmp_path)


def test_cosmx_fov_listed_twice_needs_one_position(tmp_path):
    pd.DataFrame({"fov": [1, 2, 3], "cell_ID": [1, 2, 0], "x_local_px": [0.0, 1.0, 2.0], "y_local_px": [0.0, 1.0, 2.0],
                  "z": [0, 1, 2], "target": ["A", "B", "C"]}).to_csv(tmp_path / "S1_tx_file.csv", index=False)
    positions = pd.DataFrame({"FOV": [1, 2, 2, 3, 1, 3], "x_global_px": [10.0, 20.0, 20.0, 30.0, 10.0, 30.0],
                              "y_global_px": [5.0, 6.0, 6.0, 7.0, 5.0, 7.0], "Slide": [1, 1, 2, 1, 1, 1]})
    positions.to_csv(tmp_path / "S1_fov_positions_file.csv", index=False)
    frame = transcripts_frame(read_cosmx(tmp_path, pixel_size=1.0))  # identical repeats are one position
    assert frame["x"].tolist() == [10.0, 21.0, 32.0] and frame["y"].tolist() == [5.0, 7.0, 9.0]
    # The first row of a FOV was kept silently.
    positions.loc[4, "x_global_px"] = 11.0
    positions.loc[5, "y_global_px"] = 8.0
    positions.to_csv(tmp_path / "S1_fov_positions_file.csv", index=False)
    with pytest.raises(ValueError, match=re.escape(
        "FOV(s) [1, 3] have more than one position (x_global_px, y_global_px) in S1_fov_positions_file.csv"
    )):
        read_cosmx(tmp_path)


def test_cosmx_keeps_the_files_own_cell_and_helper_named_columns(tmp_path):
    # AtoMx exports add a 'cell' column ("c_1_2_15"); the reader's helper columns must not replace it.
    table = pd.DataFrame({
        "fov": [2, 2, 3], "cell_ID": [15, 0, 4], "cell": ["c_1_2_15", "c_1_2_0", "c_1_3_4"],
        "x_global_px": [0.0, 10.0, 20.0], "y_global_px": [0.0, 5.0, 9.0], "z": [1, 2, 3],
        "target": ["A", "B", "NegPrb1"], "CellComp": ["Nuclear", "0", "Membrane"],
        "nuclear": [7, 8, 9], "z_um": [-1.0, -2.0, -3.0],
    })
    table.to_csv(tmp_path / "S1_tx_file.csv", index=False)
    frame = transcripts_frame(read_cosmx(tmp_path))
    assert frame["cell"].tolist() == ["c_1_2_15", "c_1_2_0", "c_1_3_4"]
    assert frame["nuclear"].tolist() == [7, 8, 9] and frame["z_um"].tolist() == [-1.0, -2.0, -3.0]
    assert frame["cell_id"].astype(object).where(frame["cell_id"].notna(), None).tolist() == ["2_15", None, "3_4"]
    assert frame["in_nucleus"].tolist() == [True, False, False]
    np.testing.assert_allclose(frame["z"], [0.8, 1.6, 2.4])
    assert not any(c.startswith("_") for c in frame.columns)


def test_cosmx_missing_cell_id_is_unassigned_and_ids_stay_integral(tmp_path):
    # One empty cell_ID makes pandas read the column as floats: ids must not become "2_15.0".
    table = pd.DataFrame({
        "fov": [2, 2, 3, 3], "cell_ID": [15.0, np.nan, 4.0, 0.0],
        "x_global_px": [0.0, 10.0, 20.0, 30.0], "y_global_px": [0.0, 5.0, 9.0, 1.0], "z": [1, 2, 3, 4],
        "target": ["A", "B", "C", "A"],
    })
    table.to_csv(tmp_path / "S1_tx_file.csv", index=False)
    frame = transcripts_frame(read_cosmx(tmp_path))
    assert frame["cell_id"].astype(object).where(frame["cell_id"].notna(), None).tolist() == ["2_15", None, "3_4", None]


@pytest.mark.parametrize("compartments", [["Nuclear", None, "0"], ["0", None, "0"]])
def test_cosmx_missing_compartment_stays_missing(compartments, tmp_path):
    # A missing CellComp became the category "nan" (and a column of 0 alone "0.0").
    pd.DataFrame({
        "fov": [1, 1, 1], "cell_ID": [1, 2, 0], "x_global_px": [0.0, 1.0, 2.0], "y_global_px": [0.0, 1.0, 2.0],
        "z": [0, 1, 2], "target": ["A", "B", "C"], "CellComp": compartments,
    }).to_csv(tmp_path / "S1_tx_file.csv", index=False)
    frame = transcripts_frame(read_cosmx(tmp_path))
    assert frame["CellComp"].astype(object).where(frame["CellComp"].notna(), None).tolist() == compartments
    assert frame["CellComp"].cat.categories.tolist() == sorted({c for c in compartments if c is not None})
    assert frame["in_nucleus"].tolist() == [c == "Nuclear" for c in compartments]


def test_cosmx_compartment_text_none_is_kept(tmp_path):
    # CosMx writes "None" for molecules outside cells; pandas' default missing-value
    # markers made it NaN, so CellComp == "None" selected nothing.
    pd.DataFrame({
        "fov": [1, 1, 1, 1], "cell_ID": [0, 3, 3, 0], "x_global_px": [0.0, 1.0, 2.0, 3.0],
        "y_global_px": [0.0, 1.0, 2.0, 3.0], "z": [0, 1, 2, 3], "target": ["A", "B", "C", "A"],
        "CellComp": ["None", "Nuclear", "Cytoplasm", None],
    }).to_csv(tmp_path / "S1_tx_file.csv", index=False)
    frame = transcripts_frame(read_cosmx(tmp_path))
    assert frame["CellComp"].astype(object).where(frame["CellComp"].notna(), None).tolist() == [
        "None", "Nuclear", "Cytoplasm", None
    ]
    assert frame["CellComp"].cat.categories.tolist() == ["Cytoplasm", "None", "Nuclear"]
    assert frame["in_nucleus"].tolist() == [False, True, False, False]


def test_cosmx_missing_fov_positions_says_why_they_are_needed(tmp_path):
    pd.DataFrame({"fov": [1], "cell_ID": [1], "x_local_px": [0.0], "y_local_px": [0.0], "z": [0],
                  "target": ["A"]}).to_csv(tmp_path / "S1_tx_file.csv", index=False)
    with pytest.raises(FileNotFoundError, match=re.escape(
        "the transcript file has no x_global_px / y_global_px columns, so the FOV offsets are needed: "
        "expected one *_fov_positions_file.csv (or *_fov_positions_file.csv.gz) in"
    )):
        read_cosmx(tmp_path)


def test_cosmx_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="tx_file"):
        read_cosmx(tmp_path)
    pd.DataFrame({"fov": [1], "cell_ID": [0], "target": ["A"]}).to_csv(tmp_path / "a_tx_file.csv", index=False)
    with pytest.raises(ValueError, match="'z'"):
        read_cosmx(tmp_path)
    (tmp_path / "b_tx_file.csv").write_text("fov\n")
    with pytest.raises(FileNotFoundError, match="a_tx_file.csv"):
        read_cosmx(tmp_path)
    with pytest.raises(ValueError, match="pixel_size"):
        read_cosmx(tmp_path, pixel_size=0)


# --------------------------------------------------------------------------- MERSCOPE
ENTITY = 2_923_084_200_005_100_012  # > 2**53: rounded if it ever passes through a float


def write_merscope(folder: Path) -> None:
    """A small output folder with the documented Vizgen column layout."""
    rows = [
        # unnamed, barcode_id, global_x, global_y, global_z, x, y, fov, gene, transcript_id, cell_id
        (0, 3, 10.25, 20.5, 0.0, 101.0, 202.0, 0, "ACTB", "ENST01", ENTITY),
        (4, 7, 11.0, 21.75, 2.0, 110.0, 217.0, 0, "Blank-1", "Blank-1", -1),
        (9, 3, 30.5, 5.0, 6.0, 305.0, 50.0, 1, "ACTB", "ENST01", ENTITY + 1),
        (2, 5, 31.0, 6.0, 1.0, 310.0, 60.0, 1, "GAPDH", "ENST02", -1),
    ]
    with open(folder / "detected_transcripts.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["", "barcode_id", "global_x", "global_y", "global_z", "x", "y", "fov", "gene",
                         "transcript_id", "cell_id"])
        writer.writerows(rows)
    a = shapely.box(9, 19, 13, 23)
    b0, b1 = shapely.box(29, 4, 31, 7), shapely.box(30, 4, 32, 7)  # outline moves between planes
    geometries = [MultiPolygon([a]), MultiPolygon([a]), MultiPolygon([b0]), MultiPolygon([b1])]
    pq.write_table(
        pa.table({
            "ID": [0, 1, 2, 3],
            "EntityID": pa.array([ENTITY, ENTITY, ENTITY + 1, ENTITY + 1], pa.int64()),
            "ZIndex": [0, 1, 0, 1],
            "Geometry": shapely.to_wkb(geometries),
            "Type": ["cell"] * 4,
            "ZLevel": [1.5, 3.0, 1.5, 3.0],
            "Name": [None] * 4,
            "ParentID": [None] * 4,
            "ParentType": [None] * 4,
        }),
        folder / "cell_boundaries.parquet",
    )


def test_merscope(tmp_path):
    write_merscope(tmp_path)
    sdata = read_merscope(tmp_path)
    frame = transcripts_frame(sdata)
    assert_schema(frame)
    assert frame["x"].tolist() == [10.25, 11.0, 30.5, 31.0]
    assert frame["y"].tolist() == [20.5, 21.75, 5.0, 6.0]
    assert frame["z"].tolist() == [0.0, 3.0, 9.0, 1.5]
    assert frame["z_plane"].tolist() == [0.0, 2.0, 6.0, 1.0]
    assert frame["x_fov_px"].tolist() == [101.0, 110.0, 305.0, 310.0]
    assert frame["fov_transcript_index"].tolist() == [0, 4, 9, 2]
    assert frame["barcode_id"].tolist() == [3, 7, 3, 5]
    assert frame["cell_id"].astype(object).where(frame["cell_id"].notna(), None).tolist() == [
        str(ENTITY), None, str(ENTITY + 1), None
    ]
    assert frame["is_control"].tolist() == [False, True, False, False]
    cells = sdata.shapes["cell_boundaries"]
    assert cells.index.tolist() == [str(ENTITY), str(ENTITY + 1)]
    assert cells.geometry.area.tolist() == [16.0, 9.0]  # cell B: union of a 2x3 and a shifted 2x3
    assert len(transcripts_frame(read_merscope(tmp_path, z_step=2.0, drop_controls=True))) == 3
    assert transcripts_frame(read_merscope(tmp_path, z_step=2.0))["z"].tolist() == [0.0, 4.0, 12.0, 2.0]


def test_merscope_without_boundaries_and_hdf5_warning(tmp_path):
    write_merscope(tmp_path)
    (tmp_path / "cell_boundaries.parquet").unlink()
    (tmp_path / "cell_boundaries").mkdir()
    with pytest.warns(UserWarning, match="hdf5"):
        sdata = read_merscope(tmp_path)
    assert len(sdata.shapes) == 0
    with pytest.raises(FileNotFoundError, match="detected_transcripts.csv"):
        read_merscope(tmp_path / "cell_boundaries")


# --------------------------------------------------------------------------- generic tables
def make_table() -> pd.DataFrame:
    return pd.DataFrame({
        "px_x": [10.0, 20.0, 30.0, 40.0, 50.0],
        "px_y": [1.0, 2.0, 3.0, 4.0, 5.0],
        "plane": [0, 1, 2, 3, 4],
        "target": ["ACTB", "NegPrb3", "NEGR1", "notarget002", "ACTB"],
        "cell": [12.0, np.nan, 12.0, 3.0, 0.0],
        "nuc": ["n1", "", "n1", "", "UNASSIGNED"],
        "score": [0.5, 0.1, 0.9, 0.3, 0.7],
    })


def test_read_transcripts_mapping_units_and_ids():
    table = make_table()
    before = table.copy()
    frame = transcripts_frame(read_transcripts(
        table, x="px_x", y="px_y", z="plane", gene="target", cell="cell", nucleus="nuc",
        pixel_size=0.5, z_step=1.5,
    ))
    pd.testing.assert_frame_equal(table, before)
    assert list(frame.columns) == ["x", "y", "z", "gene", "cell_id", "in_nucleus", "nucleus_id", "is_control", "score"]
    assert frame["x"].tolist() == [5.0, 10.0, 15.0, 20.0, 25.0]
    assert frame["z"].tolist() == [0.0, 1.5, 3.0, 4.5, 6.0]
    assert frame["cell_id"].astype(object).where(frame["cell_id"].notna(), None).tolist() == ["12", None, "12", "3", "0"]
    assert frame["nucleus_id"].notna().tolist() == [True, False, True, False, False]
    assert frame["in_nucleus"].tolist() == [True, False, True, False, False]
    assert frame["is_control"].tolist() == [False, True, False, True, False]
    assert frame["score"].tolist() == table["score"].tolist()
    # z_step defaults to pixel_size
    assert transcripts_frame(read_transcripts(table, x="px_x", y="px_y", z="plane", gene="target",
                                              pixel_size=0.5))["z"].tolist() == [0.0, 0.5, 1.0, 1.5, 2.0]


def test_read_transcripts_files_equal_frame(tmp_path):
    table = make_table().drop(columns="nuc")
    table.to_csv(tmp_path / "t.csv", index=False)
    table.to_parquet(tmp_path / "t.parquet")
    table.to_csv(tmp_path / "t.tsv.gz", sep="\t", index=False)
    kwargs = dict(x="px_x", y="px_y", gene="target", cell="cell")
    reference = transcripts_frame(read_transcripts(table, **kwargs))
    for name in ("t.csv", "t.parquet", "t.tsv.gz"):
        pd.testing.assert_frame_equal(transcripts_frame(read_transcripts(tmp_path / name, **kwargs)), reference)


def test_read_transcripts_reads_the_id_columns_of_text_files_as_text(tmp_path):
    # Read as numbers, "007" lost its zeros and, in a column with an empty cell (floats),
    # 2**53 + 1 became 2**53.
    big = 2**53 + 1
    table = pd.DataFrame({"x": [0.0, 1.0, 2.0, 3.0], "y": [0.0, 1.0, 2.0, 3.0], "gene": list("ABCA"),
                          "cell": ["007", str(big), None, "007"], "nucleus": ["0012", None, None, "-1"]})
    for name, sep in (("t.csv", ","), ("t.tsv", "\t")):
        table.to_csv(tmp_path / name, sep=sep, index=False)
        frame = transcripts_frame(read_transcripts(tmp_path / name, x="x", y="y", gene="gene", cell="cell",
                                                   nucleus="nucleus"))
        assert frame["cell_id"].astype(object).where(frame["cell_id"].notna(), None).tolist() == [
            "007", str(big), None, "007"
        ]
        assert frame["nucleus_id"].astype(object).where(frame["nucleus_id"].notna(), None).tolist() == [
            "0012", None, None, None
        ]


def test_float_ids_too_large_to_be_exact_are_refused():
    table = pd.DataFrame({"x": [0.0, 1.0, 2.0], "y": [0.0, 1.0, 2.0], "gene": list("ABC"),
                          "cell": [float(2**53), np.nan, 3.0]})
    with pytest.raises(ValueError, match=re.escape(
        "1 id(s) of 'cell' are floats of magnitude 2**53 or more (e.g. 9007199254740992.0), which cannot "
        "hold every integer: the ids may have been rounded. Pass them as strings or integers"
    )):
        read_transcripts(table, x="x", y="y", gene="gene", cell="cell")
    # just below the limit a float is exact
    exact = table.assign(cell=[float(2**53 - 1), np.nan, 3.0])
    frame = transcripts_frame(read_transcripts(exact, x="x", y="y", gene="gene", cell="cell"))
    assert frame["cell_id"].cat.categories.tolist() == ["3", str(2**53 - 1)]
    with pytest.raises(ValueError, match=r"^1 id\(s\) of 'cell_id' are floats of magnitude 2\*\*53"):
        read_transcripts(exact, x="x", y="y", gene="gene",
                         cell_boundaries=gpd.GeoSeries([shapely.box(0, 0, 1, 1)],
                                                       index=pd.Index([-2.0**60], name="cell_id")))


@pytest.mark.parametrize("cells", [None, ["UNASSIGNED", "UNASSIGNED", None]])
def test_data_without_cell_assignment_survive_a_zarr_round_trip(cells, tmp_path):
    # Empty categories of object dtype were written as a null column, which read_zarr refused.
    table = pd.DataFrame({"x": [0.0, 1.0, 2.0], "y": [0.0, 1.0, 2.0], "gene": list("ABA")})
    mapping = {} if cells is None else dict(cell="cell", nucleus="nucleus")
    if cells is not None:
        table = table.assign(cell=cells, nucleus=cells)
    sdata = read_transcripts(table, x="x", y="y", gene="gene", **mapping)
    sdata.write(tmp_path / "data.zarr")
    frame = transcripts_frame(sd.read_zarr(tmp_path / "data.zarr"))
    assert frame["cell_id"].isna().all() and len(frame["cell_id"].cat.categories) == 0
    assert frame["gene"].astype(str).tolist() == ["A", "B", "A"]
    if cells is not None:
        assert frame["nucleus_id"].isna().all() and not frame["in_nucleus"].any()


def test_control_flags_and_drop():
    names = ["NegPrb1", "negprb22", "BLANK_0001", "Blank-3", "notarget004", "NegControlProbe_00016",
             "NegControlCodeword_0500", "UnassignedCodeword_0001", "DeprecatedCodeword_1",
             "ACTB", "NEGR1", "BLNK", "CD274"]
    assert control_mask(names).tolist() == [True] * 9 + [False] * 4
    table = pd.DataFrame({"x": np.arange(13.0), "y": np.zeros(13), "gene": names})
    flagged = transcripts_frame(read_transcripts(table, x="x", y="y", gene="gene"))
    assert flagged["is_control"].sum() == 9 and len(flagged) == 13
    dropped = transcripts_frame(read_transcripts(table, x="x", y="y", gene="gene", drop_controls=True))
    assert dropped["gene"].cat.categories.tolist() == ["ACTB", "BLNK", "CD274", "NEGR1"]
    assert dropped.index.tolist() == [9, 10, 11, 12] and not dropped["is_control"].any()
    # a boolean is_control column adds to the name flags
    table["is_control"] = [False] * 12 + [True]
    assert transcripts_frame(read_transcripts(table, x="x", y="y", gene="gene"))["is_control"].sum() == 10


def test_drop_controls_must_be_a_bool(tmp_path):
    # drop_controls="False" is a true string: every reader dropped the controls.
    table = make_table()
    sdata = read_transcripts(table, x="px_x", y="px_y", gene="target")
    readers = {
        "read_transcripts": lambda flag: read_transcripts(table, x="px_x", y="px_y", gene="target", drop_controls=flag),
        "from_spatialdata": lambda flag: from_spatialdata(sdata, drop_controls=flag),
        "read_merscope": lambda flag: read_merscope(tmp_path, drop_controls=flag),
    }
    if XENIUM.exists():
        readers["read_xenium"] = lambda flag: read_xenium(XENIUM, drop_controls=flag)
    if COSMX.exists():
        readers["read_cosmx"] = lambda flag: read_cosmx(COSMX, drop_controls=flag)
    for name, read in readers.items():
        with pytest.raises(TypeError, match=r"^drop_controls must be a bool \(True or False\), got 'False'$"):
            read("False")
    kept = transcripts_frame(readers["read_transcripts"](np.True_))
    assert kept["gene"].astype(str).tolist() == ["ACTB", "NEGR1", "ACTB"]


def test_read_transcripts_boundaries_are_scaled():
    table = make_table()
    cells = gpd.GeoSeries([shapely.box(0, 0, 10, 10)], index=[12])
    sdata = read_transcripts(table, x="px_x", y="px_y", gene="target", cell="cell", pixel_size=0.5,
                             cell_boundaries=cells)
    shape = sdata.shapes["cell_boundaries"]
    assert shape.index.tolist() == ["12"] and shape.geometry.area.tolist() == [25.0]
    assert cells.area.tolist() == [100.0]  # input untouched
    with pytest.raises(ValueError, match="not unique"):
        read_transcripts(table, x="px_x", y="px_y", gene="target",
                         cell_boundaries=gpd.GeoSeries([shapely.box(0, 0, 1, 1)] * 2, index=[1, 1]))
    with pytest.raises(ValueError, match="polygons"):
        read_transcripts(table, x="px_x", y="px_y", gene="target",
                         cell_boundaries=gpd.GeoSeries([shapely.LineString([(0, 0), (1, 1)])], index=[1]))
    with pytest.raises(ValueError, match=r"^2 boundaries have no geometry \(None\), ids \['2', '3'\]$"):
        read_transcripts(table, x="px_x", y="px_y", gene="target",
                         nucleus_boundaries=gpd.GeoSeries([shapely.box(0, 0, 1, 1), None, None], index=[1, 2, 3]))


def test_read_transcripts_boundaries_are_in_the_points_frame_whatever_their_transformation():
    # Outlines parsed with a Scale kept it: in "global" they lay at a tenth of the points.
    cells = ShapesModel.parse(gpd.GeoDataFrame(geometry=[shapely.box(0, 0, 10, 10)], index=[12]),
                              transformations={"global": Scale([0.1, 0.1], axes=("x", "y"))})
    sdata = read_transcripts(make_table(), x="px_x", y="px_y", gene="target", cell="cell", pixel_size=0.5,
                             cell_boundaries=cells)
    for element in (sdata.points["transcripts"], sdata.shapes["cell_boundaries"]):
        assert get_transformation(element, get_all=True) == {"global": Identity()}
    assert sdata.shapes["cell_boundaries"].geometry.area.tolist() == [25.0]
    assert get_transformation(cells, get_all=True) == {"global": Scale([0.1, 0.1], axes=("x", "y"))}


@pytest.mark.filterwarnings("error")  # the error alone, without shapely's RuntimeWarnings
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_boundaries_with_non_finite_vertices_are_refused(bad, tmp_path):
    # A NaN or infinite vertex was stored as is, or failed in GEOS when outlines were merged.
    message = r"^1 boundaries have non-finite vertex coordinates \(NaN or inf\), ids \['b'\]$"
    with np.errstate(invalid="ignore"):
        broken = shapely.Polygon([(0, 0), (1, bad), (1, 1)])
    outlines = gpd.GeoSeries([shapely.box(0, 0, 1, 1), broken], index=["a", "b"])
    for key in ("cell_boundaries", "nucleus_boundaries"):
        with pytest.raises(ValueError, match=message):
            read_transcripts(make_table(), x="px_x", y="px_y", gene="target", **{key: outlines})
    vertices = pd.DataFrame({"id": ["a"] * 3 + ["b"] * 3 + ["c"] * 3, "x": [0, 1, 1, 0, 1, bad, 0, 1, 1],
                             "y": [0.0, 0, 1, 0, 0, 1, 0, 0, 1], "part": [0, 0, 0, 0, 0, 0, 0, 0, 0]})
    for part_column in (None, "part"):
        with pytest.raises(ValueError, match=message):
            polygons_from_vertices(vertices, id_column="id", x="x", y="y", part_column=part_column)
    # Xenium: a nucleus table, two rings of cell "b" merged
    rings = pd.concat([vertices, vertices.iloc[3:6].assign(part=1)]).rename(
        columns={"id": "cell_id", "x": "vertex_x", "y": "vertex_y", "part": "label_id"})
    folder = tmp_path / "xenium"
    folder.mkdir()
    pd.DataFrame({"x_location": [0.5], "y_location": [0.5], "feature_name": ["A"], "cell_id": ["a"]}).to_parquet(
        folder / "transcripts.parquet")
    rings.to_parquet(folder / "nucleus_boundaries.parquet")
    with pytest.raises(ValueError, match=f"^{re.escape(str(folder / 'nucleus_boundaries.parquet'))}: {message[1:]}"):
        read_xenium(folder)
    # MERSCOPE: one outline per z-plane, merged
    write_merscope(tmp_path)
    table = pq.read_table(tmp_path / "cell_boundaries.parquet")
    geometry = table.column("Geometry").to_pylist()
    with np.errstate(invalid="ignore"):
        geometry[3] = shapely.to_wkb(MultiPolygon([shapely.Polygon([(29, 4), (31, bad), (31, 7)])]))
    table = table.set_column(table.column_names.index("Geometry"), "Geometry", pa.array(geometry, pa.binary()))
    pq.write_table(table, tmp_path / "cell_boundaries.parquet")
    path = re.escape(str(tmp_path / "cell_boundaries.parquet"))
    with pytest.raises(ValueError, match=rf"^{path}: 1 boundaries have non-finite .*ids \['{ENTITY + 1}'\]$"):
        read_merscope(tmp_path)


@pytest.mark.parametrize(
    ("change", "kwargs", "error", "match"),
    [
        (None, dict(x="nope"), ValueError, "nope"),
        (lambda t: t.assign(px_x=[1.0, np.inf, 2.0, 3.0, 4.0]), {}, ValueError, "non-finite"),
        (lambda t: t.assign(px_y=[1.0, np.nan, 2.0, 3.0, 4.0]), {}, ValueError, "non-finite"),
        (lambda t: t.assign(px_x=list("abcde")), {}, TypeError, "numeric"),
        (lambda t: t.assign(target=["A", None, "B", "C", "D"]), {}, ValueError, "missing"),
        (lambda t: t.assign(inside=[0, 1, 2, 0, 1]), dict(in_nucleus="inside"), ValueError, "0/1"),
        (lambda t: t.assign(x=1.0), {}, ValueError, "schema names"),
        (lambda t: t.iloc[:0], {}, ValueError, "no rows"),
        (lambda t: t.assign(target="NegPrb1"), dict(drop_controls=True), ValueError, "control"),
        (None, dict(pixel_size=0), ValueError, "pixel_size"),
        (None, dict(pixel_size=float("nan")), ValueError, "pixel_size"),
        (None, dict(z_step=-1.0), ValueError, "z_step"),
        (None, dict(pixel_size=True), TypeError, "pixel_size"),
        (None, dict(y="px_x"), ValueError, r"\['px_x'\] given for more than one of x, y, z"),
        (None, dict(z="px_y"), ValueError, r"\['px_y'\] given for more than one of x, y, z"),
        # "got DataFrame": a dask frame's class has the name of pandas'
        (lambda t: dd.from_pandas(t, npartitions=2), {}, TypeError,
         r"^table must be a pandas DataFrame or a file path, got a dask DataFrame: compute it first "
         r"\(table.compute\(\)\), or pass its SpatialData to stgraph.io.from_spatialdata$"),
        (lambda t: t["px_x"], {}, TypeError, r"^table must be a pandas DataFrame or a file path, got Series$"),
    ],
)
def test_read_transcripts_errors(change, kwargs, error, match):
    table = make_table() if change is None else change(make_table())
    arguments = dict(x="px_x", y="px_y", gene="target") | kwargs
    with pytest.raises(error, match=match):
        read_transcripts(table, **arguments)


def test_unassigned_ids_are_whole_values_and_a_single_string_is_refused():
    table = pd.DataFrame({"x": [0.0, 1.0, 2.0, 3.0], "y": [0.0, 1.0, 2.0, 3.0], "gene": ["A", "B", "A", "B"],
                          "cell": ["c1", "UNASSIGNED", "c1", "N"]})
    frame = transcripts_frame(read_transcripts(table, x="x", y="y", gene="gene", cell="cell", unassigned=["UNASSIGNED"]))
    assert frame["cell_id"].isna().tolist() == [False, True, False, False]
    assert frame["cell_id"].dropna().tolist() == ["c1", "c1", "N"]
    # The string would be taken letter by letter: "UNASSIGNED" kept as a cell, cell "N" dropped.
    with pytest.raises(TypeError, match=r"unassigned must be a collection of id values, e\.g\. \['UNASSIGNED'\], not a string"):
        read_transcripts(table, x="x", y="y", gene="gene", cell="cell", unassigned="UNASSIGNED")
    points = PointsModel.parse(table.rename(columns={"cell": "cell_id"}))
    with pytest.raises(TypeError, match="unassigned must be a collection"):
        from_spatialdata(sd.SpatialData(points={"transcripts": points}), unassigned="UNASSIGNED")


@pytest.mark.parametrize(("unassigned", "example"), [(None, "[] for none"), (0, "[0]"), (-1.0, "[-1.0]"),
                                                     (np.int64(0), "[np.int64(0)]")])
def test_unassigned_that_is_no_collection_is_refused(unassigned, example):
    # None or a number failed with "object is not iterable".
    table = pd.DataFrame({"x": [0.0, 1.0], "y": [0.0, 1.0], "gene": ["A", "B"], "cell": ["c1", "c2"]})
    message = "^" + re.escape(f"unassigned must be a collection of id values, e.g. {example}, got {unassigned!r}") + "$"
    with pytest.raises(TypeError, match=message):
        read_transcripts(table, x="x", y="y", gene="gene", cell="cell", unassigned=unassigned)
    points = PointsModel.parse(table.rename(columns={"cell": "cell_id"}))
    with pytest.raises(TypeError, match=message):
        from_spatialdata(sd.SpatialData(points={"transcripts": points}), unassigned=unassigned)


@pytest.mark.parametrize("unassigned", [[0], [0.0], ["0"], (np.int64(0),)])
def test_numeric_unassigned_ids_match_as_the_ids_do(unassigned):
    """Integer cell ids (CosMx's cell_ID 0 = no cell) are unassigned whether 0 is given
    as a number or a string; a number once never matched, and cell "0" was kept."""
    table = pd.DataFrame({"x": [0.0, 1.0, 2.0, 3.0], "y": [0.0, 1.0, 2.0, 3.0], "gene": list("ABAC"),
                          "cell": [0, 5, 5, 7]})
    frame = transcripts_frame(read_transcripts(table, x="x", y="y", gene="gene", cell="cell", unassigned=unassigned))
    assert frame["cell_id"].astype(object).where(frame["cell_id"].notna(), None).tolist() == [None, "5", "5", "7"]
    floats = table.assign(cell=table["cell"].astype(float))  # ids read as floats from a CSV
    frame = transcripts_frame(read_transcripts(floats, x="x", y="y", gene="gene", cell="cell", unassigned=unassigned))
    assert frame["cell_id"].cat.categories.tolist() == ["5", "7"] and frame["cell_id"].isna().sum() == 1


def test_column_arguments_must_be_column_names():
    # A file read without a header has integer column labels.
    table = pd.DataFrame([[0.0, 1.0, "A", "c1"], [2.0, 3.0, "B", "c1"]])
    for kwargs, name in ((dict(x=0, y=1, gene=2), "x"), (dict(x="0", y="1", gene="2", cell=3), "cell")):
        with pytest.raises(TypeError, match=rf"^{name} must be a column name \(a string\), got \d; name the columns"):
            read_transcripts(table, **kwargs)
    with pytest.raises(TypeError, match=r"^gene must be a column name \(a string\), got None$"):
        read_transcripts(table.set_axis(list("abcd"), axis=1), x="a", y="b", gene=None)
    table.columns = table.columns.astype(str)
    frame = transcripts_frame(read_transcripts(table, x="0", y="1", gene="2", cell="3"))
    assert frame["x"].tolist() == [0.0, 2.0] and frame["gene"].tolist() == ["A", "B"]
    assert frame["cell_id"].tolist() == ["c1", "c1"]
    # An unmapped column is kept, so its label must be a string too (dask refused it deep inside).
    extra = table.assign(**{"4": [7, 8]}).rename(columns={"4": 4})
    with pytest.raises(TypeError, match=r"^column labels must be strings, got \[4\]; name the columns"):
        read_transcripts(extra, x="0", y="1", gene="2")
    nested = table.set_axis(pd.MultiIndex.from_arrays([[0, 0], [0, 1]], names=["fov", "row"]))
    with pytest.raises(TypeError, match=r"MultiIndex \['fov', 'row'\]; flatten it first"):
        read_transcripts(nested, x="0", y="1", gene="2")
    assert list(read_transcripts(nested.reset_index(), x="0", y="1", gene="2").points["transcripts"].columns)[-3:] == ["fov", "row", "3"]


def test_read_transcripts_warns_about_outlines_of_no_cell():
    table = make_table()
    kwargs = dict(x="px_x", y="px_y", gene="target", cell="cell")
    outlines = gpd.GeoSeries([shapely.box(0, 0, 1, 1)] * 4, index=[12, 99, 3, 98])
    with pytest.warns(UserWarning, match=r"2 of 4 cell_boundaries match no cell id .*\['99', '98'\].*'cell' column") as caught:
        sdata = read_transcripts(table, cell_boundaries=outlines, **kwargs)
    assert [w.filename for w in caught] == [__file__]
    assert sdata.shapes["cell_boundaries"].index.tolist() == ["12", "99", "3", "98"]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        read_transcripts(table, cell_boundaries=outlines.iloc[[0, 2]], **kwargs)


def test_read_transcripts_flags_planar_duplicates():
    rows = [
        (0.00, 0.00, "A"),  # 0: kept, the first of its group
        (0.05, 0.00, "A"),  # 1: 0.05 µm after row 0: a duplicate
        (0.00, 0.05, "B"),  # 2: another gene at the same place: kept
        (0.14, 0.00, "A"),  # 3: 0.09 µm from row 1 (not from row 0): a duplicate of the chain
        (0.30, 0.00, "A"),  # 4: 0.16 µm from row 3: a molecule of its own
        (5.00, 5.00, "B"),  # 5: kept
        (5.00, 5.10, "B"),  # 6: exactly 0.1 µm: a duplicate (the distance is inclusive)
    ]
    table = pd.DataFrame(rows, columns=["px", "py", "g"])
    before = table.copy()
    frame = transcripts_frame(read_transcripts(table, x="px", y="py", gene="g", duplicate_distance=0.1))
    assert frame["duplicate"].tolist() == [False, True, False, True, False, False, True]
    pd.testing.assert_frame_equal(table, before)
    # The distance is in µm: in pixels of 3 µm no two molecules are within 0.1 µm.
    scaled = transcripts_frame(read_transcripts(table, x="px", y="py", gene="g", pixel_size=3, duplicate_distance=0.1))
    assert np.flatnonzero(scaled["duplicate"]).tolist() == []
    kept = transcripts_frame(read_transcripts(table, x="px", y="py", gene="g", duplicate_distance=0.1, drop_duplicates=True))
    assert kept.index.tolist() == [0, 2, 4, 5]
    assert "duplicate" not in transcripts_frame(read_transcripts(table, x="px", y="py", gene="g"))
    for kwargs, error, message in [
        ({"drop_duplicates": True}, ValueError, r"^drop_duplicates=True needs a duplicate_distance > 0"),
        ({"duplicate_distance": -0.1}, ValueError, "duplicate_distance must be a non-negative finite number"),
        ({"duplicate_distance": "0.1"}, TypeError, "duplicate_distance"),
        ({"duplicate_distance": 0.1, "drop_duplicates": 1}, TypeError, "drop_duplicates"),
    ]:
        with pytest.raises(error, match=message):
            read_transcripts(table, x="px", y="py", gene="g", **kwargs)
    with pytest.raises(ValueError, match=r"^the table has a 'duplicate' column already"):
        read_transcripts(table.assign(duplicate=False), x="px", y="py", gene="g", duplicate_distance=0.1)


def test_read_transcripts_bad_sources(tmp_path):
    with pytest.raises(TypeError, match="DataFrame"):
        read_transcripts([1, 2], x="x", y="y", gene="g")
    with pytest.raises(FileNotFoundError):
        read_transcripts(tmp_path / "absent.csv", x="x", y="y", gene="g")
    (tmp_path / "t.xlsx").write_text("")
    with pytest.raises(ValueError, match="format"):
        read_transcripts(tmp_path / "t.xlsx", x="x", y="y", gene="g")


# --------------------------------------------------------------------------- SpatialData passthrough
@pytest.fixture(scope="module")
def bento() -> sd.SpatialData:
    return sd.read_zarr(MERFISH)


@pytest.fixture(scope="module")
def bento_raw() -> pd.DataFrame:
    return pq.read_table(MERFISH / "points" / "transcripts" / "points.parquet").to_pandas()


@needs["merfish"]
def test_from_spatialdata_bento(bento, bento_raw):
    before_points = bento.points["transcripts"].compute()
    before_attrs = dict(bento.points["transcripts"].attrs["spatialdata_attrs"])
    before_cells = bento.shapes["cell_boundaries"].copy()
    result = from_spatialdata(bento, pixel_size=0.1)
    # the input is untouched
    pd.testing.assert_frame_equal(bento.points["transcripts"].compute(), before_points)
    assert bento.points["transcripts"].attrs["spatialdata_attrs"] == before_attrs
    assert bento.shapes["cell_boundaries"].geom_equals(before_cells).all()
    assert result.points["transcripts"] is not bento.points["transcripts"]

    frame = transcripts_frame(result)
    assert_schema(frame)
    assert len(frame) == len(bento_raw) == 174_827
    np.testing.assert_array_equal(frame.index, bento_raw.index)
    np.testing.assert_array_equal(frame["x"], bento_raw["x"].to_numpy() * 0.1)
    np.testing.assert_array_equal(frame["y"], bento_raw["y"].to_numpy() * 0.1)
    np.testing.assert_array_equal(frame["gene"].astype(str), bento_raw["feature_name"].astype(str))
    assert len(frame["gene"].cat.categories) == 135
    np.testing.assert_array_equal(frame["cell_id"].astype(str), bento_raw["cell_boundaries"].astype(str))
    assert frame["cell_id"].notna().all() and frame["cell_id"].nunique() == 15
    outside = (bento_raw["nucleus_boundaries"] == "").to_numpy()
    assert outside.sum() == 129_639
    np.testing.assert_array_equal(frame["nucleus_id"].isna(), outside)
    np.testing.assert_array_equal(frame["in_nucleus"], ~outside)
    np.testing.assert_array_equal(
        frame["nucleus_id"].astype(str)[~outside], bento_raw["nucleus_boundaries"].astype(str)[~outside]
    )
    blanks = bento_raw["feature_name"].astype(str).str.startswith("notarget").to_numpy()
    np.testing.assert_array_equal(frame["is_control"], blanks)
    assert frame.loc[frame["is_control"], "gene"].nunique() == 5
    np.testing.assert_array_equal(frame["index"], bento_raw["index"])
    for key, count in (("cell_boundaries", 15), ("nucleus_boundaries", 13)):
        ours, theirs = result.shapes[key], bento.shapes[key]
        assert len(ours) == count and ours.index.tolist() == theirs.index.tolist()
        np.testing.assert_allclose(ours.geometry.area, theirs.geometry.area * 0.01, rtol=1e-12)
    # µm: U2-OS cells are tens of µm across, not hundreds
    assert 10 < np.sqrt(result.shapes["cell_boundaries"].geometry.area.median()) < 100


@needs["merfish"]
def test_from_spatialdata_is_idempotent_on_schema_data(bento):
    once = from_spatialdata(bento, pixel_size=0.1)
    twice = from_spatialdata(once)
    pd.testing.assert_frame_equal(transcripts_frame(twice), transcripts_frame(once))


def test_from_spatialdata_errors():
    points = PointsModel.parse(pd.DataFrame({"x": [1.0, 2.0], "y": [3.0, 4.0], "name": ["a", "b"]}))
    sdata = sd.SpatialData(points={"molecules": points})
    with pytest.raises(TypeError, match="SpatialData"):
        from_spatialdata(points)
    with pytest.raises(KeyError, match="molecules"):
        from_spatialdata(sdata)
    with pytest.raises(ValueError, match="gene"):
        from_spatialdata(sdata, points_key="molecules")
    frame = transcripts_frame(from_spatialdata(sdata, points_key="molecules", gene="name"))
    assert frame["gene"].astype(str).tolist() == ["a", "b"] and frame["cell_id"].isna().all()


def test_from_spatialdata_copies_tables_and_scales_shapes():
    points = PointsModel.parse(pd.DataFrame({"x": [1.0, 2.0], "y": [1.0, 2.0], "gene": ["a", "b"],
                                             "cell_id": ["c1", "c2"]}), feature_key="gene", instance_key="cell_id")
    shapes = ShapesModel.parse(gpd.GeoDataFrame(geometry=[shapely.box(0, 0, 1, 1), shapely.box(1, 1, 3, 3)],
                                                index=["c1", "c2"]))
    obs = pd.DataFrame({"region": pd.Categorical(["cell_boundaries"] * 2), "cid": ["c1", "c2"]}, index=["0", "1"])
    table = TableModel.parse(ad.AnnData(np.ones((2, 3)), obs=obs), region="cell_boundaries",
                             region_key="region", instance_key="cid")
    sdata = sd.SpatialData(points={"transcripts": points}, shapes={"cell_boundaries": shapes}, tables={"table": table})
    result = from_spatialdata(sdata, pixel_size=2.0)
    assert result.tables["table"] is not sdata.tables["table"]
    np.testing.assert_array_equal(result.tables["table"].X, np.ones((2, 3)))
    assert result.shapes["cell_boundaries"].geometry.area.tolist() == [4.0, 16.0]
    assert sdata.shapes["cell_boundaries"].geometry.area.tolist() == [1.0, 4.0]
    assert transcripts_frame(result)["x"].tolist() == [2.0, 4.0]


def test_from_spatialdata_tables_follow_the_renamed_shapes():
    points = PointsModel.parse(pd.DataFrame({"x": [1.0, 2.0], "y": [1.0, 2.0], "gene": ["a", "b"],
                                             "cell_id": ["c1", "c2"]}), feature_key="gene", instance_key="cell_id")
    shapes = ShapesModel.parse(gpd.GeoDataFrame(geometry=[shapely.box(0, 0, 1, 1), shapely.box(1, 1, 3, 3)],
                                                index=["c1", "c2"]))
    obs = pd.DataFrame({"region": pd.Categorical(["cells"] * 2), "cid": ["c1", "c2"]}, index=["0", "1"])
    table = TableModel.parse(ad.AnnData(np.ones((2, 3)), obs=obs), region="cells", region_key="region",
                             instance_key="cid")
    sdata = sd.SpatialData(points={"molecules": points}, shapes={"cells": shapes}, tables={"table": table})
    result = from_spatialdata(sdata, points_key="molecules", cell_shapes_key="cells")
    annotation = result.tables["table"].uns["spatialdata_attrs"]
    assert list(result.shapes) == ["cell_boundaries"]
    assert annotation["region"] == "cell_boundaries"
    assert result.tables["table"].obs["region"].tolist() == ["cell_boundaries"] * 2
    assert result.get_annotated_regions(result.tables["table"]) == ["cell_boundaries"]
    # the user's table is untouched
    assert table.uns["spatialdata_attrs"]["region"] == "cells" and table.obs["region"].tolist() == ["cells"] * 2


def test_from_spatialdata_tables_keep_matching_the_cell_ids():
    # Integer cell ids become strings in the points and outlines: the table's instance ids
    # stayed integers, so that it annotated no outline.
    points = PointsModel.parse(pd.DataFrame({"x": [1.0, 2.0], "y": [1.0, 2.0], "gene": ["a", "b"],
                                             "cell_id": [7, 8]}), feature_key="gene", instance_key="cell_id")
    shapes = ShapesModel.parse(gpd.GeoDataFrame(geometry=[shapely.box(0, 0, 1, 1), shapely.box(1, 1, 3, 3)],
                                                index=[7, 8]))
    for instances in ([7, 8], pd.Categorical([7, 8])):
        obs = pd.DataFrame({"region": pd.Categorical(["cells"] * 2), "cid": instances}, index=["0", "1"])
        table = TableModel.parse(ad.AnnData(np.ones((2, 3)), obs=obs), region="cells", region_key="region",
                                 instance_key="cid")
        sdata = sd.SpatialData(points={"transcripts": points}, shapes={"cells": shapes}, tables={"table": table})
        result = from_spatialdata(sdata, cell_shapes_key="cells")
        cid = result.tables["table"].obs["cid"]
        assert cid.tolist() == ["7", "8"] == result.shapes["cell_boundaries"].index.tolist()
        assert isinstance(cid.dtype, pd.CategoricalDtype) == isinstance(instances, pd.Categorical)
        assert transcripts_frame(result)["cell_id"].tolist() == ["7", "8"]
        _, joined = sd.join_spatialelement_table(result, spatial_element_names="cell_boundaries",
                                                 table_name="table", how="inner")
        assert joined.obs["cid"].tolist() == ["7", "8"]
        assert table.obs["cid"].tolist() == [7, 8]  # the user's table is untouched


def test_from_spatialdata_refuses_a_missing_shapes_key_and_names_what_it_leaves_out():
    points = PointsModel.parse(pd.DataFrame({"x": [1.0, 2.0], "y": [1.0, 2.0], "gene": ["a", "b"],
                                             "cell_id": ["c1", "c2"]}), feature_key="gene", instance_key="cell_id")
    box = ShapesModel.parse(gpd.GeoDataFrame(geometry=[shapely.box(0, 0, 1, 1)], index=["c1"]))
    sdata = sd.SpatialData(points={"transcripts": points, "controls": points}, shapes={"cells": box, "roi": box})
    # A misspelt key gave a result without outlines.
    for argument in ("cell_shapes_key", "nucleus_shapes_key"):
        with pytest.raises(ValueError, match=re.escape(
            f"sdata has no shapes element {argument}='cels'; it has ['cells', 'roi'] (pass {argument}=None for none)"
        )):
            from_spatialdata(sdata, **{argument: "cels"})
    # Other elements were dropped without a word; rescaled, they are left out with one.
    with pytest.warns(UserWarning, match=re.escape(
        "from_spatialdata does not carry over points ['controls']; shapes ['roi']: their coordinates are not "
        "rescaled to the µm of the result"
    )):
        result = from_spatialdata(sdata, cell_shapes_key="cells", pixel_size=0.5)
    assert list(result.points) == ["transcripts"] and list(result.shapes) == ["cell_boundaries"]
    with pytest.warns(UserWarning, match=re.escape("carry over points ['controls']; shapes ['cells', 'roi']:")):
        result = from_spatialdata(sdata, cell_shapes_key=None, pixel_size=0.5)
    assert list(result.shapes) == []
    # Nothing rescaled (a saved stgraph result, say): they are carried over as they are.
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        result = from_spatialdata(sdata, cell_shapes_key="cells")
        from_spatialdata(sd.SpatialData(points={"transcripts": points}, shapes={"cells": box}), cell_shapes_key="cells")
    assert sorted(result.points) == ["controls", "transcripts"] and sorted(result.shapes) == ["cell_boundaries", "roi"]
    pd.testing.assert_frame_equal(result.points["controls"].compute(), points.compute())
    assert result.shapes["roi"] is not sdata.shapes["roi"] and result.shapes["roi"].equals(sdata.shapes["roi"])
    # Transformed points come out in their coordinate system, where the others still align.
    moved = sd.SpatialData(points={"transcripts": PointsModel.parse(points.compute(), feature_key="gene",
                                                                    instance_key="cell_id",
                                                                    transformations={"global": Scale([2.0, 2.0], axes=("x", "y"))})},
                           shapes={"roi": box})
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert list(from_spatialdata(moved).shapes) == ["roi"]


def test_from_spatialdata_gives_the_points_and_outlines_in_their_coordinate_system(tmp_path):
    # Points in pixels with a Scale to µm came out in pixels, untransformed, next to
    # outlines that kept their Scale: every radius in µm was one in pixels.
    pixels = Scale([0.5, 0.5], axes=("x", "y"))
    frame = pd.DataFrame({"x": np.arange(12), "y": np.arange(12) * 10, "z": np.arange(12) / 4,
                          "gene": pd.Categorical(list("ab") * 6), "cell_id": ["c1"] * 6 + ["c2"] * 6})
    points = PointsModel.parse(dd.from_pandas(frame, npartitions=3), feature_key="gene", instance_key="cell_id",
                               transformations={"global": pixels})
    cells = ShapesModel.parse(gpd.GeoDataFrame(geometry=[shapely.box(0, 0, 6, 60), shapely.box(6, 60, 12, 120)],
                                               index=["c1", "c2"]), transformations={"global": pixels})
    nuclei = ShapesModel.parse(gpd.GeoDataFrame(geometry=[shapely.box(0, 0, 1, 1)], index=["c1"]))  # already µm
    sdata = sd.SpatialData(points={"molecules": points}, shapes={"cells": cells, "nuclei": nuclei})
    # read from a store, as users do: spatialdata.transform mixes the rows of such points
    sdata.write(tmp_path / "pixels.zarr")
    stored = sd.read_zarr(tmp_path / "pixels.zarr")
    assert stored.points["molecules"].npartitions == 3
    for source in (sdata, stored):
        result = from_spatialdata(source, points_key="molecules", cell_shapes_key="cells",
                                  nucleus_shapes_key="nuclei")
        molecules = transcripts_frame(result)
        assert molecules.index.tolist() == list(range(12))
        np.testing.assert_array_equal(molecules["x"], np.arange(12) * 0.5)
        np.testing.assert_array_equal(molecules["y"], np.arange(12) * 5.0)
        np.testing.assert_array_equal(molecules["z"], np.arange(12) / 4)
        assert molecules["gene"].astype(str).tolist() == list("ab") * 6
        assert result.shapes["cell_boundaries"].geometry.bounds.to_numpy().tolist() == [[0, 0, 3, 30],
                                                                                       [3, 30, 6, 60]]
        assert result.shapes["nucleus_boundaries"].geometry.area.tolist() == [1.0]
        for element in (result.points["transcripts"], *result.shapes.values()):
            assert get_transformation(element, get_all=True) == {"global": Identity()}
    # a system of another name is kept
    microns = PointsModel.parse(frame, feature_key="gene", transformations={"microns": pixels})
    moved = from_spatialdata(sd.SpatialData(points={"transcripts": microns}))
    assert get_transformation(moved.points["transcripts"], get_all=True) == {"microns": Identity()}
    assert transcripts_frame(moved)["x"].tolist()[:2] == [0.0, 0.5]
    # pixel_size multiplies the coordinates of the coordinate system
    with pytest.warns(UserWarning, match=re.escape("carry over shapes ['cells', 'nuclei']")):
        scaled = from_spatialdata(sdata, points_key="molecules", cell_shapes_key=None, nucleus_shapes_key=None,
                                  pixel_size=2.0)
    assert transcripts_frame(scaled)["x"].tolist()[:2] == [0.0, 1.0]
    # the user's elements are untouched
    pd.testing.assert_frame_equal(sdata.points["molecules"].compute(), points.compute())
    assert get_transformation(sdata.points["molecules"], get_all=True) == {"global": pixels}
    assert sdata.shapes["cells"].geometry.bounds.to_numpy().tolist() == [[0, 0, 6, 60], [6, 60, 12, 120]]
    assert get_transformation(sdata.shapes["cells"], get_all=True) == {"global": pixels}
    # outlines that cannot be brought there, and points in several systems none of them "global"
    elsewhere = ShapesModel.parse(gpd.GeoDataFrame(geometry=[shapely.box(0, 0, 1, 1)], index=["c1"]),
                                  transformations={"slide": Identity()})
    with pytest.raises(ValueError, match=re.escape(
        "shapes 'cells' have no transformation to 'global', the coordinate system of the points 'molecules'"
    )):
        from_spatialdata(sd.SpatialData(points={"molecules": points}, shapes={"cells": elsewhere}),
                         points_key="molecules", cell_shapes_key="cells")
    two = PointsModel.parse(frame, feature_key="gene", transformations={"fov1": Identity(), "fov2": pixels})
    with pytest.raises(ValueError, match=re.escape(
        "points 'molecules' have the coordinate systems ['fov1', 'fov2'] and none is 'global'"
    )):
        from_spatialdata(sd.SpatialData(points={"molecules": two}), points_key="molecules")


def test_from_spatialdata_reads_circle_outlines_as_discs():
    # Circles (spatialdata-io's Xenium cells), which the tools read as discs, were
    # refused here with "boundaries must be polygons, got ['Point']".
    points = PointsModel.parse(pd.DataFrame({"x": [1.0, 9.0], "y": [1.0, 9.0], "gene": ["a", "b"],
                                             "cell_id": ["c1", "c2"]}), feature_key="gene", instance_key="cell_id")
    circles = ShapesModel.parse(gpd.GeoDataFrame({"radius": [2.0, 3.0]}, geometry=shapely.points([[1, 1], [9, 9]]),
                                                 index=["c1", "c2"]))
    sdata = sd.SpatialData(points={"transcripts": points}, shapes={"cell_circles": circles})
    result = from_spatialdata(sdata, cell_shapes_key="cell_circles", pixel_size=0.5)
    discs = result.shapes["cell_boundaries"]
    assert discs.index.tolist() == ["c1", "c2"] and set(discs.geom_type) == {"Polygon"}
    np.testing.assert_allclose(discs.geometry.area, np.pi * np.array([1.0, 1.5]) ** 2, rtol=2e-3)
    np.testing.assert_allclose(discs.geometry.centroid.x, [0.5, 4.5])
    assert circles.geom_type.tolist() == ["Point", "Point"]  # the user's circles are untouched


# --------------------------------------------------------------------------- transcripts_frame
def test_transcripts_frame_is_a_validated_copy():
    sdata = read_transcripts(make_table(), x="px_x", y="px_y", gene="target", cell="cell")
    frame = transcripts_frame(sdata)
    frame.loc[:, "x"] = -1.0
    assert (transcripts_frame(sdata)["x"] > 0).all()
    with pytest.raises(TypeError, match="SpatialData"):
        transcripts_frame(frame)
    with pytest.raises(KeyError, match="transcripts"):
        transcripts_frame(sdata, points_key="spots")
    raw = sd.SpatialData(points={"transcripts": PointsModel.parse(
        pd.DataFrame({"x": [1.0], "y": [2.0], "feature_name": ["a"]}), feature_key="feature_name")})
    with pytest.raises(ValueError, match=r"\['gene', 'cell_id', 'is_control'\].*from_spatialdata"):
        transcripts_frame(raw)
    wrong = sd.SpatialData(points={"transcripts": PointsModel.parse(pd.DataFrame(
        {"x": [1.0], "y": [2.0], "gene": ["a"], "cell_id": ["c"], "is_control": [False]}))})
    with pytest.raises(ValueError, match="'gene' must be categorical"):
        transcripts_frame(wrong)


# --------------------------------------------------------------------------- io.read
@needs["xenium"]
@needs["cosmx"]
@needs["merfish"]
def test_read_recognises_each_platform_by_its_files_and_calls_its_reader(tmp_path):
    write_merscope(tmp_path)
    cases = [
        (XENIUM, "xenium", read_xenium(XENIUM, min_qv=20), {"min_qv": 20}),
        (COSMX, "cosmx", read_cosmx(COSMX, pixel_size=0.2), {"pixel_size": 0.2}),
        (tmp_path, "merscope", read_merscope(tmp_path, drop_controls=True), {"drop_controls": True}),
        (MERFISH, "zarr", from_spatialdata(sd.read_zarr(MERFISH), pixel_size=0.1), {"pixel_size": 0.1}),
    ]
    for path, name, expected, options in cases:
        assert detect_format(path) == name
        for format in ("auto", name):
            got = read(path, format=format, **options)
            pd.testing.assert_frame_equal(transcripts_frame(got), transcripts_frame(expected))
            assert sorted(got.shapes) == sorted(expected.shapes)
    # A gzipped CosMx transcript file is recognised too.
    gz = tmp_path / "gz"
    gz.mkdir()
    with open(COSMX / "Lung12_tx_file.csv", "rb") as source, gzip.open(gz / "Lung12_tx_file.csv.gz", "wb") as target:
        target.write(source.read())
    assert detect_format(gz) == "cosmx"


def test_read_refuses_what_it_cannot_read(tmp_path):
    (tmp_path / "notes.txt").write_text("not a dataset")
    for call, error, message in [
        (lambda: read(tmp_path), ValueError, rf"^cannot tell the format of '{tmp_path}': it holds none of "
                                             r"transcripts.parquet \(xenium\), transcripts.csv.gz \(xenium\), "
                                             r"detected_transcripts.csv \(merscope\)"),
        (lambda: read(tmp_path / "notes.txt"), ValueError, "is not a folder: give a Xenium output folder"),
        (lambda: read(tmp_path, format="visium"), ValueError,
         r"^format must be 'auto' or one of \('xenium', 'merscope', 'cosmx', 'zarr'\), got 'visium'$"),
    ]:
        with pytest.raises(error, match=message):
            call()
    write_merscope(tmp_path)
    with pytest.raises(ValueError, match=r"^the merscope reader takes no option \['pixel_size'\]; it takes "
                                         r"\['z_step', 'drop_controls'\]$"):
        read(tmp_path, pixel_size=0.1)


# --------------------------------------------------------------------------- an index with repeats
def _partitioned_points(sizes=(7, 5, 9), seed=0):
    """Molecules as a dask frame of partitions each indexed from 0, as spatialdata-io's
    MERSCOPE reader makes them; cell ``c{k}`` (a 10 µm box at x = 20 k) is partition
    k, and ``molecule`` numbers the rows in file order."""
    rng = np.random.default_rng(seed)
    pieces, start = [], 0
    for k, size in enumerate(sizes):
        xy = rng.uniform(0.5, 9.5, size=(size, 2)) + [20.0 * k, 0.0]
        piece = pd.DataFrame({"x": xy[:, 0], "y": xy[:, 1], "z": rng.uniform(0, 3, size),
                              "gene": pd.Categorical(rng.choice(["A", "B", "C"], size), categories=["A", "B", "C"]),
                              "cell_id": pd.Categorical([f"c{k}"] * size, categories=[f"c{j}" for j in range(len(sizes))]),
                              "molecule": np.arange(start, start + size)})
        pieces.append(dd.from_pandas(piece, npartitions=1))
        start += size
    return dd.concat(pieces)


def test_points_whose_index_repeats_keep_their_row_order():
    # Sorted by the repeated index, the partitions' rows were interleaved (0, 7, 12, 1, 8, ...).
    points = _partitioned_points()
    expected = points.compute()
    assert expected.index.tolist()[:8] == [0, 1, 2, 3, 4, 5, 6, 0]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # PointsModel on an index that is not increasing
        element = PointsModel.parse(points, feature_key="gene", instance_key="cell_id")
    frame = transcripts_frame(from_spatialdata(sd.SpatialData(points={"transcripts": element})))
    assert frame.index.tolist() == list(range(21))
    assert frame["molecule"].tolist() == list(range(21))
    for column in ("x", "y", "z"):
        np.testing.assert_array_equal(frame[column].to_numpy(), expected[column].to_numpy())
    assert frame["gene"].astype(str).tolist() == expected["gene"].astype(str).tolist()
    assert frame["cell_id"].astype(str).tolist() == expected["cell_id"].astype(str).tolist()


def test_a_table_whose_index_repeats_keeps_its_rows_and_a_named_index():
    first = pd.DataFrame({"px": [0.0, 1.0], "py": [5.0, 6.0], "g": ["A", "B"]})
    second = pd.DataFrame({"px": [2.0, 3.0, 4.0], "py": [7.0, 8.0, 9.0], "g": ["C", "A", "B"]})
    joined = pd.concat([first, second])  # index 0, 1, 0, 1, 2
    frame = transcripts_frame(read_transcripts(joined, x="px", y="py", gene="g"))
    assert frame.index.tolist() == [0, 1, 2, 3, 4] and frame["x"].tolist() == [0.0, 1.0, 2.0, 3.0, 4.0]
    assert frame["gene"].astype(str).tolist() == ["A", "B", "C", "A", "B"] and "fov_row" not in frame
    named = joined.rename_axis("fov_row")
    frame = transcripts_frame(read_transcripts(named, x="px", y="py", gene="g"))
    assert frame["x"].tolist() == [0.0, 1.0, 2.0, 3.0, 4.0] and frame["fov_row"].tolist() == [0, 1, 0, 1, 2]
    with pytest.raises(ValueError, match=r"^the index 'px' has repeated values, so the points are numbered afresh "
                                         r"and it would become a column, but a column 'px' exists"):
        read_transcripts(named.rename_axis("px").rename(columns={"px": "xx"}).assign(px=1), x="xx", y="py", gene="g")
    with pytest.raises(TypeError, match=r"^the index has repeated values and is named 0: name it with a string to "
                                        r"keep it as a column, or drop it \(frame\.reset_index\(drop=True\)\)$"):
        read_transcripts(joined.rename_axis(0), x="px", y="py", gene="g")
    # A unique index that is not increasing still orders the rows.
    shuffled = joined.set_axis([4, 0, 3, 1, 2])
    assert transcripts_frame(read_transcripts(shuffled, x="px", y="py", gene="g"))["x"].tolist() == [1.0, 3.0, 4.0, 2.0, 0.0]


def test_localization_writes_onto_the_molecules_of_points_whose_index_repeats():
    from stgraph.tl import localization

    points = _partitioned_points(sizes=(40, 30, 50), seed=1)
    cells = ShapesModel.parse(gpd.GeoDataFrame(geometry=[shapely.box(20.0 * k, 0, 20.0 * k + 10, 10) for k in range(3)],
                                               index=["c0", "c1", "c2"]))
    nuclei = ShapesModel.parse(gpd.GeoDataFrame(geometry=[shapely.box(20.0 * k + 3, 3, 20.0 * k + 7, 7) for k in range(3)],
                                                index=["c0", "c1", "c2"]))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        element = PointsModel.parse(points, feature_key="gene", instance_key="cell_id")
    sdata = from_spatialdata(sd.SpatialData(points={"transcripts": element},
                                            shapes={"cell_boundaries": cells, "nucleus_boundaries": nuclei}))
    reference = read_transcripts(points.compute().reset_index(drop=True), x="x", y="y", z="z", gene="gene",
                                 cell="cell_id", cell_boundaries=cells.geometry, nucleus_boundaries=nuclei.geometry)
    for data in (sdata, reference):
        localization(data, n_boot=5, seed=0)
    got, wanted = (transcripts_frame(data) for data in (sdata, reference))
    assert got["molecule"].tolist() == list(range(120))
    np.testing.assert_array_equal(got["p_nuclear"].to_numpy(), wanted["p_nuclear"].to_numpy())
    assert got["pattern"].astype(str).tolist() == wanted["pattern"].astype(str).tolist()
    inside = ((got["x"] % 20).between(3, 7) & got["y"].between(3, 7)).to_numpy()
    assert got["p_nuclear"].to_numpy()[inside].min() > 0.5 > got["p_nuclear"].to_numpy()[~inside].max()


def test_from_spatialdata_reads_the_depth_column_of_2d_points():
    # spatialdata-io's MERSCOPE points: x, y axes from global_x / global_y, the plane in a
    # global_z column, partitions each indexed from 0; they could only be read as 2D.
    pieces = [pd.DataFrame({"global_x": [1.0, 2.0, 3.0], "global_y": [4.0, 5.0, 6.0], "global_z": [0, 2, 6],
                            "gene": ["A", "B", "A"]}),
              pd.DataFrame({"global_x": [7.0, 8.0], "global_y": [9.0, 10.0], "global_z": [1, 3], "gene": ["B", "B"]})]
    frames = dd.concat([dd.from_pandas(piece, npartitions=1) for piece in pieces])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        points = PointsModel.parse(frames, coordinates={"x": "global_x", "y": "global_y"},
                                   transformations={"pixels": Identity()})
    assert "z" not in points.columns and "global_z" in points.columns
    sdata = sd.SpatialData(points={"merscope_transcripts": points})
    frame = transcripts_frame(from_spatialdata(sdata, points_key="merscope_transcripts", z="global_z", z_step=1.5))
    assert frame["z"].tolist() == [0.0, 3.0, 9.0, 1.5, 4.5] and frame["x"].tolist() == [1.0, 2.0, 3.0, 7.0, 8.0]
    assert frame["gene"].astype(str).tolist() == ["A", "B", "A", "B", "B"]
    assert "z" not in transcripts_frame(from_spatialdata(sdata, points_key="merscope_transcripts"))
    three_d = PointsModel.parse(pd.DataFrame({"x": [0.0], "y": [0.0], "z": [1.0], "depth": [2.0], "gene": ["A"]}))
    with pytest.raises(ValueError, match=r"^z='depth' names a depth column, but points 'transcripts' have a z axis "
                                         r"already, which is their depth; leave z out$"):
        from_spatialdata(sd.SpatialData(points={"transcripts": three_d}), z="depth")


def test_from_spatialdata_scales_the_z_axis_of_3d_points():
    table = pd.DataFrame({"x": [10.0, 20.0], "y": [30.0, 40.0], "z": [1.0, 4.0], "gene": ["A", "B"]})
    points = PointsModel.parse(table, transformations={"global": Scale([0.2, 0.2, 1.5], axes=("x", "y", "z"))})
    frame = transcripts_frame(from_spatialdata(sd.SpatialData(points={"transcripts": points})))
    np.testing.assert_allclose(frame[["x", "y", "z"]].to_numpy(), [[2.0, 6.0, 1.5], [4.0, 8.0, 6.0]])
    # pixel_size scales z too unless z_step is given (isotropic pixels)
    plain = sd.SpatialData(points={"transcripts": PointsModel.parse(table)})
    assert transcripts_frame(from_spatialdata(plain, pixel_size=0.5))["z"].tolist() == [0.5, 2.0]
    assert transcripts_frame(from_spatialdata(plain, pixel_size=0.5, z_step=2.0))["z"].tolist() == [2.0, 8.0]


def test_a_z_step_leaves_out_only_the_elements_with_a_z_axis():
    # z_step rescales z alone, yet every other element was left out, e.g. the 2D mosaics
    # and outlines next to MERSCOPE points read with z=, "as they would not align".
    flat = pd.DataFrame({"global_x": [1.0, 2.0, 3.0], "global_y": [4.0, 5.0, 6.0], "global_z": [0, 2, 6],
                         "gene": ["A", "B", "A"]})
    points = PointsModel.parse(flat, coordinates={"x": "global_x", "y": "global_y"},
                               transformations={"global": Identity()})
    stack = PointsModel.parse(pd.DataFrame({"x": [1.0], "y": [4.0], "z": [2.0]}))
    mosaic = Image2DModel.parse(np.zeros((1, 8, 8)), dims=("c", "y", "x"),
                                transformations={"global": Scale([2.0, 2.0], axes=("y", "x"))})
    roi = ShapesModel.parse(gpd.GeoDataFrame(geometry=[shapely.box(0, 0, 4, 4)], index=["r"]))
    sdata = sd.SpatialData(points={"merscope_transcripts": points, "stack": stack},
                           images={"mosaic_z3": mosaic}, shapes={"roi": roi})
    with pytest.warns(UserWarning, match=r"^from_spatialdata does not carry over points \['stack'\]: their "):
        result = from_spatialdata(sdata, points_key="merscope_transcripts", z="global_z", z_step=1.5)
    assert list(result.images) == ["mosaic_z3"] and result.images["mosaic_z3"] is mosaic
    assert sorted(result.points) == ["transcripts"] and list(result.shapes) == ["roi"]
    assert transcripts_frame(result)["z"].tolist() == [0.0, 3.0, 9.0]
    # A z_step of 1 rescales nothing: the 3D points come along too.
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        result = from_spatialdata(sdata, points_key="merscope_transcripts", z="global_z", z_step=1.0)
    assert sorted(result.points) == ["stack", "transcripts"]


# --------------------------------------------------------------------------- errors name the file
@needs["xenium"]
@needs["cosmx"]
def test_platform_readers_name_the_file_of_a_missing_column(tmp_path):
    """A platform folder holds several tables: a missing or renamed column names its file."""
    xenium_folder, cosmx_folder, merscope_folder = (tmp_path / name for name in ("xenium", "cosmx", "merscope"))
    for folder in (xenium_folder, cosmx_folder, merscope_folder):
        folder.mkdir()
    transcripts = pq.read_table(XENIUM / "transcripts.parquet")
    pq.write_table(transcripts.rename_columns(
        ["gene_name" if c == "feature_name" else c for c in transcripts.column_names]
    ), xenium_folder / "transcripts.parquet")
    with pytest.raises(ValueError, match=re.escape(f"{xenium_folder / 'transcripts.parquet'}: transcript table "
                                                   "lacks the column(s) ['feature_name']")):
        read(xenium_folder)
    pq.write_table(transcripts, xenium_folder / "transcripts.parquet")
    vertices = pq.read_table(XENIUM / "nucleus_boundaries.parquet")
    pq.write_table(vertices.rename_columns(["x" if c == "vertex_x" else c for c in vertices.column_names]),
                   xenium_folder / "cell_boundaries.parquet")
    with pytest.raises(ValueError, match=re.escape(f"{xenium_folder / 'cell_boundaries.parquet'}: boundary table "
                                                   "lacks the column(s) ['vertex_x']")):
        read_xenium(xenium_folder)

    rows = pd.read_csv(COSMX / "Lung12_tx_file.csv")
    rows.rename(columns={"target": "gene"}).to_csv(cosmx_folder / "Lung12_tx_file.csv", index=False)
    with pytest.raises(ValueError, match=re.escape(f"CosMx transcript file {cosmx_folder / 'Lung12_tx_file.csv'} "
                                                   "lacks the column(s) ['target']")):
        read(cosmx_folder)
    rows.drop(columns=["x_global_px", "y_global_px"]).to_csv(cosmx_folder / "Lung12_tx_file.csv", index=False)
    pd.DataFrame({"fov": [2, 3], "xg": [0.0, 1.0], "y_global_px": [0.0, 1.0]}).to_csv(
        cosmx_folder / "Lung12_fov_positions_file.csv", index=False
    )
    with pytest.raises(ValueError, match=re.escape(
        f"CosMx FOV positions file {cosmx_folder / 'Lung12_fov_positions_file.csv'} lacks fov/x_global_px/y_global_px"
    )):
        read_cosmx(cosmx_folder)
    pd.DataFrame({"fov": [2], "x_global_px": [0.0], "y_global_px": [0.0]}).to_csv(
        cosmx_folder / "Lung12_fov_positions_file.csv", index=False
    )
    with pytest.raises(ValueError, match=re.escape(
        f"FOV(s) [3] of the transcript file have no position in {cosmx_folder / 'Lung12_fov_positions_file.csv'}"
    )):
        read_cosmx(cosmx_folder)

    write_merscope(merscope_folder)
    path = merscope_folder / "detected_transcripts.csv"
    path.write_text(path.read_text().replace("global_x", "gx", 1))
    with pytest.raises(ValueError, match=re.escape(f"{path}: transcript table lacks the column(s) ['global_x']")):
        read(merscope_folder)


def _cells_of_span(span: float, n_cells: int = 4, per_cell: int = 12) -> pd.DataFrame:
    """Molecules of ``n_cells`` cells, each spread over a square of side ``span`` (its
    diagonal is the cell's span), the cells far apart."""
    rng = np.random.default_rng(0)
    corners = np.array([[0.0, 0.0], [span, span]])
    points = np.vstack([np.vstack([corners, rng.uniform(0, span, (per_cell - 2, 2))]) + 10 * span * c
                        for c in range(n_cells)])
    return pd.DataFrame({"x": points[:, 0], "y": points[:, 1], "gene": "A",
                         "cell": np.repeat([f"c{c}" for c in range(n_cells)], per_cell)})


@pytest.mark.parametrize(("span", "pixel_size", "median"), [(400.0, 1.0, "566"), (0.5, 1.0, "0.707"),
                                                           (4000.0, 0.1, "566")])
def test_cells_of_implausible_size_warn_of_the_pixel_size(span, pixel_size, median):
    # The MERFISH U2-OS store, in 0.1 µm pixels, read with the default pixel_size=1 gave
    # cells 600 µm across and radii in pixels, without a word.
    message = (f"the molecules of a cell span a median of {median} µm (4 cells with 10 or more molecules) at "
               f"pixel_size={pixel_size:g} (µm per coordinate unit), outside the 1 to 300 µm a cell spans: if the "
               "coordinates are image pixels or in another unit, give pixel_size, the µm per unit "
               "(stgraph run: --pixel-size)")
    with pytest.warns(UserWarning, match=f"^{re.escape(message)}$"):
        read_transcripts(_cells_of_span(span), x="x", y="y", gene="gene", cell="cell", pixel_size=pixel_size)


@pytest.mark.parametrize(("span", "per_cell", "pixel_size"), [(40.0, 12, 1.0), (400.0, 12, 0.1), (400.0, 9, 1.0)])
def test_cells_of_plausible_size_or_too_few_molecules_do_not_warn(span, per_cell, pixel_size):
    frame = _cells_of_span(span, per_cell=per_cell)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        read_transcripts(frame, x="x", y="y", gene="gene", cell="cell", pixel_size=pixel_size)


def test_tools_refuse_outlines_that_do_not_align_with_the_points():
    # Outlines in half-size units with a Scale of 2 to global lie where the points do in
    # global, but the tools read stored coordinates: tl.localization called 9 of the 14
    # cell-genes another pattern, silently.
    import matplotlib

    matplotlib.use("Agg")
    import shapely.affinity
    from spatialdata.transformations import set_transformation

    import stgraph

    sdata = stgraph.datasets.simulate(4, 6, seed=0)[0]
    expected = stgraph.tl.localization(sdata, n_boot=5, copy=True).tables["table"].uns["lp"]
    moved = stgraph.tl.localization(sdata, n_boot=5, copy=True)
    for key in ("cell_boundaries", "nucleus_boundaries"):
        outlines = moved.shapes[key].copy()
        outlines["geometry"] = outlines.geometry.apply(lambda g: shapely.affinity.scale(g, 0.5, 0.5, origin=(0, 0)))
        set_transformation(outlines, Scale([2.0, 2.0], axes=("x", "y")), "global")
        moved.shapes[key] = outlines
    nuclei_moved = sd.SpatialData(points=dict(moved.points), shapes={**moved.shapes, "cell_boundaries": sdata.shapes["cell_boundaries"]})
    message = (
        r"^shapes 'cell_boundaries' have another transformation to 'global' \(Scale \[\[2.0, 0.0, 0.0\], "
        r"\[0.0, 2.0, 0.0\]\]\) than the points 'transcripts' \(Identity \[\[1.0, 0.0, 0.0\], \[0.0, 1.0, 0.0\]\]\), "
        r"so their stored coordinates do not align; bring both into one coordinate system first, e\.g\. "
        r"stgraph\.io\.from_spatialdata"
    )
    for key, call in (
        ("cell_boundaries", lambda: stgraph.tl.localization(moved, n_boot=5, copy=True)),
        ("nucleus_boundaries", lambda: stgraph.tl.localization(nuclei_moved, n_boot=5, copy=True)),
        ("cell_boundaries", lambda: stgraph.tl.domains(moved, radius=3.0, n_domains=2, inplace=False)),
        ("nucleus_boundaries", lambda: stgraph.io.outlines_from_transcripts(moved, key="hulls", copy=True)),
        ("cell_boundaries", lambda: stgraph.io.outlines_from_transcripts(moved, kind="nucleus", key="n", copy=True)),
        ("cell_boundaries", lambda: stgraph.pl.localization_transcripts(moved)),
    ):
        with pytest.raises(ValueError, match=message.replace("cell_boundaries", key)):
            call()
    # Brought into one coordinate system, they give the calls of the outlines as they were.
    aligned = from_spatialdata(moved)
    result = stgraph.tl.localization(aligned, n_boot=5, copy=True).tables["table"].uns["lp"]
    pd.testing.assert_frame_equal(result, expected)
