"""Every tutorial runs from start to end."""
import runpy
from pathlib import Path

import matplotlib
import pytest

ROOT = Path(__file__).resolve().parents[1]
TUTORIALS = sorted((ROOT / "tutorials").glob("[0-9]*.py"))
SHARED_DATA = ROOT.parent / "shared" / "data"


@pytest.mark.parametrize("path", TUTORIALS, ids=[p.stem for p in TUTORIALS])
def test_tutorial_runs(path, monkeypatch):
    if "../shared" in path.read_text() and not SHARED_DATA.is_dir():
        pytest.skip(f"{path.name} reads {SHARED_DATA}, which is absent")
    matplotlib.use("Agg")
    monkeypatch.chdir(path.parent)
    namespace = runpy.run_path(str(path), run_name="__main__")
    # The first tutorial's graph must be the real sample's, not a toy.
    if path.stem.startswith("01"):
        assert namespace["graph"].num_nodes == 174_827
        # "a few tens of neighbours per molecule" at r = 1 µm.
        assert namespace["graph"].num_edges == 6_875_170
        assert (namespace["degree"] == 0).sum() == 38
        assert namespace["molecules"].obsp["spatial_connectivities"].nnz == 6_875_170
    if path.stem.startswith("02"):
        # Nuclear calls without outlines on cells the compartment model never saw.
        assert namespace["auroc"] > 0.9
        assert namespace["top"]["fdr"].max() < 0.05
        # Colocalization calls shrink once the repeated calls of one molecule are left out.
        assert namespace["passing"] == {"with the duplicate calls": 2_761, "without": 578}
        # Two domains, found without the outlines, partly follow the nucleus.
        assert namespace["domain_ari"] > 0.25
        top_genes = namespace["found"].enrichment.groupby("domain")["gene"].first().astype(str)
        assert "MALAT1" in set(top_genes)
        # "the smaller one is led by MALAT1"
        smaller = namespace["points"]["domain"].value_counts().idxmin()
        assert top_genes[smaller] == "MALAT1"
    if path.stem.startswith("03"):
        # Held-out spots of the x2 sub-lattice: stgraph beats linear interpolation.
        assert namespace["pcc_stgraph"] > namespace["pcc_linear"] + 0.03
        assert namespace["enhanced"].n_obs > 3 * namespace["adata"].n_obs
        # The output keeps the original spots, their barcodes and raw counts.
        enhanced, adata = namespace["enhanced"], namespace["adata"]
        original = enhanced[~enhanced.obs["imputed"].to_numpy()]
        assert list(original.obs_names) == list(adata.obs_names)
        assert (abs(original.layers["counts"] - adata.X)).sum() == 0
    if path.stem.startswith("04"):
        # Outlines drawn from the molecules; nuclear calls on cells whose nucleus was withheld.
        assert namespace["auroc"] > 0.85 > namespace["auroc_baseline"] + 0.2
        assert "NEAT1" in set(namespace["genes"].index[:5])  # a nuclear-retained lncRNA
        # "Cells with fewer than three molecules get none."
        per_cell = namespace["molecules"]["cell_id"].dropna().astype(str).value_counts()
        drawn = set(namespace["cells"].index.astype(str))
        assert (len(per_cell), len(drawn)) == (120, 118)
        assert per_cell.drop(sorted(drawn)).max() < 3 <= per_cell.loc[sorted(drawn)].min()
        # "(a median of 143 molecules)" per cell.
        assert per_cell.median() == 143
