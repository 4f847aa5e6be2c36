# %% [markdown]
# # Tutorial 1 — the transcript graph of a real MERFISH sample
#
# stgraph treats every RNA molecule as a token. Tokens talk to each other along a
# *radius graph*: molecule `j` is a neighbour of `i` when they lie within `r` µm.
# This tutorial loads the MERFISH U2-OS sample that ships with stgraph
# (Xia et al. 2019, via bento-tools), builds its transcript graph and draws it
# over the cell and nucleus outlines.
#
# This file is a percent-format script: run it with `python`, or open it as a
# notebook with Jupytext.

# %%
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.collections import LineCollection

import stgraph as sg

sdata = sg.datasets.merfish_u2os()
print(sdata)

# %% [markdown]
# The points element `transcripts` holds one row per molecule, in µm, with the
# gene, the containing cell and whether it lies in the nucleus. Control probes
# (`notarget*`) are flagged, not dropped.

# %%
points = sg.io.transcripts_frame(sdata)
print(points.head())
print(f"{len(points):,} molecules, {points['gene'].nunique()} features, "
      f"{int(points['is_control'].sum())} control molecules")

# %% [markdown]
# ## Build the graph
# At MERFISH density (about 10 molecules/µm² inside cells) a radius of 1 µm gives
# a few tens of neighbours per molecule. The graph is exact: the edge set equals
# brute force.

# %%
graph = sg.graph.transcript_graph(sdata, radius=1.0)
degree = np.bincount(graph.edge_index[1].numpy(), minlength=graph.num_nodes)
print(graph)
print(f"mean degree {degree.mean():.1f}, median {np.median(degree):.0f}, "
      f"isolated molecules {(degree == 0).sum()}")

# %% [markdown]
# For squidpy's neighbourhood statistics on the molecules, the same graph as an
# AnnData in squidpy's layout (`obsp['spatial_connectivities']`, `obsm['spatial']`,
# one-hot genes in `X`): e.g. `squidpy.gr.interaction_matrix(molecules, cluster_key="gene")`.

# %%
molecules = sg.graph.to_anndata(graph)
print(molecules)

# %% [markdown]
# ## Draw it over the outlines
# We zoom into a 30 µm window around the centre of one nucleus and draw every
# edge whose both ends lie in the window.

# %%
cells = sdata.shapes["cell_boundaries"]
nuclei = sdata.shapes["nucleus_boundaries"]
cx, cy = nuclei.geometry.iloc[0].centroid.coords[0]
half = 15.0
pos = graph.pos.numpy()
inside = (np.abs(pos[:, 0] - cx) < half) & (np.abs(pos[:, 1] - cy) < half)
src, dst = graph.edge_index.numpy()
keep = inside[src] & inside[dst]

fig, ax = plt.subplots(figsize=(7, 7))
ax.add_collection(
    LineCollection(np.stack([pos[src[keep]], pos[dst[keep]]], axis=1),
                   linewidths=0.2, colors="0.6", zorder=1)
)
ax.scatter(*pos[inside].T, c=graph.gene[inside].numpy(), cmap="tab20", s=4, zorder=2)
cells.boundary.plot(ax=ax, color="black", linewidth=1)
nuclei.boundary.plot(ax=ax, color="tab:blue", linewidth=1)
ax.set_xlim(cx - half, cx + half)
ax.set_ylim(cy - half, cy + half)
ax.set_aspect("equal")
ax.set_title(f"radius graph, r = {graph.radius} µm ({int(keep.sum()):,} edges shown)")
ax.set_xlabel("x (µm)")
ax.set_ylabel("y (µm)")
plt.show()
