"""The `stgraph demo` main job on the embedded sample and `stgraph run` on the user's data."""
import re
from pathlib import Path

import pytest
import spatialdata

import stgraph.io
from stgraph.cli import main
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
    assert "more than the 10,000 bytes allowed (available memory)" in err


def test_demo_help_says_what_each_option_does(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["demo", "--help"])
    assert exit_info.value.code == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "--radius RADIUS radius in µm (default 1.0)" in out
    assert "'cell' only pairs of the same cell" in out
    assert "--graph-only stop after the graph (skip localization, colocalization and domains)" in out
    # The top-level help showed the module docstring's RST markup.
    with pytest.raises(SystemExit):
        main(["--help"])
    assert "stgraph: transcript-level spatial transcriptomics on PyTorch Geometric." in capsys.readouterr().out


COSMX = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "cosmx_lung12"
needs_cosmx = pytest.mark.skipif(not COSMX.exists(), reason=f"shared data {COSMX} is absent")


def _listing(folder: Path) -> list[tuple[str, int, int]]:
    return sorted((str(p.relative_to(folder)), p.stat().st_size, p.stat().st_mtime_ns) for p in folder.rglob("*"))


@needs_cosmx
def test_run_reads_a_platform_folder_runs_the_tools_and_writes_a_store(tmp_path, capsys):
    before = _listing(COSMX)
    out = tmp_path / "result.zarr"
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
    assert sum(1 for key in values if key.startswith("domain ")) == 3
    written = spatialdata.read_zarr(out)
    table = written.tables["table"]
    assert {"lp", "lpp", "lp_stats", "colocalization"} <= set(table.uns)
    assert len(table.uns["lpp"]) == count(values["scored cell-genes"])
    points = written.points["transcripts"].compute()
    assert {"pattern", "p_nuclear", "domain"} <= set(points.columns) and len(points) == len(frame)
    assert {"cell_boundaries", "nucleus_boundaries"} <= set(written.shapes)
    # The written store reads back as input; a store is never overwritten unasked.
    again = tmp_path / "again.zarr"
    assert main(["run", str(out), "--out", str(again), "--tools", "colocalization"]) == 0
    values = summary(capsys.readouterr().out)
    assert values["input"] == f"{out} (zarr)" and "scored cell-genes" not in values
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
