# %% [markdown]
# # Tutorial 2 — where RNAs sit in the cell, which genes sit together, and subcellular domains
#
# On the MERFISH U2-OS sample that ships with stgraph this tutorial
#
# 1. calls Bento's five localization patterns for every (cell, gene) with the
#    pattern head shipped in the package (no training needed),
# 2. predicts for every molecule whether it lies in the nucleus **without looking
#    at the nucleus outlines** of the scored cells, and checks it against them,
# 3. scores gene–gene colocalization along the transcript graph,
# 4. splits the cells into subcellular domains, one clustering for all cells.
#
# Percent-format script: run it with `python`, or open it as a notebook with Jupytext.

# %%
import matplotlib.pyplot as plt
from sklearn.metrics import adjusted_rand_score, roc_auc_score

import stgraph as sg

sdata = sg.datasets.merfish_u2os()
cells = sorted(sdata["cell_boundaries"].index)
print(f"{len(cells)} cells, {len(sdata['nucleus_boundaries'])} with a nucleus outline")

# %% [markdown]
# ## Localization patterns and the nuclear compartment
# `compartment="withheld"` never uses a nucleus outline as a feature: a small model
# learns "nuclear or not" from the graph context (position in the cell, the genes
# around) on the `training_cells`, and predicts every molecule. Here it is trained
# on the first ten cells with a nucleus and judged on the others.

# %%
with_nucleus = [c for c in cells if c in sdata["nucleus_boundaries"].index]
training = with_nucleus[:10]
sg.tl.localization(sdata, compartment="withheld", training_cells=training, seed=0)
table = sdata.tables["table"]
print(table.uns["lpp"].head())
print(table.uns["lpp"]["top_pattern"].value_counts())

# %%
points = sg.io.transcripts_frame(sdata)
held_out = points["cell_id"].isin(with_nucleus[10:]).to_numpy()
auroc = roc_auc_score(points.loc[held_out, "in_nucleus"], points.loc[held_out, "p_nuclear"])
print(f"nuclear AUROC on {held_out.sum():,} molecules of held-out cells: {auroc:.3f}")

# %% [markdown]
# Each gene also gets a nuclear-enrichment score (log-odds of nuclear vs
# cytoplasmic) with an interval for counting noise and variation between cells, in `var`.

# %%
scores = table.var[["nuclear_score", "nuclear_score_ci_low", "nuclear_score_ci_high"]].dropna()
print(scores.sort_values("nuclear_score").iloc[[0, 1, 2, -3, -2, -1]])

# %%
fig, axes = plt.subplots(1, 2, figsize=(12, 5))
sg.pl.localization_composition(sdata, by="gene", top=20, ax=axes[0])
sg.pl.localization_transcripts(sdata, color="p_nuclear", cells=with_nucleus[10:11], ax=axes[1])
fig.tight_layout()

# %% [markdown]
# ## Colocalization
# Without a pretrained encoder the attention weights are `1 / degree`, and the
# score is a log2 colocation quotient along the within-cell radius graph, shrunk
# toward 0 for pairs seen on few edges (with `prior_events=0` it is log2 `clq`, here
# within 0.001: the few molecules without a neighbour in their cell count only in the
# quotient's expectation), and tested against random relabelling of genes inside
# each cell (Benjamini–Hochberg FDR). Pass `model=` a pretrained encoder (`sg.tl.pretrain`) for the attention score.

# %%
result = sg.tl.colocalization(sdata, radius=1.0)
pairs = result.table
top = pairs[pairs["gene_a"] != pairs["gene_b"]].sort_values("z", ascending=False).head(10)
print(top[["gene_a", "gene_b", "score", "clq", "z", "fdr", "n_cells"]])
gene_graph = result.to_networkx()
# A directed graph: an edge A -> B for each ordered pair of two genes that passes.
print(f"gene graph: {gene_graph.number_of_nodes()} genes, {gene_graph.number_of_edges()} ordered pairs at FDR 5 %")

# %%
sg.pl.colocalization_heatmap(sdata, top=15)
plt.close("all")

# %% [markdown]
# Most rows of this sample are one molecule called several times (flagged
# `duplicate`, see `sg.datasets.merfish_u2os`). The null takes every row for an
# independent molecule, so the copies inflate what passes; without them far fewer
# pairs do.

# %%
unique = sg.datasets.merfish_u2os(drop_duplicates=True)
passing = {  # ordered pairs (A, B), a gene with itself included
    "with the duplicate calls": int((pairs["fdr"] < 0.05).sum()),
    "without": int((sg.tl.colocalization(unique, radius=1.0, inplace=False).table["fdr"] < 0.05).sum()),
}
print(f"gene pairs at FDR 5 %: {passing}")

# %% [markdown]
# ## Subcellular domains
# Every molecule in a cell is described by the genes around it (a 3 µm within-cell
# graph) compared with its whole cell, and one k-means over all cells gives the
# domains, so a label means the same place in every cell. With two domains, the
# smaller one is led by MALAT1, a nuclear long non-coding RNA, and overlaps the
# nucleus (which the clustering never saw) in part: ARI about 0.3. Passing a masked gene model
# from `sg.tl.pretrain` as `model=` clusters the encoder context instead: the genes
# the encoder expects at each molecule with its own gene hidden.

# %%
found = sg.tl.domains(sdata, radius=3.0, n_domains=2, seed=0)
points = sg.io.transcripts_frame(sdata)
in_cell = points["domain"].notna().to_numpy()
domain_ari = adjusted_rand_score(points.loc[in_cell, "in_nucleus"], points.loc[in_cell, "domain"])
print(f"domains vs nucleus/cytoplasm: ARI {domain_ari:.2f}")
print(found.enrichment.groupby("domain").head(3)[["domain", "gene", "log2_enrichment", "fdr"]])

# %%
sg.pl.domains(sdata, cells=with_nucleus[10:11])
plt.close("all")
