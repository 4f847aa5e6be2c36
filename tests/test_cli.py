"""The `stgraph demo` main job on the embedded sample."""
import re

import pytest

from stgraph.cli import main


def test_demo_prints_the_real_sample_summary(capsys):
    assert main(["demo", "--radius", "0.5"]) == 0
    out = capsys.readouterr().out
    values = dict(re.findall(r"^(.+?)\s{2,}(\S+)$", out, flags=re.M))
    assert values["molecules"] == "174,827"
    assert values["genes"] == "130" and values["control probes"] == "5"
    assert values["cells"] == "15"
    edges = int(values["edges"].replace(",", ""))
    assert abs(float(values["mean degree"]) - edges / 174_827) < 1e-3


@pytest.mark.parametrize("radius", ["-1", "0", "nan", "inf", "one"])
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
