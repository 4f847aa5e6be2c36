"""Every tutorial runs from start to end."""
import runpy
from pathlib import Path

import matplotlib
import pytest

TUTORIALS = sorted((Path(__file__).resolve().parents[1] / "tutorials").glob("[0-9]*.py"))


@pytest.mark.parametrize("path", TUTORIALS, ids=[p.stem for p in TUTORIALS])
def test_tutorial_runs(path, monkeypatch):
    matplotlib.use("Agg")
    monkeypatch.chdir(path.parent)
    namespace = runpy.run_path(str(path), run_name="__main__")
    # The first tutorial's graph must be the real sample's, not a toy.
    if path.stem.startswith("01"):
        assert namespace["graph"].num_nodes == 174_827
    if path.stem.startswith("02"):
        # Nuclear calls without outlines on cells the compartment model never saw.
        assert namespace["auroc"] > 0.9
        assert namespace["top"]["fdr"].max() < 0.05
