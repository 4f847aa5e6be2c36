"""The `stgraph demo` main job on the embedded sample and `stgraph run` on the user's data."""
import re
import subprocess
import sys
import warnings
from pathlib import Path

import anndata
import numpy as np
import pytest
import spatialdata
from spatialdata.models import PointsModel

import stgraph
import stgraph.io
from stgraph.cli import main
from stgraph.datasets import simulate
from stgraph.localization import PATTERNS


def summary(out: str) -> dict[str, str]:
    return dict(re.findall(r"^(.+?)\s{2,}(.+)$", out, flags=re.M))


def count(text: str) -> int:
    return int(text.replace(",", ""))


def test_demo_prints_the_real_sample_summary(capsys):
    assert main(["demo", "--radius", "0.5"]) == 0
    values = summary(capsys.readouterr().out)
    assert values["molecules"] == "174,827"
    assert values["genes"] == "130" and values["control probes"] == "5"
    assert values["cells"] == "15"
    edges = count(values["edges"])
    assert abs(float(values["mean degree"]) - edges / 174_827) < 1e-3
    # The task heads: every scored (cell, gene) has one top pattern.
    tops = [count(values[f"top pattern {p}"]) for p in PATTERNS]
    assert sum(tops) == count(values["scored cell-genes"]) > 1000
    # MALAT1, a nuclear long non-coding RNA, is the most nuclear gene and leads a domain.
    assert values["most nuclear genes"].split(", ")[0] == "MALAT1"
    domains = [values["domain 0"], values["domain 1"]]
    assert sum(count(d.split(" molecules")[0]) for d in domains) == 174_827  # every molecule is in a cell
    assert any(d.endswith("led by MALAT1") for d in domains)
    assert count(values["colocalized gene pairs (FDR < 5 %)"]) >= 3
    assert len(values["strongest pairs"].split(", ")) == 3


def test_demo_graph_only_stops_after_the_graph(capsys):
    assert main(["demo", "--radius", "0.5", "--graph-only"]) == 0
    values = summary(capsys.readouterr().out)
    assert values["molecules"] == "174,827" and "scored cell-genes" not in values
    assert values["radius (µm)"] == "0.5"
    assert not any("localization" in key for key in values)
    # The kernels are loaded from numba's cache on every run after the first: the row
    # read "compile graph kernels (first run only)" on each.
    assert [key for key in values if key.startswith("time:")] == [
        "time: load graph kernels (compiled on the first run) (s)", "time: load sample (s)",
        "time: build transcript graph (s)",
    ]


def test_demo_counts_the_duplicate_calls_and_can_leave_them_out(capsys):
    assert main(["demo", "--radius", "0.5", "--graph-only"]) == 0
    values = summary(capsys.readouterr().out)
    assert values["duplicate calls"] == "108,408 flagged, kept (--drop-duplicates leaves them out)"
    assert main(["demo", "--radius", "0.5", "--graph-only", "--drop-duplicates"]) == 0
    values = summary(capsys.readouterr().out)
    assert values["molecules"] == "66,419" and values["duplicate calls"] == "left out (--drop-duplicates)"


def test_demo_prints_the_radius_as_given(capsys):
    # Printed with three decimals, --radius 0.0005 read 0.001.
    assert main(["demo", "--radius", "0.0005", "--graph-only"]) == 0
    assert summary(capsys.readouterr().out)["radius (µm)"] == "0.0005"


@pytest.mark.parametrize("radius", ["-1", "0", "nan", "inf", "one", "1e200", "1e-200"])
def test_demo_refuses_a_bad_radius_with_a_usage_error(radius, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["demo", "--radius", radius])
    assert exit_info.value.code == 2
    assert "argument --radius: " in capsys.readouterr().err


