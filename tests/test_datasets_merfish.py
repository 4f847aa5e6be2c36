"""The embedded MERFISH U2-OS sample equals the shared Bento zarr it was made from."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
import spatialdata as sd

import stgraph
from stgraph.datasets import merfish_u2os
from stgraph.io import from_spatialdata, transcripts_frame

PACKAGE_DATA = Path(stgraph.__file__).resolve().parent / "datasets" / "_data" / "merfish_u2os"
ZARR = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "merfish_u2os_bento" / "merfish_sample.zarr"
needs_zarr = pytest.mark.skipif(not ZARR.exists(), reason=f"shared data {ZARR} is absent")


@pytest.fixture(scope="module")
def sample() -> sd.SpatialData:
    return merfish_u2os()


@pytest.fixture(scope="module")
def frame(sample) -> pd.DataFrame:
    return transcripts_frame(sample)


def test_drop_controls_must_be_a_bool():
    # drop_controls="False" is a true string: it dropped the 304 notarget molecules.
    with pytest.raises(TypeError, match=r"^drop_controls must be a bool \(True or False\), got 'False'$"):
        merfish_u2os(drop_controls="False")


def test_counts_and_schema(sample, frame):
    assert len(frame) == 174_827
    assert list(frame.columns[:7]) == ["x", "y", "gene", "cell_id", "in_nucleus", "nucleus_id", "is_control"]
    assert len(frame["gene"].cat.categories) == 135
    controls = frame.loc[frame["is_control"], "gene"].unique().astype(str)
    assert sorted(controls) == [f"notarget00{i}" for i in range(1, 6)]
    assert frame["cell_id"].notna().all() and frame["cell_id"].nunique() == 15
    assert frame["nucleus_id"].nunique() == 13 and frame["in_nucleus"].sum() == 174_827 - 129_639
    # a molecule's nucleus belongs to its cell (Bento gives a nucleus its cell's id)
    inside = frame["in_nucleus"].to_numpy()
    np.testing.assert_array_equal(
        frame["nucleus_id"].astype(str)[inside], frame["cell_id"].astype(str)[inside]
    )
    assert len(sample.shapes["cell_boundaries"]) == 15 and len(sample.shapes["nucleus_boundaries"]) == 13
    # µm at 0.1 µm per pixel: the 15 cells fit in a field of under 200 µm
    assert frame["x"].max() < 200 and frame["y"].max() < 200


def test_package_files_are_small_and_licensed():
    sizes = {p.name: p.stat().st_size for p in PACKAGE_DATA.iterdir()}
    assert {"transcripts.parquet", "cell_boundaries.parquet", "nucleus_boundaries.parquet",
            "LICENSE", "README.md"} <= sizes.keys()
    assert sum(sizes.values()) < 3_000_000
    assert "BSD 2-Clause" in (PACKAGE_DATA / "LICENSE").read_text()
    readme = (PACKAGE_DATA / "README.md").read_text()
    assert "116(39):19490" in readme and "bento-tools 2.1.4" in readme


def test_pixel_size_and_drop_controls(frame):
    pixels = transcripts_frame(merfish_u2os(pixel_size=1.0))
    np.testing.assert_array_equal(pixels["x"].to_numpy() * 0.1, frame["x"].to_numpy())
    np.testing.assert_array_equal(pixels["y"].to_numpy() * 0.1, frame["y"].to_numpy())
    without = transcripts_frame(merfish_u2os(drop_controls=True))
    assert len(without) == len(frame) - frame["is_control"].sum()
    assert len(without["gene"].cat.categories) == 130


@needs_zarr
def test_equals_the_shared_zarr(sample, frame):
    raw = pq.read_table(ZARR / "points" / "transcripts" / "points.parquet").to_pandas()
    np.testing.assert_array_equal(frame.index, raw.index)
    np.testing.assert_array_equal(frame["x"], raw["x"].to_numpy() * 0.1)
    np.testing.assert_array_equal(frame["y"], raw["y"].to_numpy() * 0.1)
    np.testing.assert_array_equal(frame["gene"].astype(str), raw["feature_name"].astype(str))
    np.testing.assert_array_equal(frame["cell_id"].astype(str), raw["cell_boundaries"].astype(str))
    np.testing.assert_array_equal(
        frame["nucleus_id"].astype(object).fillna("").astype(str), raw["nucleus_boundaries"].astype(str)
    )
    np.testing.assert_array_equal(frame["index"], raw["index"])
    np.testing.assert_array_equal(frame["batch"], raw["batch"])
    # The index is the table's idx, not Bento's molecule number (the index column).
    assert frame.index.name == "idx" and (frame.index != frame["index"]).sum() == 174_756

    bento = sd.read_zarr(ZARR)
    via_passthrough = from_spatialdata(bento, pixel_size=0.1)
    columns = ["x", "y", "gene", "cell_id", "in_nucleus", "nucleus_id", "is_control", "index"]
    pd.testing.assert_frame_equal(frame[columns], transcripts_frame(via_passthrough)[columns])
    for key in ("cell_boundaries", "nucleus_boundaries"):
        ours, theirs = sample.shapes[key], bento.shapes[key]
        assert ours.index.tolist() == theirs.index.tolist()
        for a, b in zip(ours.geometry, theirs.geometry):
            np.testing.assert_array_equal(
                np.asarray(a.exterior.coords), np.asarray(b.exterior.coords) * 0.1
            )


def test_duplicates_are_flagged_and_inflate_colocalization(sample, frame):
    from scipy.spatial import cKDTree

    assert int(frame["duplicate"].sum()) == 108_408
    # Each flagged molecule has one of its gene within 0.1 µm in an earlier row.
    xy, gene = frame[["x", "y"]].to_numpy(), frame["gene"].cat.codes.to_numpy()
    tree = cKDTree(xy)
    for row in np.flatnonzero(frame["duplicate"])[::5000]:
        near = np.array(tree.query_ball_point(xy[row], 0.1))
        assert ((near < row) & (gene[near] == gene[row])).any()
    dropped = merfish_u2os(drop_duplicates=True)
    assert len(dropped.points["transcripts"]) == 174_827 - 108_408
    assert "duplicate" not in transcripts_frame(merfish_u2os(duplicate_distance=0))
    passing = [
        int((stgraph.tl.colocalization(data, radius=1.0, inplace=False).table["fdr"] < 0.05).sum())
        for data in (sample, dropped)
    ]
    assert passing == [2_761, 578]


def test_most_molecules_have_at_most_six_others_of_their_gene_within_0_1_um(frame):
    # The docstring and README said "up to about seven rows", then "99 % of the groups of
    # at most seven rows": what was counted is each molecule's neighbours, not groups.
    import scipy.sparse as sp
    from scipy.sparse.csgraph import connected_components

    from stgraph.io._duplicates import same_gene_pairs

    pairs = same_gene_pairs(frame, 0.1)
    others = np.bincount(pairs.ravel(), minlength=len(frame))
    assert others.max() == 21
    assert 0.99 < (others <= 6).mean() < 1
    # Groups of rows linked within 0.1 µm: 97.9 % of those of several rows have at most seven.
    links = sp.coo_matrix((np.ones(len(pairs)), (pairs[:, 0], pairs[:, 1])), shape=(len(frame),) * 2)
    size = np.bincount(connected_components(links, directed=False)[1])
    assert round((size[size > 1] <= 7).mean(), 3) == 0.979 and size.max() == 22
