# %% [markdown]
# # Tutorial 4 — a CosMx run without segmentation polygons
#
# A CosMx transcript file assigns each molecule to a cell and says which cell
# compartment it fell in (`CellComp`: nuclear, cytoplasm, membrane), but it ships
# no cell or nucleus outlines. `stgraph.io.outlines_from_transcripts` draws them
# around each cell's molecules, after which the localization tools run as on data
# with measured outlines. This tutorial reads the native files, draws the outlines,
# withholds half of the nuclei and checks the nuclear calls on those cells against
# the platform's own `CellComp`, then looks at the localization patterns.
#
# Percent-format script: run it with `python`, or open it as a notebook with Jupytext.

# %%
import warnings
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score

import stgraph as sg

# The data folder lies next to the repository: ../shared from its root, ../../shared from tutorials/.
SHARED = next((p for p in (Path("../shared"), Path("../../shared")) if (p / "data").is_dir()), Path("../shared"))
sdata = sg.io.read_cosmx(SHARED.resolve() / "data" / "cosmx_lung12")
molecules = sg.io.transcripts_frame(sdata)
print(sdata)
print(f"{len(molecules):,} molecules, {molecules['cell_id'].nunique()} cells, shapes: {list(sdata.shapes)}")

# %% [markdown]
# ## Outlines drawn around the molecules
# A cell's outline is the concave hull of its molecules grown by 0.5 µm; a
# nucleus's is that of the cell's nuclear molecules (`in_nucleus`, from
# `CellComp == "Nuclear"`), clipped to the cell. Cells with fewer than three
# molecules get none.

# %%
sg.io.outlines_from_transcripts(sdata, kind="cell")
sg.io.outlines_from_transcripts(sdata, kind="nucleus")
cells, nuclei = sdata.shapes["cell_boundaries"], sdata.shapes["nucleus_boundaries"]
print(f"{len(cells)} cell and {len(nuclei)} nucleus outlines; "
      f"nucleus / cell area: median {np.median(nuclei.area / cells.area.reindex(nuclei.index)):.2f}")

# %% [markdown]
# ## Nuclear calls on cells whose nucleus is withheld
# Keep the nucleus outlines of every other cell for training and remove the
# others. In mode `"withheld"` the compartment model never sees an outline as a
# feature: it learns from the training cells where nuclear molecules sit (position
# in the cell, gene, the genes around them) and predicts every cell.

# %%
with_nucleus = np.array(sorted(nuclei.index))
train, held = with_nucleus[::2], with_nucleus[1::2]
sdata.shapes["nucleus_boundaries"] = nuclei.loc[train]
with warnings.catch_warnings():
    # the few cells too small for an outline are named in a warning and left unscored
    warnings.filterwarnings("ignore", ".*have transcripts but no outline", UserWarning)
    sg.tl.localization(sdata, compartment="withheld", training_cells=list(train), seed=0)

scored = sg.io.transcripts_frame(sdata)
cell = scored["cell_id"].astype(str)
is_train, is_held = cell.isin(train).to_numpy(), cell.isin(held).to_numpy()
truth = scored["in_nucleus"].to_numpy()
# Baseline: each molecule scored by its gene's nuclear fraction in the training cells.
fraction = pd.Series(truth[is_train]).groupby(scored["gene"].astype(str).to_numpy()[is_train]).mean()
baseline = scored["gene"].astype(str)[is_held].map(fraction).fillna(truth[is_train].mean())
auroc = roc_auc_score(truth[is_held], scored["p_nuclear"].to_numpy()[is_held])
auroc_baseline = roc_auc_score(truth[is_held], baseline)
print(f"held-out cells ({len(held)}, {is_held.sum():,} molecules): nuclear AUROC {auroc:.3f}, "
      f"gene-fraction baseline {auroc_baseline:.3f}")

# %% [markdown]
# ## Genes and patterns
# The gene score is the log-odds of nuclear against cytoplasmic molecules, from the
# predicted probabilities, with an interval for counting noise and variation
# between cells. The patterns come from the shipped head; the CosMx cells are small
# (a median of 143 molecules), so most (cell, gene) groups fall below the minimum of
# 5 molecules and are not scored.

# %%
table = sdata.tables["table"]
genes = table.var.dropna(subset=["nuclear_score"]).sort_values("nuclear_score", ascending=False)
print(genes[["nuclear_score", "nuclear_score_ci_low", "nuclear_score_ci_high"]].head(5))
lpp = table.uns["lpp"]
print(f"{len(lpp)} scored cell-genes; top patterns:", lpp["top_pattern"].value_counts().to_dict())

# %%
# The largest held-out cell, with the nucleus outline it was scored without drawn back in.
sdata.shapes["nucleus_boundaries"] = nuclei
largest = cell[is_held].value_counts().index[0]
ax = sg.pl.localization_transcripts(sdata, "p_nuclear", cells=[largest])
ax.set_title(f"held-out cell {largest}: p_nuclear, nucleus withheld when scored")
plt.show()

# %% [markdown]
# From the shell, one command reads the folder, draws the outlines, runs the task
# heads and writes everything to a new SpatialData store:
#
# ```bash
# stgraph run ../shared/data/cosmx_lung12 --out lung12_result.zarr
# ```