def test_demo_reports_a_graph_too_large_for_memory_without_a_traceback(monkeypatch, capsys):
    monkeypatch.setattr("stgraph.graph._memory.available_memory", lambda device: 10_000)
    with pytest.raises(SystemExit) as exit_info:
        main(["demo", "--radius", "0.5"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "stgraph demo: error: --radius 0.5: the radius graph would have " in err
    # It advised max_num_neighbors and radius_graph_tiled, which the command does not offer.
    assert err.strip().endswith("more than the 10,000 bytes allowed (available memory); give a smaller --radius")


def test_demo_help_says_what_each_option_does(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["demo", "--help"])
    assert exit_info.value.code == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "--radius RADIUS radius in µm (default 1.0)" in out
    assert "'cell' only pairs of the same cell" in out
    assert "--graph-only stop after the graph (skip localization, colocalization and domains)" in out
    assert "--drop-duplicates leave out the molecules called twice (same gene within 0.1 µm" in out
    # The top-level help showed the module docstring's RST markup.
    with pytest.raises(SystemExit):
        main(["--help"])
    assert "stgraph: transcript-level spatial transcriptomics on PyTorch Geometric." in capsys.readouterr().out


COSMX = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "cosmx_lung12"
needs_cosmx = pytest.mark.skipif(not COSMX.exists(), reason=f"shared data {COSMX} is absent")
XENIUM = COSMX.parent / "xenium_lung_10k"


def _listing(folder: Path) -> list[tuple[str, int, int]]:
    return sorted((str(p.relative_to(folder)), p.stat().st_size, p.stat().st_mtime_ns) for p in folder.rglob("*"))


@needs_cosmx
def test_run_reads_a_platform_folder_runs_the_tools_and_writes_a_store(tmp_path, capsys):
    before = _listing(COSMX)
    out = tmp_path / "result.zarr"
    assert main(["run", str(COSMX), "--out", str(tmp_path / "deduplicated.zarr"), "--tools", "colocalization",
                 "--drop-z-duplicates"]) == 0
    assert count(summary(capsys.readouterr().out)["molecules"]) == 25_825 - 1_296
    assert main(["run", str(COSMX), "--out", str(out), "--n-domains", "3"]) == 0
    values = summary(capsys.readouterr().out)
    assert _listing(COSMX) == before  # the input is only read
    assert values["input"] == f"{COSMX} (cosmx)"
    # CosMx flat files have no outlines: localization needs them, so they were drawn.
    assert values["outlines drawn from the transcripts"] == "cell_boundaries, nucleus_boundaries"
    expected = stgraph.io.read_cosmx(COSMX)
    frame = expected.points["transcripts"].compute()
    assert count(values["molecules"]) == len(frame) == 25_825
    assert count(values["cells"]) == frame["cell_id"].nunique()
    # Localization warns of the cells without an outline: the summary says why they have none.
    too_few = int((frame["cell_id"].dropna().astype(str).value_counts() < 3).sum())
    assert values["cells without a drawn outline"] == f"{too_few} (too few molecules; localization leaves them out)"
    assert too_few == 2
    assert sum(1 for key in values if key.startswith("domain ")) == 3
    written = spatialdata.read_zarr(out)
    table = written.tables["table"]
    assert {"lp", "lpp", "lp_stats", "colocalization"} <= set(table.uns)
    assert len(table.uns["lpp"]) == count(values["scored cell-genes"])
    points = written.points["transcripts"].compute()
    assert {"pattern", "p_nuclear", "domain"} <= set(points.columns) and len(points) == len(frame)
    assert {"cell_boundaries", "nucleus_boundaries"} <= set(written.shapes)
    new = dict(part.split(": ") for part in values["new in the store"].split("; "))
    assert new["points['transcripts']"] == "domain, p_nuclear, pattern"
    assert new["shapes"] == "cell_boundaries, domain_boundaries, nucleus_boundaries"
    assert new["tables['table'].uns"] == (
        "colocalization, colocalization_params, domain_enrichment, domain_params, localization, lp, lp_stats, lpp"
    )
    assert set(new["tables['table'].layers"].split(", ")) == set(table.layers)
    # The written store reads back as input; a store is never overwritten unasked.
    again = tmp_path / "again.zarr"
    assert main(["run", str(out), "--out", str(again), "--tools", "colocalization"]) == 0
    first, values = values, summary(capsys.readouterr().out)
    assert values["input"] == f"{out} (zarr)" and "scored cell-genes" not in values
    for key in ("molecules", "genes", "cells", "edges", "colocalized gene pairs (FDR < 5 %)", "strongest pairs"):
        assert values[key] == first[key], key  # the same numbers from the stored result
    assert values["new in the store"] == "nothing (the tools replaced their earlier results)"
    assert count(values["molecules"]) == 25_825
    assert "domain_boundaries" in spatialdata.read_zarr(again).shapes  # carried over, not lost
    for argv, message in [
        (["run", str(COSMX), "--out", str(out)], f"--out {out} exists; give --overwrite to replace it"),
        (["run", str(out), "--out", str(out), "--overwrite"], f"--out {out}: that is the input"),
        (["run", str(tmp_path), "--out", str(tmp_path / "x.zarr")], "cannot tell the format of"),
        (["run", str(COSMX), "--out", str(tmp_path / "x.zarr"), "--tools", "clustering"],
         "argument --tools: choose from localization, colocalization, domains"),
        (["run", str(COSMX), "--out", str(tmp_path / "x.zarr"), "--n-domains", "0"],
         "argument --n-domains: must be an integer >= 1, got '0'"),
    ]:
        with pytest.raises(SystemExit) as exit_info:
            main(argv)
        assert exit_info.value.code == 2
        assert message in capsys.readouterr().err
    assert not (tmp_path / "x.zarr").exists()


@pytest.fixture
def store(tmp_path) -> Path:
    """A small simulated SpatialData store, the input of the refusals below."""
    sdata, _ = simulate(n_cells=4, n_genes=8, seed=0)
    sdata.write(tmp_path / "sim.zarr")
    return tmp_path / "sim.zarr"


def printed_by_a_new_process(code: str) -> list[str]:
    """The lines ``code`` prints when run by a new Python process (modules not yet imported)."""
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.splitlines()


def refused(argv: list[str], capsys) -> str:
    """The error of ``stgraph`` refusing ``argv`` as a usage error (exit code 2, no traceback)."""
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    return capsys.readouterr().err.strip().splitlines()[-1]


def test_run_refuses_an_out_that_would_change_the_input_or_cannot_be_written(store, tmp_path, monkeypatch, capsys):
    # Each is refused before any work: reading the input would fail this test.
    monkeypatch.setattr("stgraph.io.read", lambda *args, **kwargs: pytest.fail("read before --out was checked"))
    notes = tmp_path / "notes.txt"
    notes.write_text("not a store")
    before = _listing(tmp_path)
    for argv, message in [
        # Written inside the input store (or folder), which is only read.
        (["--out", f"{store}/result.zarr"],
         f"--out {store}/result.zarr lies inside the input {store}, which is only read; write the result outside it"),
        # --overwrite would delete the folder that holds the input.
        (["--out", str(tmp_path), "--overwrite"],
         f"--out {tmp_path} holds the input {store}; write the result to a new store"),
        # SpatialData replaces only zarr stores, so --overwrite is no fix: it was the advice given.
        (["--out", str(notes)], f"--out {notes} exists and is not a zarr store; name a new store"),
        (["--out", str(notes), "--overwrite"], f"--out {notes} exists and is not a zarr store; name a new store"),
        # Failed with a NotADirectoryError traceback after all the work.
        (["--out", f"{notes}/result.zarr"],
         f"--out {notes}/result.zarr: cannot create it, {notes} is not a writable folder"),
        # Read as the current folder: '--out  exists'.
        (["--out", ""], "--out is empty: name the new zarr store, e.g. --out result.zarr"),
        # Written as a zarr folder named result.h5ad, which anndata.read_h5ad cannot read.
        (["--out", str(tmp_path / "result.h5ad")], f"--out {tmp_path / 'result.h5ad'}: name a .zarr store, "
                                                   "e.g. --out result.zarr"),
    ]:
        assert refused(["run", str(store), *argv], capsys) == f"stgraph run: error: {message}"
    assert _listing(tmp_path) == before and notes.read_text() == "not a store"


def test_run_reads_an_older_store_without_spatialdata_advice_to_write_it_anew(tmp_path, capsys):
    from spatialdata._io.format import SpatialDataContainerFormatV01

    sdata, _ = simulate(n_cells=4, n_genes=8, seed=0)
    sdata.write(tmp_path / "old.zarr", sdata_formats=SpatialDataContainerFormatV01())
    with pytest.warns(UserWarning, match="not stored in the most current format"):  # what the command printed
        spatialdata.read_zarr(tmp_path / "old.zarr")
    out = tmp_path / "result.zarr"
    assert main(["run", str(tmp_path / "old.zarr"), "--out", str(out), "--tools", "colocalization"]) == 0
    # The command writes its result to a new store in the current format: the advice is moot.
    assert "most current format" not in capsys.readouterr().err
    assert len(spatialdata.read_zarr(out).points["transcripts"]) == len(sdata.points["transcripts"])


def test_run_refuses_molecules_in_no_cell_in_the_commands_words(tmp_path, capsys):
    sdata, _ = simulate(n_cells=4, n_genes=8, seed=0)
    frame = sdata.points["transcripts"].compute()[["x", "y", "gene"]]
    store, out = tmp_path / "unsegmented.zarr", tmp_path / "result.zarr"
    spatialdata.SpatialData(points={"transcripts": PointsModel.parse(frame, feature_key="gene")}).write(store)
    # Refused with "pass within='all'" (colocalization) or as cells too small to outline.
    for tools in ("colocalization", "localization,domains"):
        assert refused(["run", str(store), "--out", str(out), "--tools", tools], capsys) == (
            f"stgraph run: error: no molecule of {store} is assigned to a cell: {tools.replace(',', ', ')} work on "
            "the molecules of each cell; give data segmented into cells (a store's points name theirs in a "
            "cell_id column or by their instance_key)"
        )
    assert not out.exists()


def test_run_names_the_option_that_fixes_what_the_reader_refuses(store, tmp_path, capsys):
    from .test_io import write_merscope

    merscope = tmp_path / "merscope"
    merscope.mkdir()
    write_merscope(merscope)
    cosmx = tmp_path / "cosmx"  # two samples' transcript files side by side
    cosmx.mkdir()
    for sample in ("Lung12", "Lung13"):
        (cosmx / f"{sample}_tx_file.csv").write_text("fov,cell_ID,x_global_px,y_global_px,target\n")
    renamed = tmp_path / "renamed.zarr"
    original = spatialdata.read_zarr(store)
    points = {"molecules": original.points["transcripts"]}
    spatialdata.SpatialData(points=points, shapes=dict(original.shapes)).write(renamed)
    out = str(tmp_path / "result.zarr")
    for argv, message in [
        # A KeyError traceback.
        ([str(renamed)], "no points element 'transcripts'; the points are ['molecules']; "
                         "--points names the one holding the molecules"),
        # FileNotFoundError tracebacks; --format named the wrong platform.
        ([str(merscope), "--format", "xenium"],
         f"no transcripts.parquet or transcripts.csv.gz in {merscope} "
         f"(--format xenium, but {merscope} holds merscope files: leave --format out)"),
        ([str(cosmx)], f"expected one *_tx_file.csv (or *_tx_file.csv.gz) in {cosmx}, found "
                       "['Lung12_tx_file.csv', 'Lung13_tx_file.csv']; "
                       "put each sample's flat files in a folder of their own"),
        # Named the reader's parameters, of which --min-qv is no flag of the command.
        ([str(merscope), "--pixel-size", "0.1"], "--pixel-size does not apply to merscope input, only to cosmx, zarr"),
        ([str(merscope), "--points", "molecules"], "--points does not apply to merscope input, only to zarr"),
        ([str(merscope), "--drop-z-duplicates"], "--drop-z-duplicates does not apply to merscope input, only to cosmx"),
    ]:
        assert refused(["run", *argv, "--out", out], capsys) == f"stgraph run: error: {message}"
    assert not Path(out).exists()
    # The fix named works, and the points read are those of the renamed element.
    assert main(["run", str(renamed), "--points", "molecules", "--out", out, "--tools", "colocalization"]) == 0
    assert count(summary(capsys.readouterr().out)["molecules"]) == len(original.points["transcripts"])
    assert "transcripts" in spatialdata.read_zarr(out).points


def test_help_imports_no_heavy_package_and_the_namespaces_load_on_use():
    # `stgraph run --help` took 6 s: `import stgraph` loaded torch, PyG and spatialdata.
    code = (
        "import sys, contextlib, io\n"
        "import stgraph.cli\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        "    try:\n"
        "        stgraph.cli.main(['run', '--help'])\n"
        "    except SystemExit:\n"
        "        pass\n"
        "print(sorted(m for m in ('torch', 'spatialdata', 'torch_geometric', 'matplotlib') if m in sys.modules))\n"
        "import stgraph\n"
        "print(stgraph.tl.localization.__module__, 'tl' in dir(stgraph))\n"
    )
    assert printed_by_a_new_process(code) == ["[]", "stgraph.tl._localization True"]
    with pytest.raises(AttributeError, match="^module 'stgraph' has no attribute 'tools'$"):
        stgraph.tools  # noqa: B018


def test_enhance_loads_only_what_spots_need_and_the_tools_load_on_use():
    # `stgraph.tl.enhance` took 5 s of imports in a new process: stgraph.tl imported
    # every tool, and stgraph.graph its transcript reader, which loads spatialdata.
    code = (
        "import sys\n"
        "import stgraph.tl\n"
        "print(sorted(m for m in ('torch', 'spatialdata', 'torch_geometric') if m in sys.modules))\n"
        "stgraph.tl.enhance\n"
        "print(sorted(m for m in ('torch', 'spatialdata', 'torch_geometric') if m in sys.modules))\n"
        "from stgraph.tl import localization\n"
        "from stgraph.graph import transcript_graph\n"
        "print(localization.__module__, transcript_graph.__module__, 'spatialdata' in sys.modules)\n"
        "print(stgraph.tl.__all__ == sorted(n for n in dir(stgraph.tl) if not n.startswith('_') and n != 'importlib'))\n"
    )
    assert printed_by_a_new_process(code) == [
        "[]",
        "['torch', 'torch_geometric']",
        "stgraph.tl._localization stgraph.graph.transcript True",
        "True",
    ]
    with pytest.raises(AttributeError, match="^module 'stgraph.tl' has no attribute 'enhancer'$"):
        stgraph.tl.enhancer  # noqa: B018
    with pytest.raises(AttributeError, match="^module 'stgraph.graph' has no attribute 'graph'$"):
        stgraph.graph.graph  # noqa: B018


def test_the_building_blocks_are_attributes_after_a_bare_import():
    # `import stgraph; stgraph.models.load_model(...)` raised AttributeError unless a
    # tool had imported stgraph.models first; a fresh process shows it.
    code = (
        "import stgraph\n"
        "names = ('models', 'data', 'localization', 'coloc', 'domains', 'spots')\n"
        "print(' '.join(getattr(stgraph, n).__name__ for n in names))\n"
        "print(stgraph.models.load_model.__name__, stgraph.coloc.ColocalizationResult.from_uns.__name__)\n"
    )
    assert printed_by_a_new_process(code) == [
        "stgraph.models stgraph.data stgraph.localization stgraph.coloc stgraph.domains stgraph.spots",
        "load_model from_uns",
    ]


def test_the_command_offers_exactly_the_formats_the_reader_reads(capsys):
    from stgraph.io._read import _READERS

    with pytest.raises(SystemExit):
        main(["run", "--help"])
    offered = re.search(r"--format \{([a-z,]+)\}", capsys.readouterr().out).group(1)
    assert offered.split(",") == ["auto", *_READERS]


def test_enhance_writes_what_tl_enhance_returns_and_only_reads_the_input(tmp_path, capsys):
    from stgraph.tl import enhance

    from .test_enhance import slide

    adata, _ = slide("hexagonal", 8, 8, 20)
    path = tmp_path / "spots.h5ad"
    adata.write_h5ad(path)
    before = _listing(tmp_path)
    out = tmp_path / "result" / "enhanced.h5ad"
    out.parent.mkdir()
    assert main(["enhance", str(path), "--out", str(out), "--epochs", "2", "--seed", "3"]) == 0
    values = summary(capsys.readouterr().out)
    assert [p for p in _listing(tmp_path) if not p[0].startswith("result")] == before
    expected = enhance(anndata.read_h5ad(path), "super_resolution", epochs=2, seed=3, progress=False)
    written = anndata.read_h5ad(out)
    np.testing.assert_array_equal(written.X, expected.X)
    assert written.obs_names.tolist() == expected.obs_names.tolist()
    assert values["spots"] == "64" and values["grid"] == "hexagonal" and values["mode"] == "super_resolution"
    assert count(values["new spots"]) == int(expected.obs["imputed"].sum()) == written.n_obs - 64
    for argv, message in [
        ([str(tmp_path / "none.h5ad"), "--out", str(tmp_path / "x.h5ad")], "none.h5ad is not a file: give an .h5ad"),
        ([str(path), "--out", str(out)], f"--out {out} exists; give --overwrite to replace it"),
        ([str(path), "--out", str(path), "--overwrite"], f"--out {path}: that is the input"),
        ([str(path), "--out", str(tmp_path / "x.zarr")], "name an .h5ad file, e.g. --out enhanced.h5ad"),
    ]:
        with pytest.raises(SystemExit) as exit_info:
            main(["enhance", *argv])
        assert exit_info.value.code == 2
        assert message in capsys.readouterr().err
    (tmp_path / "text.h5ad").write_text("not hdf5")
    with pytest.raises(SystemExit):
        main(["enhance", str(tmp_path / "text.h5ad"), "--out", str(tmp_path / "x.h5ad")])
    assert "as an AnnData .h5ad file" in capsys.readouterr().err
    assert not (tmp_path / "x.h5ad").exists()


def test_enhance_refuses_its_own_output_in_the_commands_terms(tmp_path, capsys):
    # tl.enhance's refusal advised `adata[~adata.obs['imputed']]`, which no command-line user can do.
    from .test_enhance import slide

    adata, _ = slide("square", 5, 5, 8)
    path, out = tmp_path / "spots.h5ad", tmp_path / "enhanced.h5ad"
    adata.write_h5ad(path)
    assert main(["enhance", str(path), "--out", str(out), "--epochs", "0"]) == 0
    capsys.readouterr()
    written = anndata.read_h5ad(out)
    n_new = int(written.obs["imputed"].sum())
    # A nullable flag too (pandas' "boolean", as an outer anndata.concat makes it), which the
    # command took for no output: tl.enhance refused it in Python terms.
    nullable = tmp_path / "nullable.h5ad"
    written.obs["imputed"] = written.obs["imputed"].astype("boolean")
    written.write_h5ad(nullable)
    for given in (out, nullable):
        with pytest.raises(SystemExit) as exit_info:
            main(["enhance", str(given), "--out", str(tmp_path / "again.h5ad")])
        assert exit_info.value.code == 2
        assert (f"{given} was written by stgraph enhance: {n_new} of its {25 + n_new} spots are predicted, not "
                "measured; give the original slide's .h5ad instead") in capsys.readouterr().err
    assert not (tmp_path / "again.h5ad").exists()


def test_enhance_refuses_options_that_do_not_apply_before_reading_the_input(tmp_path, monkeypatch, capsys):
    # Both were refused by tl.enhance after reading the input, in its argument names:
    # "`max_gap_size` is only used with `mode='impute'` and no `positions`.", "seed must be ...".
    from .test_enhance import slide

    slide("square", 5, 5, 8)[0].write_h5ad(tmp_path / "spots.h5ad")
    monkeypatch.setattr("anndata.read_h5ad", lambda *args, **kwargs: pytest.fail("read before the options were checked"))
    argv = ["enhance", str(tmp_path / "spots.h5ad"), "--out", str(tmp_path / "x.h5ad")]
    assert refused([*argv, "--max-gap-size", "2"], capsys) == (
        "stgraph enhance: error: --max-gap-size is only used with --mode impute, not --mode super_resolution"
    )
    for seed in ("-1", str(2**32), "1.5"):
        assert refused([*argv, "--seed", seed], capsys) == (
            f"stgraph enhance: error: argument --seed: must be an integer in [0, 2**32 - 1], got {seed!r}"
        )


def test_enhance_refuses_a_grid_that_does_not_fit_in_its_flags(tmp_path, capsys):
    # tl.enhance refused them in Python terms: "`grid='square'` does not fit ... Pass
    # `grid='hexagonal'` or None to detect it.", "`grid='hexagonal'` needs ...".
    from .test_enhance import slide

    for grid, given, message in [
        ("hexagonal", "square", "--grid square does not fit the spots: in `obsm['spatial']` the spot two columns "
         "along a row is 1.00 times as far as the spot one row and one column away (1 on a hexagonal lattice, 1.41 "
         "on a square grid), i.e. a hexagonal lattice. Give --grid hexagonal, or leave --grid out to detect it."),
        ("square", "hexagonal", "--grid hexagonal needs array_row + array_col of one parity (Visium convention), "
         "but the spots have both even and odd sums: a square grid."),
    ]:
        slide(grid, 4, 4, 8)[0].write_h5ad(tmp_path / f"{grid}.h5ad")
        argv = ["enhance", str(tmp_path / f"{grid}.h5ad"), "--out", str(tmp_path / "x.h5ad"), "--grid", given]
        assert refused(argv, capsys) == f"stgraph enhance: error: {message}"


def test_enhance_epochs_0_is_the_interpolation_as_in_tl_enhance(tmp_path, capsys):
    # tl.enhance(epochs=0) is documented; the command refused it ("must be an integer >= 1").
    from .test_enhance import slide

    adata, _ = slide("square", 5, 5, 8)
    path, out = tmp_path / "spots.h5ad", tmp_path / "enhanced.h5ad"
    adata.write_h5ad(path)
    assert main(["enhance", str(path), "--out", str(out), "--epochs", "0"]) == 0
    written = anndata.read_h5ad(out)
    assert written.uns["enhance"]["params"]["epochs"] == 0
    assert list(written.uns["enhance"]["best_epochs"]) == [0, 0]
    with pytest.raises(SystemExit):
        main(["enhance", str(path), "--out", str(tmp_path / "x.h5ad"), "--epochs", "-1"])
    assert "argument --epochs: must be an integer >= 0, got '-1'" in capsys.readouterr().err


def test_run_counts_the_genes_with_molecules_not_the_unused_categories(tmp_path, capsys):
    import dask.dataframe as dd

    sdata, _ = simulate(n_cells=4, n_genes=8, seed=0)
    points = sdata.points["transcripts"].compute()
    # As a crop of a larger sample leaves them: categories without a molecule.
    points["gene"] = points["gene"].cat.add_categories(["unused1", "unused2"])
    element = dd.from_pandas(points, npartitions=1)
    element.attrs.update(sdata.points["transcripts"].attrs)
    sdata.points["transcripts"] = element
    sdata.write(tmp_path / "crop.zarr")
    assert main(["run", str(tmp_path / "crop.zarr"), "--out", str(tmp_path / "out.zarr"),
                 "--tools", "colocalization"]) == 0
    values = summary(capsys.readouterr().out)
    assert values["genes"] == "8" and values["control probes"] == "0"


@needs_cosmx
def test_run_reads_the_depth_column_of_a_stores_2d_points(tmp_path, capsys):
    # A store of points with x, y axes and the plane in a column (spatialdata-io's MERSCOPE
    # global_z) could only be read as 2D by the command.
    sdata, _ = simulate(n_cells=3, n_genes=6, seed=0)
    frame = sdata.points["transcripts"].compute()
    frame["global_z"] = np.arange(len(frame)) % 4
    sdata.points["transcripts"] = PointsModel.parse(frame)
    store, out = tmp_path / "planes.zarr", tmp_path / "result.zarr"
    sdata.write(store)
    assert main(["run", str(store), "--out", str(out), "--tools", "colocalization", "--z", "global_z",
                 "--z-step", "1.5"]) == 0
    capsys.readouterr()
    points = spatialdata.read_zarr(out).points["transcripts"].compute()
    np.testing.assert_array_equal(points["z"].to_numpy(), 1.5 * (np.arange(len(frame)) % 4))
    assert refused(["run", str(XENIUM), "--out", str(tmp_path / "x.zarr"), "--z", "global_z"], capsys) == \
        "stgraph run: error: --z does not apply to xenium input, only to zarr"
    # A depth column the points lack is named with the role it was asked for in.
    message = refused(["run", str(store), "--out", str(tmp_path / "y.zarr"), "--z", "depth"], capsys)
    assert message.startswith("stgraph run: error: transcript table lacks the column(s) ['depth'] (read 'depth' as z); "
                              "it has [")


def test_run_takes_the_z_step_of_the_platform(tmp_path, capsys):
    # The µm between z-planes could not be given: CosMx's z stayed 0.8 µm per plane.
    out = tmp_path / "result.zarr"
    assert main(["run", str(COSMX), "--out", str(out), "--tools", "colocalization",
                 "--pixel-size", "0.12028", "--z-step", "1.25"]) == 0
    capsys.readouterr()
    points = spatialdata.read_zarr(out).points["transcripts"].compute()
    raw = stgraph.io.read_cosmx(COSMX, pixel_size=1.0, z_step=1.0).points["transcripts"].compute()
    np.testing.assert_allclose(points["z"].to_numpy(), raw["z"].to_numpy() * 1.25)
    np.testing.assert_allclose(points["x"].to_numpy(), raw["x"].to_numpy() * 0.12028)
    assert sorted(set(points["z"])) == [1.25 * plane for plane in range(10)]
    for argv, message in [
        (["--z-step", "1"], "--z-step does not apply to xenium input, only to merscope, cosmx, zarr"),
        # named the radius: "argument --pixel-size: radius must be a positive finite number"
        (["--pixel-size", "0"], "argument --pixel-size: must be a positive finite number (µm per unit), got '0'"),
        (["--z-step", "nan"], "argument --z-step: must be a positive finite number (µm per unit), got 'nan'"),
    ]:
        assert refused(["run", str(XENIUM), "--out", str(tmp_path / "x.zarr"), *argv], capsys) == \
            f"stgraph run: error: {message}"


@pytest.mark.parametrize("module", ["stgraph", "stgraph.cli"])
def test_python_m_is_the_stgraph_command(module):
    # `python -m stgraph` failed: "'stgraph' is a package and cannot be directly executed".
    command = subprocess.run([sys.executable, "-m", module, "run", "--help"], capture_output=True, text=True)
    assert command.returncode == 0, command.stderr
    assert command.stdout.startswith("usage: stgraph run [-h] --out OUT")


@pytest.mark.parametrize("module", ["stgraph.__main__", "stgraph.cli.__main__"])
def test_importing_the_main_module_runs_no_command(module, monkeypatch):
    # Importing stgraph.__main__ (pytest --doctest-modules, sphinx-apidoc, pdoc do)
    # ran the command with the importer's arguments and exited.
    import importlib

    monkeypatch.setattr(sys, "argv", ["stgraph", "--version"])
    monkeypatch.delitem(sys.modules, module, raising=False)
    assert callable(importlib.import_module(module).main)


def test_enhance_creates_the_out_folder_and_refuses_one_it_cannot_create(tmp_path, monkeypatch, capsys):
    # A missing folder (which `stgraph run` creates) and a file in the path both failed
    # with an h5py traceback after all the work.
    from .test_enhance import slide

    adata, _ = slide("square", 5, 5, 8)
    path, notes = tmp_path / "spots.h5ad", tmp_path / "notes.txt"
    adata.write_h5ad(path)
    notes.write_text("not a folder")
    out = tmp_path / "new folder" / "enhanced.h5ad"
    assert main(["enhance", str(path), "--out", str(out), "--epochs", "0"]) == 0
    assert anndata.read_h5ad(out).n_obs == 25 + count(summary(capsys.readouterr().out)["new spots"])
    monkeypatch.setattr("anndata.read_h5ad", lambda *args, **kwargs: pytest.fail("read before --out was checked"))
    assert refused(["enhance", str(path), "--out", f"{notes}/enhanced.h5ad"], capsys) == (
        f"stgraph enhance: error: --out {notes}/enhanced.h5ad: cannot create it, {notes} is not a writable folder"
    )


def test_a_failed_write_is_one_line_not_a_traceback(store, tmp_path, monkeypatch, capsys):
    # A folder writable in its mode bits only (/proc, a read-only mount as root) failed
    # with an OSError traceback after all the work.
    from .test_enhance import slide

    def denied(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    adata, _ = slide("square", 5, 5, 8)
    adata.write_h5ad(tmp_path / "spots.h5ad")
    monkeypatch.setattr("spatialdata.SpatialData.write", denied)
    monkeypatch.setattr("anndata.AnnData.write_h5ad", denied)
    out = tmp_path / "result.zarr"
    assert refused(["run", str(store), "--out", str(out), "--tools", "colocalization"], capsys) == (
        f"stgraph run: error: --out {out}: cannot write it ([Errno 13] Permission denied)"
    )
    out = tmp_path / "enhanced.h5ad"
    assert refused(["enhance", str(tmp_path / "spots.h5ad"), "--out", str(out), "--epochs", "0"], capsys) == (
        f"stgraph enhance: error: --out {out}: cannot write it ([Errno 13] Permission denied)"
    )


def test_run_offers_a_smaller_radius_for_a_graph_too_large_for_memory(store, tmp_path, monkeypatch, capsys):
    # It advised max_num_neighbors and radius_graph_tiled, which the command does not offer.
    monkeypatch.setattr("stgraph.graph._memory.available_memory", lambda device: 10_000)
    error = refused(["run", str(store), "--out", str(tmp_path / "r.zarr"), "--tools", "colocalization"], capsys)
    assert error.startswith("stgraph run: error: --radius 1: the radius graph would have ")
    assert error.endswith("more than the 10,000 bytes allowed (available memory); give a smaller --radius")


def test_enhance_help_shows_every_default(capsys):
    # --max-gap-size showed none (tl.enhance fills every hole) nor that it is for --mode impute only.
    with pytest.raises(SystemExit):
        main(["enhance", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "--max-gap-size MAX_GAP_SIZE --mode impute: fill only holes of at most this many spots (default: every hole)" in text
    assert "--tissue-only enhance only the spots with obs['in_tissue'] == 1; the output holds only those" in text
    assert "--drop-empty leave out the spots without counts (in X or --layer); the output holds only the others" in text
    for option in ("--mode", "--grid", "--layer", "--epochs", "--seed", "--device"):
        assert re.search(rf"{option} [^-]*\(?default", text), option


def test_version_prints_the_package_version(capsys):
    # There was no --version: "the following arguments are required: command".
    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0
    assert capsys.readouterr().out == f"stgraph {stgraph.__version__}\n"


def test_enhance_names_the_layer_flag_for_data_that_are_not_counts(tmp_path, capsys):
    # It advised "Pass the layer with the raw counts as `layer=`", a Python argument.
    from .test_enhance import slide

    adata, _ = slide("square", 5, 5, 8)
    adata.X = -np.asarray(adata.X, dtype=np.float32)
    adata.write_h5ad(tmp_path / "spots.h5ad")
    assert refused(["enhance", str(tmp_path / "spots.h5ad"), "--out", str(tmp_path / "x.h5ad")], capsys) == (
        "stgraph enhance: error: `adata.X` contains negative values; raw counts are expected. "
        "Give the layer with the raw counts as --layer."
    )


def test_enhance_names_the_layer_flag_for_an_empty_x_and_does_not_offer_the_raw_matrix(tmp_path, capsys):
    # An empty X advised "pass the layer holding raw counts as `layer`", and a file with a raw
    # matrix "--layer, or `adata.raw.to_adata()` if `adata.raw` holds them", which the command cannot read.
    from .test_enhance import slide

    adata, _ = slide("square", 5, 5, 8)
    empty = anndata.AnnData(obs=adata.obs, var=adata.var, obsm=adata.obsm, layers={"raw": adata.X})
    empty.write_h5ad(tmp_path / "empty.h5ad")
    normalised = adata.copy()
    normalised.raw = adata
    normalised.X = adata.X / 2.5
    normalised.write_h5ad(tmp_path / "normalised.h5ad")
    assert refused(["enhance", str(tmp_path / "empty.h5ad"), "--out", str(tmp_path / "x.h5ad")], capsys) == (
        "stgraph enhance: error: `adata.X` is empty. Give the layer with the raw counts as --layer."
    )
    assert refused(["enhance", str(tmp_path / "normalised.h5ad"), "--out", str(tmp_path / "x.h5ad")], capsys) == (
        "stgraph enhance: error: `adata.X` holds non-integer values (e.g. 1.6; 25 of 25 spots), not raw counts: it "
        "looks normalised or log-transformed. Give the layer with the raw counts as --layer; the command does not "
        "read the file's raw: if it holds them, write `adata.raw.to_adata()` to an .h5ad and give that."
    )


def test_warnings_are_one_line_for_the_command_user(tmp_path, capsys):
    # Python's default format printed the warning's source line (a line of stgraph or
    # of the console script) under each message.
    from .test_enhance import slide

    adata, _ = slide("square", 6, 6, 10)
    adata.X[0] = 0  # a spot without counts warns
    path = tmp_path / "spots.h5ad"
    adata.write_h5ad(path)
    assert main(["enhance", str(path), "--out", str(tmp_path / "x.h5ad"), "--epochs", "0"]) == 0
    err = capsys.readouterr().err.splitlines()
    lines = [line for line in err if "no counts" in line]
    assert lines == ["stgraph: warning: 1 of the 36 spots have no counts: they are trained on and enhanced as spots "
                     "expressing no gene. To leave them out, give --drop-empty."]
    assert not any("warn_user" in line or ".py:" in line for line in err)
    assert getattr(warnings.showwarning, "__module__", None) != "stgraph.cli._main"  # the hook is restored


def test_a_library_warning_is_named_with_its_package():
    # A scikit-learn ConvergenceWarning read "stgraph: warning (ConvergenceWarning): ...",
    # as if stgraph had raised it.
    import io

    from sklearn.exceptions import ConvergenceWarning

    from stgraph.cli._main import _show_warning

    printed = io.StringIO()
    for category in (ConvergenceWarning, UserWarning, RuntimeWarning):
        _show_warning("message", category, "file.py", 1, file=printed)
    assert printed.getvalue().splitlines() == [
        "stgraph: warning from sklearn (ConvergenceWarning): message",
        "stgraph: warning: message",
        "stgraph: warning (RuntimeWarning): message",
    ]


def _slide_with_spots_to_leave_out():
    """A 6 x 6 square slide whose first row is off the tissue and whose spots 0 (off the
    tissue) and 10 (in it) have no counts in X, 20 none in the layer 'raw'."""
    from .test_enhance import slide

    adata, _ = slide("square", 6, 6, 10)
    adata.obs["in_tissue"] = (adata.obs["array_row"] > 0).astype(np.int64)
    adata.layers["raw"] = adata.X.copy()
    adata.X[[0, 10]] = 0
    adata.layers["raw"][20] = 0
    return adata


def test_enhance_warnings_advise_the_commands_flags_not_python_code(tmp_path, capsys):
    # They advised `adata[adata.obs['in_tissue'] == 1]` and
    # `adata[np.asarray(adata.X.sum(axis=1)).ravel() > 0]`, which no command-line user can give.
    from stgraph.tl import enhance

    adata = _slide_with_spots_to_leave_out()
    path = tmp_path / "spots.h5ad"
    adata.write_h5ad(path)
    for layer in ([], ["--layer", "raw"]):
        assert main(["enhance", str(path), "--out", str(tmp_path / "x.h5ad"), "--overwrite", "--epochs", "0",
                     *layer]) == 0
        assert [line for line in capsys.readouterr().err.splitlines() if "warning" in line] == [
            "stgraph: warning: 6 of the 36 spots have `obs['in_tissue'] == 0` (off the tissue): they are trained on "
            "and enhanced like the others. To enhance the tissue only, give --tissue-only.",
            f"stgraph: warning: {2 - len(layer) // 2} of the 36 spots have no counts: they are trained on and "
            "enhanced as spots expressing no gene. To leave them out, give --drop-empty.",
        ]
    # The Python API keeps its advice, also after the command ran in this process.
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        enhance(anndata.read_h5ad(path), layer="raw", epochs=0, progress=False)
    assert [str(w.message) for w in caught] == [
        "6 of the 36 spots have `obs['in_tissue'] == 0` (off the tissue): they are trained on and enhanced like "
        "the others. To enhance the tissue only, pass `adata[adata.obs['in_tissue'] == 1]`.",
        "1 of the 36 spots have no counts: they are trained on and enhanced as spots expressing no gene. To leave "
        "them out, pass `adata[np.asarray(adata.layers['raw'].sum(axis=1)).ravel() > 0]`.",
    ]


def test_enhance_tissue_only_and_drop_empty_leave_spots_out_and_count_them(tmp_path, capsys):
    # The command had no way to leave out spots off the tissue or without counts.
    from stgraph.tl import enhance

    adata = _slide_with_spots_to_leave_out()
    path, out = tmp_path / "spots.h5ad", tmp_path / "enhanced.h5ad"
    adata.write_h5ad(path)
    for flags, layer, kept in [
        # Off the tissue first: spot 0 is counted there, not as a spot without counts.
        (["--tissue-only", "--drop-empty"], None, (adata.obs["in_tissue"] == 1).to_numpy() & (np.arange(36) != 10)),
        (["--drop-empty"], "raw", np.arange(36) != 20),
    ]:
        argv = ["enhance", str(path), "--out", str(out), "--overwrite", "--epochs", "0", *flags]
        assert main([*argv, *(["--layer", layer] if layer else [])]) == 0
        printed = capsys.readouterr()
        values = summary(printed.out)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # of the spots off the tissue that --layer raw keeps
            expected = enhance(adata[kept].copy(), layer=layer, epochs=0, progress=False)
        written = anndata.read_h5ad(out)
        assert written.obs_names.tolist() == expected.obs_names.tolist()
        np.testing.assert_array_equal(written.X, expected.X)
        assert values["spots"] == "36" and count(values["new spots"]) == int(expected.obs["imputed"].sum())
        assert values["left out (no counts)"] == "1"
        if layer is None:
            assert values["left out (off tissue)"] == "6" and "warning" not in printed.err
        else:
            assert "left out (off tissue)" not in values and "no counts" not in printed.err
    assert adata.obs_names.tolist() == anndata.read_h5ad(path).obs_names.tolist()


def test_enhance_tissue_only_and_drop_empty_refuse_a_file_without_such_spots(tmp_path, capsys):
    from .test_enhance import slide

    adata, _ = slide("square", 5, 5, 8)
    for name, change, flag, message in [
        ("no_column.h5ad", lambda a: None, "--tissue-only",
         "--tissue-only: the file has no obs['in_tissue'] (scanpy's flag of the spots in the tissue, 1 or 0); "
         "leave --tissue-only out"),
        ("off.h5ad", lambda a: a.obs.__setitem__("in_tissue", 0), "--tissue-only",
         "--tissue-only: none of the 25 spots has obs['in_tissue'] == 1 (its values: [0])"),
        ("empty.h5ad", lambda a: a.layers.__setitem__("raw", np.zeros(a.shape, np.float32)), "--drop-empty",
         "--drop-empty: none of the 25 spots has counts in --layer raw"),
    ]:
        given = adata.copy()
        change(given)
        given.write_h5ad(tmp_path / name)
        argv = ["enhance", str(tmp_path / name), "--out", str(tmp_path / "x.h5ad"), flag, "--layer", "raw"]
        assert refused(argv if flag == "--drop-empty" else argv[:-2], capsys) == f"stgraph enhance: error: {message}"
    assert not (tmp_path / "x.h5ad").exists()


def test_enhance_refuses_a_device_it_cannot_use_in_its_flag_before_reading_the_input(tmp_path, monkeypatch, capsys):
    # tl.enhance refused them after reading the input, the first as "device='cuda' asked
    # for, but CUDA is not available", a Python argument.
    from .test_enhance import slide

    slide("square", 5, 5, 8)[0].write_h5ad(tmp_path / "spots.h5ad")
    monkeypatch.setattr("anndata.read_h5ad", lambda *args, **kwargs: pytest.fail("read before --device was checked"))
    monkeypatch.setattr("torch.cuda.is_available", lambda: False)
    argv = ["enhance", str(tmp_path / "spots.h5ad"), "--out", str(tmp_path / "x.h5ad"), "--device"]
    assert refused([*argv, "cuda"], capsys) == (
        "stgraph enhance: error: argument --device: 'cuda' needs CUDA, which this machine does not have; give cpu"
    )
    assert refused([*argv, "gpu"], capsys) == (
        "stgraph enhance: error: argument --device: unknown device 'gpu'; use 'cpu', 'cuda' or 'auto'"
    )

def _offset(adata, shift: int):
    """``adata`` (a hexagonal slide) with ``array_col`` counting the spots of each row
    (offset coordinates), whose odd rows are shifted by half a column to the right
    (``shift`` 0) or left (1)."""
    adata.obs["array_col"] = (adata.obs["array_col"] + shift) // 2


@pytest.mark.filterwarnings("ignore:(Variable|Observation) names are not unique")
def test_enhance_refusals_of_the_file_say_what_to_change_in_it_not_python_code(tmp_path, capsys):
    # Each advised Python code (`adata.var_names_make_unique()`, `sg.tl.enhance(adata)[:, gene]`,
    # `adata.obs[['array_row', 'array_col']] = ...`), which no command-line user can run.
    from stgraph.tl import enhance

    from .test_enhance import slide

    square, hexagonal = slide("square", 5, 5, 8)[0], slide("hexagonal", 6, 6, 8)[0]
    for name, given, change, command, python in [
        ("one_gene", square[:, :1], lambda a: None,
         "`adata` has 1 gene(s): enhance needs at least 2, as log1p(CP10k) normalises each spot over the genes given "
         "(one gene would be log1p(10^4) in every spot with counts). Give the .h5ad of the whole panel and select "
         "the gene from the output.",
         "Enhance the whole panel and select the gene from the result, e.g. `sg.tl.enhance(adata)[:, gene]`."),
        ("genes", square, lambda a: setattr(a, "var_names", ["g0", "g1"] * 4),
         "`adata.var_names` has 2 duplicated gene name(s), e.g. ['g0', 'g1']; make them unique in the .h5ad (e.g. "
         "with anndata's `var_names_make_unique`) and give it again.",
         "make them unique first, e.g. with `adata.var_names_make_unique()`."),
        ("barcodes", square, lambda a: setattr(a, "obs_names", ["s"] * 25),
         "`adata.obs_names` has 1 duplicated barcode(s), e.g. ['s']; make them unique in the .h5ad (e.g. with "
         "anndata's `obs_names_make_unique`) and give it again.",
         "make them unique first, e.g. with `adata.obs_names_make_unique()`."),
        ("text", square, lambda a: a.obs.__setitem__("array_col", a.obs["array_col"].astype(str)),
         "`obs['array_col']` must hold numbers (integer spot indices), got dtype category; convert it to integers "
         "in the .h5ad and give it again.",
         "convert it first, e.g. `adata.obs['array_col'] = adata.obs['array_col'].astype(int)`."),
        ("swapped", hexagonal,
         lambda a: a.obs.__setitem__(["array_row", "array_col"], a.obs[["array_col", "array_row"]].to_numpy()),
         "In `obsm['spatial']` the spot two columns along a row is 1.73 times as far as the spot one row and one "
         "column away: 1.73 on a hexagonal lattice whose `array_row` and `array_col` are swapped (1 in Visium's "
         "convention, 1.41 on a square grid). Swap obs['array_row'] and obs['array_col'] in the .h5ad and give it "
         "again.",
         "Swap them first, e.g. `adata.obs[['array_row', 'array_col']] = adata.obs[['array_col', 'array_row']]"
         ".to_numpy()`."),
        ("right", hexagonal, lambda a: _offset(a, 0),
         "In `obsm['spatial']` the odd rows are shifted by +0.50 of a column step along the rows: a hexagonal "
         "lattice whose `array_col` counts the spots of each row (offset coordinates). Convert obs['array_col'] in "
         "the .h5ad to Visium's convention (columns step by 2 along a row), e.g. to 2 * array_col + array_row % 2, "
         "and give it again.",
         "Convert to Visium's convention (columns step by 2 along a row), e.g. `array_col = 2 * array_col + "
         "array_row % 2`."),
        ("left", hexagonal, lambda a: _offset(a, 1),
         "In `obsm['spatial']` the odd rows are shifted by -0.50 of a column step along the rows: a hexagonal "
         "lattice whose `array_col` counts the spots of each row (offset coordinates). Convert obs['array_col'] in "
         "the .h5ad to Visium's convention (columns step by 2 along a row), e.g. to 2 * array_col + (array_row + 1) "
         "% 2, and give it again.",
         "Convert to Visium's convention (columns step by 2 along a row), e.g. `array_col = 2 * array_col + "
         "(array_row + 1) % 2`."),
    ]:
        adata = given.copy()
        change(adata)
        path = tmp_path / f"{name}.h5ad"
        adata.write_h5ad(path)
        assert refused(["enhance", str(path), "--out", str(tmp_path / "x.h5ad")], capsys) == (
            f"stgraph enhance: error: {command}"
        )
        # The Python API keeps its advice, also after the command ran in this process.
        with pytest.raises(ValueError) as refusal:
            enhance(anndata.read_h5ad(path), progress=False)
        assert str(refusal.value).endswith(" " + python)
    assert not (tmp_path / "x.h5ad").exists()


def test_enhance_names_the_layer_flag_for_a_layer_the_file_lacks(tmp_path, capsys):
    # It said "Layer 'raw' not found in `adata.layers` (['counts'])."
    from .test_enhance import slide

    adata, _ = slide("square", 5, 5, 8)
    adata.layers["counts"] = adata.X.copy()
    adata.write_h5ad(tmp_path / "spots.h5ad")
    argv = ["enhance", str(tmp_path / "spots.h5ad"), "--out", str(tmp_path / "x.h5ad"), "--layer", "raw"]
    for flags in ([], ["--drop-empty"]):  # --drop-empty reads the layer before tl.enhance does
        assert refused([*argv, *flags], capsys) == (
            "stgraph enhance: error: --layer raw: the file has no such layer (['counts'])."
        )

def _two_libraries():
    """Two 5 x 5 square slides of 8 genes, A and B, joined as scanpy users join them (the
    libraries of uns['spatial'] in obs['library_id']); they share their array coordinates."""
    from .test_enhance import slide

    joined = anndata.concat({"A": slide("square", 5, 5, 8)[0], "B": slide("square", 5, 5, 8, seed=1)[0]},
                            label="library_id", index_unique="-")
    joined.uns["spatial"] = {library: {"scalefactors": {"spot_diameter_fullres": 80.0}} for library in "AB"}
    return joined


def test_enhance_library_enhances_the_spots_of_one_library_as_tl_enhance_does(tmp_path, capsys):
    # The command refused a file of several libraries advising
    # `[sg.tl.enhance(adata[adata.obs['library_id'] == library].copy()) for library in ...]`,
    # and had no way to enhance one of them.
    from stgraph.tl import enhance

    path, out = tmp_path / "joined.h5ad", tmp_path / "enhanced.h5ad"
    _two_libraries().write_h5ad(path)
    assert refused(["enhance", str(path), "--out", str(out)], capsys) == (
        "stgraph enhance: error: `obs['library_id']` holds 2 libraries of `uns['spatial']` (['A', 'B']): enhance "
        "works on one slide at a time. Give --library with one of them to enhance its spots, e.g. --library A."
    )
    assert main(["enhance", str(path), "--out", str(out), "--epochs", "0", "--library", "B"]) == 0
    values = summary(capsys.readouterr().out)
    joined = anndata.read_h5ad(path)
    expected = enhance(joined[joined.obs["library_id"] == "B"].copy(), epochs=0, progress=False)
    written = anndata.read_h5ad(out)
    assert written.obs_names.tolist() == expected.obs_names.tolist()
    assert written.obs_names[:25].tolist() == [f"spot{i}-B" for i in range(25)]
    np.testing.assert_array_equal(written.X, expected.X)
    assert values["spots"] == "50" and values["left out (other libraries)"] == "25"
    assert count(values["new spots"]) == int(expected.obs["imputed"].sum()) == written.n_obs - 25
    # A file of one library is taken whole when --library names it.
    one = joined[joined.obs["library_id"] == "A"].copy()
    one.write_h5ad(tmp_path / "one.h5ad")
    assert main(["enhance", str(tmp_path / "one.h5ad"), "--out", str(out), "--overwrite", "--epochs", "0",
                 "--library", "A"]) == 0
    values = summary(capsys.readouterr().out)
    assert values["left out (other libraries)"] == "0" and anndata.read_h5ad(out).obs_names[:25].equals(one.obs_names)


def test_enhance_library_refuses_a_library_the_file_does_not_hold(tmp_path, capsys):
    from .test_enhance import slide

    _two_libraries().write_h5ad(tmp_path / "joined.h5ad")
    slide("square", 5, 5, 8)[0].write_h5ad(tmp_path / "plain.h5ad")
    for name, message in [
        ("joined", "--library C: the file's spots are of the libraries ['A', 'B'] (obs['library_id']); give one of "
         "them"),
        ("plain", "--library C: the file has no obs column of the library ids of uns['spatial'], so its spots are "
         "of one slide; leave --library out"),
    ]:
        argv = ["enhance", str(tmp_path / f"{name}.h5ad"), "--out", str(tmp_path / "x.h5ad"), "--library", "C"]
        assert refused(argv, capsys) == f"stgraph enhance: error: {message}"
    assert not (tmp_path / "x.h5ad").exists()
