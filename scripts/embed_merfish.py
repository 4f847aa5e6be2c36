"""Regenerate ``stgraph/datasets/_data/merfish_u2os/`` from the shared Bento sample.

Run from the repository root::

    PYTHONPATH=. python scripts/embed_merfish.py [path/to/merfish_sample.zarr]

The molecules are copied column for column from the zarr's points parquet (index ``idx``
included), with dictionary-encoded strings and delta-encoded integers to stay small; the
cell and nucleus polygons are stored as WKB with their ids. Coordinates stay in Bento's
pixels; :func:`stgraph.datasets.merfish_u2os` converts them to µm.
"""
from __future__ import annotations

import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import shapely
import spatialdata

ROOT = Path(__file__).resolve().parents[1]
SOURCE = ROOT.parent / "shared" / "data" / "merfish_u2os_bento" / "merfish_sample.zarr"
TARGET = ROOT / "stgraph" / "datasets" / "_data" / "merfish_u2os"
STRINGS = ["feature_name", "cell_boundaries", "nucleus_boundaries"]
INTEGERS = ["idx", "index"]


def main(source: Path) -> None:
    points = pq.read_table(source / "points" / "transcripts" / "points.parquet")
    for name in STRINGS:
        i = points.schema.get_field_index(name)
        points = points.set_column(i, name, points.column(name).cast(pa.string()).dictionary_encode())
    pq.write_table(
        points,
        TARGET / "transcripts.parquet",
        compression="zstd",
        compression_level=22,
        use_dictionary=STRINGS,
        column_encoding={name: "DELTA_BINARY_PACKED" for name in INTEGERS},
    )
    sdata = spatialdata.read_zarr(source)
    for key in ("cell_boundaries", "nucleus_boundaries"):
        shapes = sdata.shapes[key]
        table = pa.table({"id": shapes.index.astype(str).to_list(),
                          "wkb": shapely.to_wkb(shapes.geometry.to_numpy())})
        pq.write_table(table, TARGET / f"{key}.parquet", compression="zstd", compression_level=22)
    for path in sorted(TARGET.glob("*.parquet")):
        print(f"{path.name}: {path.stat().st_size / 1e6:.2f} MB")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else SOURCE)
